"""task: link_prediction — a graph network learns node embeddings whose dot products tell the graph's edges
from node pairs that are not joined.

if TYPE_CHECKING:  # annotations only: the check path imports no more than it needs
    from udlc.compiler.pipeline import Compiled

    task: link_prediction
    data: {source: sbm, split: [0.8, 0.1, 0.1]}      # the split is of edges
    model:                                           # node embeddings (N, D): no classes
      inputs: {x: [N, 8], edge_index: {shape: [2, E], dtype: int64}}
      layers: [{gcn_conv: {out_features: 32, from: [x, edge_index]}}, relu, {gcn_conv: {out_features: 16, from: edge_index}}]

The undirected edges are split (seeded) into training, validation and test edges; the network passes messages
along the training edges only, so a held-out edge is never seen before it is scored. Each step scores every
training edge and as many node pairs drawn at random from the run's generator (negative sampling), the score
of a pair (u, v) the dot product of their embeddings, with binary cross-entropy; evaluation scores the split's
edges against a fixed draw of as many non-edges and reports the loss and `auc`, the ROC AUC (the chance that a
random edge outscores a random non-edge), which picks the best checkpoint. The served model.onnx gives the
embeddings; `udlc predict` on a `.npz` with `pairs` (2, P) prints each pair's probability of an edge.
"""

from __future__ import annotations

from typing import Any, Literal, TYPE_CHECKING

from udlc.errors import SpecError
from udlc.spec.base import StrictModel
from udlc.tasks.fields import no_metrics
from udlc.tasks.nodes import NodeClassification, NodesState
from udlc.tasks.registry import Served, register
from udlc.tasks.served import EDGE_PROBABILITIES

if TYPE_CHECKING:  # annotations only: the check path imports no more than it needs
    from udlc.compiler.pipeline import Compiled


class LinkPredictionOptions(StrictModel):
    type: Literal["link_prediction"] = "link_prediction"


@register
class LinkPrediction(NodeClassification):
    name = "link_prediction"
    example = "link_prediction.yaml"  # tests/specs/contract/: what the contract test trains
    config = LinkPredictionOptions
    description = "a graph network's node embeddings score node pairs: edges against sampled non-edges (AUC)"
    loss_floor_zero = False  # its loss has a floor of its own: a flat one is no underfitting
    takes_loss = False
    maximized = frozenset({"auc"})
    inputs_optional: dict[str, str] = {}  # the split's message edges carry no weights

    def check_training(self, compiled: Compiled) -> list[SpecError]:
        return no_metrics(compiled, self.name, "loss and auc")

    def check_output(self, compiled: Compiled, graph: Any, out: Any, classes: list[str]) -> list[SpecError]:
        """Any embedding, one row per node."""
        if out is not None and len(out) == 2 and out[0] == graph.inputs["x"][0]:
            return []
        node = graph.nodes[graph.outputs[-1].partition(".")[0]]
        return [SpecError("link prediction scores pairs of node embeddings: the model gives one row per node, "
                          f"(N, D); it gives {out}", path=node.path, span=node.span,
                          hint="end with a graph layer or a `linear` over the nodes")]

    def logged(self, spec: Any, has_val: bool) -> list[str]:
        return ["train_loss"] + (["val_loss", "val_auc"] if has_val else [])

    def monitor(self, has_val: bool) -> str:
        return "val_auc" if has_val else "train_loss"

    def served(self, compiled: Compiled) -> list[Served]:
        return [Served(next(iter(compiled.graphs)), 0, EDGE_PROBABILITIES)]

    def read(self, spec: Any, seed: int, base_dir: Any) -> Any:
        from udlc.data.nodes import split_edges

        return split_edges(super().read(spec, seed, base_dir), spec.split, seed)

    def info(self, compiled: Compiled, state: Any) -> dict[str, Any]:
        return {**super().info(compiled, state), "classes": None}

    def sizes(self, state: Any) -> str:
        return "/".join(str(state.data.pairs[s].shape[1]) for s in ("train", "val", "test")) + " edges"

    def batches(self, state: Any, split: str, *, batch_size: int, shuffle: bool, device: Any) -> Any:
        """The graph with its training edges, once, and the split's edges (`pairs`) and, for evaluation, its
        fixed non-edges."""
        from udlc.data import make_batches

        data = state.data
        if not data.pairs[split].shape[1]:
            return None
        fields = {"x": data.x[None], "edge_index": data.edge_index[None], "pairs": data.pairs[split][None]}
        if split != "train":
            fields["negatives"] = data.negatives[split][None]
        return make_batches(fields, batch_size=1, shuffle=False, device=device)

    def start(self, compiled: Compiled, data: Any, device: Any) -> NodesState:
        net, graph = next(iter(compiled.graphs.items()))
        return NodesState(data, net=net, inputs=list(graph.inputs), loss_fn=None)  # its loss is its own

    def scores(self, s: Any, model: Any, batch: Any, negatives: Any) -> tuple[Any, Any]:
        """Logits of the split's edges and of the non-edges (dot products of the two nodes' embeddings), and
        their labels 1 and 0."""
        import torch

        with s.autocast():
            z = model(*(batch[name] for name in s.run_state.inputs))[0].float()
        pairs = torch.cat([batch["pairs"][0], negatives], dim=1)
        logits = (z[pairs[0]] * z[pairs[1]]).sum(-1)
        labels = torch.cat([torch.ones(batch["pairs"].shape[2]), torch.zeros(negatives.shape[1])]).to(logits.device)
        return logits, labels

    def train_step(self, s: Any, batch: Any) -> tuple[dict[str, float], int]:
        import torch
        import torch.nn.functional as F

        count = batch["pairs"].shape[2]
        st: NodesState = s.run_state
        negatives = torch.randint(0, len(st.data.x), (2, count), generator=s.generator).to(batch["pairs"].device)
        logits, labels = self.scores(s, s.models[st.net], batch, negatives)
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        value = s.update(st.net, loss, (tuple(batch[n] for n in st.inputs), labels))
        return {"loss": value}, count

    def evaluate(self, s: Any, batches: Any) -> dict[str, float]:
        import torch
        import torch.nn.functional as F

        from sklearn.metrics import roc_auc_score

        model = s.models[s.run_state.net]
        was_training = model.training
        model.eval()
        with torch.no_grad():
            (batch,) = batches.epoch_batches(None)
            logits, labels = self.scores(s, model, batch, batch["negatives"][0])
        model.train(was_training)
        auc = float(roc_auc_score(labels.cpu().numpy(), logits.cpu().numpy()))
        return {"loss": F.binary_cross_entropy_with_logits(logits, labels).item(), "auc": auc}
