"""Modules of the sequence plumbing (udlc.layers.sequence): transpose, permute, select, cls_token, mean. Each
takes axes in batched numbering (the sample's axis + 1), fixed when built."""

import torch
from torch import nn


class TransposeModule(nn.Module):
    """Swaps axes a and b."""

    def __init__(self, a: int, b: int):
        super().__init__()
        self.a, self.b = a, b

    def forward(self, x):
        return x.transpose(self.a, self.b)

    def extra_repr(self) -> str:
        return f"dims=({self.a}, {self.b})"


class PermuteModule(nn.Module):
    """Reorders a sample's axes; the batch axis stays first."""

    def __init__(self, order: list[int]):
        super().__init__()
        self.order = [0] + list(order)

    def forward(self, x):
        return x.permute(self.order)

    def extra_repr(self) -> str:
        return f"dims={self.order}"


class SelectModule(nn.Module):
    """The position `index` along axis `dim`, that axis removed."""

    def __init__(self, dim: int, index: int):
        super().__init__()
        self.dim, self.index = dim, index

    def forward(self, x):
        return x.select(self.dim, self.index)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, index={self.index}"


class ClsTokenModule(nn.Module):
    """(B, T, d) -> (B, T+1, d): one learned vector before the sequence."""

    def __init__(self, d: int):
        super().__init__()
        # Named `token` and one-dimensional, so a spec's `init` (meant for weight matrices) leaves it alone;
        # N(0, 0.02) as BERT and ViT start theirs, on the scale of the embeddings beside it.
        self.token = nn.Parameter(torch.randn(d) * 0.02)

    def forward(self, x):
        return torch.cat([self.token.expand(x.shape[0], 1, -1), x], dim=1)

    def extra_repr(self) -> str:
        return f"features={self.token.shape[0]}"


class MeanModule(nn.Module):
    """The mean over axis `dim`."""

    def __init__(self, dim: int, keepdim: bool):
        super().__init__()
        self.dim, self.keepdim = dim, keepdim

    def forward(self, x):
        return x.mean(dim=self.dim, keepdim=self.keepdim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, keepdim={self.keepdim}"
