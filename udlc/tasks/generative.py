"""What the generative tasks (vae, gan) share: named networks checked against each other and the data,
samples loaded without their labels, and the run information `udlc sample` reads from the exported file."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TYPE_CHECKING

from pydantic import Field, PositiveInt

from udlc.errors import SpecError, did_you_mean
from udlc.spec.base import StrictModel
from udlc.tasks.fields import error
from udlc.tasks.registry import RunState

if TYPE_CHECKING:  # annotations only: the check path imports no more than it needs
    from udlc.compiler.pipeline import Compiled


def check_networks(compiled: Compiled, task: str, names: tuple[str, ...]) -> list[SpecError]:
    """The spec's `models:` are exactly `names`."""
    spec, doc = compiled.spec, compiled.doc
    listing = ", ".join(names)
    if spec.models is None:
        return [error(doc, f"task {task} trains the networks {listing}, each under `models:`", ("model",),
                      "write `models: {" + ", ".join(f"{n}: {{...}}" for n in names) + "}`", key=True)]
    errors = []
    for name in spec.models:
        if name not in names:
            errors.append(error(doc, f"task {task} has no network '{name}'", ("models", name),
                                did_you_mean(name, names) or f"its networks are {listing}", key=True))
    missing = [n for n in names if n not in spec.models]
    if missing:
        errors.append(error(doc, f"task {task} needs the network{'s' * (len(missing) > 1)} {', '.join(missing)}",
                            ("models",), f"give each of {listing} under `models:`", key=True))
    return errors


def one_input(compiled: Compiled, network: str) -> tuple[str, tuple] | SpecError:
    """A network's one float input: its name and shape, or the error."""
    graph = compiled.graphs[network]
    base = ("models", network)
    if len(graph.inputs) != 1:
        return error(compiled.doc, f"{network} takes one input, but this one has {len(graph.inputs)}: "
                     f"{', '.join(graph.inputs)}", base + ("inputs",), "give one `input: [shape]`", key=True)
    ((name, shape),) = graph.inputs.items()
    if graph.dtype_of(name) != "float32":
        return error(compiled.doc, f"{network} reads float32 values", base, "declare `input: [shape]`", key=True)
    return name, tuple(shape)


def needs_minmax(compiled: Compiled) -> list[SpecError]:
    """bce reconstructs values in [0, 1]: the data must be scaled into them."""
    normalize = compiled.spec.data.normalize
    if normalize == "minmax":
        return []
    written = "normalize" in (compiled.doc.data.get("data") or {})
    return [error(compiled.doc, f"bce reconstructs values in [0, 1], but data.normalize is {normalize}",
                  ("data", "normalize") if written else ("data",), "set `data.normalize: minmax`", key=not written)]


def check_samples(compiled: Compiled, task: str, where: tuple, shape: tuple) -> list[SpecError]:
    """The data's samples against the input that reads them; no augmentation (a generative model learns
    the data as it is)."""
    from udlc.data.file_kinds import peek
    from udlc.data.peek import mismatches
    from udlc.tasks.supervised import located

    spec, doc = compiled.spec, compiled.doc
    if spec.data.augment:
        return [error(doc, f"task {task} learns the data as it is: its samples are "
                      "not augmented", ("data", "augment"), "drop `augment`", key=True)]
    if spec.data.text is not None:
        return [error(doc, "a generative task learns from numeric samples, not a text column", ("data", "text"),
                      "drop `text`", key=True)]
    try:
        signature = peek(spec.data, compiled.base_dir)
    except SpecError as e:
        return [located(e, doc)]
    return [error(doc, m.message, where, m.hint, key=True)
            for m in mismatches(signature, shape, shape, "mse", "regression") if m.where == "input"]


