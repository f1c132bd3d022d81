"""Merges of two or more inputs: add and concat."""

import functools
from typing import Literal

from udlc.layers.registry import LayerConfig, Shape, ShapeError, fmt, numel, register


@functools.cache
def torch_modules():
    """The torch modules for merges, defined on first use so that importing this file never imports torch."""
    import torch
    from torch import nn

    class AddModule(nn.Module):
        def forward(self, *xs):
            out = xs[0]
            for x in xs[1:]:
                out = out + x
            return out

    class ConcatModule(nn.Module):
        def __init__(self, dim: int):
            super().__init__()
            self.dim = dim  # batched axis numbering

        def forward(self, *xs):
            return torch.cat(xs, dim=self.dim)

        def extra_repr(self) -> str:
            return f"dim={self.dim}"

    return AddModule, ConcatModule


def expect_several(xs: tuple[Shape, ...]) -> None:
    if len(xs) < 2:
        raise ShapeError(f"expects two or more inputs but gets {len(xs)}", "merge the outputs of several layers")


class Add(LayerConfig):
    type: Literal["add"] = "add"


def add_shape(cfg: Add, *xs: Shape) -> Shape:
    expect_several(xs)
    for x in xs[1:]:
        if x != xs[0]:
            raise ShapeError(f"expects inputs of one shape but gets {fmt(xs[0])} and {fmt(x)}",
                             "project one of them to the other's shape, or use 'concat'")
    return xs[0]


def build_add(cfg: Add, *xs: Shape):
    return torch_modules()[0]()


register(Add, shape=add_shape, build=build_add, flops=lambda cfg, *xs: numel(xs[0]) * (len(xs) - 1), arity=None,
         samples=[({}, ((4, 5), (4, 5))), ({}, ((3, 2, 2), (3, 2, 2), (3, 2, 2)))])


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
    return torch_modules()[1](cfg.dim % len(xs[0]) + 1)  # skip the batch axis


register(Concat, shape=concat_shape, build=build_concat, main_arg="dim", arity=None,
         samples=[({}, ((2, 4, 4), (3, 4, 4))), ({"dim": -1}, ((5, 2), (5, 3), (5, 1))), ({"dim": 1}, ((6, 2), (6, 4)))])
