"""Optimizers: each registered once with its config. Their implementations (torch.optim's classes) are in
udlc.objectives.optimizers, under the same names."""

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt, model_validator

from udlc.errors import SpecError
from udlc.spec.base import StrictModel
from udlc.spec.finetune import ParamGroup
from udlc.spec.registry import Entry, Registry


@dataclass(frozen=True, kw_only=True)
class OptimizerEntry(Entry):
    """`closure`: the optimizer's step re-evaluates the loss itself (`optimizer.step(closure)`, as L-BFGS's line
    search does), so the loop hands it a function that recomputes the batch's loss, and `check` refuses what
    cannot be recomputed (check_closure_optimizers)."""

    closure: bool = False


OPTIMIZERS: Registry[OptimizerEntry] = Registry("optimizer")

Beta = Annotated[float, Field(ge=0, lt=1)]


class _Optimizer(StrictModel):
    lr: PositiveFloat = 1e-3
    weight_decay: NonNegativeFloat = 0.0
    decay_bias_and_norm: bool = Field(
        False, description="also decay biases and normalization weights (off by default, as is common)"
    )
    groups: list[ParamGroup] = Field(default_factory=list, description=(
        "learning rates and weight decays of their own for the layers each group's patterns name (`match`); "
        "the first group naming a layer sets it, the others keep this optimizer's"))
    layer_decay: float | None = Field(None, gt=0, lt=1, description=(
        "layer-wise learning-rate decay: the network's layers with weights, in node order, where each top-level "
        "layer is one layer and each use of a block one layer (a block with repeat: 4 is four, a stage of blocks "
        "one); the last layer trains at the lr (its group's, where one names it), each earlier one at "
        "layer_decay times the one after it"))


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
    betas: tuple[Beta, Beta] = (0.9, 0.999)
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


class Adadelta(_Optimizer):
    """torch.optim.Adadelta: its lr scales the step, 1.0 (Zeiler's method as published) by default."""

    type: Literal["adadelta"] = "adadelta"
    lr: PositiveFloat = 1.0
    rho: float = Field(0.9, ge=0, le=1, description="decay of the running averages of squared gradients and steps")
    eps: PositiveFloat = 1e-6


class Adagrad(_Optimizer):
    type: Literal["adagrad"] = "adagrad"
    lr: PositiveFloat = 0.01
    lr_decay: NonNegativeFloat = Field(0.0, description="the lr at step t is lr / (1 + (t - 1) * lr_decay)")
    initial_accumulator_value: NonNegativeFloat = 0.0
    eps: PositiveFloat = 1e-10


class NAdam(_Optimizer):
    """torch.optim.NAdam: Adam with Nesterov momentum."""

    type: Literal["nadam"] = "nadam"
    lr: PositiveFloat = 2e-3
    betas: tuple[Beta, Beta] = (0.9, 0.999)
    eps: PositiveFloat = 1e-8
    momentum_decay: NonNegativeFloat = Field(4e-3, description="psi, the decay of the momentum's schedule")
    decoupled_weight_decay: bool = Field(False, description="decay the weights directly, as AdamW does, rather "
                                                            "than through the gradient")


class RAdam(_Optimizer):
    """torch.optim.RAdam: Adam with the variance of its adaptive lr rectified (no warmup needed)."""

    type: Literal["radam"] = "radam"
    betas: tuple[Beta, Beta] = (0.9, 0.999)
    eps: PositiveFloat = 1e-8
    decoupled_weight_decay: bool = Field(False, description="decay the weights directly, as AdamW does, rather "
                                                            "than through the gradient")


