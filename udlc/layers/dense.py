"""Dense layers and shape plumbing: linear, flatten, reshape, identity."""

from typing import Literal

from pydantic import Field, PositiveInt

from udlc.layers.registry import LayerConfig, Shape, ShapeError, fmt, numel, register


class Linear(LayerConfig):
    type: Literal["linear"] = "linear"
    out_features: PositiveInt
    bias: bool = True


def linear_shape(cfg: Linear, x: Shape) -> Shape:
    if len(x) == 0:
        raise ShapeError("expects input (..., features) but gets a scalar per sample")
    if len(x) >= 3:
        raise ShapeError(f"expects input (..., features) but gets {fmt(x)}", "add 'flatten' before it")
    return x[:-1] + (cfg.out_features,)


def linear_params(cfg: Linear, x: Shape) -> int:
    return x[-1] * cfg.out_features + (cfg.out_features if cfg.bias else 0)


def linear_flops(cfg: Linear, x: Shape) -> int:
    return 2 * numel(x) * cfg.out_features


def build_linear(cfg: Linear, x: Shape):
    from torch import nn

    return nn.Linear(x[-1], cfg.out_features, bias=cfg.bias)


register(Linear, shape=linear_shape, build=build_linear, params=linear_params, flops=linear_flops, main_arg="out_features",
         samples=[({"out_features": 7}, ((5,),)), ({"out_features": 3, "bias": False}, ((4, 6),))])


class Flatten(LayerConfig):
    """Flattens every axis from `start_dim` on; axes count from the first one after the batch axis."""

    type: Literal["flatten"] = "flatten"
    start_dim: int = Field(0, ge=0)


def flatten_shape(cfg: Flatten, x: Shape) -> Shape:
    if cfg.start_dim >= max(len(x), 1):
        raise ShapeError(f"start_dim {cfg.start_dim} is past the last axis of {fmt(x)}")
    return x[: cfg.start_dim] + (numel(x[cfg.start_dim :]),)


def build_flatten(cfg: Flatten, x: Shape):
    from torch import nn

    return nn.Flatten(start_dim=cfg.start_dim + 1)


register(Flatten, shape=flatten_shape, build=build_flatten, main_arg="start_dim",
         samples=[({}, ((2, 3, 4),)), ({"start_dim": 1}, ((2, 3, 4),))])


class Reshape(LayerConfig):
    """Reshape one sample; one axis may be -1 and is then inferred."""

    type: Literal["reshape"] = "reshape"
    shape: list[int] = Field(min_length=1)


def reshape_shape(cfg: Reshape, x: Shape) -> Shape:
    target = list(cfg.shape)
    if target.count(-1) > 1 or any(d == 0 or d < -1 for d in target):
        raise ShapeError(f"shape {target} may hold positive sizes and at most one -1")
    known = numel([d for d in target if d != -1])
    if -1 in target:
        if numel(x) % known:
            raise ShapeError(f"cannot reshape {fmt(x)} ({numel(x)} values) to {target}")
        target[target.index(-1)] = numel(x) // known
    if numel(target) != numel(x):
        raise ShapeError(f"cannot reshape {fmt(x)} ({numel(x)} values) to {fmt(tuple(target))} ({numel(target)} values)")
    return tuple(target)


def build_reshape(cfg: Reshape, x: Shape):
    from torch import nn

    return nn.Sequential(nn.Flatten(), nn.Unflatten(1, reshape_shape(cfg, x)))


register(Reshape, shape=reshape_shape, build=build_reshape, main_arg="shape",
         samples=[({"shape": [2, -1]}, ((12,),)), ({"shape": [24]}, ((2, 3, 4),))])


class Identity(LayerConfig):
    type: Literal["identity"] = "identity"


def build_identity(cfg: Identity, x: Shape):
    from torch import nn

    return nn.Identity()


register(Identity, shape=lambda cfg, x: x, build=build_identity, samples=[({}, ((3, 4),))])
