"""Graph layers: gcn_conv, gat_conv, sage_conv, gin_conv, and the readouts global_mean_pool, global_max_pool,
global_add_pool.

A graph is node features (N, F) and an edge list `edge_index` (2, E) int64, row 0 the source node of each
edge and row 1 its target (PyG's convention: messages flow source → target); N and E are symbols, so one
exported file takes graphs of any size. A batch of B graphs of equal size is taken as one disjoint graph (node
ids offset by b·N), so every layer is written once, for one graph. Only export-friendly ops are used —
gather, scatter_add, scatter_reduce — with self loops added as arange(N), never by masking existing ones (that
gives a data-dependent shape, which is why PyG's own layers do not export with dynamic sizes): an edge list
holds no self loops (udlc.data.nodes removes them). Each layer equals PyG's of the same name with the same
weights (tests/test_message_passing.py):

    - gcn_conv: 64                      # Kipf & Welling 2017; from: [x, edge_index] or [x, edge_index, weight]
    - gat_conv: {out_features: 8, heads: 8}            # Veličković et al. 2018
    - sage_conv: 64                     # Hamilton et al. 2017, mean aggregation
    - gin_conv: 64                      # Xu et al. 2019, MLP((1 + eps) x_i + Σ_j x_j)
"""

from typing import Literal

from pydantic import Field, NonNegativeFloat, PositiveInt, confloat

from udlc.layers.registry import LayerConfig, Shape, ShapeError, fmt, register

GRAPH_DTYPES = ("float32", "int64")


class GCNConv(LayerConfig):
    """Σ over in-edges and a self loop of x_j W / sqrt(deg_i deg_j) (+ bias); optional edge weights."""

    type: Literal["gcn_conv"] = "gcn_conv"
    out_features: PositiveInt
    bias: bool = True


class GATConv(LayerConfig):
    """Each node attends over its in-edges and itself; `heads` attention heads, concatenated or averaged."""

    type: Literal["gat_conv"] = "gat_conv"
    out_features: PositiveInt = Field(description="features per head")
    heads: PositiveInt = 1
    concat: bool = Field(True, description="concatenate the heads (heads·out_features); false: average them")
    negative_slope: NonNegativeFloat = Field(0.2, description="of the LeakyReLU on attention scores")
    dropout: confloat(ge=0.0, lt=1.0) = Field(0.0, description="on attention weights, in training")  # type: ignore
    bias: bool = True


class SAGEConv(LayerConfig):
    """mean of the in-neighbours' x_j, times W_l (+ bias), plus x_i W_r."""

    type: Literal["sage_conv"] = "sage_conv"
    out_features: PositiveInt
    bias: bool = True


class GINConv(LayerConfig):
    """MLP((1 + eps)·x_i + Σ over in-edges of x_j), the MLP Linear → ReLU → Linear."""

    type: Literal["gin_conv"] = "gin_conv"
    out_features: PositiveInt
    hidden: PositiveInt | None = Field(None, description="the MLP's hidden width (default out_features)")
    eps: float = 0.0
    train_eps: bool = False


def graph_dtype(cfg: LayerConfig, *dtypes: str) -> str:
    if tuple(dtypes[:2]) != GRAPH_DTYPES or any(d != "float32" for d in dtypes[2:]):
        raise ShapeError(f"expects node features (float32), edge_index (int64){' and edge weights (float32)' * (len(dtypes) > 2)}"
                         f" but gets {', '.join(dtypes)}", "write `from: [x, edge_index]`")
    return "float32"


def width(cfg: LayerConfig) -> int:
    if isinstance(cfg, GATConv):
        return cfg.out_features * cfg.heads if cfg.concat else cfg.out_features
    return cfg.out_features


def graph_shape(cfg: LayerConfig, x: Shape, edges: Shape, *weight: Shape) -> Shape:
    if len(x) != 2:
        raise ShapeError(f"expects node features (N, F) but gets {fmt(x)}", "give the nodes' features as [N, F]")
    if len(edges) != 2 or edges[0] != 2:
        raise ShapeError(f"expects edge_index (2, E) but gets {fmt(edges)}",
                         "declare `edge_index: {shape: [2, E], dtype: int64}`")
    if weight and (not isinstance(cfg, GCNConv) or len(weight) > 1 or weight[0] != (edges[1],)):
        raise ShapeError("only gcn_conv takes edge weights, one per edge (E,)" if not isinstance(cfg, GCNConv)
                         else f"expects edge weights ({edges[1]},) but gets {', '.join(map(fmt, weight))}")
    return (x[0], width(cfg))


def graph_params(cfg: LayerConfig, x: Shape, *rest: Shape) -> int:
    f, out = x[-1], cfg.out_features
    if isinstance(cfg, GCNConv):
        return f * out + out * cfg.bias
    if isinstance(cfg, GATConv):
        return f * out * cfg.heads + 2 * cfg.heads * out + width(cfg) * cfg.bias
    if isinstance(cfg, SAGEConv):
        return 2 * f * out + out * cfg.bias
    hidden = cfg.hidden or out
    return f * hidden + hidden + hidden * out + out + cfg.train_eps


