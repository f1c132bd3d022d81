"""Learning-rate schedules as pure functions of the optimizer step (no torch, so tests are cheap).

Each returns the factor that multiplies the optimizer's lr at a step. Warmup ramps linearly from
1/warmup to 1 over `warmup_steps`; the schedule proper runs over the steps that remain.
"""

from __future__ import annotations

import math
from typing import Any, Callable


def lr_factor(schedule: Any, base_lr: float, steps_per_epoch: int, total_steps: int) -> Callable[[int], float]:
    warmup = schedule.warmup_steps
    span = max(total_steps - warmup, 1)
    main = _MAIN[schedule.type](schedule, base_lr, steps_per_epoch, span)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return main(step - warmup)

    return factor


def _constant(s, base, spe, span):
    return lambda t: 1.0


def _step(s, base, spe, span):
    return lambda t: s.gamma ** ((t // spe) // s.step_size)


def _multistep(s, base, spe, span):
    return lambda t: s.gamma ** sum(1 for m in s.milestones if t // spe >= m)


def _exponential(s, base, spe, span):
    return lambda t: s.gamma ** (t // spe)


def _cosine(s, base, spe, span):
    low = min(s.min_lr / base, 1.0)
    return lambda t: low + (1 - low) * 0.5 * (1 + math.cos(math.pi * min(t / span, 1.0)))


def _linear(s, base, spe, span):
    low = min(s.min_lr / base, 1.0)
    return lambda t: 1 - (1 - low) * min(t / span, 1.0)


def _cyclical(s, base, spe, span):
    low = min(s.min_lr / base, 1.0)
    cycle = max(int(s.cycle_epochs * spe), 2)

    def f(t: int) -> float:
        n, pos = divmod(t, cycle)
        height = 1 - abs(2 * pos / cycle - 1)  # 0 → 1 → 0 over a cycle
        amplitude = (1 - low) * (0.5**n if s.mode == "triangular2" else 1.0)
        return low + amplitude * height

    return f


def _one_cycle(s, base, spe, span):
    peak = (s.max_lr or 10 * base) / base
    start, up = peak / 25, max(int(s.pct_start * span), 1)
    end = start / s.final_div

    def f(t: int) -> float:
        if t < up:
            return start + (peak - start) * t / up
        p = min((t - up) / max(span - up, 1), 1.0)
        return end + (peak - end) * 0.5 * (1 + math.cos(math.pi * p))

    return f


_MAIN = {
    "constant": _constant,
    "step": _step,
    "multistep": _multistep,
    "exponential": _exponential,
    "cosine": _cosine,
    "linear": _linear,
    "cyclical": _cyclical,
    "one_cycle": _one_cycle,
    "plateau": _constant,  # its factor depends on the monitored value: the loop keeps it (see Plateau)
}


class Plateau:
    """Multiplies lr by `factor` when the monitored value stops improving for `patience` epochs."""

    def __init__(self, spec: Any, base_lr: float, mode: str):
        self.spec, self.base_lr, self.mode = spec, base_lr, mode
        self.scale, self.best, self.bad = 1.0, None, 0

    def update(self, value: float) -> None:
        better = self.best is None or (value < self.best if self.mode == "min" else value > self.best)
        if better:
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
