"""task: autoencoder — a network learns to give back its input through a narrower code.

    task: {autoencoder: {denoising: {noise: 0.2}}}   # or just `task: autoencoder`
    data: {source: digits}                            # any set of samples; its labels are not used
    model:
      input: [64]
      layers: [{linear: 32}, relu, {linear: 8}, relu, {linear: 32}, relu, {linear: 64}]   # output = input shape
    loss: mse                                         # or mae, huber; bce with data.normalize: minmax

or as two networks, each served on its own:

    models:
      encoder: {input: [64], layers: [{linear: 32}, relu, {linear: 8}]}     # a sample → its code
      decoder: {input: [8], layers: [{linear: 32}, relu, {linear: 64}]}     # a code → the sample

The network reads the normalized input and learns the normalized input back. With mse, mae or huber every
loss it reports is in the data's own units (un-normalized, as regression targets are), so `val_loss` of
digits is in pixel values squared; with `loss: bce` the output is one logit per value of an input scaled
into [0, 1] (`data.normalize: minmax`), the loss binary cross-entropy. With `denoising`, each training batch
is corrupted with Gaussian noise of that standard deviation (in normalized units) before the network reads
it; the target stays clean, and evaluation reads clean inputs. The one network is served as model.onnx (a raw
sample in, its reconstruction in the data's units out); two are served as model.onnx (the decoder: a code in,
a sample out) and encoder.onnx (a raw sample in, its code out).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TYPE_CHECKING

from pydantic import Field, PositiveFloat

from udlc.errors import SpecError
from udlc.spec.base import StrictModel
from udlc.tasks import generative
from udlc.tasks.checks import check_sections
from udlc.tasks.fields import error
from udlc.tasks.registry import Served, register
from udlc.tasks.served import DECODED, LATENTS, VALUES
from udlc.tasks.supervised import Supervised, SupervisedState

if TYPE_CHECKING:  # annotations only: the check path imports no more than it needs
    from udlc.compiler.pipeline import Compiled

PAIR = ("encoder", "decoder")


class Denoising(StrictModel):
    noise: PositiveFloat = Field(description="std of the Gaussian noise added to training inputs (standardized units)")


class AutoencoderOptions(StrictModel):
    type: Literal["autoencoder"] = "autoencoder"
    denoising: Denoising | None = Field(None, description="corrupt training inputs; the target stays clean")


@dataclass
class AutoencoderState(SupervisedState):
    pair: bool  # an encoder and a decoder (net is the decoder), not one network
    code_shape: tuple | None  # the decoder's input, for a pair


@register
class Autoencoder(Supervised):
    name = "autoencoder"
    example = "autoencoder.yaml"  # tests/specs/contract/: what the contract test trains
    mixes_targets = False  # its targets are not the data's labels
    config = AutoencoderOptions
    description = "a network (or encoder and decoder) reconstructs its input (mse/mae/huber, or bce on logits)"

    # ---- check time -----------------------------------------------------------------------------------

    def check(self, compiled: Compiled, check_files: bool) -> list[SpecError]:
        if compiled.spec.models is None or len(compiled.spec.models) == 1:
            return super().check(compiled, check_files)
        spec = compiled.spec
        errors = generative.check_networks(compiled, self.name, PAIR)
        if errors:
            return errors
        errors = check_sections(compiled, self)
        errors += self.check_loss(compiled)
        found = [generative.one_input(compiled, n) for n in PAIR]
        errors += [f for f in found if isinstance(f, SpecError)]
        if errors:
            return errors
        (_, data_shape), (_, code_shape) = found
        encoder, decoder = compiled.graphs["encoder"], compiled.graphs["decoder"]
        if len(encoder.outputs) != 1 or tuple(encoder.shape_of(encoder.outputs[0])) != code_shape:
            got = [list(encoder.shape_of(o)) for o in encoder.outputs]
            errors.append(error(compiled.doc, f"the decoder reads the encoder's code, {got[0] if len(got) == 1 else got}; "
                                f"its input is {list(code_shape)}", ("models", "decoder", "input"),
                                "give the decoder the code's shape, and the encoder one output", key=True))
        errors += self.check_reconstruction(compiled, decoder, data_shape)
        if not errors and (check_files or not spec.data.is_file()):
            errors += self.check_data(compiled, ("models", "encoder"))
        return errors

    def check_loss(self, compiled: Compiled) -> list[SpecError]:
        from udlc.spec.losses import LOSSES

        spec, doc = compiled.spec, compiled.doc
        if spec.loss.type == "bce":
            errors = generative.needs_minmax(compiled)
            if spec.metrics:
                errors.append(error(doc, "with bce the outputs are logits: the metrics would not see values",
                                    ("metrics",), "drop `metrics`, or use mse", key=True))
            return errors
        if LOSSES[spec.loss.type].targets != "real":
            return [error(doc, f"an autoencoder regresses its input; {spec.loss.type} is a classification loss",
                          ("loss",), "use mse, mae or huber (or bce, with data.normalize: minmax)")]
        return []

    def check_reconstruction(self, compiled: Compiled, graph: Any, shape: tuple) -> list[SpecError]:
        out = graph.shape_of(graph.outputs[0])
        if out is None or tuple(out) == tuple(shape):
            return []
        node = graph.nodes[graph.outputs[0].partition(".")[0]]
        return [SpecError(f"an autoencoder gives back its input, {tuple(shape)}; this model gives {tuple(out)}",
                          path=node.path, span=node.span,
                          hint="end the decoder with the input's shape (e.g. `linear: 64`, or a `reshape` back to it)")]

    def check_outputs(self, compiled: Compiled, base: tuple) -> list[SpecError]:
        graph = self.graph(compiled)
        errors = super().check_outputs(compiled, base) + self.check_loss(compiled)
        if errors or len(graph.inputs) != 1:
            return errors
        (shape,) = graph.inputs.values()
        return self.check_reconstruction(compiled, graph, tuple(shape))

    def check_data(self, compiled: Compiled, base: tuple) -> list[SpecError]:
        """Only the input against the data's samples: the data's targets are not used."""
        spec, doc = compiled.spec, compiled.doc
        if spec.data.augment:  # it would change the input but not the target it must give back
            return [error(doc, "an autoencoder's inputs are not augmented", ("data", "augment"),
                          "drop `augment`; `task: {autoencoder: {denoising: {noise: 0.2}}}` corrupts inputs", key=True)]
        (shape,) = compiled.graphs[base[-1] if base[0] == "models" else "model"].inputs.values()
        return generative.check_samples(compiled, self.name, base + ("input",), tuple(shape))

    def served(self, compiled: Compiled) -> list[Served]:
        bce = compiled.spec.loss.type == "bce"
        if "decoder" in compiled.graphs:
            return [Served("decoder", 0, DECODED, "sigmoid" if bce else "identity"),
                    Served("encoder", 0, LATENTS, file="encoder")]
        return [Served(self.network(compiled), 0, VALUES, "sigmoid" if bce else "identity")]

    # ---- train time -----------------------------------------------------------------------------------

    def load_data(self, compiled: Compiled) -> Any:
        """The samples, split and normalized; each split's targets are its own inputs, and the target
        scale is the input's, so losses and the exported reconstruction come back in the data's units."""
        encoder = compiled.graphs["encoder" if "decoder" in compiled.graphs else self.network(compiled)]
        (shape,) = encoder.inputs.values()
        data = generative.load_samples(compiled, tuple(shape))
        data.y_train, data.y_val, data.y_test = data.x_train, data.x_val, data.x_test
        data.target_normalization = data.normalization
        data.task, data.classes, data.n_classes = "regression", None, None
        return data

    def start(self, compiled: Compiled, data: Any, device: Any) -> AutoencoderState:
        import torch

        fields = vars(super().start(compiled, data, device))
        norm = data.normalization  # its own shape: per feature (64,) or per channel (C, 1, 1)
        # bce's loss is on values in [0, 1] and the outputs are logits: nothing to bring back to the data's units
        fields["target_norm"] = None if compiled.spec.loss.type == "bce" else \
            tuple(torch.as_tensor(a, device=device) for a in (norm.shift, norm.scale))
        pair = "decoder" in compiled.graphs
        if pair:  # the data feeds the encoder; the loss reads the decoder's output
            ids = list(compiled.graphs["decoder"].outputs)
            fields.update(net="decoder", input=next(iter(compiled.graphs["encoder"].inputs)), ids=ids,
                          loss_weights=self.weights(ids))
        code = tuple(next(iter(compiled.graphs["decoder"].inputs.values()))) if pair else None
        return AutoencoderState(**fields, pair=pair, code_shape=code)

    def info(self, compiled: Compiled, state: Any) -> dict[str, Any]:
        info = super().info(compiled, state)
        if state.pair:  # what the exporter needs of the decoder: the code's shape, the data's range
            info.update(latent_shape=list(state.code_shape), value_range=list(generative.value_range(state.data)))
        return info

    def forward(self, s: Any, x: Any) -> tuple[Any, ...]:
        if not s.run_state.pair:
            return super().forward(s, x)
        return (s.models["decoder"](s.models["encoder"](x)),)

    def trained(self, state: AutoencoderState) -> str | tuple[str, ...]:
        return PAIR if state.pair else state.net

    def corrupted(self, s: Any, x: Any) -> Any:
        """With `denoising`, Gaussian noise from the run's generator (so resume stays exact) after any other
        corruption; the target stays the clean batch."""
        import torch

        x = super().corrupted(s, x)
        if self.options.denoising is None:
            return x
        generator = s.generator
        noise = torch.randn(x.shape, generator=generator, device=generator.device).to(x.device)
        return x + self.options.denoising.noise * noise
