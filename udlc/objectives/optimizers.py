"""The optimizers' implementations, by the names udlc.spec.optimizers registers: torch.optim's classes, given
lr, weight_decay and the config's own fields. Which parameters get weight decay is decided once for all of them,
in make_optimizer."""

from __future__ import annotations

from typing import Any, Callable

from udlc.objectives import implements
from udlc.spec.optimizers import OPTIMIZERS

FUSED = ("adam", "adamw", "sgd")  # the optimizers torch has a fused CUDA step for


def make_optimizer(model: Any, spec: Any) -> tuple[Any, str]:
    """The optimizer of a model's trainable parameters, and a sentence saying which of them get weight decay."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not hasattr(spec, "weight_decay"):  # L-BFGS: no weight decay, and one parameter group is all it takes
        groups: list[dict] = [{"params": params}]
        note = f"no weight decay ({spec.type} has none)"
    elif spec.weight_decay and not spec.decay_bias_and_norm:
        # Biases and normalization scales (rank < 2) are not decayed: decaying them only hurts.
        decay = [p for p in params if p.dim() >= 2]
        rest = [p for p in params if p.dim() < 2]
        groups = [{"params": decay}, {"params": rest, "weight_decay": 0.0}]
        note = (f"weight decay {spec.weight_decay:g} on {len(decay)} weight tensors, not on {len(rest)} biases and "
                "norm parameters (optimizer.decay_bias_and_norm: true includes them)")
    else:
        groups = [{"params": params}]
        note = f"weight decay {spec.weight_decay:g} on all parameters" if spec.weight_decay else "no weight decay"
    # On CUDA (every parameter there), one fused kernel per step where torch has one.
    on_cuda = bool(params) and params[0].device.type == "cuda"
    options = {"fused": True} if on_cuda and spec.type in FUSED else {}
    return BUILD[spec.type](spec, groups, **options), note


def _torch(cls_name: str, *fields: str) -> Callable[..., Any]:
    """A builder for torch.optim.<cls_name>, passing lr, weight_decay (where the config has one), the named config
    fields and `options` (fused=True on CUDA). A param group's own lr or weight_decay overrides the config's."""

    def build(cfg: Any, groups: list[dict], **options: Any) -> Any:
        import torch

        args = {f: getattr(cfg, f) for f in ("lr", "weight_decay", *fields) if hasattr(cfg, f)}
        return getattr(torch.optim, cls_name)(groups, **args, **options)

    return build


BUILD: dict[str, Callable[..., Any]] = dict(implements(OPTIMIZERS, {
    "sgd": _torch("SGD", "momentum", "nesterov", "dampening"),
    "adam": _torch("Adam", "betas", "eps", "amsgrad"),
    "adamw": _torch("AdamW", "betas", "eps", "amsgrad"),
    "rmsprop": _torch("RMSprop", "alpha", "momentum", "eps", "centered"),
    "adadelta": _torch("Adadelta", "rho", "eps"),
    "adagrad": _torch("Adagrad", "lr_decay", "initial_accumulator_value", "eps"),
    "nadam": _torch("NAdam", "betas", "eps", "momentum_decay", "decoupled_weight_decay"),
    "radam": _torch("RAdam", "betas", "eps", "decoupled_weight_decay"),
    "lbfgs": _torch("LBFGS", "max_iter", "max_eval", "history_size", "line_search_fn", "tolerance_grad",
                    "tolerance_change"),
}))
