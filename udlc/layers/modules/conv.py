"""The module of channel_shuffle (udlc.layers.conv); the convolutions are torch's own."""

from torch import nn


class ShuffleModule(nn.Module):
    """(B, C, ...) read as (B, groups, C / groups, ...), the two group axes swapped: a reshape and a transpose,
    what every exporter takes."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, t):
        n, c = t.shape[0], t.shape[1]
        rest = t.shape[2:]
        return t.reshape(n, self.groups, c // self.groups, *rest).transpose(1, 2).reshape(n, c, *rest)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"
