"""task: token_classification — one network gives a label to every position of a sequence.

    task: token_classification
    data: {source: sort, samples: 10000}              # a generated set whose targets are as long as sources
    model:
      inputs:
        tokens: {shape: [T], dtype: int64}
        tokens_mask: {shape: [T], dtype: bool}       # True at real positions (optional)
      layers: [..., linear: 13]                      # (T, labels): a label per position
    loss: cross_entropy

Batches pad the sequences to the longest in the batch; the loss and `token_accuracy` count real positions
only, and `exact_match` counts the sequences whose every position is right. The labels are the set's
vocabulary (copy, reverse and sort label each digit with the digit the target has at that position), so
`udlc generate MODEL.onnx --prompt 31415` prints the labelled sequence.
"""

from __future__ import annotations

from typing import Any, Literal, TYPE_CHECKING

from udlc.errors import SpecError
from udlc.spec.base import StrictModel
from udlc.tasks.fields import FieldsTask, Sequences, error, output_node, sequence_pairs
from udlc.tasks.registry import register
from udlc.tasks.served import TOKEN_LABELS

if TYPE_CHECKING:  # annotations only: the check path imports no more than it needs
    from udlc.compiler.pipeline import Compiled

FIELDS = {"tokens": "int64", "tokens_mask": "bool"}


class TokenClassificationOptions(StrictModel):
    type: Literal["token_classification"] = "token_classification"


@register
class TokenClassification(FieldsTask):
    name = "token_classification"
    example = "token_classification.yaml"  # tests/specs/contract/: what the contract test trains
    config = TokenClassificationOptions
    description = "one network labels every position of a sequence (padding masked out)"
    serves = TOKEN_LABELS
    fields, required = FIELDS, ("tokens",)

    def check(self, compiled: Compiled, check_files: bool) -> list[SpecError]:
        from udlc.spec.sources import SOURCES, SequenceSet

        spec, doc = compiled.spec, compiled.doc
        found = self.common_checks(compiled, "a token batch")
        if isinstance(found, SpecError):
            return [found]
        graph, base, errors = found
        entry = SOURCES.find(spec.data.source)
        aligned = [e.name for e in SOURCES.sequence_sets() if e.aligned]
        if not isinstance(entry, SequenceSet) or not entry.aligned:
            errors.append(error(doc, f"task {self.name} needs a label for every position, and {spec.data.source} "
                                "has none", ("data", "source"), f"use a set whose targets are as long as its "
                                f"sources: {', '.join(aligned)}"))
        if errors:
            return errors
        out, node, labels = graph.shape_of(graph.outputs[0]), output_node(graph), len(entry.vocabulary)
        if len(graph.outputs) != 1 or out is None or len(out) != 2 or out[0] != graph.inputs["tokens"][0]:
            return [SpecError(f"a token classifier gives a label's logits at each position, "
                              f"({graph.inputs['tokens'][0]}, {labels}); this one gives {out}", path=node.path,
                              span=node.span, hint=f"keep the sequence axis and end with `linear: {labels}`")]
        if out[1] != labels:
            return [SpecError(f"the model gives {out[1]} logits per position but {entry.name} has {labels} labels",
                              path=node.path, span=node.span, hint=f"end with `linear: {labels}`")]
        return []

    def logged(self, spec: Any, has_val: bool) -> list[str]:
        return ["train_loss"] + (["val_loss", "val_token_accuracy", "val_exact_match"] if has_val else [])

    def load_data(self, compiled: Compiled) -> Any:
        vocabulary, pairs, rng = sequence_pairs(compiled)
        return Sequences(self.split(compiled, [{"tokens": s, "target": t} for s, t in pairs], rng), vocabulary)

    def info(self, compiled: Compiled, state: Any) -> dict[str, Any]:
        graph = compiled.graphs[state.net]
        return {"task": self.name, "classes": None, "input_names": state.inputs,
                "input_shapes": [list(s) for s in graph.inputs.values()], "normalization": None,
                "vocabulary": list(state.data.vocabulary)}
    def train_step(self, s: Any, batch: Any) -> tuple[dict[str, float], int]:
        return self.train_positions(s, batch)

    def evaluate(self, s: Any, batches: Any) -> dict[str, float]:
        return self.evaluate_positions(s, batches)
