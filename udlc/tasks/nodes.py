"""task: node_classification — a graph network classifies the nodes of one graph, semi-supervised: every step
reads the whole graph, the loss counts the training nodes, evaluation the validation or test nodes.
task: graph_classification — it classifies whole graphs, a batch of them taken as one disjoint graph.

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

    task: graph_classification
    data: {source: trees_cycles, samples: 1000}        # the split is of graphs
    model:
      inputs: {x: [N, 5], edge_index: {shape: [2, E], dtype: int64}, batch: {shape: [N], dtype: int64}}
      layers:
        - gin_conv: {out_features: 32, from: [x, edge_index]}
        - global_add_pool: {from: batch}               # every node gets its graph's sum
        - linear: 2                                    # its graph's logits, at every node

`batch` says which graph each node belongs to (PyG's convention). A readout gives every node its graph's
row, so the model's output is (N, classes) and the loss reads each graph's at its first node; the file takes
x, edge_index and batch, and `udlc predict MODEL.onnx graphs.npz` prints a class per graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal, TYPE_CHECKING

from udlc.errors import SpecError, UdlcError
from udlc.spec.base import StrictModel
from udlc.tasks.checks import check_sections, located
from udlc.tasks.fields import error, one_network
from udlc.tasks.registry import RunState, Served, Task, evaluating, register
from udlc.tasks.served import NODE_CLASSES

if TYPE_CHECKING:  # annotations only: the check path imports no more than it needs
    from udlc.compiler.pipeline import Compiled

READOUTS = ("global_mean_pool", "global_max_pool", "global_add_pool")


@dataclass
class NodesState(RunState):
    net: str  # the one graph network
    inputs: list[str]  # its inputs, fed by name from the graph's fields
    loss_fn: Callable[[Any, Any], Any] | None  # the spec's loss (link prediction has its own)


class NodeClassificationOptions(StrictModel):
    type: Literal["node_classification"] = "node_classification"


@register
class NodeClassification(Task):
    name = "node_classification"
    example = "node_classification.yaml"  # tests/specs/contract/: what the contract test trains
    splits_batches = False  # one whole graph (or batches of graphs): not rows that processes could share
    config = NodeClassificationOptions
    description = "a graph network classifies the nodes of one graph (masks of nodes split train/val/test)"
    reads_graphs = True  # `data.nodes` (a graph's node CSV) is for these tasks alone
    inputs_wanted = {"x": "float32", "edge_index": "int64"}  # input name -> dtype, each required
    inputs_optional = {"edge_weight": "float32"}  # read when the graph file has edge weights

    def source_kind(self) -> type:
        from udlc.spec.sources import NodeSet

        return NodeSet

    def check(self, compiled: Compiled, check_files: bool) -> list[SpecError]:
        from udlc.spec.sources import SOURCES

        spec, doc = compiled.spec, compiled.doc
        found = one_network(compiled, self.name)
        if isinstance(found, SpecError):
            return [found]
        net, graph, base = found
        errors = check_sections(compiled, self)
        entry = SOURCES.find(spec.data.source)
        kind = self.source_kind()
        is_file = spec.data.source.lower().endswith(".npz") or (
            spec.data.source.lower().endswith(".csv") and not isinstance(self, GraphClassification))
        if is_file and spec.data.source.lower().endswith(".csv") and spec.data.nodes is None:
            errors.append(error(doc, f"{spec.data.source} as a graph is its edge list: the nodes' features and "
                                "classes come from a node file", ("data", "source"),
                                "name it: `nodes: nodes.csv` (one row per node, in id order)"))
        if not isinstance(entry, kind) and not is_file:
            errors.append(error(doc, f"task {self.name} reads {'graphs' if isinstance(self, GraphClassification) else 'a graph'}"
                                f"; {spec.data.source} is none", ("data", "source"), "use a .npz graph file or one of: "
                                + ", ".join(e.name for e in SOURCES.node_sets() if isinstance(e, kind))))
        errors += self.check_training(compiled)
        if spec.data.augment:
            errors.append(error(doc, "a graph's features are not augmented", ("data", "augment"), "drop `augment`",
                                key=True))
        errors += self.check_inputs(compiled, net, graph, base)
        if errors or (is_file and not check_files):
            return errors
        from udlc.data.node_signature import graph_signature

        try:
            features, classes, weighted = graph_signature(spec.data, compiled.base_dir,
                                                          isinstance(self, GraphClassification))
        except UdlcError as e:
            return [error(doc, str(e), ("data", "source"))]
        if "edge_weight" in graph.inputs and not weighted:
            errors.append(error(doc, f"the model reads edge_weight, and {spec.data.source} has no edge weights",
                                base + ("inputs", "edge_weight"), "give the graph file an edge_weight array (E,), "
                                "or drop the input", key=True))
        if graph.inputs["x"][1] != features:
            errors.append(error(doc, f"{spec.data.source} gives {features} features per node; x declares "
                                f"{graph.inputs['x'][1]}", base + ("inputs", "x"), f"write `x: [N, {features}]`",
                                key=True))
        out = graph.shape_of(graph.outputs[0]) if len(graph.outputs) == 1 else None
        return errors + self.check_output(compiled, graph, out, classes)

    def check_training(self, compiled: Compiled) -> list[SpecError]:
        """The spec's loss and metrics: cross-entropy over classes."""
        from udlc.spec.metrics import METRICS

        spec, doc = compiled.spec, compiled.doc
        errors = []
        if spec.loss.type != "cross_entropy" or spec.loss.weight:
            errors.append(error(doc, f"task {self.name} learns with cross_entropy (no class weights)", ("loss",),
                                "write `loss: cross_entropy`"))
        for i, metric in enumerate(spec.metrics):
            if METRICS[metric.type].task != "classification":
                errors.append(error(doc, f"{metric.type} measures values; task {self.name} gives classes",
                                    ("metrics", i), "use accuracy, f1_macro or top_k"))
        return errors

    def check_output(self, compiled: Compiled, graph: Any, out: Any, classes: list[str]) -> list[SpecError]:
        """A row of logits per node."""
        if out is not None and len(out) == 2 and out[1] == len(classes):
            return []
        node = graph.nodes[graph.outputs[-1].partition(".")[0]]
        return [SpecError(f"the model gives a row of {len(classes)} logits per node, (N, {len(classes)}), for the "
                          f"classes of {compiled.spec.data.source}; it gives "
                          f"{'(' + ', '.join(map(str, out)) + ')' if out else 'several outputs'}",
                          path=node.path, span=node.span,
                          hint=f"end with `gcn_conv: {len(classes)}` or `linear: {len(classes)}`")]

    def check_inputs(self, compiled: Compiled, net: str, graph: Any, base: tuple) -> list[SpecError]:
        doc, wanted = compiled.doc, {**self.inputs_wanted, **self.inputs_optional}
        shapes = {"x": "[N, F] float32", "edge_index": "[2, E] int64", "batch": "[N] int64",
                  "edge_weight": "[E] float32"}
        written = compiled.spec.networks[net].inputs
        errors = []
        for name, shape in graph.inputs.items():
            where = base + ("inputs", name) if written else base + ("input",)
            if name not in wanted:
                errors.append(error(doc, f"the input '{name}' is none of {', '.join(wanted)}", where,
                                    f"name the inputs {', '.join(wanted)}", key=True))
                continue
            rank = 1 if name in ("batch", "edge_weight") else 2
            if graph.dtype_of(name) != wanted[name] or len(shape) != rank or (name == "edge_index" and shape[0] != 2):
                errors.append(error(doc, f"{name} is {shapes[name]}", where, key=True))
        declared = ", ".join(f"{n}: {{shape: {shapes[n].split()[0]}, dtype: {wanted[n]}}}" for n in self.inputs_wanted)
        for name in self.inputs_wanted:
            if name not in graph.inputs:
                errors.append(error(doc, f"the model must read `{name}`", base, f"declare `inputs: {{{declared}}}`",
                                    key=True))
        return errors

    def logged(self, spec: Any, has_val: bool) -> list[str]:
        from udlc.spec.metrics import metric_name

        return ["train_loss"] + (["val_loss"] + [f"val_{metric_name(m)}" for m in spec.metrics] if has_val else [])

    def served(self, compiled: Compiled) -> list[Served]:
        return [Served(next(iter(compiled.graphs)), 0, NODE_CLASSES, "softmax")]

    # ---- train time -----------------------------------------------------------------------------------

    def load_data(self, compiled: Compiled) -> Any:
        try:
            return self.read(compiled.spec.data, compiled.spec.seed, compiled.base_dir)
        except SpecError as e:
            raise located(e, compiled.doc) from None

    def read(self, spec: Any, seed: int, base_dir: Any) -> Any:
        from udlc.data.nodes import load_graph

        return load_graph(spec, seed, base_dir)

    def info(self, compiled: Compiled, state: Any) -> dict[str, Any]:
        graph, data = compiled.graphs[state.net], state.data
        return {
            "task": self.name,
            "classes": data.classes,
            "input_names": list(graph.inputs),
            "input_shapes": [list(s) for s in graph.inputs.values()],  # N and E take any size
            "normalization": data.normalization.to_json(),
            "target_normalization": None,
        }

    def sizes(self, state: Any) -> str:
        return "/".join(str(int(state.data.masks[s].sum())) for s in ("train", "val", "test")) + " nodes"

    def batches(self, state: Any, split: str, *, batch_size: int, shuffle: bool, device: Any) -> Any:
        """The whole graph, once: a batch axis of 1, and the split's node mask."""
        from udlc.data import make_batches

        data = state.data
        if not data.masks[split].any():
            return None
        fields = {"x": data.x[None], "edge_index": data.edge_index[None], "target": data.y[None],
                  "mask": data.masks[split][None]}
        if "edge_weight" in state.inputs:
            fields["edge_weight"] = data.edge_weight[None]
        return make_batches(fields, batch_size=1, shuffle=False, device=device)

    def start(self, compiled: Compiled, data: Any, device: Any) -> NodesState:
        from udlc.objectives.losses import make_loss

        net, graph = next(iter(compiled.graphs.items()))
        return NodesState(data, net=net, inputs=list(graph.inputs), loss_fn=make_loss(compiled.spec.loss, device))

    def logits(self, s: Any, model: Any, batch: Any) -> tuple[Any, Any]:
        """The masked nodes' logits (n, C) and classes (n,)."""
        with s.autocast():
            out = model(*(batch[name] for name in s.run_state.inputs))
        mask = batch["mask"][0]
        return out[0][mask].float(), batch["target"][0][mask]

    def train_step(self, s: Any, batch: Any) -> tuple[dict[str, float], int]:
        st: NodesState = s.run_state
        logits, y = self.logits(s, s.models[st.net], batch)
        value = s.update(st.net, st.loss_fn(logits, y), (tuple(batch[n] for n in st.inputs), y))
        return {"loss": value}, len(y)

    def evaluate(self, s: Any, batches: Any) -> dict[str, float]:
        import torch

        from udlc.objectives.metrics import compute_metrics

        st: NodesState = s.run_state
        model = s.models[st.net]
        with evaluating(model):
            logits, y = (torch.cat(part) for part in zip(*(self.logits(s, model, b) for b in batches.epoch_batches(None))))
        return {"loss": st.loss_fn(logits, y).item(), **compute_metrics(s.spec.metrics, logits, y, "softmax")}


