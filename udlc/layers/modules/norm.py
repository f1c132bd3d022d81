"""The module of layernorm2d (udlc.layers.norm); the other norms are torch's own."""

from torch import nn


class ChannelsLayerNorm(nn.LayerNorm):
    """torch's LayerNorm over the channels of each position of a (B, C, H, W) map, through a channels-last view."""

    def forward(self, t):
        return super().forward(t.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
