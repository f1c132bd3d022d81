"""The training sections: loss, metrics, optimizer, schedule, train, export.

Losses, metrics, optimizers and schedules live in their registries (udlc.spec.losses, .metrics, .optimizers,
.schedules), one entry per name; their configs and unions are re-exported here for the code that imports them
from this module.
"""

from typing import Literal

from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt, model_validator

from udlc.spec.base import StrictModel
from udlc.spec.losses import BCE, CLASSIFICATION_LOSSES, LOSSES, MAE, MSE, CrossEntropy, Huber, Loss
from udlc.spec.metrics import METRICS, R2, RMSE, Accuracy, F1Macro, MAEMetric, Metric, TopK, metric_name
from udlc.spec.optimizers import (
    LBFGS,
    OPTIMIZERS,
    SGD,
    Adadelta,
    Adagrad,
    Adam,
    AdamW,
    NAdam,
    Optimizer,
    RAdam,
    RMSprop,
)
from udlc.spec.schedules import (
    SCHEDULES,
    Constant,
    Cosine,
    Cyclical,
    Exponential,
    Linear,
    MultiStep,
    OneCycle,
    Plateau,
    Schedule,
    Step,
)

__all__ = [
    "LOSSES", "METRICS", "OPTIMIZERS", "SCHEDULES", "CLASSIFICATION_LOSSES", "metric_name",
    "Loss", "Metric", "Optimizer", "Schedule",
    "MSE", "MAE", "Huber", "BCE", "CrossEntropy",
    "Accuracy", "TopK", "F1Macro", "MAEMetric", "RMSE", "R2",
    "SGD", "Adam", "AdamW", "RMSprop", "Adadelta", "Adagrad", "NAdam", "RAdam", "LBFGS",
    "Constant", "Step", "MultiStep", "Exponential", "Cosine", "Linear", "Cyclical", "OneCycle", "Plateau",
    "EarlyStopping", "Unfreeze", "TrainSpec", "OnnxExport", "ExportSpec",
]

# ---- train and export ---------------------------------------------------------------------------


class EarlyStopping(StrictModel):
    monitor: str = "val_loss"
    mode: Literal["auto", "min", "max"] = Field("auto", description="auto: max for accuracy-like metrics, else min")
    patience: PositiveInt = 5
    min_delta: NonNegativeFloat = 0.0
    restore_best: bool = True


class Unfreeze(StrictModel):
    epoch: int = Field(ge=2, description="the first epoch (counting from 1) in which these layers train")
    layers: list[str] = Field(min_length=1, description="layers of train.freeze, by node name as `udlc summary` "
                                                        "shows it; * and ? match any characters")


class TrainSpec(StrictModel):
    seed: int | None = Field(None, ge=0, lt=2**32, description=(
        "the seed of the networks' initialization, the batch order, dropout and augmentation; default the spec's "
        "`seed`, which also draws a generated data set and the split (`udlc train --seeds` varies this one)"))
    epochs: PositiveInt = 10
    batch_size: PositiveInt = 64
    eval_batch_size: PositiveInt | None = None
    grad_clip: PositiveFloat | None = Field(None, description="clip the global gradient norm to this value")
    grad_accum: PositiveInt = Field(1, description="batches whose gradients are summed before one step")
    early_stopping: EarlyStopping | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp64"] = Field("auto", description=(
        "auto: bf16 autocast on CUDA, fp32 on CPU; fp64: the networks, their inputs and the optimizer state in "
        "float64 (the exported ONNX stays float32, what servers and clients feed)"))
    deterministic: bool = False
    compile: bool = False
    strategy: Literal["ddp", "fsdp"] = Field(
        "ddp", description="on several processes (torchrun, --devices): ddp keeps a whole copy of the model in each; "
                           "fsdp shards parameters, gradients and optimizer state between them (FSDP2)")
    memory_format: Literal["auto", "contiguous", "channels_last"] = Field(
        "auto", description="channels_last: convolution weights (and so their outputs) stored channels last, "
                            "which GPU tensor cores and oneDNN favour; auto: channels_last on CUDA for 2-D "
                            "convolutions, contiguous otherwise")
    freeze: list[str] = Field(default_factory=list, description=(
        "layers whose weights stay as they start (from --init-from when fine-tuning), by node name as `udlc "
        "summary` shows it; * and ? match any characters (layer1_* freezes a stage)"))
    unfreeze: list[Unfreeze] = Field(default_factory=list, description=(
        "gradual unfreezing: layers of train.freeze that train from a later epoch on, as [{epoch: 3, layers: "
        "[layer4_*]}, {epoch: 5, layers: [layer3_*]}] (the optimizer holds them from the start, without a "
        "gradient until then, so a resumed run unfreezes exactly as an uninterrupted one)"))
    checkpoint_seconds: NonNegativeFloat = Field(
        30, description="write checkpoints/last (and best) after the first epoch, then at most this often, and "
                        "at the end; 0: after every epoch. A killed run resumes from the last one written")

    @model_validator(mode="after")
    def _fp64_unsharded(self) -> "TrainSpec":
        if self.precision == "fp64" and self.strategy == "fsdp":
            raise ValueError("precision fp64 is for one process or ddp: fsdp shards the networks before they would "
                             "be widened to float64 — use strategy: ddp, or precision: fp32")
        return self


class OnnxExport(StrictModel):
    opset: int = Field(18, ge=18, le=23, description="18 or above: opset 17 writes invalid attention graphs")
    atol: PositiveFloat = 1e-5
    rtol: PositiveFloat = 1e-4


class ExportSpec(StrictModel):
    onnx: OnnxExport | None = None
