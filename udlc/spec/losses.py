"""Losses: each registered once with its config, what targets it takes, the output check and what predict does
with its outputs. Their implementations are in udlc.objectives.losses, under the same names."""

from dataclasses import dataclass
from typing import Any, Callable, Literal

from pydantic import Field, PositiveFloat

from udlc.spec.base import StrictModel
from udlc.spec.registry import Entry, Registry

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Mismatch:
    """Why the model's outputs do not fit the loss and the data; `at` says where to point: the last layer
    ("output") or the spec's `loss` ("loss")."""

    message: str
    hint: str
    at: Literal["output", "loss"] = "output"


@dataclass(frozen=True, kw_only=True)
class LossEntry(Entry):
    # "class": integer class indices; "binary": 0/1; "real": values of the output's shape.
    targets: Literal["class", "binary", "real"]
    # How predict turns outputs into answers: softmax over logits, sigmoid of one logit, or the values as-is.
    answers: Literal["softmax", "sigmoid", "identity"]
    # (cfg, output shape, task, n_classes, target shape) -> Mismatch or None; shapes exclude the batch axis.
    check: Callable[[Any, Shape, str | None, int | None, Shape], Mismatch | None]

    @property
    def classification(self) -> bool:
        return self.targets != "real"


LOSSES: Registry[LossEntry] = Registry("loss")


# ---- regression ---------------------------------------------------------------------------------


def _check_real(cfg: Any, out: Shape, task: str | None, n_classes: int | None, target: Shape) -> Mismatch | None:
    if task == "classification":
        return Mismatch(f"{cfg.type} is a regression loss but the data is classification",
                        "use cross_entropy, or set data.task: regression", at="loss")
    if tuple(out) != tuple(target):
        return Mismatch(f"the targets have shape {tuple(target)} but the model outputs {tuple(out)}",
                        f"end the model with `linear: {target[-1] if target else 1}`")
    return None


class MSE(StrictModel):
    type: Literal["mse"] = "mse"


class MAE(StrictModel):
    type: Literal["mae"] = "mae"


class Huber(StrictModel):
    type: Literal["huber"] = "huber"
    delta: PositiveFloat = 1.0


LOSSES.register(LossEntry(config=MSE, targets="real", answers="identity", check=_check_real))
LOSSES.register(LossEntry(config=MAE, targets="real", answers="identity", check=_check_real))
LOSSES.register(LossEntry(config=Huber, main_arg="delta", targets="real", answers="identity", check=_check_real,
                          examples=("huber", {"huber": 2})))

# ---- classification -----------------------------------------------------------------------------


class BCE(StrictModel):
    """Binary cross-entropy on logits (the model's last layer has no sigmoid)."""

    type: Literal["bce"] = "bce"
    pos_weight: PositiveFloat | None = None


def _check_bce(cfg: Any, out: Shape, task: str | None, n_classes: int | None, target: Shape) -> Mismatch | None:
    if (few := _one_class(n_classes)) is not None:
        return few
    if n_classes not in (None, 2) or tuple(out) != (1,):
        return Mismatch(f"bce needs one logit for two classes: the data has {n_classes} classes, the model outputs "
                        f"{tuple(out)}", "end the model with `linear: 1`, or use cross_entropy for more classes")
    return None


class CrossEntropy(StrictModel):
    """Multi-class cross-entropy on logits (the model's last layer has no softmax)."""

    type: Literal["cross_entropy"] = "cross_entropy"
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    weight: list[PositiveFloat] | None = Field(None, description="one weight per class")


def _one_class(n_classes: int | None) -> Mismatch | None:
    if n_classes is not None and n_classes < 2:
        return Mismatch("the target holds one class: there is nothing to tell apart, and the loss would be 0 from "
                        "the start", "check the target column", at="loss")
    return None


def _check_ce(cfg: Any, out: Shape, task: str | None, n_classes: int | None, target: Shape) -> Mismatch | None:
    if (few := _one_class(n_classes)) is not None:
        return few
    if cfg.weight is not None and n_classes is not None and len(cfg.weight) != n_classes:
        return Mismatch(f"cross_entropy's weight gives {len(cfg.weight)} class weights, and the data has {n_classes} "
                        "classes", f"give one weight per class ({n_classes})", at="loss")
    if len(out) != 1 or out[0] != n_classes:
        return Mismatch(f"cross_entropy needs one logit per class: the data has {n_classes} classes but the model "
                        f"outputs {tuple(out)}", f"end the model with `linear: {n_classes}`")
    return None


LOSSES.register(LossEntry(config=BCE, targets="binary", answers="sigmoid", check=_check_bce,
                          examples=("bce", {"bce": {"pos_weight": 3}})))
LOSSES.register(LossEntry(config=CrossEntropy, main_arg="label_smoothing", targets="class", answers="softmax",
                          check=_check_ce,
                          examples=("cross_entropy", {"cross_entropy": 0.1},
                                    {"cross_entropy": {"weight": [1, 2, 3]}})))

Loss = LOSSES.union()
CLASSIFICATION_LOSSES = tuple(e.name for e in LOSSES if e.classification)
