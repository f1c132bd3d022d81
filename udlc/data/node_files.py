"""Graph files, read and checked: a `.npz` of one graph (x, edge_index, y, optional edge_weight and
train/val/test masks) or of many (with batch or graph_ptr, y per graph), an edge-list CSV with its node CSV,
and a `.npz` to predict on. Every mistake names the file and, for an edge or a node, which one (its column in
edge_index, its line in a CSV). numpy only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from udlc.errors import UdlcError

SPLITS = ("train", "val", "test")


def one_graph_file(spec: Any, base_dir: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """The spec's graph file, checked: a `.npz`, or an edge-list CSV with its node CSV (`data.nodes`); its arrays
    (x, edge_index, y, and edge_weight and masks where it has them) and its class names."""
    path = base_dir / spec.source
    if spec.nodes is not None:
        return read_csv_graph(path, base_dir / spec.nodes, spec.target)
    arrays = graph_file(path, ("x", "edge_index", "y"))
    arrays["x"] = checked_features(arrays["x"], path)
    arrays["y"] = checked_labels(arrays["y"], len(arrays["x"]), path, "node")
    arrays["edge_index"] = checked_edges(arrays["edge_index"], path)
    return arrays, [str(c) for c in range(int(arrays["y"].max()) + 1)]


def read_csv_graph(edges_path: Path, nodes_path: Path, target: str | int | None) -> tuple[dict[str, np.ndarray],
                                                                                        list[str]]:
    """A graph in two CSV files: the nodes (a header, then one row per node in id order: number columns and the
    target column, default the last, whose distinct values sorted are the classes) and the edges (a header
    `source,target` or `source,target,weight`, then a row per edge of node ids), the edges one way as the file
    has them (udlc.data.nodes adds the other way unless `data.directed`). A bad cell is named by its file,
    line and column."""
    import csv

    def rows(path: Path) -> tuple[list[str], list[list[str]]]:
        try:
            with open(path, newline="", encoding="utf-8") as f:
                table = [r for r in csv.reader(f) if r]
        except FileNotFoundError:
            raise UdlcError(f"no such file: {path}") from None
        if len(table) < 2:
            raise UdlcError(f"{path}: a header and one row at least")
        return [h.strip() for h in table[0]], table[1:]

    header, node_rows = rows(nodes_path)
    column = header.index(target) if isinstance(target, str) and target in header else (
        target if isinstance(target, int) else len(header) - 1)
    if isinstance(target, str) and target not in header:
        raise UdlcError(f"{nodes_path}: no column '{target}' (it has {', '.join(header)})")
    features = np.zeros((len(node_rows), len(header) - 1), dtype=np.float32)
    labels = []
    for i, row in enumerate(node_rows):
        if len(row) != len(header):
            raise UdlcError(f"{nodes_path}:{i + 2}: {len(row)} cells; the header has {len(header)}")
        cells = [c for k, c in enumerate(row) if k != column]
        names = [h for k, h in enumerate(header) if k != column]
        for k, cell in enumerate(cells):
            try:
                features[i, k] = float(cell)
            except ValueError:
                raise UdlcError(f"{nodes_path}:{i + 2}: column '{names[k]}' holds {cell!r}, not a number") from None
        labels.append(row[column].strip())
    classes = sorted(set(labels))
    y = np.array([classes.index(v) for v in labels], dtype=np.int64)
    edge_header, edge_rows = rows(edges_path)
    if edge_header[:2] != ["source", "target"] or len(edge_header) > 3 or edge_header[2:] not in ([], ["weight"]):
        raise UdlcError(f"{edges_path}: the header must be source,target or source,target,weight; it is "
                        f"{','.join(edge_header)}")
    edges = np.zeros((2, len(edge_rows)), dtype=np.int64)
    weight = np.zeros(len(edge_rows), dtype=np.float32) if len(edge_header) == 3 else None
    for i, row in enumerate(edge_rows):
        try:
            u, v = int(row[0]), int(row[1])
            if weight is not None:
                weight[i] = float(row[2])
        except (ValueError, IndexError):
            raise UdlcError(f"{edges_path}:{i + 2}: {','.join(row)!r} is not {','.join(edge_header)} "
                            "(node ids are whole numbers)") from None
        if not (0 <= u < len(y) and 0 <= v < len(y)):
            raise UdlcError(f"{edges_path}:{i + 2}: the edge {u},{v} names a node that {nodes_path.name} does not "
                            f"have (nodes 0 to {len(y) - 1})")
        edges[:, i] = (u, v)
    arrays = {"x": features, "edge_index": edges, "y": y}
    if weight is not None:
        arrays["edge_weight"] = weight
    return arrays, classes


def graph_file(path: Path, required: tuple[str, ...]) -> dict[str, np.ndarray]:
    """A `.npz` graph file's arrays; a file that is missing, not a plain npz, or without `required` arrays is an
    error that names it."""
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise UdlcError(f"no graph file at {path}") from None
    except Exception as e:  # not a zip, a pickled object array, a damaged file
        raise UdlcError(f"{path} is not a graph .npz file: {str(e).splitlines()[0][:200]}") from None
    missing = [k for k in required if k not in arrays]
    if missing:
        raise UdlcError(f"{path} has no array {' or '.join(missing)}; a graph file holds x (N, F), edge_index "
                        f"(2, E){', y' if 'y' in required else ''} (it has: {', '.join(arrays) or 'nothing'})")
    return arrays


def checked_features(x: np.ndarray, path: Path) -> np.ndarray:
    if x.ndim != 2 or x.dtype.kind not in "iuf":
        raise UdlcError(f"{path}: x must be numbers, one row per node (N, F); it is {x.dtype} {x.shape}")
    if not np.isfinite(x).all():
        raise UdlcError(f"{path}: x holds NaN or inf (node {int(np.flatnonzero(~np.isfinite(x).all(axis=1))[0])})")
    return x.astype(np.float32)


def checked_edges(edges: np.ndarray, path: Path) -> np.ndarray:
    if edges.dtype.kind not in "iu":
        raise UdlcError(f"{path}: edge_index must hold integer node ids; it is {edges.dtype}")
    return edges.astype(np.int64)


def checked_labels(y: np.ndarray, count: int, path: Path, what: str) -> np.ndarray:
    """y: one class id (0, 1, …) per node or graph."""
    if y.shape != (count,) or y.dtype.kind not in "iu" or (count and y.min() < 0):
        raise UdlcError(f"{path}: y must give each of the {count} {what}s a class id 0, 1, …; it is {y.dtype} "
                        f"{y.shape}")
    return y.astype(np.int64)


def file_masks(arrays: dict[str, np.ndarray], n: int, path: Path) -> dict[str, np.ndarray] | None:
    """The file's train_mask / val_mask / test_mask (bool (N,)), when it has them; a node in two is an error."""
    names = [f"{s}_mask" for s in SPLITS]
    if not any(name in arrays for name in names):
        return None
    masks = {}
    for split, name in zip(SPLITS, names):
        mask = arrays.get(name, np.zeros(n, dtype=bool))
        if mask.shape != (n,) or mask.dtype != bool:
            raise UdlcError(f"{path}: {name} must be one bool per node ({n},); it is {mask.dtype} {mask.shape}")
        masks[split] = mask
    for (a, first), (b, second) in [(p, q) for i, p in enumerate(masks.items()) for q in list(masks.items())[i + 1:]]:
        both = np.flatnonzero(first & second)
        if len(both):
            raise UdlcError(f"{path}: node {int(both[0])} is in both {a}_mask and {b}_mask; a node is in one split")
    if not masks["train"].any():
        raise UdlcError(f"{path}: train_mask holds no node")
    return masks


