"""What a run's curves say, in the words of the practitioner's checklist: not learning (a learning rate of 0),
unstable, overfitting, still improving, underfitting, or converged — with the evidence (epochs and values) and
what to try. Plain Python over the rows of metrics.csv: `udlc train` prints it at the end and run.json keeps it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

SPIKE = 1.5  # a training loss this many times its best so far, after falling, is a spike ...
WOBBLE = 0.1  # ... when it also rose by this share of the first epoch's loss: less is noise at a low level
RISE = 1.10  # validation loss this much above its best at the end, while training loss fell: overfitting
VERDICTS = ("not learning", "too short", "unstable", "overfitting", "still improving", "underfitting", "converged")
STILL = 0.05  # a relative improvement over the last third of the epochs at least this large: still improving
BARELY = 0.7  # a final training loss above this share of the first epoch's: the model barely learned


@dataclass(frozen=True)
class Diagnosis:
    verdict: str  # one of VERDICTS
    evidence: str
    advice: str

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:  # report colours each one (udlc.guide.report_html)
            raise ValueError(f"unknown verdict {self.verdict!r}")

    def __str__(self) -> str:
        return f"{self.verdict}: {self.evidence} — {self.advice}"

    def to_json(self) -> dict[str, str]:
        return asdict(self)


def diagnose(rows: list[dict[str, Any]], floor_zero: bool = True) -> Diagnosis | None:
    """The first verdict that fits, in this order: not learning, unstable, overfitting, still improving,
    underfitting, converged. `rows` are metrics.csv's, one per epoch, with train_loss, lr and (if there is a
    validation split) val_loss; None for a task that logs no train_loss (a GAN's two losses say nothing alone).
    `floor_zero`: a perfect model's loss is near 0 (classification, regression), so a loss stuck near its first
    value is underfitting; a loss with a floor of its own (a VAE's nats, a denoiser's noise) is not judged so."""
    if not rows or "train_loss" not in rows[0]:
        return None
    train = [float(r["train_loss"]) for r in rows]
    val = [float(r["val_loss"]) for r in rows if r.get("val_loss") not in (None, "")]
    n = len(train)
    lrs = [float(r["lr"]) for r in rows if r.get("lr") not in (None, "")]
    # The loss moves with the batches alone: nothing to read. metrics.csv logs the lr at each epoch's end, where a
    # schedule that decays to 0 ends (cosine over one epoch): only the epochs before the last show the lr it ran at.
    if lrs and len(lrs) == n and n > 1 and max(lrs) == 0:
        return Diagnosis("not learning", f"the learning rate was 0 in every one of the {n} epochs, so the weights "
                         "never moved", "set optimizer.lr above 0 (adam: try 0.001)")
    if n < 3:
        return Diagnosis("too short", f"{n} epoch{'s' * (n != 1)}", "train for more epochs to read the curves")
    bad = [i for i, v in enumerate(train + val) if not math.isfinite(v)]
    if bad:
        return Diagnosis("unstable", f"a loss turned non-finite at epoch {bad[0] % n + 1}",
                         "lower the learning rate, clip gradients (train.grad_clip: 1.0), check the data")
    spikes = [i + 1 for i in range(1, n) if train[i] > SPIKE * min(train[:i]) and min(train[:i]) < train[0]
              and train[i] - min(train[:i]) > WOBBLE * train[0]]
    if spikes:
        return Diagnosis("unstable", f"train_loss jumped at epoch{'s' * (len(spikes) > 1)} "
                         f"{', '.join(map(str, spikes[:5]))} to over {SPIKE:g}× its best so far",
                         "lower the learning rate, add warmup, or clip gradients (train.grad_clip: 1.0)")
    if len(val) == n:
        best = min(range(n), key=val.__getitem__)
        # train_loss need not end at its lowest (it wobbles): that it went below where it was at val's best is
        # enough for the model to have learned the training set past what carries over
        fell_to = min(train[best + 1:], default=train[best])
        if best < n - 1 and val[-1] > RISE * val[best] and fell_to < train[best]:
            return Diagnosis("overfitting", f"val_loss was lowest at epoch {best + 1} ({val[best]:.4g}) and rose to "
                             f"{val[-1]:.4g} while train_loss fell from {train[best]:.4g} to {fell_to:.4g}",
                             "regularize (dropout, weight decay, augmentation), get more data, or stop early "
                             "(train.early_stopping)")
    k = max(2, n // 3)
    watched, name = (val, "val_loss") if len(val) == n else (train, "train_loss")
    gain = (watched[-k] - watched[-1]) / max(abs(watched[-k]), 1e-12)
    if gain > STILL:
        return Diagnosis("still improving", f"{name} fell {gain:.0%} over the last {k} epochs "
                         f"({watched[-k]:.4g} → {watched[-1]:.4g})", "train longer (train.epochs), or raise the "
                         "learning rate")
    if floor_zero and train[-1] > BARELY * train[0]:
        return Diagnosis("underfitting", f"train_loss ended at {train[-1]:.4g}, {train[-1] / train[0]:.0%} of the "
                         f"first epoch's {train[0]:.4g}, and is flat",
                         "a bigger model, a higher learning rate, or longer training; check the model can overfit "
                         "one batch")
    return Diagnosis("converged", f"{name} is flat at {watched[-1]:.4g} over the last {k} epochs", "nothing to do "
                     "here; to go further, tune the learning rate first, then the batch size and the model")
