"""Modules of the generative layers (udlc.layers.generative): reparameterize and sinusoidal_embedding."""

import math

import torch
from torch import nn


def draw(mu, logvar, noise):
    """The latent for standard normal `noise` shaped like mu: mu + exp(logvar / 2) · noise."""
    return mu + (0.5 * logvar).exp() * noise


class ReparameterizeModule(nn.Module):
    """(mu, logvar) -> a latent drawn with torch's generator while training; mu in evaluation."""

    def forward(self, mu, logvar):
        if not self.training:
            return mu
        return draw(mu, logvar, torch.randn_like(mu))


class SinusoidalEmbeddingModule(nn.Module):
    """(B, n) -> (B, n·dim): the sines, then the cosines, of each value at geometrically spaced frequencies."""

    def __init__(self, dim: int, max_period: float, scale: float):
        super().__init__()
        half = dim // 2
        frequencies = scale * torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float64) / half)
        self.register_buffer("frequencies", frequencies.float(), persistent=False)  # a function of the config

    def forward(self, v):
        angles = v[..., None] * self.frequencies  # (B, n, 1) * (half,) -> (B, n, half)
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1).flatten(1)

    def extra_repr(self) -> str:
        return f"dim={2 * self.frequencies.shape[0]}"
