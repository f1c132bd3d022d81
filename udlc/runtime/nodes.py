"""`udlc predict` for a graph network: the classes of a graph's nodes, or of each graph in a file of several,
from a `.npz` graph file (udlc.data.nodes reads and checks it), with onnxruntime and numpy only. The file's
graph takes the raw node features, the edge list and (to classify graphs) the batch vector, each with a batch
axis of one disjoint graph.

`udlc serve` reads the same arrays from a request (its JSON lists, or an uploaded .npz) and hands them to
`predict_arrays` and `scores`, which check them as a file's are checked: a request gets predict's messages."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from udlc.errors import UdlcError
from udlc.runtime.files import Opened, damaged, opened
from udlc.runtime.predict import Predictions
from udlc.runtime.rows import refuse_id
from udlc.tasks.served import EDGE_PROBABILITIES, NODE_CLASSES


class GraphClassifier:
    serves = (NODE_CLASSES,)
    reads = "a graph network's classifier"

    def __init__(self, path: str | Path | Opened, device: str = "cpu"):
        file = opened(path, device, self)
        self.path, self.session, meta = file.path, file.session, file.meta
        try:
            self.classes = json.loads(meta["classes"])
            self.features = int(json.loads(meta["input_shapes"])[0][1])
            self.inputs = json.loads(meta["input_names"])
        except (KeyError, ValueError, TypeError, IndexError) as e:
            raise damaged(self.path, e) from None
        # To classify graphs the network reads which graph each node is in, and gives every node its graph's row.
        self.per_graph = "batch" in self.inputs

    def answer_file(self, inputs: Path, id_column: str | None = None) -> str:
        """`udlc predict`: the classes of a graph file's nodes (or graphs) as CSV."""
        refuse_id(id_column, inputs)
        return self.predict_file(inputs).to_csv()

    def predict_file(self, graph: str | Path) -> Predictions:
        """A class per node (node_classification), or per graph in the order of their ids (graph_classification)."""
        from udlc.data.node_files import graph_file

        return self.predict_arrays(graph_file(Path(graph), ("x", "edge_index")), graph)

    def predict_arrays(self, arrays: dict[str, np.ndarray], source: Any) -> Predictions:
        """predict_file on a graph's arrays already read; `source` names them in messages."""
        x, edges, batch, weight = graph_arrays(arrays, source)
        if x.shape[1] != self.features:
            raise UdlcError(f"{source}: its nodes have {x.shape[1]} features; {self.path} reads {self.features}")
        feed = {"x": x[None], "edge_index": edges[None], "batch": batch[None]}
        if "edge_weight" in self.inputs:
            if weight is None:
                raise UdlcError(f"{source}: {self.path} weighs edges; give the file an edge_weight array (E,)")
            feed["edge_weight"] = weight[None]
        feed = {name: feed[name] for name in self.inputs}
        _, probabilities = self.session.run(None, feed)
        rows = probabilities[0]
        if self.per_graph:
            _, first = np.unique(batch, return_index=True)  # each graph's row is at every one of its nodes
            rows = rows[first]
        return Predictions("classification", rows.argmax(axis=1), rows, self.classes)


def graph_arrays(arrays: dict[str, np.ndarray], source: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                       np.ndarray | None]:
    """udlc.data.node_files.read_graph's checks on arrays already read (`source` names them): the features
    (N, F) float32, the clean edges (2, E), each node's graph (N,) and the edges' weights where given."""
    from udlc.data.node_files import checked_batch, checked_edges, checked_features, clean_weighted_edges

    x, edges = checked_features(arrays["x"], source), checked_edges(arrays["edge_index"], source)
    batch = checked_batch(arrays.get("batch", np.zeros(len(x), dtype=np.int64)), len(x), source)
    edges, weight = clean_weighted_edges(edges, arrays.get("edge_weight"), len(x), str(source))
    return x, edges, batch, weight


@dataclass
class EdgeScores:
    """Node pairs (2, P) and each one's probability of an edge."""

    pairs: np.ndarray
    probability: np.ndarray

    def to_csv(self) -> str:
        rows = [f"{u},{v},{p:.6f}" for u, v, p in zip(self.pairs[0], self.pairs[1], self.probability)]
        return "\n".join(["source,target,probability", *rows]) + "\n"


class LinkScorer:
    """A link prediction model file: each node pair's probability of an edge, sigmoid(z_u · z_v) of the
    embeddings the file gives for the graph."""

    serves = (EDGE_PROBABILITIES,)
    reads = "a link prediction model"

    def __init__(self, path: str | Path | Opened, device: str = "cpu"):
        file = opened(path, device, self)
        self.path, self.session = file.path, file.session
        try:
            self.features = int(json.loads(file.meta["input_shapes"])[0][1])
        except (KeyError, ValueError, TypeError, IndexError) as e:
            raise damaged(self.path, e) from None

    def answer_file(self, inputs: Path, id_column: str | None = None) -> str:
        """`udlc predict`: each of the graph file's `pairs` with its probability of an edge, as CSV."""
        refuse_id(id_column, inputs)
        return self.score_file(inputs)

    def score_file(self, graph: str | Path) -> str:
        """CSV rows `source,target,probability` for the file's `pairs` (2, P)."""
        from udlc.data.node_files import graph_file

        arrays = graph_file(Path(graph), ("x", "edge_index"))
        if "pairs" not in arrays:
            graph_file(Path(graph), ("pairs",))  # its message: the file has no pairs
        return self.scores(arrays, graph).to_csv()

    def scores(self, arrays: dict[str, np.ndarray], source: Any) -> EdgeScores:
        """The probability of an edge for each of `arrays`' pairs (2, P), on the graph of its x and edge_index."""
        x, edges, _, _ = graph_arrays(arrays, source)
        if x.shape[1] != self.features:
            raise UdlcError(f"{source}: its nodes have {x.shape[1]} features; {self.path} reads {self.features}")
        pairs = arrays["pairs"]
        if pairs.ndim != 2 or pairs.shape[0] != 2 or pairs.dtype.kind not in "iu" or (
                pairs.size and not 0 <= pairs.min() <= pairs.max() < len(x)):
            raise UdlcError(f"{source}: pairs must be (2, P) node ids 0 to {len(x) - 1}; it is {pairs.dtype} "
                            f"{pairs.shape}")
        (z,) = self.session.run(None, {"x": x[None], "edge_index": edges[None]})
        logits = (z[0][pairs[0]] * z[0][pairs[1]]).sum(axis=1)
        return EdgeScores(pairs, 1.0 / (1.0 + np.exp(-logits)))
