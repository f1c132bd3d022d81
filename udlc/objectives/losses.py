"""The losses' implementations, by the names udlc.spec.losses registers: each builds loss_fn(out, y) -> a scalar
tensor from its config, on the run's device. torch is imported when one is built."""

from __future__ import annotations

from typing import Any, Callable

from udlc.objectives import implements
from udlc.spec.losses import LOSSES

LossFn = Callable[[Any, Any], Any]


def make_loss(cfg: Any, device: Any) -> LossFn:
    """The loss a config names, as a function of (outputs, targets)."""
    return BUILD[cfg.type](cfg, device)


def wide(t: Any) -> Any:
    """A loss's operand in float32 (bf16 autocast outputs widened), or float64 where the run is (train.precision
    fp64): a loss never narrows what it is given."""
    import torch

    return t if t.dtype == torch.float64 else t.float()


def like(y: Any, out: Any) -> Any:
    """Targets of shape (B,) against outputs of shape (B, 1)."""
    return y.unsqueeze(-1) if y.dim() == out.dim() - 1 else y


def _pointwise(name: str, **fixed: str) -> Callable[[Any, Any], LossFn]:
    """A torch.nn.functional loss of (out, y) in float32, with the targets shaped like the outputs; `fixed` maps
    its keyword arguments to the config's fields."""

    def build(cfg: Any, device: Any) -> LossFn:
        import torch.nn.functional as F

        fn = getattr(F, name)
        args = {k: getattr(cfg, v) for k, v in fixed.items()}
        return lambda out, y: fn(wide(out), like(y, out).to(wide(out).dtype), **args)

    return build


def _bce(cfg: Any, device: Any) -> LossFn:
    import torch
    import torch.nn.functional as F

    pos = torch.tensor([cfg.pos_weight], device=device) if cfg.pos_weight else None
    return lambda out, y: F.binary_cross_entropy_with_logits(
        wide(out), like(y, out).to(wide(out).dtype), pos_weight=None if pos is None else pos.to(wide(out).dtype))


def _cross_entropy(cfg: Any, device: Any) -> LossFn:
    import torch
    import torch.nn.functional as F

    weight = torch.tensor(cfg.weight, device=device) if cfg.weight else None
    # Class indices, or class probabilities (targets mixed by mixup or cutmix) as a float matrix.
    return lambda out, y: F.cross_entropy(wide(out), y.to(wide(out).dtype) if y.is_floating_point() else y.long(),
                                          weight=None if weight is None else weight.to(wide(out).dtype),
                                          label_smoothing=cfg.label_smoothing)


BUILD: dict[str, Callable[[Any, Any], LossFn]] = dict(implements(LOSSES, {
    "mse": _pointwise("mse_loss"),
    "mae": _pointwise("l1_loss"),
    "huber": _pointwise("huber_loss", delta="delta"),
    "bce": _bce,
    "cross_entropy": _cross_entropy,
}))
