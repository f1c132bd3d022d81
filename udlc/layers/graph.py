"""Graph layers: gcn_conv, gat_conv, sage_conv, gin_conv, and the readouts global_mean_pool, global_max_pool,
global_add_pool.

A graph is node features (N, F) and an edge list `edge_index` (2, E) int64, row 0 the source node of each
edge and row 1 its target (PyG's convention: messages flow source → target); N and E are symbols, so one
exported file takes graphs of any size. A batch of B graphs of equal size is taken as one disjoint graph (node
ids offset by b·N), so every layer is written once, for one graph. Only export-friendly ops are used —
gather, scatter_add, scatter_reduce — with self loops added as arange(N), never by masking existing ones (that
gives a data-dependent shape, which is why PyG's own layers do not export with dynamic sizes): an edge list
holds no self loops (udlc.data.graphs removes them). Each layer equals PyG's of the same name with the same
weights (tests/test_graph_layers.py):

    - gcn_conv: 64                      # Kipf & Welling 2017; from: [x, edge_index] or [x, edge_index, weight]
    - gat_conv: {out_features: 8, heads: 8}            # Veličković et al. 2018
    - sage_conv: 64                     # Hamilton et al. 2017, mean aggregation
    - gin_conv: 64                      # Xu et al. 2019, MLP((1 + eps) x_i + Σ_j x_j)
"""

import functools
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


@functools.cache
def torch_modules():
    """Modules defined on first use, so that importing this file never imports torch."""
    import torch
    from torch import nn

    def disjoint(x, edge_index):
        """B graphs of N nodes as one graph of B·N: (B·N, F) features and the (2, B·E) edges, ids offset."""
        b, n = x.shape[0], x.shape[1]
        offsets = (torch.arange(b, device=x.device) * n).view(b, 1, 1)
        return x.reshape(b * n, x.shape[2]), (edge_index + offsets).transpose(0, 1).reshape(2, -1)

    def with_self_loops(edges, n):
        loops = torch.arange(n, device=edges.device)
        return torch.cat([edges[0], loops]), torch.cat([edges[1], loops])

    def add_at(target, index, values):
        """Σ of `values` rows into `target` rows `index` (the messages each node receives). scatter_add, not
        index_add: index_add exports to ScatterND, whose summing onnxruntime runs on several threads without
        care for repeated indices (measured: sums off by units); scatter_add exports to ScatterElements, exact."""
        return target.scatter_add(0, index.view(-1, *([1] * (values.dim() - 1))).expand_as(values), values)

    class GraphLayer(nn.Module):
        def forward(self, x, edge_index, weight=None):
            b, n = x.shape[0], x.shape[1]
            flat, edges = disjoint(x, edge_index)
            w = None if weight is None else weight.reshape(-1)
            return self.propagate(flat, edges, w).reshape(b, n, -1)

    class GCN(GraphLayer):
        def __init__(self, f: int, cfg: GCNConv):
            super().__init__()
            self.lin = nn.Linear(f, cfg.out_features, bias=False)
            self.bias = nn.Parameter(torch.zeros(cfg.out_features)) if cfg.bias else None
            nn.init.xavier_uniform_(self.lin.weight)  # glorot, as PyG's

        def propagate(self, x, edges, weight):
            n = x.shape[0]
            src, dst = with_self_loops(edges, n)
            w = torch.ones(src.shape[0], device=x.device, dtype=x.dtype)
            if weight is not None:
                w = torch.cat([weight.to(x.dtype), torch.ones(n, device=x.device, dtype=x.dtype)])
            deg = add_at(torch.zeros(n, device=x.device, dtype=x.dtype), dst, w)
            inv = deg.clamp(min=1e-12).pow(-0.5)  # every node has its self loop: deg > 0
            h = self.lin(x)
            out = add_at(torch.zeros_like(h), dst, h[src] * (inv[src] * w * inv[dst])[:, None])
            return out if self.bias is None else out + self.bias

    class GAT(GraphLayer):
        def __init__(self, f: int, cfg: GATConv):
            super().__init__()
            self.heads, self.channels, self.concat = cfg.heads, cfg.out_features, cfg.concat
            self.negative_slope, self.dropout = cfg.negative_slope, cfg.dropout
            self.lin = nn.Linear(f, cfg.heads * cfg.out_features, bias=False)
            self.att_src = nn.Parameter(torch.empty(1, cfg.heads, cfg.out_features))
            self.att_dst = nn.Parameter(torch.empty(1, cfg.heads, cfg.out_features))
            self.bias = nn.Parameter(torch.zeros(width(cfg))) if cfg.bias else None
            for p in (self.lin.weight, self.att_src, self.att_dst):
                nn.init.xavier_uniform_(p)

        def propagate(self, x, edges, weight):
            n = x.shape[0]
            src, dst = with_self_loops(edges, n)
            h = self.lin(x).view(n, self.heads, self.channels)
            score = ((h * self.att_src).sum(-1)[src] + (h * self.att_dst).sum(-1)[dst])  # (E', heads)
            score = nn.functional.leaky_relu(score, self.negative_slope)
            # A softmax over each node's in-edges: shifted by the node's largest score, summed per node.
            index = dst[:, None].expand(-1, self.heads)
            top = torch.full((n, self.heads), float("-inf"), device=x.device, dtype=score.dtype)
            top = top.scatter_reduce(0, index, score, reduce="amax", include_self=True)
            weights = torch.exp(score - top[dst])
            total = add_at(torch.zeros(n, self.heads, device=x.device, dtype=score.dtype), dst, weights)
            alpha = weights / total[dst]
            alpha = nn.functional.dropout(alpha, self.dropout, self.training)
            out = add_at(torch.zeros_like(h), dst, h[src] * alpha[..., None])  # (N, heads, channels)
            out = out.reshape(n, -1) if self.concat else out.mean(dim=1)
            return out if self.bias is None else out + self.bias

    class SAGE(GraphLayer):
        def __init__(self, f: int, cfg: SAGEConv):
            super().__init__()
            self.lin_l = nn.Linear(f, cfg.out_features, bias=cfg.bias)
            self.lin_r = nn.Linear(f, cfg.out_features, bias=False)

        def propagate(self, x, edges, weight):
            src, dst = edges[0], edges[1]
            total = add_at(torch.zeros_like(x), dst, x[src])
            count = add_at(torch.zeros(x.shape[0], device=x.device, dtype=x.dtype), dst,
                           torch.ones(src.shape[0], device=x.device, dtype=x.dtype))
            mean = total / count.clamp(min=1.0)[:, None]  # a node without in-edges aggregates 0
            return self.lin_l(mean) + self.lin_r(x)

    class GIN(GraphLayer):
        def __init__(self, f: int, cfg: GINConv):
            super().__init__()
            hidden = cfg.hidden or cfg.out_features
            self.mlp = nn.Sequential(nn.Linear(f, hidden), nn.ReLU(), nn.Linear(hidden, cfg.out_features))
            eps = torch.tensor([float(cfg.eps)])
            if cfg.train_eps:
                self.eps = nn.Parameter(eps)
            else:
                self.register_buffer("eps", eps)

        def propagate(self, x, edges, weight):
            total = add_at(torch.zeros_like(x), edges[1], x[edges[0]])
            return self.mlp((1 + self.eps) * x + total)

    return {"gcn_conv": GCN, "gat_conv": GAT, "sage_conv": SAGE, "gin_conv": GIN}


