"""The built-in node sets' generators: Zachary's karate club and a stochastic block model (task:
node_classification, link_prediction), and random trees and one-cycle graphs (task: graph_classification).
Their registry entries (features, classes, defaults) are udlc.spec.sources'; numpy is imported when one runs."""

from __future__ import annotations

from typing import Any

from udlc.spec.sources import DEGREE_FEATURES, SBM_BLOCKS, SBM_FEATURES

# Zachary's karate club (1977): 34 members, 78 friendships, and the side each member took when the club split
# (0: Mr. Hi's, 1: the officer's), as networkx's karate_club_graph() has them.
KARATE_EDGES = (
    (0, 1), (0, 2), (0, 3), (0, 4), (0, 5), (0, 6), (0, 7), (0, 8), (0, 10), (0, 11), (0, 12), (0, 13), (0, 17),
    (0, 19), (0, 21), (0, 31), (1, 2), (1, 3), (1, 7), (1, 13), (1, 17), (1, 19), (1, 21), (1, 30), (2, 3), (2, 7),
    (2, 8), (2, 9), (2, 13), (2, 27), (2, 28), (2, 32), (3, 7), (3, 12), (3, 13), (4, 6), (4, 10), (5, 6), (5, 10),
    (5, 16), (6, 16), (8, 30), (8, 32), (8, 33), (9, 33), (13, 33), (14, 32), (14, 33), (15, 32), (15, 33), (18, 32),
    (18, 33), (19, 33), (20, 32), (20, 33), (22, 32), (22, 33), (23, 25), (23, 27), (23, 29), (23, 32), (23, 33),
    (24, 25), (24, 27), (24, 31), (25, 31), (26, 29), (26, 33), (27, 33), (28, 31), (28, 33), (29, 32), (29, 33),
    (30, 32), (30, 33), (31, 32), (31, 33), (32, 33))
KARATE_SIDES = (0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 0, 0, 1, 0, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)



def karate(n: int, noise: Any, rng: Any) -> tuple[Any, Any, Any]:
    """Featureless, as Kipf & Welling's demo: each member's feature vector is its one-hot id."""
    import numpy as np

    members = len(KARATE_SIDES)
    return np.eye(members), np.array(KARATE_EDGES).T, np.array(KARATE_SIDES)


SBM_P_IN, SBM_P_OUT = 0.05, 0.005


def sbm(n: int, noise: float, rng: Any) -> tuple[Any, Any, Any]:
    """A stochastic block model: n nodes in 4 communities, an edge within a community with probability 0.05,
    across with 0.005; 8 features per node, its community's mean vector plus Gaussian noise of std `noise`
    (at the default 2.0 the features alone leave many nodes ambiguous; their neighbours settle it)."""
    import numpy as np

    y = np.arange(n) % SBM_BLOCKS
    rng.shuffle(y)
    means = rng.normal(0, 1, size=(SBM_BLOCKS, SBM_FEATURES))
    x = means[y] + rng.normal(0, noise, size=(n, SBM_FEATURES))
    i, j = np.triu_indices(n, k=1)
    p = np.where(y[i] == y[j], SBM_P_IN, SBM_P_OUT)
    keep = rng.uniform(size=len(p)) < p
    return x, np.stack([i[keep], j[keep]]), y


def trees_and_cycles(count: int, noise: Any, rng: Any) -> tuple[list[tuple[Any, Any]], Any]:
    """Random trees of 6-20 nodes (each node joined to an earlier one), half of them with one more edge between
    two nodes not yet joined, which closes a cycle: class 0 a tree, class 1 a graph with one cycle. A node's
    features: its degree, one-hot. Degrees alone do not tell the classes apart (both kinds have nodes of every
    degree); the count of edges against nodes does, which a sum over the graph can find."""
    import numpy as np

    graphs, y = [], np.arange(count) % 2
    rng.shuffle(y)
    for label in y:
        n = int(rng.integers(6, 21))
        edges = {(int(rng.integers(0, i)), i) for i in range(1, n)}
        while label and len(edges) < n:
            a, b = sorted(int(v) for v in rng.choice(n, 2, replace=False))
            edges.add((a, b))
        pairs = np.array(sorted(edges)).T
        degree = np.bincount(pairs.reshape(-1), minlength=n)
        graphs.append((np.eye(DEGREE_FEATURES)[np.minimum(degree, DEGREE_FEATURES - 1)], pairs))
    return graphs, y


