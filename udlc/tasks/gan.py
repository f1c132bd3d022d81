"""task: gan — a generator learns to turn noise into samples that a discriminator cannot tell from the
data's (Goodfellow et al. 2014), each network with its own optimizer.

    task: {gan: {loss: non_saturating, d_steps: 1, label_smoothing: 0.1}}
    data: {source: moons}
    models:
      generator:     {input: [8], layers: [{linear: 64}, relu, {linear: 2}]}      # noise → a sample
      discriminator: {input: [2], layers: [{linear: 64}, leaky_relu, {linear: 1}]} # a sample → one score
    optimizers:
      generator:     {adam: {lr: 0.0002, betas: [0.5, 0.999]}}
      discriminator: {adam: {lr: 0.0002, betas: [0.5, 0.999]}}

Losses (the score is a logit, or the critic's value for wasserstein_gp):
  non_saturating  D: -log D(x) - log(1 - D(G(z)))   G: -log D(G(z))   (optional one-sided label smoothing)
  hinge           D: relu(1 - D(x)) + relu(1 + D(G(z)))                 G: -D(G(z))
  wasserstein_gp  D: D(G(z)) - D(x) + λ (|∇D(x̂)| - 1)²                 G: -D(G(z))
                  x̂ a random mix of a real and a generated sample (Gulrajani et al. 2017)
Each batch of real samples takes one discriminator step; every `d_steps`-th batch also one generator step.
The noise z ~ N(0, I) comes from the run's generator, so a resume stays exact. Evaluation reports both
losses and `frechet`, the Fréchet distance between the split's samples and as many generated ones (in the
data's normalized units; lower is better), which picks the best checkpoint. Samples of more than 256 values
(a 16x16 grey picture holds 256) are measured on a fixed seeded random projection to 256 (generative.features): the same
in every run, so runs on one data shape compare, and an epoch's evaluation stays cheap next to its training.
The generator is served as model.onnx: noise in, a sample in the data's units out (`udlc sample`). The data may
be samples without labels (an .npz of `x` alone, an .npy of pictures, a folder of loose pictures), and
`data.normalize: symmetric` scales them into [-1, 1] for a generator that ends in tanh.
"""

from __future__ import annotations

from typing import Any, Literal, TYPE_CHECKING

from pydantic import Field, PositiveFloat, PositiveInt, confloat

from udlc.errors import SpecError
from udlc.tasks import generative
from udlc.tasks.checks import check_sections
from udlc.tasks.fields import error, no_metrics
from udlc.tasks.registry import Served, Task, evaluating, register
from udlc.tasks.served import SAMPLES

if TYPE_CHECKING:  # annotations only: the check path imports no more than it needs
    from udlc.compiler.pipeline import Compiled

NETWORKS = ("generator", "discriminator")


class GANOptions(generative.GenerativeOptions):
    type: Literal["gan"] = "gan"
    loss: Literal["non_saturating", "hinge", "wasserstein_gp"] = Field(
        "non_saturating", description="the adversarial loss")
    d_steps: PositiveInt = Field(1, description="discriminator steps (batches) per generator step")
    label_smoothing: confloat(ge=0.0, lt=0.5) = Field(  # type: ignore[valid-type]
        0.0, description="non_saturating: the real samples' label is 1 - this (one-sided)")
    gp_weight: PositiveFloat | None = Field(None, description="wasserstein_gp: the gradient penalty's weight λ "
                                                              "(default 10)")


