"""Learning-rate schedules: each registered once with its config and its factor, a pure function of the
optimizer step (no torch, so the tests are cheap) that multiplies the optimizer's lr.

Durations are in epochs unless their name says steps. `warmup_steps` ramps the factor linearly from
1/warmup to 1 first; the schedule proper runs over the steps that remain. Where torch.optim.lr_scheduler has
the same schedule, the factor is its definition (the tests compare them step by step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Literal

from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt

from udlc.spec.base import StrictModel
from udlc.spec.registry import Entry, Registry

Factor = Callable[[int], float]


@dataclass(frozen=True, kw_only=True)
class ScheduleEntry(Entry):
    # (cfg, base lr, steps per epoch, steps after warmup) -> the factor of each step after warmup
    factor: Callable[[Any, float, int, int], Factor]


SCHEDULES: Registry[ScheduleEntry] = Registry("schedule")


def lr_factor(schedule: Any, base_lr: float, steps_per_epoch: int, total_steps: int) -> Factor:
    """The factor of the optimizer's lr at each step (0-based) of a run of `total_steps`, warmup included."""
    warmup = schedule.warmup_steps
    main = SCHEDULES[schedule.type].factor(schedule, base_lr, steps_per_epoch, max(total_steps - warmup, 1))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return main(step - warmup)

    return factor


class _Schedule(StrictModel):
    warmup_steps: NonNegativeInt = 0


def _floor(cfg: Any, base: float) -> float:
    """min_lr as a factor of the optimizer's lr (never above it)."""
    return min(cfg.min_lr / base, 1.0)


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