def clean_edges(edges: np.ndarray, n: int, source: str) -> np.ndarray:
    """The edge list checked against the node count, without self loops and repeated edges (the layers add one
    self loop per node themselves), in a fixed order."""
    return clean_weighted_edges(edges, None, n, source)[0]


def clean_weighted_edges(edges: np.ndarray, weight: np.ndarray | None, n: int,
                         source: str) -> tuple[np.ndarray, np.ndarray | None]:
    """clean_edges, each edge keeping its weight (a repeated edge: its first)."""
    if edges.ndim != 2 or edges.shape[0] != 2:
        raise UdlcError(f"{source}: edge_index must be (2, E), source ids then target ids; it is {edges.shape}")
    bad = np.flatnonzero((edges < 0).any(axis=0) | (edges >= n).any(axis=0))
    if len(bad):
        col = int(bad[0])
        raise UdlcError(f"{source}: edge {col} (column {col} of edge_index) joins nodes {edges[0, col]} and "
                        f"{edges[1, col]}, but the graph has nodes 0 to {n - 1}"
                        + (f" ({len(bad)} such edges)" if len(bad) > 1 else ""))
    if weight is not None and weight.shape != (edges.shape[1],):
        raise UdlcError(f"{source}: edge_weight must hold one weight per edge ({edges.shape[1]},); it is "
                        f"{weight.shape}")
    if weight is not None and (weight.dtype.kind not in "iuf" or not np.isfinite(weight).all() or (weight < 0).any()):
        bad = np.flatnonzero(~np.isfinite(weight) | (weight < 0))[0] if weight.dtype.kind in "iuf" else 0
        raise UdlcError(f"{source}: edge_weight {int(bad)} is {weight[bad]}; weights are numbers of 0 or more")
    keep = edges[0] != edges[1]
    edges = edges[:, keep]
    if not edges.size:
        return edges.reshape(2, 0), None if weight is None else np.zeros(0, np.float32)
    edges, first = np.unique(edges, axis=1, return_index=True)
    return edges, None if weight is None else weight[keep][first].astype(np.float32)


