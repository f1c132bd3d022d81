"""Pooling: max/avg pooling over 1, 2 or 3 spatial axes (each config says its `rank` and `kind`), global
pooling, adaptive average pooling."""

from typing import ClassVar, Literal, Optional

from pydantic import NonNegativeInt, PositiveInt, model_validator

from udlc.layers.conv import NonNegPair, NonNegTriple, Pair, Triple, expect_spatial, per_axis, sliding_out
from udlc.layers.registry import LayerConfig, Shape, ShapeError, fmt, numel, register


class _Pooling(LayerConfig):
    """What a max or average pool of any rank takes besides its sizes (which each rank types itself)."""

    kind: ClassVar[str] = "Max"  # torch's MaxPool… or AvgPool…
    ceil_mode: bool = False  # count a last, partial window (GoogLeNet's pools)

    @model_validator(mode="after")
    def _check(self):
        check_pool_padding(self)
        return self


class _Pool1d(_Pooling):
    rank: ClassVar[int] = 1
    kernel_size: PositiveInt
    stride: Optional[PositiveInt] = None  # None: the kernel size, as in PyTorch
    padding: NonNegativeInt = 0


class _Pool2d(_Pooling):
    rank: ClassVar[int] = 2
    kernel_size: Pair
    stride: Optional[Pair] = None
    padding: NonNegPair = 0


class _Pool3d(_Pooling):
    rank: ClassVar[int] = 3
    kernel_size: Triple
    stride: Optional[Triple] = None
    padding: NonNegTriple = 0


Pool = _Pool1d | _Pool2d | _Pool3d


