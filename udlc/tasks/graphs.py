"""task: node_classification — a graph network classifies the nodes of one graph, semi-supervised: every step
reads the whole graph, the loss counts the training nodes, evaluation the validation or test nodes.

    task: node_classification
    data: {source: karate, split: [0.3, 0.2, 0.5]}      # the split is of nodes
    model:
      inputs:
        x: [N, 34]                                     # node features; N any number of nodes
        edge_index: {shape: [2, E], dtype: int64}      # source and target node of each edge
      layers:
        - gcn_conv: {out_features: 16, from: [x, edge_index]}
        - relu
        - gcn_conv: {out_features: 2, from: edge_index}   # one name: with the previous output
    loss: cross_entropy

Node features are normalized with the training nodes' statistics (`data.normalize`). The model is served as
model.onnx: raw features x (1, N, F) and edge_index (1, 2, E) in, `logits` and `probabilities` (1, N, C) out,
for graphs of any size; `udlc predict MODEL.onnx graph.npz` prints a class per node.
"""

from __future__ import annotations

from typing import Any, Literal

from udlc.errors import SpecError
from udlc.spec.base import StrictModel
from udlc.tasks.fields import error, one_network
from udlc.tasks.registry import Served, Task, register
from udlc.tasks.supervised import check_monitors, check_network_keys, located

INPUTS = {"x": "float32", "edge_index": "int64"}


class NodeClassificationOptions(StrictModel):
    type: Literal["node_classification"] = "node_classification"


