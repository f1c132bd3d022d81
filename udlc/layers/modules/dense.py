"""Modules of the shape plumbing in udlc.layers.dense: reshape and split (linear, flatten and identity are
torch's own)."""

import torch
from torch import nn


class ReshapeModule(nn.Module):
    """Keeps the spec's -1: an axis sized by a symbol (T) reshapes right whatever its size."""

    def __init__(self, shape: list[int]):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x):
        return x.reshape(x.shape[:1] + self.shape)

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


class SplitModule(nn.Module):
    """The input cut along `dim` (batched numbering) into parts of `sizes`, as a tuple."""

    def __init__(self, sizes: list[int], dim: int):
        super().__init__()
        self.sizes, self.dim = list(sizes), dim

    def forward(self, x):
        return tuple(torch.split(x, self.sizes, dim=self.dim))

    def extra_repr(self) -> str:
        return f"sizes={self.sizes}, dim={self.dim}"
