"""Modules of the absolute positions (udlc.layers.positions): a table of max_len rows, sliced to the input's
length and added."""

import math

import torch
from torch import nn


def sinusoid_table(max_len: int, d: int):
    """The Vaswani table (max_len, d); an odd d ends with a sine column."""
    position = torch.arange(max_len, dtype=torch.float64)[:, None]
    rate = torch.exp(torch.arange(0, d, 2, dtype=torch.float64) * (-math.log(10000.0) / d))
    table = torch.zeros(max_len, d, dtype=torch.float64)
    table[:, 0::2] = torch.sin(position * rate)
    table[:, 1::2] = torch.cos(position * rate[: d // 2])
    return table.float()  # computed in float64 so that far positions keep their precision


def add_positions(x, table):
    length = x.shape[1]
    # Under export this becomes the bound T <= max_len, so slicing cannot silently give fewer rows.
    torch._check(length <= table.shape[0],
                 lambda: f"the sequence has {length} positions, more than max_len {table.shape[0]}")
    return x + table[:length]


class SinusoidalPositionsModule(nn.Module):
    """(B, T, d) plus the fixed sinusoids of positions 0..T-1 (`table`)."""

    def __init__(self, max_len: int, d: int):
        super().__init__()
        # A buffer, not persistent: it is a function of the config, so checkpoints need not carry it.
        self.register_buffer("table", sinusoid_table(max_len, d), persistent=False)

    def forward(self, x):
        return add_positions(x, self.table)

    def extra_repr(self) -> str:
        return f"max_len={self.table.shape[0]}, features={self.table.shape[1]}"


class LearnedPositionsModule(nn.Module):
    """(B, T, d) plus the learned vectors of positions 0..T-1 (`weight`)."""

    def __init__(self, max_len: int, d: int):
        super().__init__()
        # Named `weight` so that a spec's `init` applies to it as to an embedding's table; by default
        # N(0, 0.02) as BERT and GPT-2 start theirs, small beside the token embeddings they are added to.
        self.weight = nn.Parameter(torch.randn(max_len, d) * 0.02)

    def forward(self, x):
        return add_positions(x, self.weight)

    def extra_repr(self) -> str:
        return f"max_len={self.weight.shape[0]}, features={self.weight.shape[1]}"
