"""The schedules' implementations, by the names udlc.spec.schedules registers: each gives the factor of each
optimizer step, a pure function of the step (no torch, so the tests are cheap) that multiplies the optimizer's
lr. Where torch.optim.lr_scheduler has the same schedule, the factor is its definition (the tests compare them
step by step)."""

from __future__ import annotations

import math
from typing import Any, Callable

from udlc.objectives import implements
from udlc.spec.schedules import SCHEDULES

Factor = Callable[[int], float]
# (cfg, base lr, steps per epoch, steps after warmup) -> the factor of each step after warmup
MakeFactor = Callable[[Any, float, int, int], Factor]


def lr_factor(schedule: Any, base_lr: float, steps_per_epoch: int, total_steps: int) -> Factor:
    """The factor of the optimizer's lr at each step (0-based) of a run of `total_steps`, warmup included."""
    warmup = schedule.warmup_steps
    main = FACTOR[schedule.type](schedule, base_lr, steps_per_epoch, max(total_steps - warmup, 1))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return main(step - warmup)

    return factor


def _floor(cfg: Any, base: float) -> float:
    """min_lr as a factor of the optimizer's lr (never above it)."""
    return min(cfg.min_lr / base, 1.0)


def _constant(s: Any, base: float, spe: int, span: int) -> Factor:
    return lambda t: 1.0


# ---- fixed in epochs: StepLR, MultiStepLR, ExponentialLR stepped once per epoch ------------------


def _step(s: Any, base: float, spe: int, span: int) -> Factor:
    return lambda t: s.gamma ** ((t // spe) // s.step_size)


def _multistep(s: Any, base: float, spe: int, span: int) -> Factor:
    return lambda t: s.gamma ** sum(t // spe >= m for m in s.milestones)


def _exponential(s: Any, base: float, spe: int, span: int) -> Factor:
    return lambda t: s.gamma ** (t // spe)


# ---- over the run: CosineAnnealingLR, LinearLR with the run's steps as their length --------------


def _cos(start: float, end: float, pct: float) -> float:
    """From start (pct 0) to end (pct 1) along half a cosine."""
    return end + (start - end) * 0.5 * (1 + math.cos(math.pi * pct))


def _lin(start: float, end: float, pct: float) -> float:
    return start + (end - start) * pct


def _decay(anneal: Callable[[float, float, float], float]) -> MakeFactor:
    def factor(s: Any, base: float, spe: int, span: int) -> Factor:
        low = _floor(s, base)
        return lambda t: anneal(1.0, low, min(t / span, 1.0))

    return factor


# ---- cycles: CyclicLR, OneCycleLR ---------------------------------------------------------------


def _cyclical(s: Any, base: float, spe: int, span: int) -> Factor:
    low = _floor(s, base)
    cycle = max(int(s.cycle_epochs * spe), 2)

    def f(t: int) -> float:
        n, pos = divmod(t, cycle)
        height = 1 - abs(2 * pos / cycle - 1)  # 0 → 1 → 0 over a cycle
        amplitude = (1 - low) * (0.5**n if s.mode == "triangular2" else 1.0)  # triangular2 halves each cycle
        return low + amplitude * height

    return f


def _one_cycle(s: Any, base: float, spe: int, span: int) -> Factor:
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


# ---- on the monitored value ---------------------------------------------------------------------


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


FACTOR: dict[str, MakeFactor] = dict(implements(SCHEDULES, {
    "constant": _constant,
    "step": _step,
    "multistep": _multistep,
    "exponential": _exponential,
    "cosine": _decay(_cos),
    "linear": _decay(_lin),
    "cyclical": _cyclical,
    "one_cycle": _one_cycle,
    # Its factor is constant: the value it watches is known only between epochs, so the loop keeps a PlateauScale.
    "plateau": _constant,
}))
