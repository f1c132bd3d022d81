"""Layers of generative models.

reparameterize: a Gaussian latent drawn as mu + exp(logvar / 2) · ε (the VAE's reparameterization trick,
Kingma & Welling 2014), so gradients reach mu and logvar through the draw.

    - reparameterize: {from: [mu, logvar]}

In training it draws ε ~ N(0, 1) from torch's generator (seeded by the run and kept in its checkpoints, as
dropout's is); in evaluation and in an exported model it gives mu, the latent's mean, so answers are
deterministic. Task vae draws its own latent the same way (`draw`), from the run's data generator.

sinusoidal_embedding: each value v of its input (a diffusion step t, one per sample; or a point's coordinates)
as `dim` features [sin(s·v·f_i), cos(s·v·f_i)], f_i = max_period^(-i / (dim/2)), s = `scale` (Ho et al.
2020's timestep embedding, after Vaswani et al.; on coordinates, the Fourier features with which an MLP
learns fine detail, Tancik et al. 2020). A denoiser passes a step's through an MLP and adds the result to
its feature maps, broadcast over height and width:

    - sinusoidal_embedding: {dim: 64, from: t}
    - linear: 64
    - silu: {id: step}
    - conv2d: {out_channels: 64, kernel_size: 3, padding: 1, from: x}
    - add: {from: step}          # after `reshape: [64, 1, 1]` of the step's features
"""

from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt

from udlc.layers.registry import EACH, LayerConfig, Shape, ShapeError, numel, register


class Reparameterize(LayerConfig):
    """z = mu + exp(logvar / 2) · ε while training; mu in evaluation. Inputs: mu, logvar (same shape)."""

    type: Literal["reparameterize"] = "reparameterize"


def draw(mu, logvar, noise):
    """The latent for standard normal `noise` shaped like mu, as the layer draws it (one formula, kept with the
    module; imported here when called, for the tasks that draw their own latents)."""
    from udlc.layers.modules.generative import draw

    return draw(mu, logvar, noise)


class SinusoidalEmbedding(LayerConfig):
    """(n,) → (n·dim,): sines and cosines of each value at geometrically spaced frequencies; no parameters."""

    type: Literal["sinusoidal_embedding"] = "sinusoidal_embedding"
    dim: PositiveInt = Field(description="features per value (even): dim/2 sines, then dim/2 cosines")
    max_period: PositiveFloat = Field(10000.0, description="the slowest frequency's period (in the value's units)")
    scale: PositiveFloat = Field(1.0, description="multiplies the values first (e.g. 25 for standardized "
                                                  "coordinates, whose detail lies below 1)")


def reparameterize_shape(cfg: Reparameterize, mu: Shape, logvar: Shape) -> Shape:
    if mu != logvar:
        raise ShapeError(f"mu {mu} and logvar {logvar} must have the same shape",
                         "give both heads the latent's width, e.g. `linear: 8` each")
    return mu


def build_reparameterize(cfg: Reparameterize, mu: Shape, logvar: Shape):
    from udlc.layers.modules.generative import ReparameterizeModule

    return ReparameterizeModule()


register(Reparameterize, shape=reparameterize_shape, build=build_reparameterize,
         flops=lambda cfg, mu, logvar: 3 * numel(mu), arity=2, reads=EACH,
         samples=[({}, ((8,), (8,))), ({}, ((2, 4, 4), (2, 4, 4)))])


def sinusoidal_shape(cfg: SinusoidalEmbedding, v: Shape) -> Shape:
    if len(v) != 1:
        raise ShapeError(f"expects a vector of values (n,), e.g. the step t (1,), but gets {v}",
                         "declare the step as an input `t: [1]` and give the layer `from: t`")
    if cfg.dim % 2:
        raise ShapeError(f"dim must be even (half sines, half cosines), got {cfg.dim}", f"use {cfg.dim + 1}")
    return (v[0] * cfg.dim,)


def build_sinusoidal(cfg: SinusoidalEmbedding, v: Shape):
    from udlc.layers.modules.generative import SinusoidalEmbeddingModule

    return SinusoidalEmbeddingModule(cfg.dim, cfg.max_period, cfg.scale)


register(SinusoidalEmbedding, shape=sinusoidal_shape, build=build_sinusoidal,
         flops=lambda cfg, v: 2 * v[0] * cfg.dim, main_arg="dim",
         samples=[({"dim": 16}, ((1,),)), ({"dim": 6, "max_period": 100.0, "scale": 25.0}, ((2,),))])
