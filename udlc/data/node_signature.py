"""What `udlc check` needs of a node set: a built-in one's from its registry entry alone (no numpy); a file is
read and checked whole with numpy (udlc.data.node_files), so that check refuses what training would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from udlc.errors import UdlcError


def graph_signature(spec: Any, base_dir: Path, many: bool) -> tuple[int, list[str], bool]:
    """What `check` needs of the spec's graph (or, `many`, graphs): features per node, the class names and
    whether its edges have weights. A file is read and checked whole — edges, labels, masks, graph ids — so
    that `check` refuses what training would."""
    from udlc.spec.sources import SOURCES, NodeSetList, NodeSet

    entry = SOURCES.find(spec.source)
    if isinstance(entry, (NodeSet, NodeSetList)):
        return entry.features, list(entry.classes), False
    from udlc.data.node_files import clean_weighted_edges, file_masks, graphs_of_file, one_graph_file

    path = Path(base_dir) / spec.source
    weighted = False
    if many:
        graphs, y = graphs_of_file(path)
        features = graphs[0][0].shape[1] if graphs else 0
        classes = [str(c) for c in range(int(y.max()) + 1)] if len(y) else []
    else:
        arrays, classes = one_graph_file(spec, Path(base_dir))
        x, y = arrays["x"], arrays["y"]
        clean_weighted_edges(arrays["edge_index"], arrays.get("edge_weight"), len(x), str(path))
        file_masks(arrays, len(x), path)
        weighted = "edge_weight" in arrays
        features = x.shape[1]
    if not len(y):
        raise UdlcError(f"{path}: y is empty; there is nothing to learn")
    return features, classes, weighted