@register
class GAN(generative.Generative, Task):
    name = "gan"
    example = "gan.yaml"  # tests/specs/contract/: what the contract test trains
    config = GANOptions
    description = "generator vs discriminator, one optimizer each (non_saturating, hinge, wasserstein_gp)"
    loss_floor_zero = False  # its loss has a floor of its own: a flat one is no underfitting
    takes_loss = False

    # ---- check time -----------------------------------------------------------------------------------

    def check(self, compiled: Compiled, check_files: bool) -> list[SpecError]:
        spec, doc, o = compiled.spec, compiled.doc, self.options
        errors = generative.check_networks(compiled, self.name, NETWORKS)
        if errors:
            return errors
        errors = check_sections(compiled, self)
        if o.label_smoothing and o.loss != "non_saturating":
            errors.append(error(doc, f"label smoothing is for the non_saturating loss, not {o.loss}",
                                self.where + ("label_smoothing",), "drop `label_smoothing`", key=True))
        if o.gp_weight is not None and o.loss != "wasserstein_gp":
            errors.append(error(doc, f"gp_weight weighs wasserstein_gp's gradient penalty; the loss is {o.loss}",
                                self.where + ("gp_weight",), "drop `gp_weight`, or write `loss: wasserstein_gp`",
                                key=True))
        if spec.train.grad_accum != 1:  # the generator steps on a count of discriminator steps
            errors.append(error(doc, "task gan steps each network on every batch; it does not accumulate "
                                "gradients", ("train", "grad_accum"), "drop `grad_accum`", key=True))
        errors += no_metrics(compiled, self.name, "values (d_loss, g_loss, frechet)")
        found = [generative.one_input(compiled, n) for n in NETWORKS]
        errors += [f for f in found if isinstance(f, SpecError)]
        if errors:
            return errors
        (_, latent_shape), (_, data_shape) = found
        errors += self.check_shapes(compiled, data_shape)
        if not errors and (check_files or not spec.data.is_file()):
            errors += generative.check_samples(compiled, self.name, ("models", "discriminator", "input"),
                                               data_shape)
        return errors

    def check_shapes(self, compiled: Compiled, data_shape: tuple) -> list[SpecError]:
        """The generator gives what the discriminator reads; the discriminator gives one score."""
        errors = []
        for network, want, what in (("generator", data_shape, "a sample shaped as the discriminator's input"),
                                    ("discriminator", (1,), "one score (a logit)")):
            graph = compiled.graphs[network]
            if len(graph.outputs) != 1:
                errors.append(error(compiled.doc, f"the {network} gives one output", ("models", network, "outputs"),
                                    "name one output", key=True))
                continue
            got = tuple(graph.shape_of(graph.outputs[0]))
            if got != tuple(want):
                node = graph.nodes[graph.outputs[0].partition(".")[0]]
                end = f"`reshape: {list(want)}`" if network == "generator" else "`linear: 1`"
                errors.append(SpecError(f"the {network} gives {what}, {list(want)}; it gives {list(got)}",
                                        path=node.path, span=node.span, hint=f"end the {network} with {end}"))
        return errors

    def logged(self, spec: Any, has_val: bool) -> list[str]:
        names = ["train_d_loss", "train_g_loss"] + (["train_gp"] if self.options.loss == "wasserstein_gp" else [])
        return names + (["val_d_loss", "val_g_loss", "val_frechet"] if has_val else [])

    def monitor(self, has_val: bool) -> str:
        return "val_frechet" if has_val else "train_g_loss"

    def served(self, compiled: Compiled) -> list[Served]:
        return [Served("generator", 0, SAMPLES)]

    def optimizer_steps(self, network: str, steps: int) -> int:
        return max(1, steps // self.options.d_steps) if network == "generator" else steps

    # ---- train time -----------------------------------------------------------------------------------

    def load_data(self, compiled: Compiled) -> Any:
        (shape,) = compiled.graphs["discriminator"].inputs.values()
        return generative.load_samples(compiled, shape)

    def start(self, compiled: Compiled, data: Any, device: Any) -> generative.GenerativeState:
        import torch

        return generative.GenerativeState(
            data, input=next(iter(compiled.graphs["discriminator"].inputs)),
            latent_shape=tuple(next(iter(compiled.graphs["generator"].inputs.values()))),
            eval_generator=torch.Generator(device=device).manual_seed(compiled.spec.seed))

    def latents(self, s: Any, n: int, generator: Any) -> Any:
        import torch

        shape = (n, *s.run_state.latent_shape)
        return torch.randn(shape, generator=generator, device=generator.device).to(s.device)

    def d_loss(self, real: Any, fake: Any) -> Any:
        """The discriminator's loss from its scores of real and generated samples."""
        import torch.nn.functional as F

        loss = self.options.loss
        if loss == "non_saturating":  # softplus(-s) = -log sigmoid(s): BCE with logits against 1 and 0
            smooth = self.options.label_smoothing
            real_term = F.binary_cross_entropy_with_logits(real, real.new_full(real.shape, 1.0 - smooth))
            return real_term + F.softplus(fake).mean()
        if loss == "hinge":
            return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
        return fake.mean() - real.mean()

    def g_loss(self, fake: Any) -> Any:
        import torch.nn.functional as F

        return F.softplus(-fake).mean() if self.options.loss == "non_saturating" else -fake.mean()

    def train_step(self, s: Any, batch: Any) -> tuple[dict[str, float], int]:
        generator, discriminator = s.models["generator"], s.models["discriminator"]
        real = batch[s.run_state.input]
        z = self.latents(s, len(real), s.generator)
        with s.autocast():
            fake = generator(z).detach()
            loss = self.d_loss(discriminator(real).float(), discriminator(fake).float())
        values = {}
        if self.options.loss == "wasserstein_gp":
            gp = gradient_penalty(discriminator, real, fake, s.generator)
            values["gp"] = gp.item()
            loss = loss + (self.options.gp_weight or 10.0) * gp
        reads = {"generator": (z, None), "discriminator": (real, None)}
        values["d_loss"] = s.update("discriminator", loss, reads)
        if (s.step + 1) % self.options.d_steps == 0:
            z = self.latents(s, len(real), s.generator)
            discriminator.requires_grad_(False)  # the generator's loss trains the generator only
            try:
                with s.autocast():
                    loss = self.g_loss(discriminator(generator(z)).float())
                values["g_loss"] = s.update("generator", loss, {"generator": (z, None)})
            finally:
                discriminator.requires_grad_(True)
        return values, len(real)

    def evaluate(self, s: Any, batches: Any) -> dict[str, float]:
        import torch

        generator, discriminator = s.models["generator"], s.models["discriminator"]
        st: generative.GenerativeState = s.run_state
        st.eval_generator.manual_seed(s.spec.seed)
        d_sum, g_sum, seen, reals, fakes = 0.0, 0.0, 0, [], []
        with evaluating(generator, discriminator):
            for batch in batches.epoch_batches(None):
                real = batch[st.input]
                with s.autocast():
                    fake = generator(self.latents(s, len(real), st.eval_generator))
                    real_score, fake_score = discriminator(real).float(), discriminator(fake).float()
                d_sum += self.d_loss(real_score, fake_score).item() * len(real)
                g_sum += self.g_loss(fake_score).item() * len(real)
                seen += len(real)
                reals.append(real.float().flatten(1).cpu())
                fakes.append(fake.float().flatten(1).cpu())
        frechet = generative.sample_frechet(torch.cat(reals).numpy(), torch.cat(fakes).numpy())
        return {"d_loss": d_sum / seen, "g_loss": g_sum / seen, "frechet": frechet}

    def quality(self, s: Any) -> dict[str, float]:
        import torch

        data = s.run_state.data
        generator = s.models["generator"].eval()
        z = torch.randn((generative.QUALITY_SAMPLES, *s.run_state.latent_shape),
                        generator=torch.Generator().manual_seed(s.spec.seed)).to(s.device)
        with torch.no_grad():
            samples = generator(z).float().cpu().numpy()
        return generative.reference_quality(data, samples, note=s.log.note)

    def picture(self, s: Any, data: Any, path: Any) -> None:
        def draw(z: Any) -> Any:
            return generative.raw(data, s.models["generator"](z).float())

        generative.prior_picture(s, data, path, s.run_state.latent_shape, draw)


def gradient_penalty(critic: Any, real: Any, fake: Any, generator: Any) -> Any:
    """(|∇ critic(x̂)| - 1)², averaged, at x̂ = ε·real + (1 - ε)·fake with ε ~ U(0, 1) per sample."""
    import torch

    shape = (len(real),) + (1,) * (real.dim() - 1)
    eps = torch.rand(shape, generator=generator, device=generator.device).to(real.device)
    mixed = (eps * real + (1.0 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed).float().sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1.0) ** 2).mean()
