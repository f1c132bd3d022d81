"""Learning-rate schedules: each registered once with its config. Their implementations (the factor of each
optimizer step) are in udlc.objectives.schedules, under the same names.

Durations are in epochs unless their name says steps. `warmup_steps` ramps the factor linearly from
1/warmup to 1 first; the schedule proper runs over the steps that remain.
"""

from typing import Literal

from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt

from udlc.spec.base import StrictModel
from udlc.spec.registry import Entry, Registry

SCHEDULES: Registry[Entry] = Registry("schedule")


class _Schedule(StrictModel):
    warmup_steps: NonNegativeInt = 0


# ---- fixed in epochs: StepLR, MultiStepLR, ExponentialLR stepped once per epoch ------------------


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


SCHEDULES.register(Entry(config=Constant))
SCHEDULES.register(Entry(config=Step, examples=({"step": {"step_size": 2}},)))
SCHEDULES.register(Entry(config=MultiStep, examples=({"multistep": {"milestones": [1, 3], "gamma": 0.5}},)))
SCHEDULES.register(Entry(config=Exponential, examples=({"exponential": {"gamma": 0.9}},)))

# ---- over the run: CosineAnnealingLR, LinearLR with the run's steps as their length --------------


class Cosine(_Schedule):
    """Cosine decay from lr to min_lr over the run (after warmup)."""

    type: Literal["cosine"] = "cosine"
    min_lr: NonNegativeFloat = 0.0


class Linear(_Schedule):
    """Linear decay from lr to min_lr over the run (after warmup)."""

    type: Literal["linear"] = "linear"
    min_lr: NonNegativeFloat = 0.0


SCHEDULES.register(Entry(config=Cosine, examples=("cosine", {"cosine": {"min_lr": 1e-5}})))
SCHEDULES.register(Entry(config=Linear))

# ---- cycles: CyclicLR, OneCycleLR ---------------------------------------------------------------


class Cyclical(_Schedule):
    """Triangular cycles between min_lr and the optimizer's lr."""

    type: Literal["cyclical"] = "cyclical"
    min_lr: NonNegativeFloat = 0.0
    cycle_epochs: PositiveFloat = Field(4, description="epochs per full cycle (up and down)")
    mode: Literal["triangular", "triangular2"] = "triangular"


class OneCycle(_Schedule):
    """torch's OneCycleLR: up from max_lr/25 to max_lr over pct_start of the run, then down to max_lr/25/final_div."""

    type: Literal["one_cycle"] = "one_cycle"
    max_lr: PositiveFloat | None = Field(None, description="peak lr (default: 10 x the optimizer's lr)")
    pct_start: float = Field(0.3, gt=0, lt=1)
    final_div: PositiveFloat = 1e4
    anneal: Literal["cos", "linear"] = Field("cos", description="the shape of both phases")


SCHEDULES.register(Entry(config=Cyclical, examples=("cyclical", {"cyclical": {"cycle_epochs": 2,
                                                                              "mode": "triangular2"}})))
SCHEDULES.register(Entry(config=OneCycle, examples=("one_cycle", {"one_cycle": {"max_lr": 0.1, "anneal": "linear"}})))

# ---- on the monitored value ---------------------------------------------------------------------


class Plateau(_Schedule):
    """Multiply lr by factor when the monitored value has not improved for `patience` epochs."""

    type: Literal["plateau"] = "plateau"
    monitor: str = "val_loss"
    factor: float = Field(0.1, gt=0, lt=1)
    patience: NonNegativeInt = 3
    min_lr: NonNegativeFloat = 0.0


SCHEDULES.register(Entry(config=Plateau, examples=("plateau", {"plateau": {"patience": 1, "factor": 0.5}})))

Schedule = SCHEDULES.union()