class LBFGS(StrictModel):
    """torch.optim.LBFGS. It has no weight decay (torch's has none), so no weight_decay field."""

    type: Literal["lbfgs"] = "lbfgs"
    lr: PositiveFloat = Field(1.0, description="the step length (1: the quasi-Newton step, which a line search "
                                               "then adjusts)")
    max_iter: PositiveInt = Field(20, description="L-BFGS iterations in one step (one batch)")
    max_eval: PositiveInt | None = Field(None, description="loss evaluations in one step; default max_iter * 5 // 4, "
                                                           "as torch's")
    history_size: PositiveInt = Field(100, description="the curvature pairs kept")
    line_search_fn: Literal["strong_wolfe"] | None = Field(
        None, description="strong_wolfe: a line search each iteration (recommended); null: fixed steps of lr")
    tolerance_grad: NonNegativeFloat = Field(1e-7, description="stop a step once the largest gradient entry is "
                                                               "below this")
    tolerance_change: NonNegativeFloat = Field(1e-9, description="stop a step once the loss or the parameters "
                                                                 "change by less than this")

    @model_validator(mode="before")
    @classmethod
    def _max_eval_default(cls, data: Any) -> Any:
        """torch's default spelled out, so the config says what the optimizer does (and `udlc check` shows it)."""
        if isinstance(data, dict) and data.get("max_eval") is None:
            max_iter = data.get("max_iter", 20)
            if isinstance(max_iter, int) and not isinstance(max_iter, bool) and max_iter > 0:
                data = {**data, "max_eval": max_iter * 5 // 4}
        return data

    @model_validator(mode="after")
    def _evaluations_cover_iterations(self) -> "LBFGS":
        if self.max_eval is not None and self.max_eval < self.max_iter:
            raise ValueError(f"max_eval ({self.max_eval}) must be at least max_iter ({self.max_iter}): each "
                             "iteration evaluates the loss at least once")
        return self


OPTIMIZERS.register(OptimizerEntry(config=SGD, main_arg="lr",
                                   examples=("sgd", {"sgd": 0.1}, {"sgd": {"momentum": 0.9, "nesterov": True}})))
OPTIMIZERS.register(OptimizerEntry(config=Adam, main_arg="lr", examples=("adam", {"adam": 3e-4})))
OPTIMIZERS.register(OptimizerEntry(config=AdamW, main_arg="lr",
                                   examples=("adamw", {"adamw": {"lr": 1e-3, "weight_decay": 0.1}})))
OPTIMIZERS.register(OptimizerEntry(config=RMSprop, main_arg="lr",
                                   examples=("rmsprop", {"rmsprop": {"momentum": 0.9, "centered": True}})))

OPTIMIZERS.register(OptimizerEntry(config=Adadelta, main_arg="lr",
                                   examples=("adadelta", {"adadelta": {"rho": 0.95, "weight_decay": 1e-4}})))
OPTIMIZERS.register(OptimizerEntry(config=Adagrad, main_arg="lr",
                                   examples=("adagrad", {"adagrad": {"lr": 0.05, "lr_decay": 1e-3,
                                                                     "initial_accumulator_value": 0.1}})))
OPTIMIZERS.register(OptimizerEntry(config=NAdam, main_arg="lr",
                                   examples=("nadam", {"nadam": {"betas": [0.9, 0.99], "momentum_decay": 0.01}},
                                             {"nadam": {"weight_decay": 0.01, "decoupled_weight_decay": True}})))
OPTIMIZERS.register(OptimizerEntry(config=RAdam, main_arg="lr",
                                   examples=("radam", {"radam": {"weight_decay": 0.01,
                                                                 "decoupled_weight_decay": True}})))
OPTIMIZERS.register(OptimizerEntry(config=LBFGS, main_arg="lr", closure=True,
                                   examples=("lbfgs", {"lbfgs": {"line_search_fn": "strong_wolfe",
                                                                 "history_size": 10, "max_iter": 5}})))

Optimizer = OPTIMIZERS.union()


def check_closure_optimizers(spec: Any, doc: Any) -> list[SpecError]:
    """An optimizer that re-evaluates the loss (L-BFGS) steps one network on one batch, recomputed as often as
    its line search asks: refused with gradient accumulation (one step would span several batches) and in a
    spec of several networks (a GAN's or a VAE's losses cross networks, so one network's closure cannot recompute
    its loss alone), and with gradient clipping (the line search would follow a gradient that is not the loss's).
    The task check (udlc.tasks.check) runs it beside its other cross-section checks."""
    errors = []
    for network in spec.networks:
        opt = spec.optimizer_of(network)
        if not OPTIMIZERS[opt.type].closure:
            continue
        where = ("optimizers", network) if network in (spec.optimizers or {}) else ("optimizer",)
        dotted = ".".join(where)
        if len(spec.networks) > 1:
            errors.append(SpecError(
                f"{opt.type} re-evaluates the loss of one network, and this spec trains {len(spec.networks)} "
                f"({', '.join(spec.networks)}) whose losses depend on each other", path=dotted, span=doc.span(where),
                hint="use adam (or another first-order optimizer) here"))
        elif spec.train.grad_accum > 1:
            errors.append(SpecError(
                f"{opt.type} re-evaluates one batch's loss in its step, so it cannot sum gradients over "
                f"{spec.train.grad_accum} batches", path="train.grad_accum",
                span=doc.span(("train", "grad_accum")),
                hint="drop grad_accum and raise train.batch_size instead (L-BFGS wants the whole training set in "
                     "one batch)"))
        elif spec.train.grad_clip is not None:
            errors.append(SpecError(
                f"{opt.type}'s line search needs the gradient of the loss it measures, and train.grad_clip would "
                "scale it", path="train.grad_clip", span=doc.span(("train", "grad_clip")),
                hint="drop grad_clip (a line search already bounds the step)"))
    return errors
