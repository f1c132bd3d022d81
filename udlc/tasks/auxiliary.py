"""task: auxiliary — one network with several outputs, each trained on the same targets with `loss`,
summed with `loss_weights` (GoogLeNet's auxiliary classifiers, deep supervision). The first output in
`model.outputs` is the main one: metrics are computed on it, and it alone is exported and served.

    task: {auxiliary: {loss_weights: {main: 1.0, aux: 0.3}}}
    model:
      ...
      outputs: [main, aux]
"""

from __future__ import annotations

from typing import Any, Literal, TYPE_CHECKING

from pydantic import Field, PositiveFloat

from udlc.errors import SpecError, did_you_mean, one_of
from udlc.spec.base import StrictModel
from udlc.spec.model import Name
from udlc.tasks.registry import register
from udlc.tasks.supervised import Supervised

if TYPE_CHECKING:  # annotations only: the check path imports no more than it needs
    from udlc.compiler.pipeline import Compiled


class AuxiliaryOptions(StrictModel):
    type: Literal["auxiliary"] = "auxiliary"
    loss_weights: dict[Name, PositiveFloat] = Field(
        default_factory=dict, description="output id → weight in the total loss (default 1 for each)")


@register
class Auxiliary(Supervised):
    name = "auxiliary"
    example = "auxiliary.yaml"  # tests/specs/contract/: what the contract test trains
    config = AuxiliaryOptions
    description = "one network, several outputs trained on the same targets; the first is served"

    def weights(self, ids: list[str]) -> list[float]:
        return [self.options.loss_weights.get(i, 1.0) for i in ids]

    def check_outputs(self, compiled: Compiled, base: tuple) -> list[SpecError]:
        doc = compiled.doc
        ids = self.output_ids(compiled.spec, self.graph(compiled))
        errors = []
        if len(ids) < 2:
            errors.append(SpecError("task auxiliary trains two or more outputs; this model has one",
                                    path=".".join(base), span=doc.span(base, key=True),
                                    hint="name them with `outputs: [main, aux]` (layer ids), the main one first"))
        where = self.where + ("loss_weights",)
        for key in self.options.loss_weights:
            if key not in ids:
                errors.append(SpecError(f"'{key}' is not an output of the model", path=".".join(where + (key,)),
                                        span=doc.span(where + (key,), key=True),
                                        hint=did_you_mean(key, ids) or one_of(ids)))
        return errors

    def logged(self, spec: Any, has_val: bool) -> list[str]:
        names = super().logged(spec, has_val)
        model = next(iter(spec.networks.values()))
        if has_val:
            names += [f"val_{i}_loss" for i in model.outputs or []]
        return names
