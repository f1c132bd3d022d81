"""Losses, metrics and optimizers: what the spec names, made into torch objects."""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from udlc.spec.training import metric_name


def higher_is_better(logged: str) -> bool:
    """For a logged value (val_accuracy, val_top5_accuracy, train_loss, …): is a larger one an improvement?"""
    return logged.endswith(("accuracy", "f1_macro", "r2"))


def make_loss(spec: Any, device: torch.device) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    t = spec.type
    if t == "cross_entropy":
        weight = torch.tensor(spec.weight, device=device) if spec.weight else None
        return lambda out, y: F.cross_entropy(out.float(), y, weight=weight, label_smoothing=spec.label_smoothing)
    if t == "bce":
        pos = torch.tensor([spec.pos_weight], device=device) if spec.pos_weight else None
        return lambda out, y: F.binary_cross_entropy_with_logits(
            out.float(), _like(y, out).float(), pos_weight=pos)
    if t == "mse":
        return lambda out, y: F.mse_loss(out.float(), _like(y, out))
    if t == "mae":
        return lambda out, y: F.l1_loss(out.float(), _like(y, out))
    if t == "huber":
        return lambda out, y: F.huber_loss(out.float(), _like(y, out), delta=spec.delta)
    raise AssertionError(f"unregistered loss {t}")  # the spec model admits only the above


def _like(y: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Targets of shape (B,) against outputs of shape (B, 1)."""
    return y.unsqueeze(-1) if y.dim() == out.dim() - 1 else y


def predictions(out: torch.Tensor, loss_type: str) -> torch.Tensor:
    """Class indices from logits: argmax, or the sign of a single binary logit."""
    if loss_type == "bce" and out.shape[-1] == 1:
        return (out[..., 0] > 0).long()
    return out.argmax(dim=-1)


def compute_metrics(metrics: list, out: torch.Tensor, y: torch.Tensor, loss_type: str) -> dict[str, float]:
    results: dict[str, float] = {}
    out = out.float()
    for m in metrics:
        name = metric_name(m)
        if m.type == "accuracy":
            results[name] = (predictions(out, loss_type) == y.view(-1).long()).float().mean().item()
        elif m.type == "top_k":
            k = min(m.k, out.shape[-1])
            results[name] = (out.topk(k, dim=-1).indices == y.view(-1, 1)).any(-1).float().mean().item()
        elif m.type == "f1_macro":
            results[name] = _f1_macro(predictions(out, loss_type), y.view(-1).long(), max(out.shape[-1], 2))
        else:
            err = out - _like(y, out).float()
            if m.type == "mae":
                results[name] = err.abs().mean().item()
            elif m.type == "rmse":
                results[name] = err.pow(2).mean().sqrt().item()
            elif m.type == "r2":
                target = _like(y, out).float()
                total = (target - target.mean(0)).pow(2).sum()
                results[name] = (1 - err.pow(2).sum() / total.clamp_min(1e-12)).item()
    return results


def _f1_macro(pred: torch.Tensor, y: torch.Tensor, n: int) -> float:
    confusion = torch.bincount(y * n + pred, minlength=n * n).reshape(n, n).float()
    tp = confusion.diag()
    precision = tp / confusion.sum(0).clamp_min(1)
    recall = tp / confusion.sum(1).clamp_min(1)
    f1 = 2 * precision * recall / (precision + recall).clamp_min(1e-12)
    present = confusion.sum(1) > 0  # classes absent from this split do not count
    return f1[present].mean().item()


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
    common = {"lr": spec.lr, "weight_decay": spec.weight_decay}
    t = spec.type
    if t == "sgd":
        opt = torch.optim.SGD(groups, momentum=spec.momentum, nesterov=spec.nesterov, dampening=spec.dampening,
                              **common)
    elif t in ("adam", "adamw"):
        cls = torch.optim.AdamW if t == "adamw" else torch.optim.Adam
        opt = cls(groups, betas=spec.betas, eps=spec.eps, amsgrad=spec.amsgrad, **common)
    elif t == "rmsprop":
        opt = torch.optim.RMSprop(groups, alpha=spec.alpha, momentum=spec.momentum, eps=spec.eps,
                                  centered=spec.centered, **common)
    else:  # pragma: no cover - the spec model admits only the above
        raise AssertionError(t)
    return opt, note
