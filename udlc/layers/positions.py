"""Absolute positions added to a sequence (T, d): the fixed sinusoidal table of Vaswani et al. (2017), or a
learned table (BERT, GPT-2). Each table holds `max_len` positions and is sliced to the input's length inside
forward, so one exported file takes any length up to max_len; a longer input is refused when it runs (a shape
rule only sees sizes, so it cannot tell a fixed length from a symbol's probe size)."""

import functools
import math
import re
from typing import Literal

from pydantic import Field, PositiveInt

from udlc.layers.registry import LayerConfig, Shape, ShapeError, fmt, numel, register


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


def sinusoid_table(max_len: int, d: int):
    """The Vaswani table (max_len, d); an odd d ends with a sine column."""
    import torch

    position = torch.arange(max_len, dtype=torch.float64)[:, None]
    rate = torch.exp(torch.arange(0, d, 2, dtype=torch.float64) * (-math.log(10000.0) / d))
    table = torch.zeros(max_len, d, dtype=torch.float64)
    table[:, 0::2] = torch.sin(position * rate)
    table[:, 1::2] = torch.cos(position * rate[: d // 2])
    return table.float()  # computed in float64 so that far positions keep their precision


@functools.cache
def torch_modules():
    """Modules defined on first use, so that importing this file never imports torch."""
    import torch
    from torch import nn

    def add_positions(x, table):
        length = x.shape[1]
        # Under export this becomes the bound T <= max_len, so slicing cannot silently give fewer rows.
        torch._check(length <= table.shape[0],
                     lambda: f"the sequence has {length} positions, more than max_len {table.shape[0]}")
        return x + table[:length]

    class SinusoidalPositionsModule(nn.Module):
        def __init__(self, max_len: int, d: int):
            super().__init__()
            # A buffer, not persistent: it is a function of the config, so checkpoints need not carry it.
            self.register_buffer("table", sinusoid_table(max_len, d), persistent=False)

        def forward(self, x):
            return add_positions(x, self.table)

        def extra_repr(self) -> str:
            return f"max_len={self.table.shape[0]}, features={self.table.shape[1]}"

    class LearnedPositionsModule(nn.Module):
        def __init__(self, max_len: int, d: int):
            super().__init__()
            # Named `weight` so that a spec's `init` applies to it as to an embedding's table; by default
            # N(0, 0.02) as BERT and GPT-2 start theirs, small beside the token embeddings they are added to.
            self.weight = nn.Parameter(torch.randn(max_len, d) * 0.02)

        def forward(self, x):
            return add_positions(x, self.weight)

        def extra_repr(self) -> str:
            return f"max_len={self.weight.shape[0]}, features={self.weight.shape[1]}"

    return {"sinusoidal_positions": SinusoidalPositionsModule, "learned_positions": LearnedPositionsModule}


def positions_bounds(cfg: SinusoidalPositions | LearnedPositions, x: Shape) -> dict[str, int]:
    """A symbolic length may not pass the table: T <= max_len (T + 1 <= max_len for a length written T+1)."""
    found = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)([+-]\d+)?", x[0]) if isinstance(x[0], str) else None
    return {found.group(1): cfg.max_len - int(found.group(2) or 0)} if found else {}


def build_positions(cfg: SinusoidalPositions | LearnedPositions, x: Shape):
    return torch_modules()[cfg.type](cfg.max_len, x[-1])


register(SinusoidalPositions, shape=positions_shape, build=build_positions, flops=add_flops, main_arg="max_len",
         bounds=positions_bounds,
         samples=[({}, (("T", 16),)), ({"max_len": 64}, ((10, 7),))])
register(LearnedPositions, shape=positions_shape, build=build_positions, params=learned_params, flops=add_flops,
         bounds=positions_bounds,
         main_arg="max_len", samples=[({"max_len": 200}, (("T", 8),)), ({}, ((12, 5),))])
