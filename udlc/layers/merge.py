"""Merges of two or more inputs: add and multiply (broadcasting as numpy does), and concat."""

from typing import Literal

from udlc.layers.registry import ALL, EACH, LayerConfig, Shape, ShapeError, fmt, numel, register


def expect_several(xs: tuple[Shape, ...]) -> None:
    if len(xs) < 2:
        raise ShapeError(f"expects two or more inputs but gets {len(xs)}", "merge the outputs of several layers")


class Add(LayerConfig):
    """The sum of the inputs, broadcast as numpy does."""

    type: Literal["add"] = "add"


class Multiply(LayerConfig):
    """The product of the inputs, broadcast as numpy does: a (C, 1, 1) gate times a (C, H, W) map."""

    type: Literal["multiply"] = "multiply"


def broadcast_shape(cfg: Add | Multiply, *xs: Shape) -> Shape:
    """numpy's rule: align the axes from the end; on each, the sizes agree or one of them is 1."""
    expect_several(xs)
    rank = max(len(x) for x in xs)
    out = []
    for axis in range(-rank, 0):
        sizes = {x[axis] for x in xs if len(x) >= -axis} - {1}
        if len(sizes) > 1:
            shown = " and ".join(fmt(x) for x in xs)
            raise ShapeError(f"expects inputs that broadcast together but gets {shown}",
                             "sizes must agree on each axis or be 1; project or reshape one of them, or use 'concat'")
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def broadcast_flops(cfg: Add | Multiply, *xs: Shape) -> int:
    return numel(broadcast_shape(cfg, *xs)) * (len(xs) - 1)


def build_elementwise(cfg: Add | Multiply, *xs: Shape):
    from udlc.layers.modules.merge import AddModule, MultiplyModule

    return AddModule() if cfg.type == "add" else MultiplyModule()


# Each output position from the same position of every input (a sequence's features added to another's).
register(Add, shape=broadcast_shape, build=build_elementwise, flops=broadcast_flops, arity=None,
         reads=EACH,
         samples=[({}, ((4, 5), (4, 5))), ({}, ((3, 2, 2), (3, 2, 2), (3, 2, 2))), ({}, ((3, 4, 4), (3, 1, 1)))])
register(Multiply, shape=broadcast_shape, build=build_elementwise, flops=broadcast_flops, arity=None,
         reads=EACH,
         samples=[({}, ((3, 4, 4), (3, 1, 1))), ({}, ((5,), (2, 5))), ({}, ((2, 3), (2, 3), (1, 3)))])


class Concat(LayerConfig):
    """Joins the inputs along `dim`: 0 (the default) is a sample's first axis, its channels; negative counts from the end."""

    type: Literal["concat"] = "concat"
    dim: int = 0


def concat_shape(cfg: Concat, *xs: Shape) -> Shape:
    expect_several(xs)
    rank = len(xs[0])
    if not -rank <= cfg.dim < rank:
        raise ShapeError(f"dim {cfg.dim} is out of range for the input {fmt(xs[0])}")
    dim = cfg.dim % rank
    for x in xs[1:]:
        if len(x) != rank or x[:dim] + x[dim + 1:] != xs[0][:dim] + xs[0][dim + 1:]:
            raise ShapeError(f"expects inputs that match on every axis but dim {cfg.dim}; gets {fmt(xs[0])} and {fmt(x)}",
                             "reshape, pool or resample one of them to match")
    return xs[0][:dim] + (sum(x[dim] for x in xs),) + xs[0][dim + 1:]


def build_concat(cfg: Concat, *xs: Shape):
    from udlc.layers.modules.merge import ConcatModule

    return ConcatModule(cfg.dim % len(xs[0]) + 1)  # skip the batch axis


# Position-wise when it joins a sequence's features (the last axis of (T, features)), not its positions.
register(Concat, shape=concat_shape, build=build_concat, main_arg="dim", arity=None,
         reads=lambda cfg: EACH if cfg.dim in (-1, 1) else ALL,
         samples=[({}, ((2, 4, 4), (3, 4, 4))), ({"dim": -1}, ((5, 2), (5, 3), (5, 1))), ({"dim": 1}, ((6, 2), (6, 4)))])
