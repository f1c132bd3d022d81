"""`udlc predict` for a graph network: the classes of a graph's nodes, or of each graph in a file of several,
from a `.npz` graph file (udlc.data.graphs reads and checks it), with onnxruntime and numpy only. The file's
graph takes the raw node features, the edge list and (to classify graphs) the batch vector, each with a batch
axis of one disjoint graph."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from udlc.errors import UdlcError
from udlc.runtime.predict import Predictions, open_session

GRAPH_TASKS = ("node_classification", "graph_classification")


class GraphClassifier:
    def __init__(self, path: str | Path, device: str = "cpu"):
        self.path = Path(path)
        self.session, meta = open_session(self.path, device)
        self.task = meta.get("task")
        if self.task not in GRAPH_TASKS:
            raise UdlcError(f"{self.path} classifies no graph or nodes")
        self.classes = json.loads(meta["classes"])
        self.features = int(json.loads(meta["input_shapes"])[0][1])

    def predict_file(self, graph: str | Path) -> Predictions:
        """A class per node (node_classification), or per graph in the order of their ids (graph_classification)."""
        from udlc.data.graphs import read_graph

        x, edges, batch = read_graph(graph)
        if x.shape[1] != self.features:
            raise UdlcError(f"{graph}: its nodes have {x.shape[1]} features; {self.path} reads {self.features}")
        feed = {"x": x[None], "edge_index": edges[None]}
        if self.task == "graph_classification":
            feed["batch"] = batch[None]
        _, probabilities = self.session.run(None, feed)
        rows = probabilities[0]
        if self.task == "graph_classification":
            _, first = np.unique(batch, return_index=True)  # each graph's row is at every one of its nodes
            rows = rows[first]
        return Predictions("classification", rows.argmax(axis=1), rows, self.classes)