SCHEDULES.register(ScheduleEntry(config=Constant, factor=lambda s, base, spe, span: lambda t: 1.0))
SCHEDULES.register(ScheduleEntry(
    config=Step, factor=lambda s, base, spe, span: lambda t: s.gamma ** ((t // spe) // s.step_size),
    examples=({"step": {"step_size": 2}},)))
SCHEDULES.register(ScheduleEntry(
    config=MultiStep, factor=lambda s, base, spe, span: lambda t: s.gamma ** sum(t // spe >= m for m in s.milestones),
    examples=({"multistep": {"milestones": [1, 3], "gamma": 0.5}},)))
SCHEDULES.register(ScheduleEntry(
    config=Exponential, factor=lambda s, base, spe, span: lambda t: s.gamma ** (t // spe),
    examples=({"exponential": {"gamma": 0.9}},)))

# ---- over the run: CosineAnnealingLR, LinearLR with the run's steps as their length --------------


class Cosine(_Schedule):
    """Cosine decay from lr to min_lr over the run (after warmup)."""

    type: Literal["cosine"] = "cosine"
    min_lr: NonNegativeFloat = 0.0


class Linear(_Schedule):
    """Linear decay from lr to min_lr over the run (after warmup)."""

    type: Literal["linear"] = "linear"
    min_lr: NonNegativeFloat = 0.0


def _cos(start: float, end: float, pct: float) -> float:
    """From start (pct 0) to end (pct 1) along half a cosine."""
    return end + (start - end) * 0.5 * (1 + math.cos(math.pi * pct))


def _lin(start: float, end: float, pct: float) -> float:
    return start + (end - start) * pct


def _decay(anneal: Callable[[float, float, float], float]) -> Callable[[Any, float, int, int], Factor]:
    def factor(s: Any, base: float, spe: int, span: int) -> Factor:
        low = _floor(s, base)
        return lambda t: anneal(1.0, low, min(t / span, 1.0))

    return factor


SCHEDULES.register(ScheduleEntry(config=Cosine, factor=_decay(_cos), examples=("cosine", {"cosine": {"min_lr": 1e-5}})))
SCHEDULES.register(ScheduleEntry(config=Linear, factor=_decay(_lin)))

# ---- cycles: CyclicLR, OneCycleLR ---------------------------------------------------------------


class Cyclical(_Schedule):
    """Triangular cycles between min_lr and the optimizer's lr."""

    type: Literal["cyclical"] = "cyclical"
    min_lr: NonNegativeFloat = 0.0
    cycle_epochs: PositiveFloat = Field(4, description="epochs per full cycle (up and down)")
    mode: Literal["triangular", "triangular2"] = "triangular"


def _cyclical(s: Cyclical, base: float, spe: int, span: int) -> Factor:
    low = _floor(s, base)
    cycle = max(int(s.cycle_epochs * spe), 2)

    def f(t: int) -> float:
        n, pos = divmod(t, cycle)
        height = 1 - abs(2 * pos / cycle - 1)  # 0 → 1 → 0 over a cycle
        amplitude = (1 - low) * (0.5**n if s.mode == "triangular2" else 1.0)  # triangular2 halves each cycle
        return low + amplitude * height

    return f


class OneCycle(_Schedule):
    """torch's OneCycleLR: up from max_lr/25 to max_lr over pct_start of the run, then down to max_lr/25/final_div."""

    type: Literal["one_cycle"] = "one_cycle"
    max_lr: PositiveFloat | None = Field(None, description="peak lr (default: 10 x the optimizer's lr)")
    pct_start: float = Field(0.3, gt=0, lt=1)
    final_div: PositiveFloat = 1e4
    anneal: Literal["cos", "linear"] = Field("cos", description="the shape of both phases")


def _one_cycle(s: OneCycle, base: float, spe: int, span: int) -> Factor:
    anneal = _cos if s.anneal == "cos" else _lin
    peak = (s.max_lr or 10 * base) / base
    start = peak / 25  # OneCycleLR's div_factor
    end = start / s.final_div
    top = s.pct_start * span - 1  # the step at which the peak is reached (fractional, as OneCycleLR has it)
    last = span - 1

    def f(t: int) -> float:
        if t <= top:
            return anneal(start, peak, t / top) if top > 0 else peak  # torch divides by zero when top is 0
        return anneal(peak, end, min((t - top) / (last - top), 1.0))

    return f


SCHEDULES.register(ScheduleEntry(config=Cyclical, factor=_cyclical,
                                 examples=("cyclical", {"cyclical": {"cycle_epochs": 2, "mode": "triangular2"}})))
SCHEDULES.register(ScheduleEntry(config=OneCycle, factor=_one_cycle,
                                 examples=("one_cycle", {"one_cycle": {"max_lr": 0.1, "anneal": "linear"}})))

# ---- on the monitored value ---------------------------------------------------------------------


class Plateau(_Schedule):
    """Multiply lr by factor when the monitored value has not improved for `patience` epochs."""

    type: Literal["plateau"] = "plateau"
    monitor: str = "val_loss"
    factor: float = Field(0.1, gt=0, lt=1)
    patience: NonNegativeInt = 3
    min_lr: NonNegativeFloat = 0.0


class PlateauScale:
    """ReduceLROnPlateau's rule (threshold 0, no cooldown) as a scale the loop multiplies into the factor:
    after more than `patience` epochs without a strict improvement, scale *= factor, down to min_lr."""

    def __init__(self, spec: Any, base_lr: float, mode: str):
        self.spec, self.base_lr, self.mode = spec, base_lr, mode
        self.scale, self.best, self.bad = 1.0, None, 0

    def update(self, value: float) -> None:
        better = self.best is None or (value < self.best if self.mode == "min" else value > self.best)
        if better:  # NaN compares false: it counts as no improvement
            self.best, self.bad = value, 0
            return
        self.bad += 1
        if self.bad > self.spec.patience:
            self.scale = max(self.scale * self.spec.factor, self.spec.min_lr / self.base_lr)
            self.bad = 0

    def state(self) -> dict:
        return {"scale": self.scale, "best": self.best, "bad": self.bad}

    def load(self, state: dict) -> None:
        self.scale, self.best, self.bad = state["scale"], state["best"], state["bad"]


# Its factor is constant: the value it watches is known only between epochs, so the loop keeps a PlateauScale.
SCHEDULES.register(ScheduleEntry(config=Plateau, factor=lambda s, base, spe, span: lambda t: 1.0,
                                 examples=("plateau", {"plateau": {"patience": 1, "factor": 0.5}})))

Schedule = SCHEDULES.union()
