"""task: vae — a variational autoencoder (Kingma & Welling 2014): an encoder gives a Gaussian over a latent
code, a decoder gives the sample back from a draw of it, and new samples are decoded from the prior N(0, I).

    task: {vae: {beta: 1.0, kl_warmup_steps: 500}}
    data: {source: digits, normalize: minmax}        # bce reconstructs values in [0, 1]
    models:
      encoder:                                        # its outputs are named mu and logvar
        input: [1, 8, 8]
        layers: [flatten, {linear: 256}, relu, {linear: 8, id: mu}, {linear: 8, from: 2, id: logvar}]
        outputs: [mu, logvar]
      decoder:                                        # latent in, one logit per input value out
        input: [8]
        layers: [{linear: 256}, relu, {linear: 64}, {reshape: [1, 8, 8]}]
    loss: bce                                         # Bernoulli decoder; mse: Gaussian (unit variance)

Per sample, in nats: reconstruction = -log p(x | z) with z = mu + exp(logvar / 2) · ε drawn from the run's
generator (so a resume stays exact), KL = KL(q(z | x) || N(0, I)) in closed form, and the trained loss is
reconstruction + β · KL, with β rising linearly from 0 over `kl_warmup_steps` (against posterior collapse).
Evaluation reports the ELBO = -(reconstruction + KL), a lower bound of log p(x), with one fixed-seed draw.
The decoder is served as model.onnx (latent in, a sample in the data's units out: `udlc sample`), the
encoder as encoder.onnx (raw sample in, the latent's mean out).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, TYPE_CHECKING

from pydantic import Field, NonNegativeFloat, NonNegativeInt

from udlc.errors import SpecError
from udlc.tasks import generative
from udlc.tasks.checks import check_sections
from udlc.tasks.fields import error, no_metrics
from udlc.tasks.registry import Served, Task, evaluating, register
from udlc.tasks.served import LATENTS, SAMPLES

if TYPE_CHECKING:  # annotations only: the check path imports no more than it needs
    from udlc.compiler.pipeline import Compiled

NETWORKS = ("encoder", "decoder")


@dataclass
class VAEState(generative.GenerativeState):
    mu_first: bool  # the encoder gives (mu, logvar), not (logvar, mu)
    bernoulli: bool  # bce: the decoder gives logits of values in [0, 1]
LOSSES = ("bce", "mse")


class VAEOptions(generative.GenerativeOptions):
    type: Literal["vae"] = "vae"
    beta: NonNegativeFloat = Field(1.0, description="weight of the KL term (β-VAE); 1 gives the ELBO")
    kl_warmup_steps: NonNegativeInt = Field(0, description="optimizer steps over which β rises linearly from 0")


@register
class VAE(generative.Generative, Task):
    name = "vae"
    example = "vae.yaml"  # tests/specs/contract/: what the contract test trains
    config = VAEOptions
    description = "encoder → Gaussian latent → decoder; loss = reconstruction + β·KL; samples from the prior"
    loss_floor_zero = False  # its loss has a floor of its own: a flat one is no underfitting
    maximized = frozenset({"elbo"})

    # ---- check time -----------------------------------------------------------------------------------

    def check(self, compiled: Compiled, check_files: bool) -> list[SpecError]:
        spec, doc = compiled.spec, compiled.doc
        errors = generative.check_networks(compiled, self.name, NETWORKS)
        if errors:
            return errors
        errors = check_sections(compiled, self)
        if spec.loss.type not in LOSSES or getattr(spec.loss, "pos_weight", None):
            errors.append(error(doc, f"a VAE reconstructs with bce (values in [0, 1]) or mse, not {spec.loss.type}",
                                ("loss",), "write `loss: bce` with `data.normalize: minmax`, or `loss: mse`"))
        elif spec.loss.type == "bce":
            errors += generative.needs_minmax(compiled)
        errors += no_metrics(compiled, self.name, "values (reconstruction, kl, elbo)")
        found = [generative.one_input(compiled, n) for n in NETWORKS]
        errors += [f for f in found if isinstance(f, SpecError)]
        if errors:
            return errors
        (_, data_shape), (_, latent_shape) = found
        errors += self.check_shapes(compiled, data_shape, latent_shape)
        if not errors and (check_files or not spec.data.is_file()):
            errors += generative.check_samples(compiled, self.name, ("models", "encoder", "input"), data_shape)
        return errors

    def check_shapes(self, compiled: Compiled, data_shape: tuple, latent_shape: tuple) -> list[SpecError]:
        """The encoder's outputs are mu and logvar of one shape, the decoder's input; the decoder's one
        output has the encoder's input shape."""
        doc, encoder, decoder = compiled.doc, compiled.graphs["encoder"], compiled.graphs["decoder"]
        names = [ref.partition(".")[0] for ref in encoder.outputs]
        if sorted(names) != ["logvar", "mu"]:
            return [error(doc, f"the encoder's outputs must be mu and logvar; they are {', '.join(names)}",
                          ("models", "encoder", "outputs") if "outputs" in doc.data["models"]["encoder"] else
                          ("models", "encoder"), "give the two heads `id: mu` and `id: logvar`, and write "
                          "`outputs: [mu, logvar]`", key=True)]
        mu, logvar = (tuple(encoder.shape_of(encoder.outputs[names.index(n)])) for n in ("mu", "logvar"))
        errors = []
        if mu != logvar:
            errors.append(error(doc, f"mu {mu} and logvar {logvar} must have one shape", ("models", "encoder"),
                                "give both heads the latent's width", key=True))
        elif latent_shape != mu:
            errors.append(error(doc, f"the decoder reads the latent, shaped {list(mu)} by the encoder's mu; its "
                                f"input is {list(latent_shape)}", ("models", "decoder", "input"),
                                f"write `input: {list(mu)}`", key=True))
        if len(decoder.outputs) != 1:
            errors.append(error(doc, "the decoder gives one output, the reconstruction", ("models", "decoder",
                                "outputs"), "name one output", key=True))
        elif tuple(decoder.shape_of(decoder.outputs[0])) != data_shape:
            node = decoder.nodes[decoder.outputs[0].partition(".")[0]]
            errors.append(SpecError(f"the decoder gives back the encoder's input, {list(data_shape)}; it gives "
                                    f"{list(decoder.shape_of(decoder.outputs[0]))}", path=node.path, span=node.span,
                                    hint=f"end the decoder with that shape (e.g. `reshape: {list(data_shape)}`)"))
        return errors

    def logged(self, spec: Any, has_val: bool) -> list[str]:
        names = ["train_loss", "train_reconstruction", "train_kl"]
        if has_val:
            names += ["val_loss", "val_reconstruction", "val_kl", "val_elbo"]
        return names

    def served(self, compiled: Compiled) -> list[Served]:
        encoder = compiled.graphs["encoder"]
        mu = [ref.partition(".")[0] for ref in encoder.outputs].index("mu")
        answers = "sigmoid" if compiled.spec.loss.type == "bce" else "identity"  # bce: the decoder gives logits
        return [Served("decoder", 0, SAMPLES, answers), Served("encoder", mu, LATENTS, file="encoder")]

    # ---- train time -----------------------------------------------------------------------------------

    def load_data(self, compiled: Compiled) -> Any:
        (shape,) = compiled.graphs["encoder"].inputs.values()
        return generative.load_samples(compiled, shape)

    def start(self, compiled: Compiled, data: Any, device: Any) -> VAEState:
        import torch

        encoder = compiled.graphs["encoder"]
        # Evaluation draws its latents from a generator of its own: the same numbers every epoch, and the
        # training generator (and so a resumed run) untouched.
        return VAEState(data, input=next(iter(encoder.inputs)),
                        latent_shape=tuple(next(iter(compiled.graphs["decoder"].inputs.values()))),
                        eval_generator=torch.Generator(device=device).manual_seed(compiled.spec.seed),
                        mu_first=encoder.outputs[0].partition(".")[0] == "mu",
                        bernoulli=compiled.spec.loss.type == "bce")

    def terms(self, s: Any, x: Any, generator: Any) -> tuple[Any, Any, Any, Any]:
        """Per sample: the reconstruction's negative log-likelihood and the KL, in nats; and mu, the latent drawn."""
        import torch
        import torch.nn.functional as F

        from udlc.layers.generative import draw

        st: VAEState = s.run_state
        with s.autocast():
            mu, logvar = s.models["encoder"](x)
            if not st.mu_first:
                mu, logvar = logvar, mu
            noise = torch.randn(mu.shape, generator=generator, device=generator.device).to(mu.device)
            z = draw(mu.float(), logvar.float(), noise)
            out = s.models["decoder"](z).float()
        mu, logvar = mu.float(), logvar.float()
        if st.bernoulli:
            nll = F.binary_cross_entropy_with_logits(out, x, reduction="none").flatten(1).sum(1)
        else:  # a Gaussian of unit variance around the output, in normalized units
            nll = 0.5 * ((out - x) ** 2 + math.log(2 * math.pi)).flatten(1).sum(1)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).flatten(1).sum(1)
        return nll, kl, mu, z

    def beta(self, step: int) -> float:
        warmup = self.options.kl_warmup_steps
        return self.options.beta * (min(1.0, step / warmup) if warmup else 1.0)

    def train_step(self, s: Any, batch: Any) -> tuple[dict[str, float], int]:
        x = batch[s.run_state.input]
        nll, kl, _, z = self.terms(s, x, s.generator)
        reconstruction, kl = nll.mean(), kl.mean()
        loss = reconstruction + self.beta(s.step) * kl
        value = s.update(NETWORKS, loss, {"encoder": (x, None), "decoder": (z.detach(), x)})
        return {"loss": value, "reconstruction": reconstruction.item(), "kl": kl.item()}, len(x)

    def evaluate(self, s: Any, batches: Any) -> dict[str, float]:
        st: VAEState = s.run_state
        st.eval_generator.manual_seed(s.spec.seed)
        sums, seen = [0.0, 0.0], 0
        with evaluating(*(s.models[n] for n in NETWORKS)):
            for batch in batches.epoch_batches(None):
                nll, kl, _, _ = self.terms(s, batch[st.input], st.eval_generator)
                sums[0] += nll.sum().item()
                sums[1] += kl.sum().item()
                seen += len(nll)
        reconstruction, kl = sums[0] / seen, sums[1] / seen
        return {"loss": reconstruction + self.options.beta * kl, "reconstruction": reconstruction, "kl": kl,
                "elbo": -(reconstruction + kl)}

    def picture(self, s: Any, data: Any, path: Any) -> None:
        """Decodings of draws from the prior N(0, I), as the exported decoder gives them."""
        def decode(z: Any) -> Any:
            out = s.models["decoder"](z).float()
            return generative.raw(data, out.sigmoid() if s.run_state.bernoulli else out)

        generative.prior_picture(s, data, path, s.run_state.latent_shape, decode)