def load_samples(compiled: Compiled, shape: tuple) -> Any:
    """The data split and normalized (spec.data.normalize) as training reads it; the labels stay unused."""
    from udlc.data import prepare
    from udlc.tasks.supervised import located

    spec = compiled.spec
    try:
        return prepare(spec.data, shape, compiled.base_dir, spec.seed)
    except SpecError as e:
        raise located(e, compiled.doc) from None


def sample_batches(data: Any, split: str, input_name: str, batch_size: int, shuffle: bool, device: Any) -> Any:
    """A split's samples under the input's name (no targets); None for an empty split."""
    from udlc.data import make_batches

    x = getattr(data, f"x_{split}")
    return make_batches({input_name: x}, batch_size=batch_size, shuffle=shuffle, device=device) if len(x) else None


def raw(data: Any, values: Any) -> Any:
    """Normalized samples (a torch tensor) back in the data's units."""
    import torch

    norm = data.normalization
    shift, scale = (torch.as_tensor(a, device=values.device) for a in (norm.shift, norm.scale))
    return values * scale + shift


def value_range(data: Any) -> tuple[float, float]:
    """The training samples' smallest and largest value in the data's units: black and white in a picture."""
    samples = data.normalization.invert(data.x_train)
    return float(samples.min()), float(samples.max())


def sample_info(data: Any, task: str, input_name: str, latent_shape: tuple) -> dict[str, Any]:
    """What run.json records for export and `udlc sample`: the samples' shape and units, the latent's shape."""
    return {
        "task": task,
        "classes": data.classes,
        "input_names": [input_name],
        "input_shapes": [list(data.input_shape)],
        "sample_shapes": [list(data.input_shape)],
        "latent_shape": list(latent_shape),
        "value_range": list(value_range(data)),
        "normalization": data.normalization.to_json(),
        "target_normalization": None,
    }


class GenerativeOptions(StrictModel):
    samples_every: PositiveInt | None = Field(None, description="also write samples/epoch-<N>.png every this "
                                                                 "many epochs, to watch progress")


@dataclass
class GenerativeState(RunState):
    input: str  # the input that reads the data's samples (the encoder's, the discriminator's)
    latent_shape: tuple  # the decoder's or generator's input
    eval_generator: Any  # a torch.Generator of evaluation's own, reseeded each time: the training streams untouched


class Generative:
    """What the generative tasks share at train time (options from GenerativeOptions): a split's samples under
    the input's name (GenerativeState.input), run information for `udlc sample` (its latent_shape), and pictures —
    samples.png when training ends, samples/epoch-<N>.png every `samples_every` epochs (`picture` draws)."""

    def info(self, compiled: Compiled, state: Any) -> dict[str, Any]:
        return sample_info(state.data, self.name, state.input, state.latent_shape)  # type: ignore[attr-defined]

    def sizes(self, state: Any) -> str:
        data = state.data
        return f"{len(data.x_train)}/{len(data.x_val)}/{len(data.x_test)}"

    def batches(self, state: Any, split: str, *, batch_size: int, shuffle: bool, device: Any) -> Any:
        return sample_batches(state.data, split, state.input, batch_size, shuffle, device)

    def picture(self, s: Any, data: Any, path: Path) -> None:
        raise NotImplementedError

    def after_epoch(self, s: Any) -> None:
        every = self.options.samples_every  # type: ignore[attr-defined]
        if every and s.epoch % every == 0:
            self.picture(s, s.run_state.data, s.run.samples_at(s.epoch))

    def after_training(self, s: Any) -> None:
        self.picture(s, s.run_state.data, s.run.samples_file)


POINTS_IN_PICTURE = 1000  # a scatter plot shows a distribution best with many points
IMAGES_IN_PICTURE = 64


def in_picture(data: Any) -> int:
    """How many samples a picture holds; 0 when the samples are neither images nor 2-D points."""
    from udlc.data.images import picturable

    if not picturable(data.input_shape):
        return 0
    return POINTS_IN_PICTURE if tuple(data.input_shape) == (2,) else IMAGES_IN_PICTURE


