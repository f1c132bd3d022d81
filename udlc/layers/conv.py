"""Convolutions: conv1d, conv2d, conv3d, conv_transpose2d. Arguments are PyTorch's, minus in_channels. Each
config says its spatial rank (`rank`); the shape rules and builders read it, never the type's name."""

from typing import ClassVar, Literal, Union

from pydantic import NonNegativeInt, PositiveInt, model_validator

from udlc.layers.registry import LayerConfig, Shape, ShapeError, expect_rank, fmt, numel, register

# An int means the same value on every spatial axis, as in PyTorch.
Pair = Union[PositiveInt, tuple[PositiveInt, PositiveInt]]
NonNegPair = Union[NonNegativeInt, tuple[NonNegativeInt, NonNegativeInt]]
Triple = Union[PositiveInt, tuple[PositiveInt, PositiveInt, PositiveInt]]
NonNegTriple = Union[NonNegativeInt, tuple[NonNegativeInt, NonNegativeInt, NonNegativeInt]]
SPATIAL = {1: "(channels, length)", 2: "(channels, height, width)", 3: "(channels, depth, height, width)"}


def per_axis(value: int | tuple[int, ...], n: int) -> tuple[int, ...]:
    return (value,) * n if isinstance(value, int) else tuple(value)


def expect_spatial(x: Shape, n: int) -> None:
    """Input must be (channels, *n spatial axes)."""
    expect_rank("", x, (n + 1,), SPATIAL[n], "add 'reshape' before it")


def sliding_out(x: Shape, k: tuple[int, ...], s: tuple[int, ...], p: tuple[int, ...], d: tuple[int, ...],
                what: str, ceil: bool = False) -> tuple[int, ...]:
    """Output sizes of a sliding window over x's spatial axes; complain when the window does not fit. `ceil`:
    a last, partial window counts too (pooling's ceil_mode), unless it would start in the right padding."""
    def size_of(size: int, kk: int, ss: int, pp: int, dd: int) -> int:
        span = size + 2 * pp - dd * (kk - 1) - 1
        out = (span + (ss - 1 if ceil else 0)) // ss + 1
        return out - 1 if ceil and (out - 1) * ss >= size + pp else out

    out = tuple(size_of(*axis) for axis in zip(x[1:], k, s, p, d))
    if any(o < 1 for o in out):
        raise ShapeError(f"{what} is larger than the input {fmt(x)} (padding {p})", "use a smaller kernel_size or more padding")
    return out


class _Convolution(LayerConfig):
    """What a convolution of any rank takes besides its sizes (which each rank types itself)."""

    out_channels: PositiveInt
    groups: PositiveInt = 1
    bias: bool = True

    @model_validator(mode="after")
    def _check(self):
        check_conv_args(self)
        return self


class Conv1d(_Convolution):
    type: Literal["conv1d"] = "conv1d"
    rank: ClassVar[int] = 1
    kernel_size: PositiveInt
    stride: PositiveInt = 1
    padding: Union[NonNegativeInt, Literal["same", "valid"]] = 0
    dilation: PositiveInt = 1


class Conv2d(_Convolution):
    type: Literal["conv2d"] = "conv2d"
    rank: ClassVar[int] = 2
    kernel_size: Pair
    stride: Pair = 1
    padding: Union[NonNegPair, Literal["same", "valid"]] = 0
    dilation: Pair = 1


class Conv3d(_Convolution):
    """A convolution over (channels, depth, height, width): video frames, or volumes."""

    type: Literal["conv3d"] = "conv3d"
    rank: ClassVar[int] = 3
    kernel_size: Triple
    stride: Triple = 1
    padding: Union[NonNegTriple, Literal["same", "valid"]] = 0
    dilation: Triple = 1


Conv = Union[Conv1d, Conv2d, Conv3d]


def check_conv_args(cfg: Conv) -> None:
    # Both are PyTorch's own constraints, caught here so that the error points at the arguments.
    if cfg.out_channels % cfg.groups:
        raise ValueError(f"groups {cfg.groups} must divide out_channels {cfg.out_channels}")
    if cfg.padding == "same" and per_axis(cfg.stride, cfg.rank) != (1,) * cfg.rank:
        raise ValueError("padding 'same' needs stride 1")


