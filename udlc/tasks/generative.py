"""What the generative tasks (vae, gan, diffusion, autoencoder) share: named networks checked against each
other and the data, samples loaded without their labels (files of samples alone are theirs, and `normalize:
symmetric`), the run information `udlc sample` reads from the exported file, and the measures of generated
samples: `frechet` on a fixed small feature space, and a reference classifier's view."""

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
    from udlc.tasks.checks import located

    spec, doc = compiled.spec, compiled.doc
    if spec.data.augment:
        return [error(doc, f"task {task} learns the data as it is: its samples are "
                      "not augmented", ("data", "augment"), "drop `augment`", key=True)]
    if spec.data.text is not None:
        return [error(doc, "a generative task learns from numeric samples, not a text column", ("data", "text"),
                      "drop `text`", key=True)]
    try:
        signature = peek(spec.data.for_generation(), compiled.base_dir)  # the labels stay unused
    except SpecError as e:
        return [located(e, doc)]
    return [error(doc, m.message, where, m.hint, key=True)
            for m in mismatches(signature, shape, shape, "mse", "regression") if m.where == "input"]


def load_samples(compiled: Compiled, shape: tuple) -> Any:
    """The data split and normalized (spec.data.normalize) as training reads it; the labels stay unused."""
    from udlc.data import prepare
    from udlc.tasks.checks import located

    spec = compiled.spec
    symmetric = spec.data.normalize == "symmetric"
    data_spec = spec.data.for_generation()
    data_spec = data_spec.model_copy(update={"normalize": "minmax"}) if symmetric else data_spec
    try:
        data = prepare(data_spec, shape, compiled.base_dir, spec.seed)
    except SpecError as e:
        raise located(e, compiled.doc) from None
    return stretched(data) if symmetric else data


def stretched(data: Any) -> Any:
    """minmax's [0, 1] samples stretched to [-1, 1] (`normalize: symmetric`, a tanh generator's range): the
    normalization's shift moves to the middle of the range and its scale halves, so every reader of it (the
    exported graph's un-normalizing, pictures, `udlc sample`) maps back to the data's units unchanged."""
    from udlc.data.arrays import LazyRows
    from udlc.data.dataset import Normalization

    norm = data.normalization
    data.normalization = Normalization("symmetric", norm.shift + norm.scale / 2, norm.scale / 2)
    for split in ("train", "val", "test"):
        x = getattr(data, f"x_{split}")
        if isinstance(x, LazyRows):  # read on demand: normalized as each batch is read
            x.transform = data.normalization.apply_normalization
        else:
            setattr(data, f"x_{split}", x * 2.0 - 1.0)
    return data


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

    draws_subsets = True  # their samples come from udlc.data.prepare (before Task in the MRO, so this one counts)

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
    tr(C_a + C_b - 2 (C_a C_b)^½), the measure of FID. tr (C_a C_b)^½ is the sum of the square roots of the
    eigenvalues of the symmetric C_a^½ C_b C_a^½ (the same spectrum as C_a C_b): two symmetric eigen-
    decompositions, stable for the singular covariances of pixels that never change, where a general matrix
    square root needs its own nudges and costs several times more."""
    import numpy as np

    a, b = (np.asarray(v, dtype=np.float64).reshape(len(v), -1) for v in (a, b))
    mean_a, mean_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
    product = root_a @ cov_b @ root_a
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh((product + product.T) / 2.0), 0.0, None)).sum()
    distance = ((mean_a - mean_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_root
    return max(0.0, float(distance))  # equal sets can round a hair below 0


# Samples of more values than this are measured on a fixed random projection to this many: a 64x64 colour
# picture has 12,288, whose covariance costs more to fit than the epoch that made them; distances between
# two sets survive a Gaussian projection (Johnson-Lindenstrauss), and a few hundred samples fit no more.
FEATURES = 256
PROJECTION_SEED = 0  # the same projection in every run, so runs on one data shape compare


def features(x: Any) -> Any:
    """Samples (n, ...) as the vectors `frechet` and the reference classifier measure: flattened, and past
    FEATURES values a fixed seeded Gaussian projection to FEATURES (scaled by 1/√FEATURES, so lengths keep)."""
    import numpy as np

    flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    if flat.shape[1] <= FEATURES:
        return flat
    return flat @ projection(flat.shape[1])


_projections: dict[int, Any] = {}


def projection(width: int) -> Any:
    """The (width, FEATURES) projection: drawn once per width per process (12,288 x 256 takes 50 ms)."""
    import numpy as np

    if width not in _projections:
        rng = np.random.default_rng(PROJECTION_SEED)
        _projections[width] = rng.standard_normal((width, FEATURES)) / math.sqrt(FEATURES)
    return _projections[width]


def sample_frechet(real: Any, fake: Any) -> float:
    """`frechet`: the Fréchet distance between real and generated samples (normalized units) in `features`."""
    return frechet_distance(features(real), features(fake))


QUALITY_SAMPLES = 500


def reference_quality(data: Any, samples: Any, labels: Any = None, note: Any = None) -> dict[str, float]:
    """How a reference classifier (scikit-learn's logistic regression, fitted on the training split's
    `features`) sees generated samples (normalized, as the training split): the Fréchet distance between its
    logits for them and for the test split's samples (FID's measure in a small classifier's feature space), its
    own test accuracy (how far to trust it), the same distance between the validation and test splits (what real
    samples score), and, for samples asked of a class (`labels`), the share it puts in that class. Empty for data
    without classes or without a test split, and for 2-D points (a linear classifier of points says little;
    their picture and `frechet` say more); empty too, said once through `note`, when the training split holds
    fewer than two classes: there is no classifier to fit."""
    import warnings

    import numpy as np
    from sklearn.linear_model import LogisticRegression

    if data.n_classes is None or not len(data.x_test) or math.prod(data.input_shape) <= 2:
        return {}
    y_train = np.asarray(data.y_train).reshape(-1)
    if len(np.unique(y_train)) < 2:
        if note is not None:
            note("the training split holds one class: no reference classifier to fit, so no classifier_frechet "
                 "or reference_accuracy (frechet still measures the samples)")
        return {}
    flat = [features(a) for a in (data.x_train, data.x_test, samples, data.x_val)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter: the fit is a measuring stick, not a result
        classifier = LogisticRegression(max_iter=2000).fit(flat[0], y_train)
    real, fake = classifier.decision_function(flat[1]), classifier.decision_function(flat[2])
    out = {"test_reference_accuracy": float(classifier.score(flat[1], np.asarray(data.y_test).reshape(-1))),
           "test_classifier_frechet": frechet_distance(real, fake)}
    if len(flat[3]) > 1:  # two real sets, validation and test, for scale: what a perfect generator would score
        out["test_classifier_frechet_val"] = frechet_distance(classifier.decision_function(flat[3]), real)
    if labels is not None:
        # predict, not argmax: two classes give one decision value per sample, not one per class
        out["test_class_accuracy"] = float((classifier.predict(flat[2]) == np.asarray(labels).reshape(-1)).mean())
    return out
