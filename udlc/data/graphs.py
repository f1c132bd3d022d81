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


def read_graph(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A `.npz` graph to predict on: its features `x` (N, F) float32, clean `edge_index` (2, E) int64, and
    `batch` (N,) int64, the graph of each node when the file holds several (default: all in graph 0)."""
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
    batch = arrays.get("batch", np.zeros(len(x), dtype=np.int64))
    if batch.shape != (len(x),) or batch.dtype.kind not in "iu" or (len(batch) and not 0 <= batch.min() <= batch.max() < len(x)):
        raise UdlcError(f"{path}: batch must give each of the {len(x)} nodes its graph, 0 to the number of graphs "
                        f"- 1; it is {batch.dtype} {batch.shape}" + (f" from {batch.min()} to {batch.max()}"
                                                                      if batch.size and batch.dtype.kind in "iu" else ""))
    return x.astype(np.float32), clean_edges(edges.astype(np.int64), len(x), str(path)), batch.astype(np.int64)



# ---- sets of small graphs (task: graph_classification) ----------------------------------------------------


@dataclass
class GraphSetData:
    graphs: list[tuple[np.ndarray, np.ndarray]]  # per graph: x (n, F) float32 normalized, edge_index (2, e)
    y: np.ndarray  # (G,) int64
    splits: dict[str, np.ndarray]  # split -> graph indices
    classes: list[str]
    normalization: Normalization

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (int(self.graphs[0][0].shape[1]),)


def load_graph_set(spec: Any, seed: int) -> GraphSetData:
    """The spec's built-in set of graphs, split by graph (seeded), features normalized on the training graphs'
    nodes, each edge in both directions."""
    from udlc.spec.sources import SOURCES

    entry = SOURCES.find(spec.source)
    graphs, y = entry.load(spec.samples or 1000, spec.noise, np.random.default_rng(seed))
    parts = _split(len(graphs), tuple(spec.split), seed)
    splits = dict(zip(SPLITS, parts))
    train_nodes = np.concatenate([np.asarray(graphs[i][0], dtype=np.float32) for i in splits["train"]])
    norm = Normalization.fit(spec.normalize, train_nodes)
    cleaned = []
    for x, edges in graphs:
        edges = np.asarray(edges, dtype=np.int64)
        cleaned.append((norm.apply_normalization(x), clean_edges(np.concatenate([edges, edges[::-1]], axis=1),
                                                                 len(x), entry.name)))
    return GraphSetData(cleaned, np.asarray(y, dtype=np.int64), splits, list(entry.classes), norm)


def disjoint_union(graphs: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """Graphs as one: features stacked, edge ids offset by the nodes before, `batch` the graph of each node,
    `first` each graph's first node (where the task reads a graph's logits); each with a batch axis of 1."""
    sizes = np.array([len(x) for x, _ in graphs])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    x = np.concatenate([x for x, _ in graphs]).astype(np.float32)
    edges = np.concatenate([e + s for (_, e), s in zip(graphs, starts)], axis=1).astype(np.int64)
    batch = np.repeat(np.arange(len(graphs)), sizes).astype(np.int64)
    return {"x": x[None], "edge_index": edges[None], "batch": batch[None], "first": starts.astype(np.int64)[None]}


class GraphBatches:
    """A split's graphs, `batch_size` graphs to a batch, each batch one disjoint graph (disjoint_union) with
    its graphs' classes as `target` (1, G); shuffled by the run's generator when asked."""

    def __init__(self, data: GraphSetData, indices: np.ndarray, batch_size: int, shuffle: bool, device: Any):
        self.data, self.indices = data, np.asarray(indices)
        self.batch_size, self.shuffle, self.device = batch_size, shuffle, device

    def __len__(self) -> int:
        return -(-len(self.indices) // self.batch_size)

    def epoch_batches(self, generator: Any = None) -> Any:
        import torch

        order = self.indices
        if self.shuffle:
            order = order[torch.randperm(len(order), generator=generator).numpy()]
        for start in range(0, len(order), self.batch_size):
            chosen = order[start:start + self.batch_size]
            fields = disjoint_union([self.data.graphs[i] for i in chosen])
            fields["target"] = self.data.y[chosen][None]
            yield {k: torch.from_numpy(v).to(self.device) for k, v in fields.items()}