def graph_tensors(cfg: LayerConfig, x: Shape, *rest: Shape) -> dict[str, tuple[int, ...]]:
    f, out = x[-1], cfg.out_features
    bias = {"bias": (width(cfg),)} if getattr(cfg, "bias", False) else {}
    if isinstance(cfg, GCNConv):
        return {**bias, "lin.weight": (out, f)}
    if isinstance(cfg, GATConv):
        return {"att_src": (1, cfg.heads, out), "att_dst": (1, cfg.heads, out), **bias,
                "lin.weight": (cfg.heads * out, f)}
    if isinstance(cfg, SAGEConv):
        return {"lin_l.weight": (out, f), **({"lin_l.bias": (out,)} if cfg.bias else {}), "lin_r.weight": (out, f)}
    hidden = cfg.hidden or out  # gin_conv: eps is a buffer unless train_eps makes it a parameter; either is saved
    return {"eps": (1,), "mlp.0.weight": (hidden, f), "mlp.0.bias": (hidden,), "mlp.2.weight": (out, hidden),
            "mlp.2.bias": (out,)}


def graph_flops(cfg: LayerConfig, x: Shape, edges: Shape, *weight: Shape) -> int:
    """The node transforms' matmuls (a multiply-add counting 2), as FlopCounterMode counts a layer with
    matmuls; the messages along edges are gathers and sums it does not count."""
    n, f, out = x[0], x[1], cfg.out_features
    if isinstance(cfg, GCNConv):
        return 2 * n * f * out
    if isinstance(cfg, GATConv):
        return 2 * n * f * out * cfg.heads
    if isinstance(cfg, SAGEConv):
        return 4 * n * f * out
    hidden = cfg.hidden or out
    return 2 * n * (f * hidden + hidden * out)


def build_graph_layer(cfg: LayerConfig, x: Shape, *rest: Shape):
    from udlc.layers.modules.message_passing import GAT, GCN, GIN, SAGE

    return {"gcn_conv": GCN, "gat_conv": GAT, "sage_conv": SAGE, "gin_conv": GIN}[cfg.type](x[-1], cfg)


GRAPH = (("N", 6), (2, "E"))
# (Edge weights are tested against PyG with positive weights: random ones could make a degree negative.)
for _config, _extra in ((GCNConv, [({"out_features": 4, "bias": False}, GRAPH)]),
                        (GATConv, [({"out_features": 3, "heads": 2, "concat": False}, GRAPH)]),
                        (SAGEConv, [({"out_features": 4, "bias": False}, GRAPH)]),
                        (GINConv, [({"out_features": 4, "hidden": 7, "train_eps": True}, GRAPH)])):
    register(_config, shape=graph_shape, build=build_graph_layer, params=graph_params, flops=graph_flops,
             main_arg="out_features", arity=None, dtype=graph_dtype, sample_dtypes=("float32", "int64"),
             tensors=graph_tensors,
             samples=[({"out_features": 5}, GRAPH)] + _extra)


# ---- readouts -------------------------------------------------------------------------------------------
# A batch of graphs is one disjoint graph whose node i belongs to graph batch[i] (PyG's convention). A readout
# gives every node its graph's mean, max or sum: (N, H), not (G, H), so that no size depends on the data (the
# number of graphs) and a file exports with N symbolic alone; the task reads each graph's row at its first node.


class GlobalPool(LayerConfig):
    """Each node's graph's mean / max / sum over its nodes; from: [h, batch]."""

    type: Literal["global_mean_pool", "global_max_pool", "global_add_pool"]


class GlobalMeanPool(GlobalPool):
    type: Literal["global_mean_pool"] = "global_mean_pool"


class GlobalMaxPool(GlobalPool):
    type: Literal["global_max_pool"] = "global_max_pool"


class GlobalAddPool(GlobalPool):
    type: Literal["global_add_pool"] = "global_add_pool"


def pool_shape(cfg: GlobalPool, h: Shape, *rest: Shape) -> Shape:
    batch = rest[0] if len(rest) == 1 else ()
    if len(h) != 2 or tuple(batch) != (h[0],):
        raise ShapeError(f"expects node features (N, H) and the batch vector (N,) but gets {fmt(h)}, {fmt(batch)}",
                         "write `from: [h, batch]` with `batch: {shape: [N], dtype: int64}` an input")
    return tuple(h)


def pool_dtype(cfg: GlobalPool, *dtypes: str) -> str:
    if dtypes != GRAPH_DTYPES:
        raise ShapeError(f"expects node features (float32) and the batch vector (int64) but gets {', '.join(dtypes)}",
                         "write `from: [h, batch]`")
    return "float32"


def build_pool(cfg: GlobalPool, h: Shape, batch: Shape):
    from udlc.layers.modules.message_passing import Pool

    return Pool(cfg.type.split("_")[1])  # mean, max or add


for _pool in (GlobalMeanPool, GlobalMaxPool, GlobalAddPool):
    register(_pool, shape=pool_shape, build=build_pool,
             # arity None: `from: batch` alone reads the previous output and the batch vector, as a merge does
             flops=lambda cfg, h, batch: h[0] * h[1], arity=None, dtype=pool_dtype, sample_dtypes=GRAPH_DTYPES,
             samples=[({}, (("N", 5), ("N",)))])
