"""Layers of generative models.

reparameterize: a Gaussian latent drawn as mu + exp(logvar / 2) · ε (the VAE's reparameterization trick,
Kingma & Welling 2014), so gradients reach mu and logvar through the draw.

    - reparameterize: {from: [mu, logvar]}

In training it draws ε ~ N(0, 1) from torch's generator (seeded by the run and kept in its checkpoints, as
dropout's is); in evaluation and in an exported model it gives mu, the latent's mean, so answers are
deterministic. Task vae draws its own latent the same way (`draw`), from the run's data generator.

timestep_embedding: a diffusion step t (one float per sample) as `dim` sinusoidal features, [sin(t·f_i),
cos(t·f_i)] with f_i = max_period^(-i / (dim/2)) (Ho et al. 2020, after Vaswani et al.); a denoiser passes
them through an MLP and adds the result to its feature maps, broadcast over height and width:

    - timestep_embedding: {dim: 64, from: t}
    - linear: 64
    - silu
    - reshape: [64, 1, 1]
    - add: {from: [features, temb]}
"""

import functools
import math
from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt

from udlc.layers.registry import LayerConfig, Shape, ShapeError, numel, register


class Reparameterize(LayerConfig):
    """z = mu + exp(logvar / 2) · ε while training; mu in evaluation. Inputs: mu, logvar (same shape)."""

    type: Literal["reparameterize"] = "reparameterize"


def draw(mu, logvar, noise):
    """The latent for standard normal `noise` shaped like mu."""
    return mu + (0.5 * logvar).exp() * noise


class TimestepEmbedding(LayerConfig):
    """(1,) → (dim,): sines and cosines of the step at geometrically spaced frequencies; no parameters."""

    type: Literal["timestep_embedding"] = "timestep_embedding"
    dim: PositiveInt = Field(description="the number of features (even): dim/2 sines, then dim/2 cosines")
    max_period: PositiveFloat = Field(10000.0, description="the slowest frequency's period, in steps")


@functools.cache
def torch_modules():
    """Modules defined on first use, so that importing this file never imports torch."""
    import torch
    from torch import nn

    class ReparameterizeModule(nn.Module):
        def forward(self, mu, logvar):
            if not self.training:
                return mu
            return draw(mu, logvar, torch.randn_like(mu))

    class TimestepEmbeddingModule(nn.Module):
        def __init__(self, dim: int, max_period: float):
            super().__init__()
            half = dim // 2
            frequencies = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float64) / half)
            self.register_buffer("frequencies", frequencies.float(), persistent=False)  # a function of the config

        def forward(self, t):
            angles = t * self.frequencies  # (B, 1) * (half,) -> (B, half)
            return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)

        def extra_repr(self) -> str:
            return f"dim={2 * self.frequencies.shape[0]}"

    return {"reparameterize": ReparameterizeModule, "timestep_embedding": TimestepEmbeddingModule}


def reparameterize_shape(cfg: Reparameterize, mu: Shape, logvar: Shape) -> Shape:
    if mu != logvar:
        raise ShapeError(f"mu {mu} and logvar {logvar} must have the same shape",
                         "give both heads the latent's width, e.g. `linear: 8` each")
    return mu


register(Reparameterize, shape=reparameterize_shape, build=lambda cfg, mu, logvar: torch_modules()["reparameterize"](),
         flops=lambda cfg, mu, logvar: 3 * numel(mu), arity=2,
         samples=[({}, ((8,), (8,))), ({}, ((2, 4, 4), (2, 4, 4)))])


def timestep_shape(cfg: TimestepEmbedding, t: Shape) -> Shape:
    if tuple(t) != (1,):
        raise ShapeError(f"expects the step, one value per sample (1,), but gets {t}",
                         "declare the step as an input `t: [1]` and give the layer `from: t`")
    if cfg.dim % 2:
        raise ShapeError(f"dim must be even (half sines, half cosines), got {cfg.dim}", f"use {cfg.dim + 1}")
    return (cfg.dim,)


register(TimestepEmbedding, shape=timestep_shape,
         build=lambda cfg, t: torch_modules()["timestep_embedding"](cfg.dim, cfg.max_period),
         flops=lambda cfg, t: 2 * cfg.dim, main_arg="dim",
         samples=[({"dim": 16}, ((1,),)), ({"dim": 6, "max_period": 100.0}, ((1,),))])
