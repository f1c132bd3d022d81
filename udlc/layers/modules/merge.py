"""Modules of the merges (udlc.layers.merge): add, multiply and concat of two or more inputs."""

import torch
from torch import nn


def aligned(xs):
    """numpy aligns ranks at the end; the batch axis must stay first, so lower-rank inputs get their new axes of
    size 1 after it."""
    rank = max(x.dim() for x in xs)
    return [x.reshape(x.shape[:1] + (1,) * (rank - x.dim()) + x.shape[1:]) if x.dim() < rank else x for x in xs]


class AddModule(nn.Module):
    """The sum of the inputs, broadcast as numpy does."""

    def forward(self, *xs):
        xs = aligned(xs)
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


class MultiplyModule(nn.Module):
    """The product of the inputs, broadcast as numpy does."""

    def forward(self, *xs):
        xs = aligned(xs)
        out = xs[0]
        for x in xs[1:]:
            out = out * x
        return out


class ConcatModule(nn.Module):
    """The inputs joined along `dim`, in batched axis numbering."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, *xs):
        return torch.cat(xs, dim=self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
