"""task: autoencoder — one network learns to give back its input through a narrower code.

    task: {autoencoder: {denoising: {noise: 0.2}}}   # or just `task: autoencoder`
    data: {source: digits}                            # any set of samples; its labels are not used
    model:
      input: [64]
      layers: [{linear: 32}, relu, {linear: 8}, relu, {linear: 32}, relu, {linear: 64}]   # output = input shape
    loss: mse                                         # or mae, huber

The network reads the standardized input and learns the standardized input back; every loss it reports
is in the data's own units (un-standardized, as regression targets are), so `val_loss` of digits is in
pixel values squared. With `denoising`, each training batch is corrupted with Gaussian noise of that
standard deviation (in standardized units) before the network reads it; the target stays clean, and
evaluation reads clean inputs. The exported model gives the reconstruction in the data's units.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PositiveFloat

from udlc.errors import SpecError
from udlc.spec.base import StrictModel
from udlc.tasks.registry import register
from udlc.tasks.supervised import Supervised, located


class Denoising(StrictModel):
    noise: PositiveFloat = Field(description="std of the Gaussian noise added to training inputs (standardized units)")


class AutoencoderOptions(StrictModel):
    type: Literal["autoencoder"] = "autoencoder"
    denoising: Denoising | None = Field(None, description="corrupt training inputs; the target stays clean")


@register
class Autoencoder(Supervised):
    name = "autoencoder"
    config = AutoencoderOptions
    description = "one network reconstructs its input (mse/mae/huber; optionally from noisy inputs)"

    def check_outputs(self, compiled: Any, base: tuple) -> list[SpecError]:
        from udlc.spec.losses import LOSSES

        spec, doc, graph = compiled.spec, compiled.doc, self.graph(compiled)
        errors = super().check_outputs(compiled, base)
        if LOSSES[spec.loss.type].targets != "real":
            errors.append(SpecError(f"an autoencoder regresses its input; {spec.loss.type} is a classification loss",
                                    path="loss", span=doc.span(("loss",)), hint="use mse, mae or huber"))
        if errors or len(graph.inputs) != 1:
            return errors
        (shape,) = graph.inputs.values()
        out = graph.shape_of(graph.outputs[0])
        if out != shape:
            node = graph.nodes[graph.outputs[0].partition(".")[0]]
            errors.append(SpecError(f"an autoencoder gives back its input, {tuple(shape)}; this model gives "
                                    f"{tuple(out) if out else out}", path=node.path, span=node.span,
                                    hint="end the decoder with the input's shape (e.g. `linear: 64`, or a "
                                         "`reshape` back to it)"))
        return errors

    def check_data(self, compiled: Any, base: tuple) -> list[SpecError]:
        """Only the input against the data's samples: the data's targets are not used."""
        from udlc.data.peek import mismatches, peek

        spec, doc, graph = compiled.spec, compiled.doc, self.graph(compiled)
        if spec.data.augment:  # it would change the input but not the target it must give back
            return [SpecError("an autoencoder's inputs are not augmented", path="data.augment",
                              span=doc.span(("data", "augment"), key=True),
                              hint="drop `augment`; `task: {autoencoder: {denoising: {noise: 0.2}}}` corrupts inputs")]
        try:
            signature = peek(spec.data, compiled.base_dir)
        except SpecError as e:
            return [located(e, doc)]
        (shape,) = graph.inputs.values()
        return [SpecError(m.message, path=".".join(base + ("input",)), span=doc.span(base + ("input",), key=True),
                          hint=m.hint)
                for m in mismatches(signature, shape, shape, "mse", "regression") if m.where == "input"]

    def load_data(self, compiled: Any) -> Any:
        """The samples, split and standardized; each split's targets are its own inputs, and the target
        scale is the input's, so losses and the exported reconstruction come back in the data's units."""
        from udlc.data import prepare

        spec = compiled.spec
        self.net = self.network(compiled)
        ((self.input, shape),) = self.graph(compiled).inputs.items()
        try:
            data = prepare(spec.data, shape, compiled.base_dir, spec.seed)
        except SpecError as e:
            raise located(e, compiled.doc) from None
        data.y_train, data.y_val, data.y_test = data.x_train, data.x_val, data.x_test
        data.target_normalization = data.normalization
        data.task, data.classes, data.n_classes = "regression", None, None
        return data

    def setup(self, s: Any, data: Any) -> None:
        import torch

        super().setup(s, data)
        norm = data.normalization  # its own shape: per feature (64,) or per channel (C, 1, 1)
        self.target_norm = tuple(torch.as_tensor(a, device=s.device) for a in (norm.shift, norm.scale))
        if self.options.denoising and hasattr(s, "augment"):  # training (evaluating a run has no augment)
            # Supervised.train_step corrupts the input it reads (s.augment); the target stays the clean batch.
            s.augment = _noisy(self.options.denoising.noise, s.augment)


def _noisy(noise: float, then: Any) -> Any:
    """Gaussian noise from the run's generator (so resume stays exact), after any other corruption."""
    import torch

    def corrupt(x: Any, generator: Any) -> Any:
        x = then(x, generator) if then is not None else x
        return x + noise * torch.randn(x.shape, generator=generator, device=generator.device).to(x.device)

    return corrupt
