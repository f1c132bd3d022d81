"""`udlc lr-find SPEC`: the learning-rate range test. The spec's networks train from their fresh init while the
learning rate grows exponentially every step; the loss, smoothed, falls, flattens and then blows up. The
suggestion is where it fell fastest (steepest descent of the smoothed loss against log lr) before the
divergence — the textbook's "highest stable learning rate" is about ten times that."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TYPE_CHECKING

from udlc.errors import UdlcError

if TYPE_CHECKING:  # annotations only: the check path imports no more than it needs
    from udlc.compiler.pipeline import Compiled

SMOOTHING = 0.95  # the loss's exponential moving average (bias-corrected): one batch's noise is not a trend
# The sweep stops once the smoothed loss passes 4× its lowest value, or is clearly worse than at the start.
DIVERGED, WORSE = 4.0, 1.25


@dataclass
class Sweep:
    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)  # as measured, one batch each
    smoothed: list[float] = field(default_factory=list)
    diverged_at: float | None = None  # the lr where the loss blew up (None: it never did within the range)
    suggestion: float | None = None
    highest_stable: float | None = None  # the lr where the smoothed loss was lowest: past it, the loss climbs
    seconds: float = 0.0

    def summary(self) -> str:
        if self.suggestion is None:
            return (f"no suggestion: the smoothed loss never fell over {len(self.lrs)} steps from "
                    f"{self.lrs[0]:.1e} to {self.lrs[-1]:.1e} — check that the model can learn at all "
                    "(udlc doctor's overfit-one-batch)")
        low = min(self.smoothed)
        where = (f"the loss diverged from lr {self.diverged_at:.1e}" if self.diverged_at is not None
                 else f"it did not diverge up to {self.lrs[-1]:.1e}")
        return (f"suggested lr {self.suggestion:.1e} (steepest descent of the smoothed loss; {where}); highest "
                f"stable lr {self.highest_stable:.1e} (the lowest loss, {low:.4g}: above it the loss climbs) — set "
                "optimizer.lr between them")

    def to_json(self) -> dict[str, Any]:
        return {"suggestion": self.suggestion, "highest_stable": self.highest_stable, "diverged_at": self.diverged_at, "lrs": self.lrs,
                "losses": self.losses, "smoothed": self.smoothed}


def lr_find(compiled: Compiled, data: Any = None, start: float = 1e-7, end: float = 10.0, steps: int = 100,
            seconds: float = 60.0) -> Sweep:
    """Sweep lr from `start` to `end` over at most `steps` steps (and `seconds`), stopping at divergence."""
    from udlc.trainer.debug import TrainingDiverged
    from udlc.guide.probe import endless, loss_of, probe_setup, set_lr

    if not 0 < start < end:
        raise UdlcError(f"the sweep runs from a smaller lr to a larger one (got {start:g} to {end:g})")
    data = compiled.task.load_data(compiled) if data is None else data
    s = probe_setup(compiled, data)
    sweep, began = Sweep(), time.perf_counter()
    average, low = 0.0, math.inf
    batches = endless(s)
    for i in range(steps):
        lr = start * (end / start) ** (i / max(steps - 1, 1))
        set_lr(s, lr)
        try:
            values, _ = s.train_step(next(batches))
        except TrainingDiverged:  # a non-finite loss: the sweep has found the end of the stable range
            sweep.diverged_at = lr
            break
        if "loss" not in values:
            raise UdlcError(f"lr-find follows one loss, and task {s.task.name} trains several against each other "
                            f"({', '.join(values)}): tune each optimizer's lr with `udlc tune` instead")
        loss = loss_of(values)
        average = SMOOTHING * average + (1 - SMOOTHING) * loss
        smooth = average / (1 - SMOOTHING ** (i + 1))
        sweep.lrs.append(lr)
        sweep.losses.append(loss)
        sweep.smoothed.append(smooth)
        low = min(low, smooth)
        if i > 5 and smooth > min(DIVERGED * low, WORSE * sweep.smoothed[0]):
            sweep.diverged_at = lr
            break
        if time.perf_counter() - began > seconds:
            break
    sweep.seconds = time.perf_counter() - began
    if len(sweep.lrs) < 3:
        raise UdlcError(f"the loss diverged within {len(sweep.lrs)} steps from lr {start:g}: start the sweep "
                        "lower, or look for the fault with `udlc doctor`")
    sweep.suggestion = steepest(sweep.lrs, sweep.smoothed)
    sweep.highest_stable = sweep.lrs[sweep.smoothed.index(min(sweep.smoothed))]
    return sweep


def steepest(lrs: list[float], smoothed: list[float]) -> float | None:
    """The lr where the smoothed loss falls fastest against log lr, before its lowest point; None if it never
    falls. The first few steps are skipped: the moving average is still settling there."""
    import numpy as np

    end = int(np.argmin(smoothed))
    skip = min(len(lrs) // 10, max(end - 2, 0))
    if end - skip < 2:
        return None
    slope = np.gradient(np.asarray(smoothed[skip:end + 1]), np.log(np.asarray(lrs[skip:end + 1])))
    if slope.min() >= 0:
        return None
    return float(lrs[skip + int(np.argmin(slope))])


def check_figure(output: Path) -> None:
    if output.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise UdlcError(f"-o {output}: write the figure to a .png, .svg or .pdf")


def plot_sweep(sweep: Sweep, output: Path) -> Path:
    """The loss against the learning rate (log axis), measured and smoothed, with the suggestion marked."""
    check_figure(output)
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4))
    ax = figure.subplots()
    ax.plot(sweep.lrs, sweep.losses, color="C0", alpha=0.3, label="loss (one batch)")
    ax.plot(sweep.lrs, sweep.smoothed, color="C0", label="smoothed")
    if sweep.suggestion is not None:
        ax.axvline(sweep.suggestion, color="C2", linestyle="--", label=f"suggested {sweep.suggestion:.1e}")
    if sweep.diverged_at is not None:
        ax.axvline(sweep.diverged_at, color="C3", linestyle=":", label=f"diverged {sweep.diverged_at:.1e}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    low = min(sweep.smoothed)
    high = max(sweep.smoothed[: sweep.smoothed.index(low) + 1])
    if high > low:  # the blow-up would flatten the rest
        ax.set_ylim(low - 0.1 * (high - low), high + 0.3 * (high - low))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(output, dpi=110)
    return output
