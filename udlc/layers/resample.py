"""Resampling: upsample a (channels, length) or (channels, height, width) sample; pixel_shuffle and
pixel_unshuffle trade a picture's resolution for its channels and back."""

import math
from typing import Literal, Optional

from pydantic import PositiveFloat, PositiveInt, model_validator

from udlc.layers.conv import SPATIAL, Pair, expect_spatial, per_axis
from udlc.layers.registry import LayerConfig, Shape, ShapeError, fmt, numel, register

# The spatial rank each interpolating mode works on; nearest works on either.
MODE_RANK = {"linear": 1, "bilinear": 2}


class Upsample(LayerConfig):
    """Give `scale_factor` (output = floor(input * scale_factor)) or a target `size`, not both."""

    type: Literal["upsample"] = "upsample"
    scale_factor: Optional[PositiveFloat] = None
    size: Optional[Pair] = None
    mode: Literal["nearest", "linear", "bilinear"] = "nearest"
    align_corners: Optional[bool] = None  # only for the interpolating modes, as in PyTorch

    @model_validator(mode="after")
    def _check(self):
        if (self.scale_factor is None) == (self.size is None):
            raise ValueError("give either scale_factor or size")
        if self.mode == "nearest" and self.align_corners is not None:
            raise ValueError("align_corners applies only to modes 'linear' and 'bilinear'")
        return self


def upsample_shape(cfg: Upsample, x: Shape) -> Shape:
    if len(x) not in (2, 3):
        raise ShapeError(f"expects input (channels, length) or (channels, height, width) but gets {fmt(x)}",
                         "add 'reshape' before it")
    n = len(x) - 1
    if cfg.mode in MODE_RANK and MODE_RANK[cfg.mode] != n:
        raise ShapeError(f"mode '{cfg.mode}' expects input {SPATIAL[MODE_RANK[cfg.mode]]} but gets {fmt(x)}",
                         f"use mode '{'bilinear' if n == 2 else 'linear'}'")
    if cfg.size is not None:
        if isinstance(cfg.size, tuple) and n != 2:
            raise ShapeError(f"size {cfg.size} has 2 values but the input {fmt(x)} has 1 spatial axis", "give one size")
        return x[:1] + per_axis(cfg.size, n)
    out = tuple(math.floor(d * cfg.scale_factor) for d in x[1:])
    if any(o < 1 for o in out):
        raise ShapeError(f"scale_factor {cfg.scale_factor} leaves no output for the input {fmt(x)}")
    return x[:1] + out


def upsample_flops(cfg: Upsample, x: Shape) -> int:
    out = upsample_shape(cfg, x)
    # Nearest copies; interpolation weighs 2 neighbours per spatial axis (a multiply and an add each).
    return 0 if cfg.mode == "nearest" else 2 * numel(out) * 2 ** (len(out) - 1)


def build_upsample(cfg: Upsample, x: Shape):
    from torch import nn

    return nn.Upsample(size=cfg.size, scale_factor=cfg.scale_factor, mode=cfg.mode, align_corners=cfg.align_corners)


register(Upsample, shape=upsample_shape, build=build_upsample, flops=upsample_flops, main_arg="scale_factor",
         samples=[({"scale_factor": 2}, ((3, 4, 4),)),
                  ({"scale_factor": 1.5, "mode": "linear"}, ((2, 5),)),
                  ({"size": [7, 9], "mode": "bilinear", "align_corners": True}, ((2, 4, 5),)),
                  ({"size": 6}, ((3, 4),))])


class PixelShuffle(LayerConfig):
    """(C·r², H, W) → (C, H·r, W·r): sub-pixel upscaling (ESPCN), the channels of each pixel laid out as an r×r
    block. torch.nn.PixelShuffle; exported as ONNX DepthToSpace (mode CRD)."""

    type: Literal["pixel_shuffle"] = "pixel_shuffle"
    upscale_factor: PositiveInt


class PixelUnshuffle(LayerConfig):
    """(C, H·r, W·r) → (C·r², H, W): pixel_shuffle undone, each r×r block folded into channels (a lossless
    downscale, as a U-Net's or a super-resolution model's encoder takes). torch.nn.PixelUnshuffle."""

    type: Literal["pixel_unshuffle"] = "pixel_unshuffle"
    downscale_factor: PositiveInt


def pixel_shuffle_shape(cfg: PixelShuffle, x: Shape) -> Shape:
    expect_spatial(x, 2)
    r = cfg.upscale_factor
    if x[0] % (r * r):
        raise ShapeError(f"upscale_factor {r} needs channels divisible by {r * r}, but the input {fmt(x)} has {x[0]}",
                         f"give the layer before it {r * r}·k output channels "
                         f"(e.g. {r * r * max(1, x[0] // (r * r))})")
    return (x[0] // (r * r), x[1] * r, x[2] * r)


def pixel_unshuffle_shape(cfg: PixelUnshuffle, x: Shape) -> Shape:
    expect_spatial(x, 2)
    r = cfg.downscale_factor
    if x[1] % r or x[2] % r:
        raise ShapeError(f"downscale_factor {r} needs height and width divisible by {r}, but the input is {fmt(x)}",
                         f"resize the pictures to a multiple of {r}, or pick a factor that divides both")
    return (x[0] * r * r, x[1] // r, x[2] // r)


def build_pixel_shuffle(cfg: PixelShuffle, x: Shape):
    from torch import nn

    return nn.PixelShuffle(cfg.upscale_factor)


def build_pixel_unshuffle(cfg: PixelUnshuffle, x: Shape):
    from torch import nn

    return nn.PixelUnshuffle(cfg.downscale_factor)


# Both only move values: no parameters and no arithmetic (FLOPs 0, the registry's default).
register(PixelShuffle, shape=pixel_shuffle_shape, build=build_pixel_shuffle, main_arg="upscale_factor",
         samples=[({"upscale_factor": 2}, ((8, 3, 5),)), ({"upscale_factor": 3}, ((9, 2, 2),))])
register(PixelUnshuffle, shape=pixel_unshuffle_shape, build=build_pixel_unshuffle, main_arg="downscale_factor",
         samples=[({"downscale_factor": 2}, ((3, 4, 6),)), ({"downscale_factor": 3}, ((1, 6, 3),))])
