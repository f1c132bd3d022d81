"""The training sections: loss, metrics, optimizer, schedule, train, export."""

from typing import Literal

from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, model_validator

from udlc.spec.base import StrictModel, tagged

# ---- losses -------------------------------------------------------------------------------------


class MSE(StrictModel):
    type: Literal["mse"] = "mse"


class MAE(StrictModel):
    type: Literal["mae"] = "mae"


class Huber(StrictModel):
    type: Literal["huber"] = "huber"
    delta: PositiveFloat = 1.0


class BCE(StrictModel):
    """Binary cross-entropy on logits (the model's last layer has no sigmoid)."""

    type: Literal["bce"] = "bce"
    pos_weight: PositiveFloat | None = None


class CrossEntropy(StrictModel):
    """Multi-class cross-entropy on logits (the model's last layer has no softmax)."""

    type: Literal["cross_entropy"] = "cross_entropy"
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    weight: list[PositiveFloat] | None = Field(None, description="one weight per class")


Loss = tagged(MSE, MAE, Huber, BCE, CrossEntropy, main_args={"huber": "delta", "cross_entropy": "label_smoothing"})
CLASSIFICATION_LOSSES = ("bce", "cross_entropy")

# ---- metrics ------------------------------------------------------------------------------------


class Accuracy(StrictModel):
    type: Literal["accuracy"] = "accuracy"


class TopK(StrictModel):
    type: Literal["top_k"] = "top_k"
    k: PositiveInt = 5


class F1Macro(StrictModel):
    type: Literal["f1_macro"] = "f1_macro"


class MAEMetric(StrictModel):
    type: Literal["mae"] = "mae"


class RMSE(StrictModel):
    type: Literal["rmse"] = "rmse"


class R2(StrictModel):
    type: Literal["r2"] = "r2"


Metric = tagged(Accuracy, TopK, F1Macro, MAEMetric, RMSE, R2, main_args={"top_k": "k"})


def metric_name(metric: StrictModel) -> str:
    """The name a metric is logged under (and monitored by): accuracy, top5_accuracy, f1_macro, …"""
    return f"top{metric.k}_accuracy" if metric.type == "top_k" else metric.type

# ---- optimizers ---------------------------------------------------------------------------------


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


Optimizer = tagged(SGD, Adam, AdamW, RMSprop, main_args={"sgd": "lr", "adam": "lr", "adamw": "lr", "rmsprop": "lr"})

# ---- schedules ----------------------------------------------------------------------------------
# Each multiplies the optimizer's lr by a factor of the step; `warmup_steps` ramps it linearly from
# 0 first. Durations are in epochs unless their name says steps.


class _Schedule(StrictModel):
    warmup_steps: NonNegativeInt = 0


class Constant(_Schedule):
    type: Literal["constant"] = "constant"


class Step(_Schedule):
    type: Literal["step"] = "step"
    step_size: PositiveInt = Field(description="epochs between decays")
    gamma: float = Field(0.1, gt=0, le=1)


class MultiStep(_Schedule):
    type: Literal["multistep"] = "multistep"
    milestones: list[PositiveInt] = Field(min_length=1, description="epochs at which lr is multiplied by gamma")
    gamma: float = Field(0.1, gt=0, le=1)


class Exponential(_Schedule):
    type: Literal["exponential"] = "exponential"
    gamma: float = Field(gt=0, le=1, description="factor per epoch")


class Cosine(_Schedule):
    """Cosine decay from lr to min_lr over the run (after warmup)."""

    type: Literal["cosine"] = "cosine"
    min_lr: NonNegativeFloat = 0.0


class Linear(_Schedule):
    """Linear decay from lr to min_lr over the run (after warmup)."""

    type: Literal["linear"] = "linear"
    min_lr: NonNegativeFloat = 0.0


class Cyclical(_Schedule):
    """Triangular cycles between min_lr and the optimizer's lr."""

    type: Literal["cyclical"] = "cyclical"
    min_lr: NonNegativeFloat = 0.0
    cycle_epochs: PositiveFloat = Field(4, description="epochs per full cycle (up and down)")
    mode: Literal["triangular", "triangular2"] = "triangular"


class OneCycle(_Schedule):
    """Up to max_lr for pct_start of the run, then cosine down to lr / final_div."""

    type: Literal["one_cycle"] = "one_cycle"
    max_lr: PositiveFloat | None = Field(None, description="peak lr (default: 10 x the optimizer's lr)")
    pct_start: float = Field(0.3, gt=0, lt=1)
    final_div: PositiveFloat = 1e4


class Plateau(_Schedule):
    """Multiply lr by factor when the monitored value has not improved for `patience` epochs."""

    type: Literal["plateau"] = "plateau"
    monitor: str = "val_loss"
    factor: float = Field(0.1, gt=0, lt=1)
    patience: NonNegativeInt = 3
    min_lr: NonNegativeFloat = 0.0


Schedule = tagged(Constant, Step, MultiStep, Exponential, Cosine, Linear, Cyclical, OneCycle, Plateau)

# ---- train and export ---------------------------------------------------------------------------


class EarlyStopping(StrictModel):
    monitor: str = "val_loss"
    mode: Literal["auto", "min", "max"] = Field("auto", description="auto: max for accuracy-like metrics, else min")
    patience: PositiveInt = 5
    min_delta: NonNegativeFloat = 0.0
    restore_best: bool = True


class TrainSpec(StrictModel):
    epochs: PositiveInt = 10
    batch_size: PositiveInt = 64
    eval_batch_size: PositiveInt | None = None
    grad_clip: PositiveFloat | None = Field(None, description="clip the global gradient norm to this value")
    grad_accum: PositiveInt = Field(1, description="batches whose gradients are summed before one step")
    early_stopping: EarlyStopping | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16"] = Field("auto", description="auto: bf16 autocast on CUDA, fp32 on CPU")
    deterministic: bool = False
    compile: bool = False


class OnnxExport(StrictModel):
    opset: int = Field(18, ge=18, le=23, description="18 or above: opset 17 writes invalid attention graphs")
    atol: PositiveFloat = 1e-5
    rtol: PositiveFloat = 1e-4


class ExportSpec(StrictModel):
    onnx: OnnxExport | None = None
