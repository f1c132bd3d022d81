"""The whole spec: one pydantic model per top-level section."""

from typing import Literal

from pydantic import Field

from udlc.spec.base import StrictModel
from udlc.spec.data import DataSpec
from udlc.spec.model import ModelSpec
from udlc.spec.training import Adam, Constant, ExportSpec, Loss, Metric, Optimizer, Schedule, TrainSpec

SPEC_VERSION = 1


class Spec(StrictModel):
    udlc: Literal[1] = Field(description="spec language version")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100, description="names the run folder")
    seed: int = Field(0, ge=0, lt=2**32)
    data: DataSpec
    model: ModelSpec
    loss: Loss  # type: ignore[valid-type]
    metrics: list[Metric] = Field(default_factory=list)  # type: ignore[valid-type]
    optimizer: Optimizer = Field(default_factory=Adam)  # type: ignore[valid-type]
    schedule: Schedule = Field(default_factory=Constant)  # type: ignore[valid-type]
    train: TrainSpec = Field(default_factory=TrainSpec)
    export: ExportSpec = Field(default_factory=ExportSpec)