@register
class NodeClassification(Task):
    name = "node_classification"
    config = NodeClassificationOptions
    description = "a graph network classifies the nodes of one graph (masks of nodes split train/val/test)"

    def check(self, compiled: Any, check_files: bool) -> list[SpecError]:
        from udlc.spec.metrics import METRICS
        from udlc.spec.sources import SOURCES, GraphSet

        spec, doc = compiled.spec, compiled.doc
        found = one_network(compiled, self.name)
        if isinstance(found, SpecError):
            return [found]
        net, graph, base = found
        errors = check_network_keys(compiled) + check_monitors(compiled, self.logged(spec, spec.data.split[1] > 0))
        entry = SOURCES.find(spec.data.source)
        if not isinstance(entry, GraphSet):
            errors.append(error(doc, f"task node_classification reads a graph; {spec.data.source} is none",
                                ("data", "source"), "use a graph: " + ", ".join(e.name for e in SOURCES.graph_sets())))
        if spec.loss.type != "cross_entropy" or spec.loss.weight:
            errors.append(error(doc, "nodes are classified with cross_entropy (no class weights)", ("loss",),
                                "write `loss: cross_entropy`"))
        for i, metric in enumerate(spec.metrics):
            if METRICS[metric.type].task != "classification":
                errors.append(error(doc, f"{metric.type} measures values; the nodes get classes", ("metrics", i),
                                    "use accuracy, f1_macro or top_k"))
        if spec.data.augment:
            errors.append(error(doc, "a graph's features are not augmented", ("data", "augment"), "drop `augment`",
                                key=True))
        written = spec.networks[net].inputs
        for name, shape in graph.inputs.items():
            where = base + ("inputs", name) if written else base + ("input",)
            rank = 2
            if name not in INPUTS:
                errors.append(error(doc, f"the input '{name}' is neither x (node features) nor edge_index", where,
                                    "name the inputs x and edge_index", key=True))
            elif graph.dtype_of(name) != INPUTS[name] or len(shape) != rank or (name == "edge_index" and shape[0] != 2):
                want = "[N, F] float32" if name == "x" else "[2, E] int64"
                errors.append(error(doc, f"{name} is {want}", where, key=True))
        for name in INPUTS:
            if name not in graph.inputs:
                errors.append(error(doc, f"the model must read `{name}`", base, "declare `inputs: {x: [N, F], "
                                    "edge_index: {shape: [2, E], dtype: int64}}`", key=True))
        if errors or not isinstance(entry, GraphSet):
            return errors
        if graph.inputs["x"][1] != entry.features:
            errors.append(error(doc, f"{entry.name} gives {entry.features} features per node; x declares "
                                f"{graph.inputs['x'][1]}", base + ("inputs", "x"), f"write `x: [N, {entry.features}]`",
                                key=True))
        out = graph.shape_of(graph.outputs[0]) if len(graph.outputs) == 1 else None
        if out is None or len(out) != 2 or out[1] != len(entry.classes):
            node = graph.nodes[graph.outputs[-1].partition(".")[0]]
            errors.append(SpecError(f"the model gives a row of {len(entry.classes)} logits per node, (N, "
                                    f"{len(entry.classes)}), for {entry.name}'s classes; it gives "
                                    f"{'(' + ', '.join(map(str, out)) + ')' if out else 'several outputs'}",
                                    path=node.path, span=node.span,
                                    hint=f"end with `gcn_conv: {len(entry.classes)}` or `linear: {len(entry.classes)}`"))
        return errors

    def logged(self, spec: Any, has_val: bool) -> list[str]:
        from udlc.spec.metrics import metric_name

        return ["train_loss"] + (["val_loss"] + [f"val_{metric_name(m)}" for m in spec.metrics] if has_val else [])

    def served(self, compiled: Any) -> list[Served]:
        return [Served(next(iter(compiled.graphs)), 0, "node_softmax")]

    # ---- train time -----------------------------------------------------------------------------------

    def load_data(self, compiled: Any) -> Any:
        from udlc.data.graphs import load_graph

        self.net, graph = next(iter(compiled.graphs.items()))
        self.inputs = list(graph.inputs)
        try:
            return load_graph(compiled.spec.data, compiled.spec.seed)
        except SpecError as e:
            raise located(e, compiled.doc) from None

    def info(self, compiled: Any, data: Any) -> dict[str, Any]:
        graph = compiled.graphs[self.net]
        return {
            "task": self.name,
            "classes": data.classes,
            "input_names": list(graph.inputs),
            "input_shapes": [list(s) for s in graph.inputs.values()],
            "sample_shapes": [list(data.x.shape), list(data.edge_index.shape)],
            "normalization": data.normalization.to_json(),
            "target_normalization": None,
        }

    def sizes(self, data: Any) -> str:
        return "/".join(str(int(data.masks[s].sum())) for s in ("train", "val", "test")) + " nodes"

    def batches(self, data: Any, split: str, *, batch_size: int, shuffle: bool, device: Any) -> Any:
        """The whole graph, once: a batch axis of 1, and the split's node mask."""
        from udlc.data import make_batches

        if not data.masks[split].any():
            return None
        fields = {"x": data.x[None], "edge_index": data.edge_index[None], "target": data.y[None],
                  "mask": data.masks[split][None]}
        return make_batches(fields, batch_size=1, shuffle=False, device=device)

    def setup(self, s: Any, data: Any) -> None:
        from udlc.spec.losses import LOSSES

        self.loss_fn = LOSSES["cross_entropy"].build(s.spec.loss, s.device)

    def logits(self, s: Any, model: Any, batch: Any) -> tuple[Any, Any]:
        """The masked nodes' logits (n, C) and classes (n,)."""
        with s.autocast():
            out = model(*(batch[name] for name in self.inputs))
        mask = batch["mask"][0]
        return out[0][mask].float(), batch["target"][0][mask]

    def train_step(self, s: Any, batch: Any) -> tuple[dict[str, float], int]:
        logits, y = self.logits(s, s.models[self.net], batch)
        value = s.update(self.net, self.loss_fn(logits, y), (tuple(batch[n] for n in self.inputs), y))
        return {"loss": value}, len(y)

    def evaluate(self, s: Any, batches: Any) -> dict[str, float]:
        import torch

        from udlc.spec.metrics import compute_metrics

        model = s.models[self.net]
        was_training = model.training
        model.eval()
        with torch.no_grad():
            (batch,) = batches.epoch_batches(None)
            logits, y = self.logits(s, model, batch)
        model.train(was_training)
        return {"loss": self.loss_fn(logits, y).item(), **compute_metrics(s.spec.metrics, logits, y, "softmax")}
