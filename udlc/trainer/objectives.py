"""Losses, metrics and optimizers: what the spec names, made into torch objects. Each name's implementation
is its registry entry (udlc.spec.losses, .metrics, .optimizers); this module is the trainer's door to them."""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from udlc.spec import metrics as _metrics
from udlc.spec.losses import LOSSES
from udlc.spec.metrics import higher_is_better
from udlc.spec.optimizers import OPTIMIZERS
from udlc.trainer.device import fused

FUSED = ("adam", "adamw", "sgd")  # the optimizers torch has a fused CUDA step for

__all__ = ["make_loss", "predictions", "compute_metrics", "higher_is_better", "make_optimizer"]


def make_loss(spec: Any, device: torch.device) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return LOSSES[spec.type].build(spec, device)


def predictions(out: torch.Tensor, loss_type: str) -> torch.Tensor:
    """Class indices from logits: argmax, or the sign of a single binary logit."""
    return _metrics.predictions(out, LOSSES[loss_type].answers)


def compute_metrics(metrics: list, out: torch.Tensor, y: torch.Tensor, loss_type: str) -> dict[str, float]:
    """Each metric over a whole split's outputs, under its logged name."""
    return _metrics.compute_metrics(metrics, out, y, LOSSES[loss_type].answers)


def make_optimizer(model: nn.Module, spec: Any) -> tuple[torch.optim.Optimizer, str]:
    """The optimizer, and a sentence saying which parameters get weight decay."""
    params = [p for p in model.parameters() if p.requires_grad]
    if spec.weight_decay and not spec.decay_bias_and_norm:
        # Biases and normalization scales (rank < 2) are not decayed: decaying them only hurts.
        decay = [p for p in params if p.dim() >= 2]
        rest = [p for p in params if p.dim() < 2]
        groups: list[dict] = [{"params": decay}, {"params": rest, "weight_decay": 0.0}]
        note = (f"weight decay {spec.weight_decay:g} on {len(decay)} weight tensors, not on {len(rest)} biases and "
                "norm parameters (optimizer.decay_bias_and_norm: true includes them)")
    else:
        groups = [{"params": params}]
        note = f"weight decay {spec.weight_decay:g} on all parameters" if spec.weight_decay else "no weight decay"
    # On CUDA, one fused kernel per step where torch has one (udlc.trainer.device).
    options = fused(params[0].device) if params and spec.type in FUSED else {}
    return OPTIMIZERS[spec.type].build(spec, groups, **options), note
