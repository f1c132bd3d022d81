"""Sequence plumbing: transpose, permute, select, cls_token, mean. Axes count from a sample's first axis (the
batch axis is never named); a negative one counts from the end. A symbol (T) moves with its axis."""

from typing import Literal

from pydantic import Field

from udlc.layers.registry import ALL, EACH, LayerConfig, Shape, ShapeError, expect_rank, fmt, numel, register


def axis(name: str, d: int, x: Shape) -> int:
    """`d` as an axis of the sample `x`, from 0; a ShapeError when `x` has no such axis."""
    if not -len(x) <= d < len(x):
        raise ShapeError(f"{name} {d} is out of range for the input {fmt(x)}",
                         f"the input has {len(x)} axes: 0 to {len(x) - 1}, or -1 to -{len(x)} from the end"
                         if x else "the input has no axes to pick")
    return d % len(x)


class Transpose(LayerConfig):
    """Swaps two axes: (T, d) -> (d, T) with `transpose: [0, 1]`."""

    type: Literal["transpose"] = "transpose"
    dims: list[int] = Field(min_length=2, max_length=2, description="the two axes to swap")


def transpose_shape(cfg: Transpose, x: Shape) -> Shape:
    a, b = (axis("dims", d, x) for d in cfg.dims)
    if a == b:
        raise ShapeError(f"dims {cfg.dims} name the same axis of the input {fmt(x)}", "name two different axes")
    out = list(x)
    out[a], out[b] = x[b], x[a]
    return tuple(out)


class Permute(LayerConfig):
    """Reorders all axes: output axis i is input axis dims[i]; (C, H, W) -> (H, W, C) with `permute: [1, 2, 0]`."""

    type: Literal["permute"] = "permute"
    dims: list[int] = Field(min_length=1, description="a permutation of the sample's axes")


def permute_shape(cfg: Permute, x: Shape) -> Shape:
    if len(cfg.dims) != len(x):
        raise ShapeError(f"dims {cfg.dims} has {len(cfg.dims)} axes, but the input {fmt(x)} has {len(x)}",
                         "name every axis of a sample once (the batch axis is not named)")
    order = [axis("dims", d, x) for d in cfg.dims]
    if len(set(order)) != len(order):
        raise ShapeError(f"dims {cfg.dims} names an axis twice", "name every axis once")
    return tuple(x[i] for i in order)


class Select(LayerConfig):
    """Takes the position `index` along axis `dim`, removing that axis: the class token of (T+1, d) is
    `select: 0`, giving (d,); the last step of a sequence is `select: -1`."""

    type: Literal["select"] = "select"
    index: int = Field(0, description="the position; negative counts from the end")
    dim: int = Field(0, description="the axis; 0 is a sample's first")


def select_shape(cfg: Select, x: Shape) -> Shape:
    d = axis("dim", cfg.dim, x)
    # For a symbolic axis this sees only the probe sizes; a fixed index past a short sequence fails when it runs.
    if not -x[d] <= cfg.index < x[d]:
        raise ShapeError(f"index {cfg.index} is out of range for axis {cfg.dim} of the input {fmt(x)}",
                         f"pick an index from 0 to {x[d] - 1}, or from -1 to -{x[d]} counting from the end")
    return x[:d] + x[d + 1:]


class ClsToken(LayerConfig):
    """Prepends one learned vector to a sequence (BERT's [CLS], ViT's class token): (T, d) -> (T+1, d). A
    `select: 0` later picks it out as the summary of the sequence."""

    type: Literal["cls_token"] = "cls_token"


def cls_token_shape(cfg: ClsToken, x: Shape) -> Shape:
    expect_rank("", x, (2,), "(length, features)", "a token is prepended to a sequence of vectors")
    return (x[0] + 1, x[1])  # the compiler names a symbolic length's T+1


def cls_token_flops(cfg: ClsToken, x: Shape) -> int:
    # No arithmetic: one copy per output value, as an embedding's lookup is counted (the token is new data).
    return (x[0] + 1) * x[1]


class Mean(LayerConfig):
    """Averages over one axis: (T, d) -> (d,) with `mean: 0` (mean pooling of a sequence)."""

    type: Literal["mean"] = "mean"
    dim: int = Field(0, description="the axis to average over")
    keepdim: bool = Field(False, description="keep the axis, with size 1")


def mean_shape(cfg: Mean, x: Shape) -> Shape:
    d = axis("dim", cfg.dim, x)
    return x[:d] + ((1,) if cfg.keepdim else ()) + x[d + 1:]


def mean_flops(cfg: Mean, x: Shape) -> int:
    return numel(x)  # one addition per element (the division per output is not counted, as for pooling)


def build_transpose(cfg: Transpose, x: Shape):
    from udlc.layers.modules.sequence import TransposeModule

    a, b = (axis("dims", d, x) + 1 for d in cfg.dims)
    return TransposeModule(a, b)


def build_permute(cfg: Permute, x: Shape):
    from udlc.layers.modules.sequence import PermuteModule

    return PermuteModule([axis("dims", d, x) + 1 for d in cfg.dims])


def build_select(cfg: Select, x: Shape):
    from udlc.layers.modules.sequence import SelectModule

    return SelectModule(axis("dim", cfg.dim, x) + 1, cfg.index)


def build_cls_token(cfg: ClsToken, x: Shape):
    from udlc.layers.modules.sequence import ClsTokenModule

    return ClsTokenModule(x[-1])


def build_mean(cfg: Mean, x: Shape):
    from udlc.layers.modules.sequence import MeanModule

    return MeanModule(axis("dim", cfg.dim, x) + 1, cfg.keepdim)


# Each keeps a sequence's positions where it leaves the first axis, T, alone (a negative axis may name it).
register(Transpose, shape=transpose_shape, build=build_transpose, main_arg="dims",
         reads=lambda cfg: EACH if min(cfg.dims) >= 1 else ALL,
         samples=[({"dims": [0, 1]}, (("T", 6),)), ({"dims": [-1, 0]}, ((2, 3, 4),)),
                  ({"dims": [1, 2]}, (("T", 3, 4),))])
register(Permute, shape=permute_shape, build=build_permute, main_arg="dims",
         reads=lambda cfg: EACH if cfg.dims[0] == 0 and min(cfg.dims) >= 0 else ALL,
         samples=[({"dims": [1, 2, 0]}, ((2, 3, 4),)), ({"dims": [1, 0]}, (("T", 5),)),
                  ({"dims": [0, 2, 1]}, (("T", 3, 4),))])
register(Select, shape=select_shape, build=build_select, main_arg="index",
         reads=lambda cfg: EACH if cfg.dim >= 1 else ALL,
         samples=[({"index": 0}, (("T", 4),)), ({"index": -1}, (("T", 4),)), ({"index": 2, "dim": -1}, ((3, 5),)),
                  ({"index": 1, "dim": 1}, (("T", 3, 4),))])
register(ClsToken, shape=cls_token_shape, build=build_cls_token, params=lambda cfg, x: x[-1], flops=cls_token_flops,
         tensors=lambda cfg, x: {"token": (x[-1],)},
         samples=[({}, (("T", 8),)), ({}, ((5, 3),))])
register(Mean, shape=mean_shape, build=build_mean, flops=mean_flops, main_arg="dim",
         reads=lambda cfg: EACH if cfg.dim >= 1 else ALL,
         samples=[({"dim": 0}, (("T", 6),)), ({"dim": -1, "keepdim": True}, ((3, 4, 5),)), ({"dim": 1}, (("T", 6),))])
