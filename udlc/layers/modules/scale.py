"""Modules of scale and layer_scale (udlc.layers.scale)."""

import torch
from torch import nn


class ScaleModule(nn.Module):
    """x * factor; no parameters."""

    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor

    def extra_repr(self) -> str:
        return f"factor={self.factor}"


class LayerScaleModule(nn.Module):
    """x * gamma, a learned factor per channel shaped to broadcast against a sample."""

    def __init__(self, value: float, shape: tuple[int, ...]):
        super().__init__()
        self.gamma = nn.Parameter(torch.full(shape, value))

    def forward(self, x):
        return x * self.gamma
