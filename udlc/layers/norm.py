"""Normalization: batchnorm1d, batchnorm2d, layernorm, layernorm2d, rmsnorm, groupnorm."""

from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt

from udlc.layers.registry import ALL, EACH, LayerConfig, Shape, ShapeError, expect_rank, fmt, numel, register


def norm_flops(cfg: LayerConfig, x: Shape) -> int:
    # About four operations per element: subtract the mean, divide by the deviation, scale, shift.
    return 4 * numel(x)


class BatchNorm1d(LayerConfig):
    type: Literal["batchnorm1d"] = "batchnorm1d"
    eps: PositiveFloat = 1e-5
    momentum: float = Field(0.1, gt=0, le=1)
    affine: bool = True


class BatchNorm2d(LayerConfig):
    type: Literal["batchnorm2d"] = "batchnorm2d"
    eps: PositiveFloat = 1e-5
    momentum: float = Field(0.1, gt=0, le=1)
    affine: bool = True


def batchnorm_shape(cfg: BatchNorm1d | BatchNorm2d, x: Shape) -> Shape:
    if cfg.type == "batchnorm1d":
        expect_rank("", x, (1, 2), "(channels,) or (channels, length)", "use 'batchnorm2d' for images" if len(x) == 3 else None)
    else:
        expect_rank("", x, (3,), "(channels, height, width)", "use 'batchnorm1d' for (channels,) or (channels, length)")
    return x


def batchnorm_params(cfg: BatchNorm1d | BatchNorm2d, x: Shape) -> int:
    return 2 * x[0] if cfg.affine else 0  # weight and bias; the running statistics are buffers


def batchnorm_tensors(cfg: BatchNorm1d | BatchNorm2d, x: Shape) -> dict[str, tuple[int, ...]]:
    affine = {"weight": (x[0],), "bias": (x[0],)} if cfg.affine else {}
    return {**affine, "running_mean": (x[0],), "running_var": (x[0],), "num_batches_tracked": ()}


def build_batchnorm(cfg: BatchNorm1d | BatchNorm2d, x: Shape):
    from torch import nn

    cls = nn.BatchNorm1d if cfg.type == "batchnorm1d" else nn.BatchNorm2d
    return cls(x[0], eps=cfg.eps, momentum=cfg.momentum, affine=cfg.affine)


register(BatchNorm1d, shape=batchnorm_shape, build=build_batchnorm, params=batchnorm_params, flops=norm_flops,
         tensors=batchnorm_tensors,
         samples=[({}, ((6,),)), ({"eps": 1e-3, "momentum": 0.01, "affine": False}, ((4, 9),))])
register(BatchNorm2d, shape=batchnorm_shape, build=build_batchnorm, params=batchnorm_params, flops=norm_flops,
         tensors=batchnorm_tensors,
         samples=[({}, ((3, 5, 5),)), ({"eps": 1e-3, "affine": False}, ((2, 4, 6),))])


class LayerNorm(LayerConfig):
    """Normalizes over the last `dims` axes of each sample."""

    type: Literal["layernorm"] = "layernorm"
    dims: PositiveInt = 1
    eps: PositiveFloat = 1e-5
    elementwise_affine: bool = True
    bias: bool = True


def layernorm_shape(cfg: LayerNorm, x: Shape) -> Shape:
    if cfg.dims > len(x):
        raise ShapeError(f"dims {cfg.dims} is more than the {len(x)} axes of the input {fmt(x)}")
    return x


def layernorm_params(cfg: LayerNorm, x: Shape) -> int:
    if not cfg.elementwise_affine:
        return 0  # PyTorch then has no bias either
    return numel(x[-cfg.dims:]) * (2 if cfg.bias else 1)


def build_layernorm(cfg: LayerNorm, x: Shape):
    from torch import nn

    return nn.LayerNorm(x[-cfg.dims:], eps=cfg.eps, elementwise_affine=cfg.elementwise_affine, bias=cfg.bias)


# Position-wise when it normalizes each position's features alone (dims 1 of (T, features)).
register(LayerNorm, shape=layernorm_shape, build=build_layernorm, params=layernorm_params, flops=norm_flops,
         main_arg="dims", reads=lambda cfg: EACH if cfg.dims == 1 else ALL,
         tensors=lambda cfg, x: ({"weight": x[-cfg.dims:], **({"bias": x[-cfg.dims:]} if cfg.bias else {})}
                                 if cfg.elementwise_affine else {}),
         samples=[({}, ((7,),)), ({"dims": 2, "bias": False}, ((3, 4, 5),)),
                  ({"eps": 1e-6, "elementwise_affine": False}, ((5, 6),)), ({}, (("T", 8),))])


