"""The module of drop_path (udlc.layers.dropout); dropout and dropout2d are torch's own."""

import torch
from torch import nn


class DropPathModule(nn.Module):
    """While training, each sample's whole value zeroed with probability p, the rest scaled by 1 / (1 - p)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        keep = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device)
        return x * keep.bernoulli_(1.0 - self.p) / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"