class GraphClassificationOptions(StrictModel):
    type: Literal["graph_classification"] = "graph_classification"


@register
class GraphClassification(NodeClassification):
    name = "graph_classification"
    example = "graph_classification.yaml"  # tests/specs/contract/: what the contract test trains
    config = GraphClassificationOptions
    description = "a graph network classifies whole graphs (batches of graphs as one disjoint graph)"
    inputs_wanted = {"x": "float32", "edge_index": "int64", "batch": "int64"}
    inputs_optional: dict[str, str] = {}

    def source_kind(self) -> type:
        from udlc.spec.sources import NodeSetList

        return NodeSetList

    def check_inputs(self, compiled: Compiled, net: str, graph: Any, base: tuple) -> list[SpecError]:
        errors = super().check_inputs(compiled, net, graph, base)
        if not errors and not any(n.op in READOUTS and "batch" in n.inputs for n in graph.nodes.values()):
            errors.append(error(compiled.doc, "the model classifies graphs, but no readout gathers a graph's nodes",
                                base + ("layers",), "add `global_add_pool: {from: batch}` (or global_mean_pool, "
                                "global_max_pool) before the classifier", key=True))
        return errors

    def read(self, spec: Any, seed: int, base_dir: Any) -> Any:
        from udlc.data.nodes import load_graph_set

        return load_graph_set(spec, seed, base_dir)

    def sizes(self, state: Any) -> str:
        return "/".join(str(len(state.data.splits[s])) for s in ("train", "val", "test")) + " graphs"

    def batches(self, state: Any, split: str, *, batch_size: int, shuffle: bool, device: Any) -> Any:
        from udlc.data.nodes import GraphBatches

        indices = state.data.splits[split]
        return GraphBatches(state.data, indices, batch_size, shuffle, device) if len(indices) else None

    def logits(self, s: Any, model: Any, batch: Any) -> tuple[Any, Any]:
        """Each graph's logits, read at its first node (the readout gave every node its graph's row)."""
        with s.autocast():
            out = model(*(batch[name] for name in s.run_state.inputs))
        return out[0][batch["first"][0]].float(), batch["target"][0]
