"""The module of patch_embed (udlc.layers.embedding); embedding is torch's own."""

from torch import nn


class PatchEmbedModule(nn.Module):
    """(B, C, H, W) -> (B, N, embed_dim): each patch x patch square projected, patches row by row."""

    def __init__(self, channels: int, embed_dim: int, patch_size: int):
        super().__init__()
        # kernel = stride = patch: one output position per patch, the usual ViT stem.
        self.proj = nn.Conv2d(channels, embed_dim, patch_size, stride=patch_size)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, d, H/p, W/p) -> (B, N, d)
