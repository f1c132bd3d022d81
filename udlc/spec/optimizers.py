"""Optimizers: each registered once with its config. Their implementations (torch.optim's classes) are in
udlc.objectives.optimizers, under the same names."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, NonNegativeFloat, PositiveFloat, model_validator

from udlc.spec.base import StrictModel
from udlc.spec.registry import Entry, Registry


OPTIMIZERS: Registry[Entry] = Registry("optimizer")


class _Optimizer(StrictModel):
    lr: PositiveFloat = 1e-3
    weight_decay: NonNegativeFloat = 0.0
    decay_bias_and_norm: bool = Field(
        False, description="also decay biases and normalization weights (off by default, as is common)"
    )


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


OPTIMIZERS.register(Entry(config=SGD, main_arg="lr",
                          examples=("sgd", {"sgd": 0.1}, {"sgd": {"momentum": 0.9, "nesterov": True}})))
OPTIMIZERS.register(Entry(config=Adam, main_arg="lr", examples=("adam", {"adam": 3e-4})))
OPTIMIZERS.register(Entry(config=AdamW, main_arg="lr",
                          examples=("adamw", {"adamw": {"lr": 1e-3, "weight_decay": 0.1}})))
OPTIMIZERS.register(Entry(config=RMSprop, main_arg="lr",
                          examples=("rmsprop", {"rmsprop": {"momentum": 0.9, "centered": True}})))

Optimizer = OPTIMIZERS.union()
