"""Graphs for node classification: a built-in graph (udlc.spec.sources GraphSet) or a `.npz` of one graph,
read as node features, an edge list in both directions without self loops, a class per node and seeded
train/val/test node masks. The whole graph is one batch (a batch axis of 1): every step sees every node, and
the loss counts the nodes of its split's mask.

A graph file holds `x` (N, F) numbers and `edge_index` (2, E) integers (row 0 the source node of each edge,
row 1 its target; an undirected graph lists both directions), and for training `y` (N,) class ids. Every
mistake in one names the file, the array and, for an edge, its column. numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from udlc.data.dataset import Normalization, _split
from udlc.errors import UdlcError

SPLITS = ("train", "val", "test")


@dataclass
class GraphData:
    x: np.ndarray  # (N, F) float32, normalized with the training nodes' statistics
    edge_index: np.ndarray  # (2, E) int64
    y: np.ndarray  # (N,) int64
    masks: dict[str, np.ndarray]  # split -> (N,) bool
    classes: list[str]
    normalization: Normalization

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, int]:
        return tuple(self.x.shape)  # type: ignore[return-value]


def load_graph(spec: Any, seed: int) -> GraphData:
    """The spec's built-in graph, undirected edges in both directions, split by node and normalized."""
    from udlc.spec.sources import SOURCES

    entry = SOURCES.find(spec.source)
    rng = np.random.default_rng(seed)
    nodes = spec.samples or entry.nodes
    noise = spec.noise if spec.noise is not None else entry.noise
    x, edges, y = entry.load(nodes, noise, rng)
    edges = np.asarray(edges, dtype=np.int64)
    edges = clean_edges(np.concatenate([edges, edges[::-1]], axis=1), len(x), entry.name)
    n = len(x)
    parts = _split(n, tuple(spec.split), seed)
    masks = {name: np.isin(np.arange(n), part) for name, part in zip(SPLITS, parts)}
    norm = Normalization.fit(spec.normalize, np.asarray(x, dtype=np.float32)[masks["train"]])
    return GraphData(norm.apply_normalization(x), edges, np.asarray(y, dtype=np.int64), masks, list(entry.classes),
                     norm)


def clean_edges(edges: np.ndarray, n: int, source: str) -> np.ndarray:
    """The edge list checked against the node count, without self loops and repeated edges (the layers add one
    self loop per node themselves), in a fixed order."""
    if edges.ndim != 2 or edges.shape[0] != 2:
        raise UdlcError(f"{source}: edge_index must be (2, E), source ids then target ids; it is {edges.shape}")
    bad = np.flatnonzero((edges < 0).any(axis=0) | (edges >= n).any(axis=0))
    if len(bad):
        col = int(bad[0])
        raise UdlcError(f"{source}: edge {col} (column {col} of edge_index) joins nodes {edges[0, col]} and "
                        f"{edges[1, col]}, but the graph has nodes 0 to {n - 1}"
                        + (f" ({len(bad)} such edges)" if len(bad) > 1 else ""))
    edges = edges[:, edges[0] != edges[1]]
    return np.unique(edges, axis=1) if edges.size else edges.reshape(2, 0)


def read_graph(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """A `.npz` graph to predict on: its features `x` (N, F) float32 and clean `edge_index` (2, E) int64."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise UdlcError(f"no graph file at {path}") from None
    except Exception as e:  # not a zip, a pickled object array, a damaged file
        raise UdlcError(f"{path} is not a graph .npz file: {str(e).splitlines()[0][:200]}") from None
    missing = [k for k in ("x", "edge_index") if k not in arrays]
    if missing:
        raise UdlcError(f"{path} has no array {' or '.join(missing)}; a graph file holds x (N, F) and edge_index "
                        f"(2, E) (it has: {', '.join(arrays) or 'nothing'})")
    x, edges = arrays["x"], arrays["edge_index"]
    if x.ndim != 2 or x.dtype.kind not in "iuf":
        raise UdlcError(f"{path}: x must be numbers, one row per node (N, F); it is {x.dtype} {x.shape}")
    if not np.isfinite(x).all():
        row = int(np.flatnonzero(~np.isfinite(x).all(axis=1))[0])
        raise UdlcError(f"{path}: x holds NaN or inf (node {row})")
    if edges.dtype.kind not in "iu":
        raise UdlcError(f"{path}: edge_index must hold integer node ids; it is {edges.dtype}")
    return x.astype(np.float32), clean_edges(edges.astype(np.int64), len(x), str(path))

