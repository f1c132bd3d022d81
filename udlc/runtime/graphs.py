"""`udlc predict` for a graph network: the classes of a graph's nodes, from a `.npz` graph file (udlc.data.graphs
reads and checks it), with onnxruntime and numpy only. The file's graph takes the raw node features and the edge
list, each with a batch axis of one graph."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from udlc.errors import UdlcError
from udlc.runtime.predict import Predictions, open_session


class NodeClassifier:
    def __init__(self, path: str | Path, device: str = "cpu"):
        self.path = Path(path)
        self.session, meta = open_session(self.path, device)
        if meta.get("task") != "node_classification":
            raise UdlcError(f"{self.path} does not classify a graph's nodes")
        self.classes = json.loads(meta["classes"])
        self.features = int(json.loads(meta["input_shapes"])[0][1])

    def predict_file(self, graph: str | Path) -> Predictions:
        from udlc.data.graphs import read_graph

        x, edges = read_graph(graph)
        if x.shape[1] != self.features:
            raise UdlcError(f"{graph}: its nodes have {x.shape[1]} features; {self.path} reads {self.features}")
        _, probabilities = self.session.run(None, {"x": x[None], "edge_index": edges[None]})
        return Predictions("classification", probabilities[0].argmax(axis=1), probabilities[0], self.classes)
