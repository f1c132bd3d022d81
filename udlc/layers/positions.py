"""Absolute positions added to a sequence (T, d): the fixed sinusoidal table of Vaswani et al. (2017), or a
learned table (BERT, GPT-2). Each table holds `max_len` positions and is sliced to the input's length inside
forward, so one exported file takes any length up to max_len; a longer input is refused when it runs (a shape
rule only sees sizes, so it cannot tell a fixed length from a symbol's probe size)."""

import re
from typing import Literal

from pydantic import Field, PositiveInt

from udlc.layers.registry import EACH, LayerConfig, Shape, ShapeError, fmt, numel, register


class SinusoidalPositions(LayerConfig):
    """Adds PE(p, 2i) = sin(p / 10000^(2i/d)), PE(p, 2i+1) = cos(p / 10000^(2i/d)); no parameters."""

    type: Literal["sinusoidal_positions"] = "sinusoidal_positions"
    max_len: PositiveInt = Field(4096, description="the longest sequence the table covers")


class LearnedPositions(LayerConfig):
    """Adds a learned vector per position: max_len x d parameters."""

    type: Literal["learned_positions"] = "learned_positions"
    max_len: PositiveInt = Field(512, description="the number of positions learned (the longest sequence)")


def positions_shape(cfg: SinusoidalPositions | LearnedPositions, x: Shape) -> Shape:
    if len(x) != 2:
        raise ShapeError(f"expects input (length, features) but gets {fmt(x)}",
                         "positions are added to a sequence; an embedding gives (T, d) from token ids")
    return x


def learned_params(cfg: LearnedPositions, x: Shape) -> int:
    return cfg.max_len * x[-1]


def add_flops(cfg: SinusoidalPositions | LearnedPositions, x: Shape) -> int:
    return numel(x)  # one addition per element


def positions_bounds(cfg: SinusoidalPositions | LearnedPositions, x: Shape) -> dict[str, int]:
    """A symbolic length may not pass the table: T <= max_len (T + 1 <= max_len for a length written T+1)."""
    found = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)([+-]\d+)?", x[0]) if isinstance(x[0], str) else None
    return {found.group(1): cfg.max_len - int(found.group(2) or 0)} if found else {}


def build_positions(cfg: SinusoidalPositions | LearnedPositions, x: Shape):
    from udlc.layers.modules.positions import LearnedPositionsModule, SinusoidalPositionsModule

    module = SinusoidalPositionsModule if cfg.type == "sinusoidal_positions" else LearnedPositionsModule
    return module(cfg.max_len, x[-1])


register(SinusoidalPositions, shape=positions_shape, build=build_positions, flops=add_flops, main_arg="max_len",
         bounds=positions_bounds, positions_table="table", reads=EACH,
         samples=[({}, (("T", 16),)), ({"max_len": 64}, ((10, 7),))])
register(LearnedPositions, shape=positions_shape, build=build_positions, params=learned_params, flops=add_flops,
         bounds=positions_bounds, positions_table="weight", reads=EACH,
         tensors=lambda cfg, x: {"weight": (cfg.max_len, x[-1])},
         main_arg="max_len", samples=[({"max_len": 200}, (("T", 8),)), ({}, ((12, 5),))])