def save_samples(s: Any, data: Any, draw: Any, path: Path, columns: int | None = None) -> None:
    """`draw()` (torch, samples in the data's units) with every network in eval mode, as a picture at `path`:
    images in a grid, 2-D points over the training data's. Training mode comes back afterwards."""
    import torch

    from udlc.data.images import save_picture

    modes = {name: model.training for name, model in s.models.items()}
    for model in s.models.values():
        model.eval()
    try:
        with torch.no_grad():
            samples = draw().cpu().numpy()
    finally:
        for name, model in s.models.items():
            model.train(modes[name])
    if not s.main:
        return  # every process drew (a sharded network gathers its weights in each); the main one writes
    points = tuple(data.input_shape) == (2,)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_picture(samples, path, value_range(data), data.normalization.invert(data.x_train) if points else None,
                 columns)


def prior_picture(s: Any, data: Any, path: Path, latent_shape: tuple, decode: Any) -> None:
    """A picture of `decode` (latents → samples in the data's units) of draws from N(0, I) seeded by the spec."""
    import torch

    count = in_picture(data)
    if count:
        z = torch.randn((count, *latent_shape), generator=torch.Generator().manual_seed(s.spec.seed))
        save_samples(s, data, lambda: decode(z.to(s.device)), path)


def frechet_distance(a: Any, b: Any) -> float:
    """The Fréchet distance between Gaussians fitted to two sets of vectors (n, d): |m_a - m_b|² +
    tr(C_a + C_b - 2 (C_a C_b)^½), the measure of FID, here on the vectors themselves."""
    import warnings

    import numpy as np
    from scipy import linalg

    mean_a, mean_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    with warnings.catch_warnings():  # pixels that never change make the covariances singular: expected here
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root = linalg.sqrtm(cov_a @ cov_b)
        if not np.isfinite(root).all():  # nudge both covariances, as FID implementations do
            eps = np.eye(len(cov_a)) * 1e-6
            root = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    return float(((mean_a - mean_b) ** 2).sum() + np.trace(cov_a + cov_b - 2.0 * root.real))


QUALITY_SAMPLES = 500


def reference_quality(data: Any, samples: Any, labels: Any = None) -> dict[str, float]:
    """How a reference classifier (scikit-learn's logistic regression, fitted on the training split) sees
    generated samples (normalized, as the training split): the Fréchet distance between its logits for them
    and for the test split's samples (FID's measure in a small classifier's feature space), its own test
    accuracy (how far to trust it), the same distance between the validation and test splits (what real
    samples score), and, for samples asked of a class (`labels`), the share it puts in that class. Empty for data without classes or without a test split, and for 2-D points (a linear classifier
    of points says little; their picture and `frechet` say more)."""
    import warnings

    import numpy as np
    from sklearn.linear_model import LogisticRegression

    if data.n_classes is None or not len(data.x_test) or math.prod(data.input_shape) <= 2:
        return {}
    flat = [np.asarray(a, dtype=np.float64).reshape(len(a), -1)
            for a in (data.x_train, data.x_test, samples, data.x_val)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter: the fit is a measuring stick, not a result
        classifier = LogisticRegression(max_iter=2000).fit(flat[0], np.asarray(data.y_train).reshape(-1))
    real, fake = classifier.decision_function(flat[1]), classifier.decision_function(flat[2])
    out = {"test_reference_accuracy": float(classifier.score(flat[1], np.asarray(data.y_test).reshape(-1))),
           "test_classifier_frechet": frechet_distance(real, fake)}
    if len(flat[3]) > 1:  # two real sets, validation and test, for scale: what a perfect generator would score
        out["test_classifier_frechet_val"] = frechet_distance(classifier.decision_function(flat[3]), real)
    if labels is not None:
        out["test_class_accuracy"] = float((fake.argmax(axis=1) == np.asarray(labels).reshape(-1)).mean())
    return out
