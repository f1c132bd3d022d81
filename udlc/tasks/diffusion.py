"""task: diffusion — a denoising diffusion model (DDPM, Ho et al. 2020): the network learns the noise ε that
took a sample x_0 to x_t = sqrt(ā_t) x_0 + sqrt(1 - ā_t) ε at a random step t, and sampling walks from pure
noise back to a sample, step by step.

    task: {diffusion: {steps: 1000, schedule: cosine, sampler: ddim, sample_steps: 50, ema: 0.999}}
    data: {source: spirals}
    model:                                  # the denoiser: named inputs x (the noisy sample) and t (the step)
      inputs: {x: [2], t: [1]}
      layers:
        - sinusoidal_embedding: {dim: 32, from: t}
        - linear: 128
        - silu: {id: temb}
        - linear: {out_features: 128, from: x}
        - add: {from: [linear, temb]}       # the step's features added to the sample's
        - ...
        - linear: 2                         # ε, shaped as x

With an input `label: {shape: [1], dtype: int64}` the model is class-conditional: during training a share
`label_dropout` of the labels is replaced by the null label (the number of classes, so its embedding needs
classes + 1 rows), which teaches the same network the unconditional model, and sampling mixes the two with
classifier-free guidance: ε = ε_null + guidance · (ε_label - ε_null).

The loss is the mean squared error of the predicted noise (no `loss:` to write). An exponential moving
average of the weights (`ema`) is evaluated, checkpointed beside them and served. Samplers (numpy or torch,
udlc.tasks.diffusion_sampling): ddpm (ancestral) and ddim (deterministic, fewer steps); each predicted x_0
is clipped to the training data's range. The denoiser is served as model.onnx; `udlc sample` runs the
sampler in numpy around it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TYPE_CHECKING

from pydantic import Field, NonNegativeFloat, PositiveInt, confloat, model_validator

from udlc.errors import SpecError
from udlc.tasks import generative
from udlc.tasks.checks import check_sections, located
from udlc.tasks.fields import error, no_metrics, one_network
from udlc.tasks.registry import RunState, Served, Task, evaluating, register
from udlc.tasks.served import DENOISER

if TYPE_CHECKING:  # annotations only: the check path imports no more than it needs
    from udlc.compiler.pipeline import Compiled

DEFAULT_DDIM_STEPS = 50


class DiffusionOptions(generative.GenerativeOptions):
    type: Literal["diffusion"] = "diffusion"
    steps: PositiveInt = Field(1000, description="T, the number of noising steps")
    schedule: Literal["linear", "cosine"] = Field("cosine", description="how β_t grows over the steps")
    sampler: Literal["ddpm", "ddim"] = Field("ddim", description="ddpm: ancestral; ddim: deterministic, fewer steps")
    sample_steps: PositiveInt | None = Field(None, description="steps a sampler visits (ddim: 50, ddpm: all)")
    ema: confloat(ge=0.0, lt=1.0) = Field(  # type: ignore[valid-type]
        0.999, description="decay of the weights' moving average that is evaluated and served; 0: none")
    guidance: NonNegativeFloat = Field(1.0, description="classifier-free guidance weight w (1: the conditional "
                                                        "model alone)")
    label_dropout: confloat(ge=0.0, lt=1.0) = Field(  # type: ignore[valid-type]
        0.1, description="share of training labels replaced by the null label (for guidance)")

    @model_validator(mode="after")
    def _sample_steps_within_steps(self) -> "DiffusionOptions":
        if self.sample_steps is not None and self.sample_steps > self.steps:
            raise ValueError(f"sample_steps ({self.sample_steps}) cannot exceed steps ({self.steps})")
        return self

    def visits(self) -> int:
        return self.sample_steps or (min(DEFAULT_DDIM_STEPS, self.steps) if self.sampler == "ddim" else self.steps)


def input_path(compiled: Compiled, base: tuple, name: str) -> tuple:
    """Where an input is written: `inputs: {name: ...}`, or the one `input: [...]`."""
    return base + ("inputs", name) if compiled.spec.networks[base[-1] if base[0] == "models" else "model"].inputs \
        else base + ("input",)


@dataclass
class DiffusionState(RunState):
    net: str  # the denoiser
    inputs: list[str]  # its inputs in order: x, t and, class-conditional, label
    conditional: bool
    abar: Any  # the noise schedule's cumulative products ᾱ_t (numpy), as the sampler reads them
    abar_tensor: Any  # the same on the device, for training
    null_label: int | None  # the label that stands for "no class" (classifier-free guidance)
    eval_generator: Any  # evaluation's own torch.Generator, reseeded each time
    clip_bounds: tuple[Any, Any]  # each predicted x_0 stays within the data's range (normalized units)


@register
class Diffusion(generative.Generative, Task):
    name = "diffusion"
    example = "diffusion.yaml"  # tests/specs/contract/: what the contract test trains
    config = DiffusionOptions
    description = "a denoiser learns the noise of x_t; samples by ddpm or ddim; EMA; classifier-free guidance"
    loss_floor_zero = False  # its loss has a floor of its own: a flat one is no underfitting
    takes_loss = False

    # ---- check time -----------------------------------------------------------------------------------

    def check(self, compiled: Compiled, check_files: bool) -> list[SpecError]:
        spec = compiled.spec
        found = one_network(compiled, self.name)
        if isinstance(found, SpecError):
            return [found]
        _, graph, base = found
        errors = check_sections(compiled, self)
        errors += no_metrics(compiled, self.name, "loss (the noise's mean squared error)")
        errors += self.check_inputs(compiled, graph, base)
        if errors:
            return errors
        data_shape = tuple(graph.inputs["x"])
        out = tuple(graph.shape_of(graph.outputs[0])) if len(graph.outputs) == 1 else None
        if out != data_shape:
            node = graph.nodes[graph.outputs[-1].partition(".")[0]]
            errors.append(SpecError(f"the denoiser predicts the noise, shaped as x {list(data_shape)}; it gives "
                                    f"{list(out) if out else f'{len(graph.outputs)} outputs'}", path=node.path,
                                    span=node.span, hint=f"end with that shape (e.g. `linear: {data_shape[-1]}`)"))
        if not errors and (check_files or not spec.data.is_file()):
            errors += generative.check_samples(compiled, self.name, input_path(compiled, base, "x"), data_shape)
            if not errors and "label" in graph.inputs:
                errors += self.check_labels(compiled, graph, base)
        return errors

    def check_inputs(self, compiled: Compiled, graph: Any, base: tuple) -> list[SpecError]:
        """Inputs x (the sample), t (the step, [1] float32), optionally label ([1] int64)."""
        doc, o = compiled.doc, self.options
        want = {"x": None, "t": ((1,), "float32"), "label": ((1,), "int64")}
        errors = []
        for name in graph.inputs:
            where = input_path(compiled, base, name)
            if name not in want:
                errors.append(error(doc, f"the denoiser's input '{name}' is none of x (the noisy sample), t (the "
                                    "step) and label (the class)", where, "name the inputs x, t and (optionally) "
                                    "label", key=True))
            elif name == "x" and graph.dtype_of(name) != "float32":
                errors.append(error(doc, "x is the noisy sample: float32", where, key=True))
            elif want[name] is not None and (tuple(graph.inputs[name]), graph.dtype_of(name)) != want[name]:
                shape, dtype = want[name]
                errors.append(error(doc, f"{name} is one {dtype} per sample", where,
                                    f"declare `{name}: {{shape: [1], dtype: {dtype}}}`", key=True))
        for name in ("x", "t"):
            if name not in graph.inputs:
                errors.append(error(doc, f"the denoiser must read `{name}`", base,
                                    "declare `inputs: {x: [<sample shape>], t: [1]}`", key=True))
        if "label" not in graph.inputs:
            for option, default in (("guidance", 1.0), ("label_dropout", 0.1)):
                if getattr(o, option) != default:
                    errors.append(error(doc, f"{option} is for a class-conditional model, and this one reads no "
                                        "label", self.where + (option,), "give the model an input `label: {shape: "
                                        "[1], dtype: int64}`, or drop this option", key=True))
        return errors

    def check_labels(self, compiled: Compiled, graph: Any, base: tuple) -> list[SpecError]:
        """The data has classes, and every embedding of the label has a row for each and for the null label."""
        from udlc.data.file_kinds import peek

        doc = compiled.doc
        try:  # samples without labels have no classes, refused just below
            classes = peek(compiled.spec.data.for_generation(), compiled.base_dir).n_classes
        except SpecError as e:
            return [located(e, doc)]
        if classes is None:
            return [error(doc, "a class-conditional denoiser reads labels, and this data has no classes",
                          base + ("inputs", "label"), "drop the `label` input, or use a classification set",
                          key=True)]
        return [SpecError(f"the label's embedding has {n.config.num_embeddings} rows; it needs {classes + 1}: "
                          f"the data's {classes} classes and the null label of guidance", path=n.path, span=n.span,
                          hint=f"num_embeddings: {classes + 1}")
                for n in graph.nodes.values()
                if n.op == "embedding" and "label" in n.inputs and (n.config.num_embeddings or 0) < classes + 1]

    def logged(self, spec: Any, has_val: bool) -> list[str]:
        return ["train_loss"] + (["val_loss"] if has_val else [])

    def served(self, compiled: Compiled) -> list[Served]:
        net = next(iter(compiled.graphs))
        return [Served(net, 0, DENOISER, weights=f"{net}_ema" if self.options.ema else None)]

    def shadows(self, compiled: Compiled) -> dict[str, str]:
        net = next(iter(compiled.graphs))
        return {f"{net}_ema": net} if self.options.ema else {}

    # ---- train time -----------------------------------------------------------------------------------

    def load_data(self, compiled: Compiled) -> Any:
        import numpy as np

        graph = next(iter(compiled.graphs.values()))
        data = generative.load_samples(compiled, tuple(graph.inputs["x"]))
        if "label" in graph.inputs:  # class-conditional: one label per sample, as the model's [1] input
            for split in ("train", "val", "test"):
                setattr(data, f"y_{split}", np.asarray(getattr(data, f"y_{split}"), dtype=np.int64).reshape(-1, 1))
        return data

    def info(self, compiled: Compiled, state: Any) -> dict[str, Any]:
        o, data = self.options, state.data
        info = generative.sample_info(data, self.name, "x", tuple(data.input_shape))
        info["diffusion"] = {"steps": o.steps, "schedule": o.schedule, "sampler": o.sampler,
                             "sample_steps": o.visits(), "guidance": o.guidance, "null_label": state.null_label}
        return info

    def batches(self, state: Any, split: str, *, batch_size: int, shuffle: bool, device: Any) -> Any:
        from udlc.data import make_batches

        data = state.data
        x = getattr(data, f"x_{split}")
        if not len(x):
            return None
        fields = {"x": x, **({"label": getattr(data, f"y_{split}")} if state.conditional else {})}
        return make_batches(fields, batch_size=batch_size, shuffle=shuffle, device=device)

    def start(self, compiled: Compiled, data: Any, device: Any) -> DiffusionState:
        import torch

        from udlc.tasks.diffusion_sampling import alphas_cumprod

        o = self.options
        net, graph = next(iter(compiled.graphs.items()))
        conditional = "label" in graph.inputs
        abar = alphas_cumprod(o.schedule, o.steps)
        norm = data.normalization
        low, high = generative.value_range(data)  # each predicted x_0 stays within the data's range
        return DiffusionState(
            data, net=net, inputs=list(graph.inputs), conditional=conditional, abar=abar,
            abar_tensor=torch.as_tensor(abar, dtype=torch.float32, device=device),
            null_label=data.n_classes if conditional else None,
            eval_generator=torch.Generator(device=device).manual_seed(compiled.spec.seed),
            clip_bounds=tuple(torch.as_tensor((v - norm.shift) / norm.scale, device=device) for v in (low, high)))

    def served_model(self, s: Any) -> Any:
        """The weights evaluated and served: the moving average, where there is one."""
        net = s.run_state.net
        return s.models[f"{net}_ema"] if self.options.ema else s.models[net]

    def noised(self, st: DiffusionState, x0: Any, labels: Any, generator: Any,
               dropout: float) -> tuple[dict[str, Any], Any]:
        """The model's inputs for a batch of clean samples (x_t at random steps, t, labels with a share
        `dropout` made null) and the noise ε it should predict."""
        import torch

        n, device = len(x0), x0.device
        t = torch.randint(0, self.options.steps, (n,), generator=generator, device=generator.device).to(device)
        eps = torch.randn(x0.shape, generator=generator, device=generator.device).to(device)
        abar = st.abar_tensor[t].reshape((n,) + (1,) * (x0.dim() - 1))
        inputs = {"x": abar.sqrt() * x0 + (1.0 - abar).sqrt() * eps, "t": t.float()[:, None]}
        if st.conditional:
            drop = torch.rand((n, 1), generator=generator, device=generator.device).to(device) < dropout
            inputs["label"] = torch.where(drop, torch.full_like(labels, st.null_label), labels)
        return inputs, eps

    def train_step(self, s: Any, batch: Any) -> tuple[dict[str, float], int]:
        import torch
        import torch.nn.functional as F

        st: DiffusionState = s.run_state
        inputs, eps = self.noised(st, batch["x"], batch.get("label"), s.generator, self.options.label_dropout)
        ordered = tuple(inputs[name] for name in st.inputs)
        with s.autocast():
            loss = F.mse_loss(s.models[st.net](*ordered).float(), eps)
        value = s.update(st.net, loss, (ordered, eps))
        if s.stepped and self.options.ema:
            # Warmed up as in common EMA implementations: early weights are forgotten fast.
            step = s.step
            decay = min(self.options.ema, (1 + step) / (10 + step))
            with torch.no_grad():
                shadow, model = s.module(f"{st.net}_ema"), s.module(st.net)
                for ema_p, p in zip(shadow.parameters(), model.parameters()):
                    ema_p.lerp_(p, 1.0 - decay)
                for ema_b, b in zip(shadow.buffers(), model.buffers()):
                    ema_b.copy_(b)
        return {"loss": value}, len(eps)

    def evaluate(self, s: Any, batches: Any) -> dict[str, float]:
        import torch.nn.functional as F

        model = self.served_model(s)
        st: DiffusionState = s.run_state
        st.eval_generator.manual_seed(s.spec.seed)  # the same steps and noise every epoch
        total, seen = 0.0, 0
        with evaluating(model):
            for batch in batches.epoch_batches(None):
                inputs, eps = self.noised(st, batch["x"], batch.get("label"), st.eval_generator, 0.0)
                with s.autocast():
                    out = model(*(inputs[name] for name in st.inputs)).float()
                total += F.mse_loss(out, eps, reduction="sum").item() / eps[0].numel()
                seen += len(eps)
        return {"loss": total / seen}

    def generate(self, s: Any, data: Any, count: int, labels: Any = None, seed: int = 0) -> Any:
        """`count` samples in the data's units (torch, the served weights): the sampler of the options, the
        same arithmetic as `udlc sample` runs in numpy."""
        import torch

        from udlc.tasks.diffusion_sampling import guided, sample, timesteps

        o, model, st = self.options, self.served_model(s), s.run_state
        model.eval()
        generator = torch.Generator().manual_seed(seed)
        x = torch.randn((count, *data.input_shape), generator=generator).to(s.device)

        def run(x: Any, t: int, label: Any) -> Any:
            named = {"x": x, "t": torch.full((len(x), 1), float(t), device=s.device), "label": label}
            return model(*(named[name] for name in st.inputs)).float()

        def denoise(x: Any, t: int) -> Any:
            if not st.conditional:
                return run(x, t, None)
            eps = run(x, t, labels)
            if o.guidance == 1.0:
                return eps
            return guided(eps, run(x, t, torch.full_like(labels, st.null_label)), o.guidance)

        def noise(x: Any) -> Any:
            return torch.randn(x.shape, generator=generator).to(s.device)

        def clip(x0: Any) -> Any:
            return torch.maximum(torch.minimum(x0, st.clip_bounds[1]), st.clip_bounds[0])

        with torch.no_grad():
            x = sample(x, denoise, st.abar, o.sampler, timesteps(o.steps, o.visits()), noise, clip)
            return generative.raw(data, x)

    def quality(self, s: Any) -> dict[str, float]:
        """The reference classifier's view of generated samples (udlc.tasks.generative.reference_quality);
        a class-conditional model is asked for every class in turn."""
        import torch

        count, data = generative.QUALITY_SAMPLES, s.run_state.data
        labels = (torch.arange(count, device=s.device) % data.n_classes)[:, None] if s.run_state.conditional else None
        samples = self.generate(s, data, count, labels, seed=s.spec.seed).cpu().numpy()
        return generative.reference_quality(data, data.normalization.apply_normalization(samples),
                                            None if labels is None else labels.cpu().numpy(), note=s.log.note)

    def picture(self, s: Any, data: Any, path: Any) -> None:
        """For a class-conditional model, a column of each class."""
        import torch

        count = generative.in_picture(data)
        if not count:
            return
        labels, columns = None, None
        if s.run_state.conditional:  # a column per class, as `udlc sample` draws them
            columns = data.n_classes
            count = 8 * columns
            labels = (torch.arange(count, device=s.device) % columns)[:, None]
        generative.save_samples(s, data, lambda: self.generate(s, data, count, labels, seed=s.spec.seed), path, columns)
