"""Modules of the graph layers (udlc.layers.message_passing): gcn_conv, gat_conv, sage_conv, gin_conv and the readouts.

A batch of B graphs of N nodes is taken as one disjoint graph of B·N nodes, so each layer is written once, for
one graph. Only export-friendly ops: gather, scatter_add, scatter_reduce. Each conv takes its layer's config
(`cfg`) for its sizes."""

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
    """(x (B, N, F), edge_index (B, 2, E)[, weight (B, E)]) -> (B, N, out): `propagate` on the disjoint graph."""

    def forward(self, x, edge_index, weight=None):
        b, n = x.shape[0], x.shape[1]
        flat, edges = disjoint(x, edge_index)
        w = None if weight is None else weight.reshape(-1)
        return self.propagate(flat, edges, w).reshape(b, n, -1)


class GCN(GraphLayer):
    """Kipf & Welling's: Σ over in-edges and a self loop of x_j W / sqrt(deg_i deg_j) (+ bias)."""

    def __init__(self, f: int, cfg):
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
    """Veličković et al.'s: each node attends over its in-edges and itself, heads concatenated or averaged."""

    def __init__(self, f: int, cfg):
        super().__init__()
        self.heads, self.channels, self.concat = cfg.heads, cfg.out_features, cfg.concat
        self.negative_slope, self.dropout = cfg.negative_slope, cfg.dropout
        self.lin = nn.Linear(f, cfg.heads * cfg.out_features, bias=False)
        self.att_src = nn.Parameter(torch.empty(1, cfg.heads, cfg.out_features))
        self.att_dst = nn.Parameter(torch.empty(1, cfg.heads, cfg.out_features))
        width = cfg.heads * cfg.out_features if cfg.concat else cfg.out_features
        self.bias = nn.Parameter(torch.zeros(width)) if cfg.bias else None
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
    """Hamilton et al.'s, mean aggregation: mean of the in-neighbours' x_j W_l (+ bias), plus x_i W_r."""

    def __init__(self, f: int, cfg):
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
    """Xu et al.'s: MLP((1 + eps) x_i + Σ over in-edges of x_j), the MLP Linear → ReLU → Linear."""

    def __init__(self, f: int, cfg):
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


class Pool(nn.Module):
    """A readout: (h (B, N, H), batch (B, N)) -> (B, N, H), each node given its graph's mean, max or sum."""

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
            if self.reduce == "mean":  # scatter_add, not index_add: see add_at
                count = torch.zeros(b * n, device=h.device, dtype=h.dtype).scatter_add(
                    0, ids, torch.ones(b * n, device=h.device, dtype=h.dtype))
                pooled = pooled / count.clamp(min=1.0)[:, None]
        return pooled[ids].reshape(b, n, width)
