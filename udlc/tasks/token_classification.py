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

from typing import Any, Literal

from udlc.errors import SpecError
from udlc.spec.base import StrictModel
from udlc.tasks.fields import check_fields, error, one_network, output_node
from udlc.tasks.registry import Served, Task, register
from udlc.tasks.supervised import check_monitors, check_network_keys

FIELDS = {"tokens": "int64", "tokens_mask": "bool"}


class TokenClassificationOptions(StrictModel):
    type: Literal["token_classification"] = "token_classification"


@register
class TokenClassification(Task):
    name = "token_classification"
    config = TokenClassificationOptions
    description = "one network labels every position of a sequence (padding masked out)"

    def check(self, compiled: Any, check_files: bool) -> list[SpecError]:
        from udlc.spec.sources import SOURCES, SequenceSet

        spec, doc = compiled.spec, compiled.doc
        found = one_network(compiled, self.name)
        if isinstance(found, SpecError):
            return [found]
        net, graph, base = found
        errors = check_network_keys(compiled) + check_monitors(compiled, self.logged(spec, spec.data.split[1] > 0))
        entry = SOURCES.find(spec.data.source)
        aligned = [e.name for e in SOURCES.sequence_sets() if e.aligned]
        if not isinstance(entry, SequenceSet) or not entry.aligned:
            errors.append(error(doc, f"task {self.name} needs a label for every position, and {spec.data.source} "
                                "has none", ("data", "source"), f"use a set whose targets are as long as its "
                                f"sources: {', '.join(aligned)}"))
        if spec.loss.type != "cross_entropy" or spec.loss.weight:
            errors.append(error(doc, f"task {self.name} learns with cross_entropy", ("loss",),
                                "write `loss: cross_entropy`"))
        if spec.metrics or spec.data.augment:
            what = "metrics" if spec.metrics else "data.augment"
            errors.append(error(doc, f"task {self.name} logs its own metrics (token_accuracy, exact_match) and takes "
                                "no augmentation", tuple(what.split(".")), f"drop `{what}`", key=True))
        errors += check_fields(compiled, graph, base, FIELDS, ("tokens",), "a token batch")
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

    def served(self, compiled: Any) -> list[Served]:
        return [Served(next(iter(compiled.graphs)), 0, "softmax")]

    def load_data(self, compiled: Any) -> Any:
        import numpy as np

        from udlc.data.sources import DEFAULT_SAMPLES
        from udlc.spec.sources import SOURCES

        spec = compiled.spec
        self.net, graph = next(iter(compiled.graphs.items()))
        self.inputs = list(graph.inputs)
        entry = SOURCES.find(spec.data.source)
        self.vocabulary = entry.vocabulary
        index = {c: i for i, c in enumerate(self.vocabulary)}
        encode = lambda text: np.array([index[c] for c in text], dtype=np.int64)  # noqa: E731
        rng = np.random.default_rng(spec.seed)
        samples = [{"tokens": encode(s), "target": encode(t)}
                   for s, t in entry.load(spec.data.samples or DEFAULT_SAMPLES, rng)]
        order = rng.permutation(len(samples))
        n_train, n_val = (int(f * len(samples)) for f in spec.data.split[:2])
        cuts = {"train": order[:n_train], "val": order[n_train:n_train + n_val], "test": order[n_train + n_val:]}
        return {k: [samples[i] for i in idx] for k, idx in cuts.items()}

    def info(self, compiled: Any, data: Any) -> dict[str, Any]:
        graph = compiled.graphs[self.net]
        return {"task": self.name, "classes": None, "input_names": self.inputs,
                "input_shapes": [list(s) for s in graph.inputs.values()], "normalization": None,
                "vocabulary": list(self.vocabulary)}

    def sizes(self, data: Any) -> str:
        return "/".join(str(len(data[k])) for k in ("train", "val", "test"))

    def batches(self, data: Any, split: str, *, batch_size: int, shuffle: bool, device: Any) -> Any:
        from udlc.data.collate import PaddedBatches

        return PaddedBatches(data[split], batch_size, shuffle, device) if data[split] else None

    def setup(self, s: Any, data: Any) -> None:
        from udlc.spec.losses import LOSSES

        self.loss_fn = LOSSES["cross_entropy"].build(s.spec.loss, s.device)

    def fields(self, batch: dict) -> tuple[tuple, Any]:
        """The model's inputs from a batch, and which positions are real (every one where nothing was padded)."""
        real = batch.get("tokens_mask", batch["tokens"] >= 0)
        return tuple(real if name == "tokens_mask" else batch[name] for name in self.inputs), real

    def train_step(self, s: Any, batch: Any) -> tuple[dict[str, float], int]:
        inputs, real = self.fields(batch)
        with s.autocast():
            loss = self.loss_fn(s.models[self.net](*inputs)[real], batch["target"][real])
        return {"loss": s.update(self.net, loss, (inputs, batch["target"]))}, len(real)

    def evaluate(self, s: Any, batches: Any) -> dict[str, float]:
        import torch
        import torch.nn.functional as F

        model = s.models[self.net]
        was_training = model.training
        model.eval()
        nats = tokens = right = exact = n = 0
        with torch.no_grad():
            for batch in batches.epoch_batches(None):
                inputs, real = self.fields(batch)
                logits, target = model(*inputs).float(), batch["target"]
                nats += F.cross_entropy(logits[real], target[real], reduction="sum").item()
                hit = (logits.argmax(-1) == target) | ~real
                right += (hit & real).sum().item()
                exact += hit.all(-1).sum().item()
                tokens, n = tokens + real.sum().item(), n + len(real)
        model.train(was_training)
        return {"loss": nats / tokens, "token_accuracy": right / tokens, "exact_match": exact / n}
