"""Forecasting with feedback (task: {forecasting: {feedback: true}}): a network that predicts the next value
at every step of a series, run on the past values, its last prediction appended as the next input, and again,
`horizon` times — PyTorch's time_sequence_prediction's `future` steps, trained through the loop here.

Each step runs the network on the whole sequence so far. For a causal network (cells, one-way recurrent
layers, causal attention) that gives the states that carrying them along would: the prefix is unchanged, so
its states are. It costs the prefix again at each step (T + 1, ..., T + horizon steps in all), which is what
lets any causal network take part, cells or not; the exported file is this loop unrolled, `horizon` copies of
the network (bench/feedback_speed.py measures it against an ONNX Loop: it serves as fast or a few per cent
faster; the Loop's file is smaller and quicker to export at long horizons).
"""

from __future__ import annotations

import torch
from torch import nn


def feed_back(network: nn.Module, x: torch.Tensor, horizon: int) -> torch.Tensor:
    """x: (B, T, 1) or (B, T) past values; the network's (B, T, 1) or (B, T) one-step predictions. Returns the
    `horizon` values that follow, (B, horizon), each predicted from the past and the predictions before it."""
    seq, made = x, []
    for _ in range(horizon):
        out = network(seq)
        out = out[0] if isinstance(out, tuple) else out
        step = out[:, -1:]  # the prediction after the last step
        made.append(step)
        seq = torch.cat([seq, step.to(seq.dtype)], dim=1)
    return torch.cat(made, dim=1).reshape(x.shape[0], horizon)


class Feedback(nn.Module):
    """The network inside the feedback loop: what the exporter serves, past values in, the horizon's out."""

    def __init__(self, network: nn.Module, horizon: int):
        super().__init__()
        self.network, self.horizon = network, horizon

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return feed_back(self.network, x, self.horizon)

    def extra_repr(self) -> str:
        return f"horizon={self.horizon}"
