"""The tabular example: gradient-boosted trees (examples/cancer-boosting.yaml) next to a multilayer perceptron
(examples/cancer-mlp.yaml) on the breast cancer table, each trained with `udlc train` on the same splits.

Prints each model's test accuracy and log loss (mean ± std over the seeds, each seed drawing its own split) and its
training time: the trees' fit alone and the whole run (the fit, the logged iterations' scores and the ONNX
checkpoint), the network's loop. Both use --threads threads (default 1: on a shared machine scikit-learn's OpenMP
threads and torch's wait on each other, and a fair comparison gives both the same). The seeds run interleaved.

    .venv/bin/python bench/boosting_example.py [--seeds 5] [--threads 1]     (~1-2 min)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPECS = {"gradient boosting": ROOT / "examples" / "cancer-boosting.yaml", "MLP": ROOT / "examples" / "cancer-mlp.yaml"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="splits to average over (seed 0, 1, …)")
    parser.add_argument("--threads", type=int, default=1, help="threads for scikit-learn and torch")
    args = parser.parse_args()

    import torch
    from threadpoolctl import threadpool_limits

    import udlc

    torch.set_num_threads(args.threads)
    print(f"load average before: {os.getloadavg()[0]:.2f}; threads: {args.threads}")
    found: dict[str, dict[str, list[float]]] = {name: {} for name in SPECS}
    with tempfile.TemporaryDirectory() as out, threadpool_limits(args.threads):
        for seed in range(args.seeds):
            for name, spec in SPECS.items():  # interleaved: a change in the machine's load hits both
                compiled = udlc.load_spec(spec, [f"seed={seed}", "export.onnx=null"])
                run = udlc.train(compiled, out=Path(out), quiet=True)
                results = json.loads((run / "results.json").read_text())
                info = json.loads((run / "run.json").read_text())
                row = found[name]
                row.setdefault("accuracy", []).append(results["test_accuracy"])
                row.setdefault("loss", []).append(results["test_loss"])
                row.setdefault("seconds", []).append(info["seconds"])
                if "fit_seconds" in info:
                    row.setdefault("fit seconds", []).append(info["fit_seconds"])
                    row.setdefault("iterations", []).append(info["iterations"])
                else:
                    row.setdefault("epochs", []).append(info["epochs_done"])
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"\nbreast_cancer, split [0.7, 0.15, 0.15], {args.seeds} seeds (86 test rows each)")
    print(f"{'model':<20}{'test accuracy':>18}{'test log loss':>18}{'train seconds (median, min)':>32}")
    for name, row in found.items():
        seconds = row.get("fit seconds", row["seconds"])
        what = "fit" if "fit seconds" in row else "loop"
        print(f"{name:<20}{_mean(row['accuracy']):>18}{_mean(row['loss']):>18}"
              f"{f'{what} {statistics.median(seconds):.2f} ({min(seconds):.2f})':>32}")
        if "fit seconds" in row:
            run = f"run {statistics.median(row['seconds']):.2f} ({min(row['seconds']):.2f})"
            print(f"{'':<56}{run:>32}   {statistics.median(row['iterations']):.0f} iterations (median; early stopping)")
        else:
            print(f"{'':<56}{statistics.median(row['epochs']):>28.0f} epochs (median; early stopping)")


def _mean(values: list[float]) -> str:
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values) if len(values) > 1 else 0:.4f}"


if __name__ == "__main__":
    main()
