"""What several bench scripts measure the same way: a call repeated (its fastest and its median wall time), and a
spec trained to its test accuracy."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Callable


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """The minimum and the median seconds of `repeats` calls of `fn`."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def test_accuracy(spec: Path, out: Path, overrides: list[str]) -> tuple[float, int, float]:
    """`spec` trained (with --set `overrides`) into `out`: its test accuracy, its epochs and its seconds."""
    from udlc.tasks import compile_spec
    from udlc.trainer.run import train_spec

    start = time.perf_counter()
    run = train_spec(compile_spec(spec, overrides), out=out, quiet=True)
    seconds = time.perf_counter() - start
    rows = (run / "metrics.csv").read_text().strip().splitlines()
    return json.loads((run / "results.json").read_text())["test_accuracy"], len(rows) - 1, seconds