class LayerNorm2d(LayerConfig):
    """Layer norm over the channels of each position of a (C, H, W) map (ConvNeXt's): each pixel's C values
    normalized, as torch's LayerNorm over a channels-last view."""

    type: Literal["layernorm2d"] = "layernorm2d"
    eps: PositiveFloat = 1e-6
    elementwise_affine: bool = True


def layernorm2d_shape(cfg: LayerNorm2d, x: Shape) -> Shape:
    expect_rank("", x, (3,), "(channels, height, width)", "use 'layernorm' over a sample's last axes")
    return x


def build_layernorm2d(cfg: LayerNorm2d, x: Shape):
    from udlc.layers.modules.norm import ChannelsLayerNorm

    return ChannelsLayerNorm(x[0], eps=cfg.eps, elementwise_affine=cfg.elementwise_affine)


register(LayerNorm2d, shape=layernorm2d_shape, build=build_layernorm2d, flops=norm_flops,
         params=lambda cfg, x: 2 * x[0] if cfg.elementwise_affine else 0,
         tensors=lambda cfg, x: {"weight": (x[0],), "bias": (x[0],)} if cfg.elementwise_affine else {},
         samples=[({}, ((4, 3, 5),)), ({"eps": 1e-5, "elementwise_affine": False}, ((2, 4, 4),))])


class RMSNorm(LayerConfig):
    """Divides each vector (the last axis) by its root mean square, then scales: x / sqrt(mean(x²) + eps) · w
    (Zhang & Sennrich, 2019; LLaMA's norm). No mean is subtracted and there is no bias."""

    type: Literal["rmsnorm"] = "rmsnorm"
    eps: PositiveFloat = 1e-6  # LLaMA's and T5's; torch's own default depends on the dtype
    elementwise_affine: bool = True


def rmsnorm_shape(cfg: RMSNorm, x: Shape) -> Shape:
    if not x:
        raise ShapeError("expects input (..., features) but gets a scalar per sample")
    return x


def build_rmsnorm(cfg: RMSNorm, x: Shape):
    from torch import nn

    return nn.RMSNorm(x[-1], eps=cfg.eps, elementwise_affine=cfg.elementwise_affine)


register(RMSNorm, shape=rmsnorm_shape, build=build_rmsnorm, flops=norm_flops, reads=EACH,
         params=lambda cfg, x: x[-1] if cfg.elementwise_affine else 0,
         tensors=lambda cfg, x: {"weight": (x[-1],)} if cfg.elementwise_affine else {},
         samples=[({}, (("T", 8),)), ({"eps": 1e-5, "elementwise_affine": False}, ((3, 4, 5),))])


class GroupNorm(LayerConfig):
    type: Literal["groupnorm"] = "groupnorm"
    num_groups: PositiveInt
    eps: PositiveFloat = 1e-5
    affine: bool = True


def groupnorm_shape(cfg: GroupNorm, x: Shape) -> Shape:
    if not x:
        raise ShapeError("expects input (channels, ...) but gets a scalar per sample")
    if x[0] % cfg.num_groups:
        raise ShapeError(f"num_groups {cfg.num_groups} does not divide the {x[0]} channels of the input {fmt(x)}",
                         "pick num_groups that divides the channel count")
    return x


def groupnorm_params(cfg: GroupNorm, x: Shape) -> int:
    return 2 * x[0] if cfg.affine else 0


def build_groupnorm(cfg: GroupNorm, x: Shape):
    from torch import nn

    return nn.GroupNorm(cfg.num_groups, x[0], eps=cfg.eps, affine=cfg.affine)


register(GroupNorm, shape=groupnorm_shape, build=build_groupnorm, params=groupnorm_params, flops=norm_flops,
         main_arg="num_groups", tensors=lambda cfg, x: {"weight": (x[0],), "bias": (x[0],)} if cfg.affine else {},
         samples=[({"num_groups": 2}, ((4, 5, 5),)), ({"num_groups": 3, "eps": 1e-3, "affine": False}, ((6, 7),))])
