"""`udlc train SPEC --seeds N`: how much of a result is the seed. Mean ± standard deviation over the runs of each
final test metric (results.json) and of the best validation value of the monitored metric.

The runs differ in `train.seed` alone — initialization, batch order, dropout, augmentation — while the spec's
`seed` keeps drawing the data and its split: each run is scored on the same test set, so the spread is the
training's, not the test set's."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from udlc.runs import RunFolder
from udlc.spec.model import tree_model


def seed_overrides(base_seed: int, n: int) -> list[str]:
    """--set train.seed=… for each run: the spec's training seed (train.seed, else seed), then the next ones, so the
    first run is the spec's own."""
    return [f"train.seed={base_seed + i}" for i in range(n)]


def seed_summary(runs: list[Path]) -> list[str]:
    """One line per value: `name  mean ± std  (min … max)`; std is the sample standard deviation."""
    values: dict[str, list[float]] = {}
    for path in runs:
        run = RunFolder.open(path)
        compiled = run.compiled()
        spec, task = compiled.spec, compiled.task
        stopping = spec.train.early_stopping
        monitor = stopping.monitor if stopping else task.monitor(spec.data.split[1] > 0)
        seen = [float(r[monitor]) for r in run.metrics_rows() if r.get(monitor) not in (None, "")]
        if seen:
            pick = max if task.higher_is_better(monitor) else min
            values.setdefault(f"best {monitor}", []).append(pick(seen))
        results = json.loads(run.results_file.read_text()) if run.results_file.is_file() else {}
        for name, value in results.items():
            if isinstance(value, float):
                values.setdefault(name, []).append(value)
    lines = [f"over {len(runs)} seeds (mean ± std):"]
    trees = tree_model(spec) if runs else None
    if trees is not None and trees.max_features == 1.0:  # scikit-learn's fit draws nothing at random then
        lines.append("  (gradient boosting with max_features 1 draws nothing at random: the seeds give one result; "
                     "set max_features below 1 to see the spread)")
    width = max((len(n) for n in values), default=0)
    for name, xs in values.items():
        std = statistics.stdev(xs) if len(xs) > 1 else 0.0
        mean = statistics.fmean(xs)
        lines.append(f"  {name.ljust(width)}  {mean:.4f} ± {std:.4f}  ({min(xs):.4f} … {max(xs):.4f})")
    return lines
