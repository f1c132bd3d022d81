"""Graphs: for node classification one graph (a built-in NodeSet or a file, udlc.data.node_files), read as
node features, an edge list without self loops, a class per node and train/val/test node masks; the whole
graph is one batch (a batch axis of 1), and the loss counts the nodes of its split's mask. For link prediction
the same graph with its edges split. For graph classification many small graphs (a built-in NodeSetList or a
`.npz`), split by graph, a batch of them taken as one disjoint graph. numpy only (torch when batching).

A graph file holds `x` (N, F) numbers and `edge_index` (2, E) integers (row 0 the source node of each edge,
row 1 its target; an undirected graph lists both directions), and for training `y`: a class id per node, with
optional bool `train_mask`, `val_mask`, `test_mask` (else `data.split` splits the nodes); or, with `batch` (N,)
the graph of each node, a class id per graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from udlc.data.builtin_sets import generator
from udlc.data.dataset import Normalization, _split
from udlc.data.node_files import (SPLITS, clean_edges, clean_weighted_edges, file_masks, graphs_of_file,
                                   one_graph_file)


@dataclass
class GraphData:
    x: np.ndarray  # (N, F) float32, normalized with the training nodes' statistics
    edge_index: np.ndarray  # (2, E) int64
    y: np.ndarray  # (N,) int64
    masks: dict[str, np.ndarray]  # split -> (N,) bool
    classes: list[str]
    normalization: Normalization
    edge_weight: np.ndarray | None = None  # (E,) float32, from a file's edge_weight
    # link prediction (split_edges): each split's node pairs joined by an edge, and evaluation's non-edges
    pairs: dict[str, np.ndarray] | None = None
    negatives: dict[str, np.ndarray] | None = None
    notes: list[str] = field(default_factory=list)  # what was read, in words, for the training output

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, int]:
        return tuple(self.x.shape)  # type: ignore[return-value]


def load_graph(spec: Any, seed: int, base_dir: Path = Path(".")) -> GraphData:
    """The spec's graph, split by node (a file's own masks, else `data.split`, seeded) and normalized with the
    training nodes' statistics. A built-in graph's undirected edges come in both directions, and so do a CSV
    edge list's unless `data.directed`; a `.npz` file's edges are taken as they are (PyG's files list both)."""
    from udlc.spec.sources import SOURCES, NodeSet

    entry = SOURCES.find(spec.source)
    if isinstance(entry, NodeSet):
        noise = spec.noise if spec.noise is not None else entry.noise
        x, edges, y = generator(entry.name)(spec.samples or entry.nodes, noise, np.random.default_rng(seed))
        edges = np.asarray(edges, dtype=np.int64)
        edges = clean_edges(np.concatenate([edges, edges[::-1]], axis=1), len(x), entry.name)
        classes, masks, weight, notes = list(entry.classes), None, None, []
    else:
        path = Path(base_dir) / spec.source
        arrays, classes = one_graph_file(spec, Path(base_dir))
        x, y, edges, weight = arrays["x"], arrays["y"], arrays["edge_index"], arrays.get("edge_weight")
        notes = []
        if spec.nodes is not None:  # an edge list: a friendship, a link, a road is most often both ways
            edges, weight, notes = edge_list_directions(edges, weight, spec.directed, Path(spec.source).name)
        edges, weight = clean_weighted_edges(edges, weight, len(x), str(path))
        masks = file_masks(arrays, len(x), path)
    n = len(x)
    if masks is None:
        masks = {name: np.isin(np.arange(n), part) for name, part in zip(SPLITS, _split(n, tuple(spec.split), seed))}
    norm = Normalization.fit(spec.normalize, np.asarray(x, dtype=np.float32)[masks["train"]])
    return GraphData(norm.apply_normalization(x), edges, np.asarray(y, dtype=np.int64), masks, classes, norm,
                     weight, notes=notes)


def edge_list_directions(edges: np.ndarray, weight: np.ndarray | None, directed: bool, name: str
                         ) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """A CSV edge list's edges each way unless `directed`, and a sentence that says which it was."""
    count = f"{name}: {edges.shape[1]} edge{'s' * (edges.shape[1] != 1)}"
    if directed:
        return edges, weight, [f"{count}, read as directed (data.directed: true), each from source to target only"]
    both = np.concatenate([edges, edges[::-1]], axis=1)
    return both, None if weight is None else np.concatenate([weight, weight]), [
        f"{count}, read as undirected (directed: true keeps them one-way)"]


def split_edges(data: GraphData, fractions: list[float], seed: int) -> GraphData:
    """For link prediction: the undirected edges split (seeded) into train/val/test pairs; messages pass along
    the training edges only (both directions); val and test get as many node pairs that no edge joins, drawn
    once (seeded), to score against."""
    pairs = np.unique(np.sort(data.edge_index, axis=0), axis=1)
    parts = _split(pairs.shape[1], tuple(fractions), seed)
    data.pairs = {name: pairs[:, part] for name, part in zip(SPLITS, parts)}
    train = data.pairs["train"]
    data.edge_index = np.unique(np.concatenate([train, train[::-1]], axis=1), axis=1)
    n = len(data.x)
    joined = set(map(tuple, pairs.T.tolist()))
    rng = np.random.default_rng([seed, 2])
    data.negatives = {}
    for split in ("val", "test"):
        found: list[tuple[int, int]] = []
        while len(found) < data.pairs[split].shape[1]:
            u, v = sorted(int(i) for i in rng.integers(0, n, 2))
            if u != v and (u, v) not in joined:
                found.append((u, v))
        data.negatives[split] = np.array(found, dtype=np.int64).T.reshape(2, -1)
    return data


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


def load_graph_set(spec: Any, seed: int, base_dir: Path = Path(".")) -> GraphSetData:
    """The spec's set of graphs, split by graph (seeded), features normalized on the training graphs' nodes. A
    built-in set's undirected edges come in both directions; a file's are taken as they are."""
    from udlc.spec.sources import SOURCES, NodeSetList

    entry = SOURCES.find(spec.source)
    if isinstance(entry, NodeSetList):
        graphs, y = generator(entry.name)(spec.samples or 1000, spec.noise, np.random.default_rng(seed))
        graphs = [(x, np.concatenate([np.asarray(e), np.asarray(e)[::-1]], axis=1)) for x, e in graphs]
        classes, name = list(entry.classes), entry.name
    else:
        path = Path(base_dir) / spec.source
        graphs, y = graphs_of_file(path)
        classes, name = [str(c) for c in range(int(y.max()) + 1)], str(path)
    parts = _split(len(graphs), tuple(spec.split), seed)
    splits = dict(zip(SPLITS, parts))
    train_nodes = np.concatenate([np.asarray(graphs[i][0], dtype=np.float32) for i in splits["train"]])
    norm = Normalization.fit(spec.normalize, train_nodes)
    cleaned = [(norm.apply_normalization(x), clean_edges(np.asarray(e, dtype=np.int64), len(x), name))
               for x, e in graphs]
    return GraphSetData(cleaned, np.asarray(y, dtype=np.int64), splits, classes, norm)


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