def check_pool_padding(cfg: Pool) -> None:
    # PyTorch refuses padding past half the kernel: a window could then see only padding.
    n = cfg.rank
    if any(p > k // 2 for p, k in zip(per_axis(cfg.padding, n), per_axis(cfg.kernel_size, n))):
        raise ValueError(f"padding {cfg.padding} must be at most half of kernel_size {cfg.kernel_size}")


class MaxPool1d(_Pool1d):
    type: Literal["maxpool1d"] = "maxpool1d"


class MaxPool2d(_Pool2d):
    type: Literal["maxpool2d"] = "maxpool2d"


class MaxPool3d(_Pool3d):
    type: Literal["maxpool3d"] = "maxpool3d"


class AvgPool1d(_Pool1d):
    type: Literal["avgpool1d"] = "avgpool1d"
    kind: ClassVar[str] = "Avg"


class AvgPool2d(_Pool2d):
    type: Literal["avgpool2d"] = "avgpool2d"
    kind: ClassVar[str] = "Avg"


class AvgPool3d(_Pool3d):
    type: Literal["avgpool3d"] = "avgpool3d"
    kind: ClassVar[str] = "Avg"


def pool_shape(cfg: Pool, x: Shape) -> Shape:
    n = cfg.rank
    expect_spatial(x, n)
    k = per_axis(cfg.kernel_size, n)
    s = per_axis(cfg.kernel_size if cfg.stride is None else cfg.stride, n)
    return x[:1] + sliding_out(x, k, s, per_axis(cfg.padding, n), (1,) * n, f"kernel_size {cfg.kernel_size}",
                               ceil=cfg.ceil_mode)


def pool_flops(cfg: Pool, x: Shape) -> int:
    # One compare or add per window element.
    return numel(pool_shape(cfg, x)) * numel(per_axis(cfg.kernel_size, len(x) - 1))


def build_pool(cfg: Pool, x: Shape):
    from torch import nn

    return getattr(nn, f"{cfg.kind}Pool{cfg.rank}d")(cfg.kernel_size, stride=cfg.stride, padding=cfg.padding,
                                        ceil_mode=cfg.ceil_mode)


SAMPLES_1D = [({"kernel_size": 2}, ((3, 9),)), ({"kernel_size": 3, "stride": 2, "padding": 1}, ((2, 8),)),
              ({"kernel_size": 3, "stride": 2, "ceil_mode": True}, ((2, 10),))]
SAMPLES_2D = [({"kernel_size": 2}, ((3, 8, 8),)), ({"kernel_size": [3, 2], "stride": [2, 1], "padding": 1}, ((2, 7, 9),)),
              ({"kernel_size": 3, "stride": 2, "ceil_mode": True}, ((2, 8, 9),)),
              ({"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}, ((2, 7, 8),))]
register(MaxPool1d, shape=pool_shape, build=build_pool, flops=pool_flops, main_arg="kernel_size", samples=SAMPLES_1D)
register(MaxPool2d, shape=pool_shape, build=build_pool, flops=pool_flops, main_arg="kernel_size", samples=SAMPLES_2D)
register(AvgPool1d, shape=pool_shape, build=build_pool, flops=pool_flops, main_arg="kernel_size", samples=SAMPLES_1D)
register(AvgPool2d, shape=pool_shape, build=build_pool, flops=pool_flops, main_arg="kernel_size", samples=SAMPLES_2D)
SAMPLES_3D = [({"kernel_size": 2}, ((2, 4, 6, 6),)), ({"kernel_size": [1, 3, 3], "stride": [1, 2, 2], "padding": [0, 1, 1],
                                                      "ceil_mode": True}, ((3, 2, 7, 8),))]
register(MaxPool3d, shape=pool_shape, build=build_pool, flops=pool_flops, main_arg="kernel_size", samples=SAMPLES_3D)
register(AvgPool3d, shape=pool_shape, build=build_pool, flops=pool_flops, main_arg="kernel_size", samples=SAMPLES_3D)


class GlobalAvgPool(LayerConfig):
    type: Literal["global_avgpool"] = "global_avgpool"


class GlobalMaxPool(LayerConfig):
    type: Literal["global_maxpool"] = "global_maxpool"


def global_pool_shape(cfg: GlobalAvgPool | GlobalMaxPool, x: Shape) -> Shape:
    if len(x) < 2:
        raise ShapeError(f"expects input (channels, *spatial) but gets {fmt(x)}", "it has no spatial axes to pool; drop it")
    return x[:1]


def build_global_pool(cfg: GlobalAvgPool | GlobalMaxPool, x: Shape):
    from torch import nn

    # Flattening the spatial axes first makes one module serve every spatial rank.
    pool = nn.AdaptiveAvgPool1d(1) if cfg.type == "global_avgpool" else nn.AdaptiveMaxPool1d(1)
    return nn.Sequential(nn.Flatten(2), pool, nn.Flatten(1))


GLOBAL_SAMPLES = [({}, ((4, 5, 6),)), ({}, ((3, 7),)), ({}, ((2, 3, 4, 5),))]
register(GlobalAvgPool, shape=global_pool_shape, build=build_global_pool, flops=lambda cfg, x: numel(x),
         samples=GLOBAL_SAMPLES)
register(GlobalMaxPool, shape=global_pool_shape, build=build_global_pool, flops=lambda cfg, x: numel(x),
         samples=GLOBAL_SAMPLES)


class AdaptiveAvgPool1d(LayerConfig):
    type: Literal["adaptive_avgpool1d"] = "adaptive_avgpool1d"
    rank: ClassVar[int] = 1
    output_size: PositiveInt


class AdaptiveAvgPool2d(LayerConfig):
    type: Literal["adaptive_avgpool2d"] = "adaptive_avgpool2d"
    rank: ClassVar[int] = 2
    output_size: Pair


Adaptive = AdaptiveAvgPool1d | AdaptiveAvgPool2d


def adaptive_shape(cfg: Adaptive, x: Shape) -> Shape:
    n = cfg.rank
    expect_spatial(x, n)
    return x[:1] + per_axis(cfg.output_size, n)


def adaptive_flops(cfg: Adaptive, x: Shape) -> int:
    # One add per window element, as for avgpool. PyTorch's window i on an axis of `size` for `out`
    # outputs is [floor(i*size/out), ceil((i+1)*size/out)): windows overlap when `out` does not divide
    # `size` and repeat elements when `out` is larger, so this is numel(x) only when the sizes divide.
    n = cfg.rank
    total = x[0]
    for size, out in zip(x[1:], per_axis(cfg.output_size, n)):
        total *= sum(-(-(i + 1) * size // out) - i * size // out for i in range(out))
    return total


def build_adaptive(cfg: Adaptive, x: Shape):
    from torch import nn

    return getattr(nn, f"AdaptiveAvgPool{cfg.rank}d")(cfg.output_size)


register(AdaptiveAvgPool1d, shape=adaptive_shape, build=build_adaptive, flops=adaptive_flops,
         main_arg="output_size", samples=[({"output_size": 4}, ((3, 8),)), ({"output_size": 3}, ((2, 7),))])
register(AdaptiveAvgPool2d, shape=adaptive_shape, build=build_adaptive, flops=adaptive_flops,
         main_arg="output_size", samples=[({"output_size": 1}, ((3, 8, 8),)), ({"output_size": [3, 2]}, ((2, 7, 5),))])
