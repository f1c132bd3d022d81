"""The module of relative_position_bias (udlc.layers.relative_position): T5's bias per head for each bucket of
the distance from a query to a key."""

import math

import torch
from torch import nn


def bucket_table(cfg):
    """The bucket of each distance 0..max_distance on one side (int64), by T5's formula in float32 as
    transformers computes it (so the buckets are the same where a float rounds to a boundary). The forward
    looks distances up here rather than take logarithms, so that onnxruntime cannot round one differently."""
    exact, per_side = cfg.exact, cfg.per_side
    r = torch.arange(cfg.max_distance + 1)
    far = (torch.log(r.clamp(min=exact).float() / exact) / math.log(cfg.max_distance / exact)
           * (per_side - exact)).to(torch.long)
    return torch.where(r < exact, r, (exact + far).clamp(max=per_side - 1))


class RelativePositionBiasModule(nn.Module):
    """x (B, T, ...) -> bias (B, num_heads, T, T); only x's length is read. `cfg` is a RelativePositionBias."""

    def __init__(self, cfg):
        super().__init__()
        self.bidirectional, self.per_side, self.max_distance = cfg.bidirectional, cfg.per_side, cfg.max_distance
        # (num_buckets, num_heads), as transformers' relative_attention_bias; named `weight` so that a spec's
        # `init` applies to it. N(0, 0.02) by default: small beside the scores it is added to.
        self.weight = nn.Parameter(torch.randn(cfg.num_buckets, cfg.num_heads) * 0.02)
        # Not persistent: a function of the config, so checkpoints need not carry it.
        self.register_buffer("buckets", bucket_table(cfg), persistent=False)

    def bucket(self, distance):
        """The bucket of each distance key - query (any shape, int64)."""
        if self.bidirectional:
            side, r = (distance > 0).long() * self.per_side, distance.abs()
        else:
            side, r = 0, (-distance).clamp(min=0)
        return side + self.buckets[r.clamp(max=self.max_distance)]

    def forward(self, x):
        positions = torch.arange(x.shape[1], device=x.device)
        values = self.weight[self.bucket(positions[None, :] - positions[:, None])]  # (T, T, heads)
        return values.permute(2, 0, 1).unsqueeze(0).expand(x.shape[0], -1, -1, -1)

    def extra_repr(self) -> str:
        return (f"buckets={self.weight.shape[0]}, heads={self.weight.shape[1]}, "
                f"max_distance={self.max_distance}, bidirectional={self.bidirectional}")