def build_graph_layer(cfg: LayerConfig, x: Shape, *rest: Shape):
    return torch_modules()[cfg.type](x[-1], cfg)


GRAPH = (("N", 6), (2, "E"))
# (Edge weights are tested against PyG with positive weights: random ones could make a degree negative.)
for _config, _extra in ((GCNConv, [({"out_features": 4, "bias": False}, GRAPH)]),
                        (GATConv, [({"out_features": 3, "heads": 2, "concat": False}, GRAPH)]),
                        (SAGEConv, [({"out_features": 4, "bias": False}, GRAPH)]),
                        (GINConv, [({"out_features": 4, "hidden": 7, "train_eps": True}, GRAPH)])):
    register(_config, shape=graph_shape, build=build_graph_layer, params=graph_params, flops=graph_flops,
             main_arg="out_features", arity=None, dtype=graph_dtype, sample_dtypes=("float32", "int64"),
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


@functools.cache
def pool_module():
    import torch
    from torch import nn

    class Pool(nn.Module):
        def __init__(self, reduce: str):
            super().__init__()
            self.reduce = reduce

        def forward(self, h, batch):
            b, n, width = h.shape
            # graph ids of sample k offset by k·N: ids stay below N in each sample, so B·N rows hold them all
            ids = (batch + (torch.arange(b, device=h.device) * n).view(b, 1)).reshape(-1)
            flat = h.reshape(b * n, width)
            index = ids[:, None].expand(-1, width)
            if self.reduce == "max":
                start = torch.full((b * n, width), float("-inf"), device=h.device, dtype=h.dtype)
                pooled = start.scatter_reduce(0, index, flat, reduce="amax", include_self=True)
            else:
                pooled = torch.zeros(b * n, width, device=h.device, dtype=h.dtype).scatter_add(0, index, flat)
                if self.reduce == "mean":  # scatter_add, not index_add: see add_at above
                    count = torch.zeros(b * n, device=h.device, dtype=h.dtype).scatter_add(
                        0, ids, torch.ones(b * n, device=h.device, dtype=h.dtype))
                    pooled = pooled / count.clamp(min=1.0)[:, None]
            return pooled[ids].reshape(b, n, width)

    return Pool


for _pool in (GlobalMeanPool, GlobalMaxPool, GlobalAddPool):
    register(_pool, shape=pool_shape, build=lambda cfg, h, batch: pool_module()(cfg.type.split("_")[1]),
             # arity None: `from: batch` alone reads the previous output and the batch vector, as a merge does
             flops=lambda cfg, h, batch: h[0] * h[1], arity=None, dtype=pool_dtype, sample_dtypes=GRAPH_DTYPES,
             samples=[({}, (("N", 5), ("N",)))])