def read_graph(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """A `.npz` graph to predict on: its features `x` (N, F) float32, clean `edge_index` (2, E) int64,
    `batch` (N,) int64, the graph of each node when the file holds several (default: all in graph 0), and its
    `edge_weight` (E,) float32 if it has one."""
    path = Path(path)
    arrays = graph_file(path, ("x", "edge_index"))
    x, edges = checked_features(arrays["x"], path), checked_edges(arrays["edge_index"], path)
    batch = checked_batch(arrays.get("batch", np.zeros(len(x), dtype=np.int64)), len(x), path)
    edges, weight = clean_weighted_edges(edges, arrays.get("edge_weight"), len(x), str(path))
    return x, edges, batch, weight


def checked_batch(batch: np.ndarray, n: int, path: Path) -> np.ndarray:
    """The graph of each node: ids 0, 1, … below the node count."""
    if batch.shape != (n,) or batch.dtype.kind not in "iu" or (n and not 0 <= batch.min() <= batch.max() < n):
        raise UdlcError(f"{path}: batch must give each of the {n} nodes its graph, 0 to the number of graphs - 1; "
                        f"it is {batch.dtype} {batch.shape}" + (f" from {batch.min()} to {batch.max()}"
                                                                if batch.size and batch.dtype.kind in "iu" else ""))
    return batch.astype(np.int64)


def graphs_of_file(path: Path) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """A `.npz` of many graphs — x (N, F), edge_index (2, E) with ids over all nodes, batch (N,) the graph of
    each node (or graph_ptr (G + 1,), where each graph's nodes start, PyG's other form), y (G,) each graph's
    class — as a list of graphs with their own node ids."""
    arrays = graph_file(path, ("x", "edge_index", "y"))
    x, edges = checked_features(arrays["x"], path), checked_edges(arrays["edge_index"], path)
    if "batch" not in arrays and "graph_ptr" not in arrays:
        raise UdlcError(f"{path}: a file of many graphs says which graph each node belongs to: batch (N,) or "
                        "graph_ptr (G + 1,)")
    batch = checked_batch(arrays["batch"] if "batch" in arrays else batch_of_ptr(arrays["graph_ptr"], len(x), path),
                          len(x), path)
    edges = clean_edges(edges, len(x), str(path))
    y = checked_labels(arrays["y"], int(batch.max()) + 1 if len(batch) else 0, path, "graph")
    across = np.flatnonzero(batch[edges[0]] != batch[edges[1]])
    if len(across):
        k = int(across[0])
        raise UdlcError(f"{path}: edge {k} joins node {edges[0, k]} of graph {batch[edges[0, k]]} and node "
                        f"{edges[1, k]} of graph {batch[edges[1, k]]}; an edge stays within its graph")
    local = np.zeros(len(x), dtype=np.int64)
    graphs = []
    for g in range(len(y)):
        nodes = np.flatnonzero(batch == g)
        if not len(nodes):
            raise UdlcError(f"{path}: graph {g} has no node (batch skips it); graph ids run 0, 1, … without gaps")
        local[nodes] = np.arange(len(nodes))
        mine = batch[edges[0]] == g
        graphs.append((x[nodes], local[edges[:, mine]]))
    return graphs, y


def batch_of_ptr(ptr: np.ndarray, n: int, path: Path) -> np.ndarray:
    """graph_ptr [0, n_0, n_0 + n_1, …, N] as the graph id of each node."""
    if ptr.ndim != 1 or ptr.dtype.kind not in "iu" or len(ptr) < 2 or ptr[0] != 0 or ptr[-1] != n or \
            (np.diff(ptr) <= 0).any():
        raise UdlcError(f"{path}: graph_ptr must rise from 0 to the node count {n}, each graph one node at least; "
                        f"it is {ptr.dtype} {ptr.shape}")
    return np.repeat(np.arange(len(ptr) - 1), np.diff(ptr))