def conv_geometry(cfg: Conv, x: Shape):
    """(spatial rank, kernel, stride, padding, dilation) after checking the input."""
    n = cfg.rank
    expect_spatial(x, n)
    if x[0] % cfg.groups:
        raise ShapeError(f"groups {cfg.groups} does not divide the input's {x[0]} channels")
    k, s, d = per_axis(cfg.kernel_size, n), per_axis(cfg.stride, n), per_axis(cfg.dilation, n)
    # 'same' keeps the size whatever the kernel (PyTorch pads asymmetrically if need be); 'valid' is no padding.
    p = per_axis(0 if isinstance(cfg.padding, str) else cfg.padding, n)
    return n, k, s, p, d


def conv_shape(cfg: Conv, x: Shape) -> Shape:
    n, k, s, p, d = conv_geometry(cfg, x)
    if cfg.padding == "same":
        return (cfg.out_channels,) + x[1:]
    return (cfg.out_channels,) + sliding_out(x, k, s, p, d, f"kernel_size {cfg.kernel_size} (dilation {cfg.dilation})")


def conv_params(cfg: Conv, x: Shape) -> int:
    n, k, *_ = conv_geometry(cfg, x)
    return cfg.out_channels * (x[0] // cfg.groups) * numel(k) + (cfg.out_channels if cfg.bias else 0)


def conv_flops(cfg: Conv, x: Shape) -> int:
    n, k, *_ = conv_geometry(cfg, x)
    return 2 * numel(conv_shape(cfg, x)) * (x[0] // cfg.groups) * numel(k)


def conv_tensors(cfg: Conv, x: Shape) -> dict[str, tuple[int, ...]]:
    k = per_axis(cfg.kernel_size, cfg.rank)
    return {"weight": (cfg.out_channels, x[0] // cfg.groups, *k), **({"bias": (cfg.out_channels,)} if cfg.bias else {})}


def build_conv(cfg: Conv, x: Shape):
    from torch import nn

    return getattr(nn, f"Conv{cfg.rank}d")(x[0], cfg.out_channels, cfg.kernel_size, stride=cfg.stride,
                                           padding=cfg.padding, dilation=cfg.dilation, groups=cfg.groups,
                                           bias=cfg.bias)


register(Conv1d, shape=conv_shape, build=build_conv, params=conv_params, flops=conv_flops, main_arg="out_channels",
         tensors=conv_tensors,
         samples=[({"out_channels": 8, "kernel_size": 3}, ((4, 16),)), ({"out_channels": 4, "kernel_size": 3}, ((2, "T"),)),
                  ({"out_channels": 6, "kernel_size": 5, "stride": 2, "padding": 2, "groups": 2, "bias": False}, ((4, 21),)),
                  ({"out_channels": 4, "kernel_size": 4, "padding": "same", "dilation": 2}, ((3, 10),))])
register(Conv2d, shape=conv_shape, build=build_conv, params=conv_params, flops=conv_flops, main_arg="out_channels",
         tensors=conv_tensors,
         samples=[({"out_channels": 8, "kernel_size": 3, "padding": 1}, ((3, 8, 8),)),
                  ({"out_channels": 6, "kernel_size": [3, 1], "stride": 2, "padding": [1, 0], "bias": False}, ((2, 9, 7),)),
                  ({"out_channels": 8, "kernel_size": 3, "padding": "same", "groups": 4}, ((4, 6, 5),)),
                  ({"out_channels": 2, "kernel_size": 2, "padding": "valid", "dilation": [2, 1]}, ((3, 7, 7),))])
register(Conv3d, shape=conv_shape, build=build_conv, params=conv_params, flops=conv_flops, main_arg="out_channels",
         tensors=conv_tensors,
         samples=[({"out_channels": 4, "kernel_size": 3, "padding": 1}, ((2, 4, 6, 6),)),
                  ({"out_channels": 4, "kernel_size": [1, 3, 3], "stride": [1, 2, 2], "groups": 2, "bias": False},
                   ((2, 3, 7, 7),))])


class ConvTranspose2d(LayerConfig):
    type: Literal["conv_transpose2d"] = "conv_transpose2d"
    out_channels: PositiveInt
    kernel_size: Pair
    stride: Pair = 1
    padding: NonNegPair = 0
    output_padding: NonNegPair = 0
    dilation: Pair = 1
    groups: PositiveInt = 1
    bias: bool = True

    @model_validator(mode="after")
    def _check(self):
        if self.out_channels % self.groups:
            raise ValueError(f"groups {self.groups} must divide out_channels {self.out_channels}")
        # PyTorch's rule: the extra rows must fit inside one stride (or dilation) step.
        for op, s, d in zip(per_axis(self.output_padding, 2), per_axis(self.stride, 2), per_axis(self.dilation, 2)):
            if op >= max(s, d):
                raise ValueError(f"output_padding {self.output_padding} must be smaller than stride or dilation")
        return self


def conv_transpose_shape(cfg: ConvTranspose2d, x: Shape) -> Shape:
    expect_spatial(x, 2)
    if x[0] % cfg.groups:
        raise ShapeError(f"groups {cfg.groups} does not divide the input's {x[0]} channels")
    k, s, p, op, d = (per_axis(v, 2) for v in (cfg.kernel_size, cfg.stride, cfg.padding, cfg.output_padding, cfg.dilation))
    out = tuple((size - 1) * ss - 2 * pp + dd * (kk - 1) + oo + 1 for size, kk, ss, pp, oo, dd in zip(x[1:], k, s, p, op, d))
    if any(o < 1 for o in out):
        raise ShapeError(f"padding {cfg.padding} leaves no output for the input {fmt(x)}", "use less padding")
    return (cfg.out_channels,) + out


def conv_transpose_params(cfg: ConvTranspose2d, x: Shape) -> int:
    k = per_axis(cfg.kernel_size, 2)
    return x[0] * (cfg.out_channels // cfg.groups) * numel(k) + (cfg.out_channels if cfg.bias else 0)


def conv_transpose_flops(cfg: ConvTranspose2d, x: Shape) -> int:
    # Every input element is scattered through a (out_channels/groups, kh, kw) kernel.
    return 2 * numel(x) * (cfg.out_channels // cfg.groups) * numel(per_axis(cfg.kernel_size, 2))


def conv_transpose_tensors(cfg: ConvTranspose2d, x: Shape) -> dict[str, tuple[int, ...]]:
    return {"weight": (x[0], cfg.out_channels // cfg.groups, *per_axis(cfg.kernel_size, 2)),
            **({"bias": (cfg.out_channels,)} if cfg.bias else {})}


def build_conv_transpose(cfg: ConvTranspose2d, x: Shape):
    from torch import nn

    return nn.ConvTranspose2d(x[0], cfg.out_channels, cfg.kernel_size, stride=cfg.stride, padding=cfg.padding,
                              output_padding=cfg.output_padding, groups=cfg.groups, bias=cfg.bias, dilation=cfg.dilation)


register(ConvTranspose2d, shape=conv_transpose_shape, build=build_conv_transpose, params=conv_transpose_params,
         flops=conv_transpose_flops, main_arg="out_channels", tensors=conv_transpose_tensors,
         samples=[({"out_channels": 4, "kernel_size": 2, "stride": 2}, ((6, 5, 5),)),
                  ({"out_channels": 6, "kernel_size": 3, "stride": 2, "padding": 1, "output_padding": 1, "groups": 2,
                    "bias": False}, ((4, 4, 3),)),
                  ({"out_channels": 3, "kernel_size": [3, 2], "dilation": 2, "padding": [1, 0]}, ((2, 4, 4),))])


class ChannelShuffle(LayerConfig):
    """Interleaves the channels of `groups` groups (ShuffleNet), so that the next grouped convolution mixes
    them: (C, ...) read as (groups, C / groups, ...), the two axes swapped."""

    type: Literal["channel_shuffle"] = "channel_shuffle"
    groups: PositiveInt


def channel_shuffle_shape(cfg: ChannelShuffle, x: Shape) -> Shape:
    if len(x) < 2 or not isinstance(x[0], int):
        raise ShapeError(f"expects input (channels, ...) but gets {fmt(x)}")
    if x[0] % cfg.groups:
        raise ShapeError(f"groups {cfg.groups} does not divide the input's {x[0]} channels")
    return x


def build_channel_shuffle(cfg: ChannelShuffle, x: Shape):
    from udlc.layers.modules.conv import ShuffleModule

    return ShuffleModule(cfg.groups)


register(ChannelShuffle, shape=channel_shuffle_shape, build=build_channel_shuffle, main_arg="groups",
         samples=[({"groups": 2}, ((4, 3, 3),)), ({"groups": 3}, ((6, 5),))])
