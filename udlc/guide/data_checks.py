"""`udlc doctor`'s first item: the data as training will see it (split, normalized, in arrays) — class balance,
non-finite and constant columns, rows that leak from the training split into the test split, feature scales."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

IMBALANCE = 3.0  # a class with under a third of an even share makes accuracy a poor guide
SCALES = 100.0  # features whose spreads differ by more than this want standardizing


@dataclass
class Finding:
    """One checklist item's verdict: 'ok', 'warn' (worth a look), 'fail' (a fault), or 'skip' (not applicable)."""

    item: str
    status: str
    summary: str
    details: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"item": self.item, "status": self.status, "summary": self.summary, "details": self.details}


def check_data(data: Any, task_name: str) -> Finding:
    x_train = getattr(data, "x_train", None)
    if not isinstance(x_train, np.ndarray) or x_train.dtype.kind != "f":
        return Finding("data", "skip", f"task {task_name}'s data is not an array of features: its loader checks it")
    rows = {split: _rows(getattr(data, f"x_{split}")) for split in ("train", "val", "test")}
    problems: list[tuple[str, str]] = []  # (status, sentence)
    notes: list[str] = []

    bad = {split: int((~np.isfinite(x)).any(axis=1).sum()) for split, x in rows.items() if len(x)}
    if any(bad.values()):
        problems.append(("fail", "rows with NaN or inf values: " + ", ".join(f"{n} in {s}" for s, n in bad.items() if n)
                         + " — fill or drop them in the source"))
    tabular = bool(getattr(data, "feature_columns", None))
    spread = rows["train"].std(axis=0)
    constant = np.flatnonzero(spread == 0)
    if len(constant):
        names = _names(data, constant, spread.size)
        sentence = f"{len(constant)} of {spread.size} input values are constant over the training split ({names})"
        if tabular:  # a column of a table that says nothing is worth dropping; an image's empty border is not
            problems.append(("warn", sentence + ": they carry no information — drop them"))
        else:
            notes.append(sentence)
    leaked = _shared_rows(rows["train"], rows["test"])
    if leaked:
        problems.append(("fail", f"{leaked} of {len(rows['test'])} test rows also appear in the training split: the "
                                 "test score overstates what unseen data would get — drop the duplicates from the "
                                 "source"))
    kind = getattr(data.normalization, "kind", None)
    if kind == "standard":
        notes.append("features standardized on the training split")
    else:
        live = spread[spread > 0]
        if live.size and live.max() / live.min() > SCALES:
            # the advice answers what the spec says: minmax scales by the extremes, so one outlier squeezes a
            # column; none leaves the raw units
            fix = ("minmax scaling leaves them uneven (a column's outliers squeeze its other values) — use "
                   "`normalize: standard`" if kind == "minmax" else
                   "they are not scaled — use `normalize: standard` (the default: drop `normalize: none`)")
            problems.append(("warn", f"feature spreads range from {live.min():.3g} to {live.max():.3g} "
                                     f"({live.max() / live.min():.0f}×): {fix}"))
    if getattr(data, "task", None) == "classification" and data.n_classes:
        counts = np.bincount(np.asarray(data.y_train).reshape(-1).astype(np.int64), minlength=data.n_classes)
        shares = counts / counts.sum()
        notes.append("training rows per class: " + ", ".join(f"{c} {n}" for c, n in zip(data.classes, counts)))
        rare = [i for i, share in enumerate(shares) if share < 1 / data.n_classes / IMBALANCE]
        if rare:
            problems.append(("warn", "imbalanced classes: " + ", ".join(
                f"'{data.classes[i]}' has {shares[i]:.1%} of the training rows" for i in rare)
                + f" (an even share is {1 / data.n_classes:.1%}) — accuracy can mislead: watch f1_macro, or "
                  "gather or weigh the rare classes"))
    sizes = "/".join(str(len(x)) for x in rows.values())
    if not problems:
        return Finding("data", "ok", f"{sizes} train/val/test rows, nothing amiss", notes)
    status = "fail" if any(s == "fail" for s, _ in problems) else "warn"
    return Finding("data", status, problems[0][1], [p for _, p in problems[1:]] + notes)


def _rows(x: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), -1)


def _shared_rows(train: np.ndarray, test: np.ndarray) -> int:
    """Test rows equal, value for value, to a training row (after the same normalization, so equal stays equal)."""
    if not len(train) or not len(test):
        return 0
    seen = {row.tobytes() for row in np.ascontiguousarray(train)}
    return sum(row.tobytes() in seen for row in np.ascontiguousarray(test))


def _names(data: Any, columns: np.ndarray, width: int, most: int = 6) -> str:
    """The columns by name when the source named each (a CSV without one-hot expansion), else by position."""
    names = getattr(data, "feature_columns", None) or []
    shown = [names[i] if len(names) == width else f"#{i}" for i in columns[:most]]
    return ", ".join(shown) + (f", … {len(columns) - most} more" if len(columns) > most else "")
