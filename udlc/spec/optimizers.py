"""Optimizers: each registered once with its config and its torch.optim class (imported only when built).
Which parameters get weight decay is decided once for all of them, in udlc.trainer.objectives.make_optimizer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal

from pydantic import Field, NonNegativeFloat, PositiveFloat, model_validator

from udlc.spec.base import StrictModel
from udlc.spec.registry import Entry, Registry


@dataclass(frozen=True, kw_only=True)
class OptimizerEntry(Entry):
    # (cfg, param groups) -> torch.optim.Optimizer; lr and weight_decay come from the config unless a group
    # overrides them.
    build: Callable[[Any, list[dict]], Any]


OPTIMIZERS: Registry[OptimizerEntry] = Registry("optimizer")


class _Optimizer(StrictModel):
    lr: PositiveFloat = 1e-3
    weight_decay: NonNegativeFloat = 0.0
    decay_bias_and_norm: bool = Field(
        False, description="also decay biases and normalization weights (off by default, as is common)"
    )


def _torch(cls_name: str, *fields: str) -> Callable[..., Any]:
    """A builder for torch.optim.<cls_name>, passing lr, weight_decay, the named config fields and the trainer's
    options (fused=True on CUDA)."""

    def build(cfg: Any, groups: list[dict], **options: Any) -> Any:
        import torch

        args = {f: getattr(cfg, f) for f in ("lr", "weight_decay", *fields)}
        return getattr(torch.optim, cls_name)(groups, **args, **options)

    return build


class SGD(_Optimizer):
    type: Literal["sgd"] = "sgd"
    lr: PositiveFloat = 0.01
    momentum: float = Field(0.0, ge=0, lt=1)
    nesterov: bool = False
    dampening: float = Field(0.0, ge=0, le=1)

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> "SGD":
        if self.nesterov and (self.momentum == 0 or self.dampening != 0):
            raise ValueError("nesterov needs momentum > 0 and dampening 0")
        return self


class Adam(_Optimizer):
    type: Literal["adam"] = "adam"
    betas: tuple[float, float] = (0.9, 0.999)
    eps: PositiveFloat = 1e-8
    amsgrad: bool = False


class AdamW(Adam):
    type: Literal["adamw"] = "adamw"  # type: ignore[assignment]
    weight_decay: NonNegativeFloat = 0.01


class RMSprop(_Optimizer):
    type: Literal["rmsprop"] = "rmsprop"
    alpha: float = Field(0.99, gt=0, lt=1)
    momentum: float = Field(0.0, ge=0, lt=1)
    eps: PositiveFloat = 1e-8
    centered: bool = False


OPTIMIZERS.register(OptimizerEntry(config=SGD, main_arg="lr", build=_torch("SGD", "momentum", "nesterov", "dampening"),
                                   examples=("sgd", {"sgd": 0.1}, {"sgd": {"momentum": 0.9, "nesterov": True}})))
OPTIMIZERS.register(OptimizerEntry(config=Adam, main_arg="lr", build=_torch("Adam", "betas", "eps", "amsgrad"),
                                   examples=("adam", {"adam": 3e-4})))
OPTIMIZERS.register(OptimizerEntry(config=AdamW, main_arg="lr", build=_torch("AdamW", "betas", "eps", "amsgrad"),
                                   examples=("adamw", {"adamw": {"lr": 1e-3, "weight_decay": 0.1}})))
OPTIMIZERS.register(OptimizerEntry(config=RMSprop, main_arg="lr",
                                   build=_torch("RMSprop", "alpha", "momentum", "eps", "centered"),
                                   examples=("rmsprop", {"rmsprop": {"momentum": 0.9, "centered": True}})))

Optimizer = OPTIMIZERS.union()
