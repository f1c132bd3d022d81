"""Every registered optimizer on one small regression (sklearn's diabetes, a 10-32-1 tanh MLP, MSE), the same
init and data, and train.precision fp64 against fp32: the test RMSE each reaches and the training seconds.

    .venv/bin/python bench/optimizers.py [--epochs 60] [--repeats 3]

L-BFGS runs full-batch (batch_size above the 354 training rows, one step of max_iter iterations an epoch); the
first-order optimizers take 32-row batches at the lr a user would start from. Seconds are udlc's logged
training time summed over the epochs (validation included, checkpoints and export not), the minimum and the
median of --repeats runs, interleaved. No figure here is asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

import udlc
from udlc.tasks.check import compile_text

SPEC = """
udlc: 1
name: bench-{name}
seed: 0
data: {{source: diabetes}}
model: {{input: [10], layers: [{{linear: 32}}, tanh, {{linear: 1}}]}}
loss: mse
metrics: [rmse]
optimizer: {optimizer}
train: {{batch_size: {batch}, epochs: {epochs}, precision: {precision}, checkpoint_seconds: 1000}}
"""

CASES = [  # name, optimizer, batch size, precision
    ("sgd", "{type: sgd, lr: 0.05, momentum: 0.9}", 32, "fp32"),
    ("adam", "{type: adam, lr: 0.01}", 32, "fp32"),
    ("adamw", "{type: adamw, lr: 0.01}", 32, "fp32"),
    ("rmsprop", "{type: rmsprop, lr: 0.003}", 32, "fp32"),
    ("adadelta", "adadelta", 32, "fp32"),
    ("adagrad", "{type: adagrad, lr: 0.05}", 32, "fp32"),
    ("nadam", "{type: nadam, lr: 0.01}", 32, "fp32"),
    ("radam", "{type: radam, lr: 0.01}", 32, "fp32"),
    ("lbfgs", "{type: lbfgs, line_search_fn: strong_wolfe, max_iter: 20}", 1000, "fp32"),
    ("adam-fp64", "{type: adam, lr: 0.01}", 32, "fp64"),
    ("lbfgs-fp64", "{type: lbfgs, line_search_fn: strong_wolfe, max_iter: 20}", 1000, "fp64"),
]


def one(case: tuple[str, str, int, str], epochs: int, out: Path) -> tuple[float, float]:
    name, optimizer, batch, precision = case
    spec = SPEC.format(name=name, optimizer=optimizer, batch=batch, epochs=epochs, precision=precision)
    run = udlc.train(compile_text(spec), out=out, quiet=True)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    results = json.loads((run / "results.json").read_text())
    return results["test_rmse"], sum(r["seconds"] for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    seconds: dict[str, list[float]] = {c[0]: [] for c in CASES}
    rmse: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for case in CASES if r % 2 == 0 else CASES[::-1]:  # interleaved, alternating the order
                rmse[case[0]], s = one(case, args.epochs, Path(tmp))
                seconds[case[0]].append(s)
    print(f"diabetes, 10-32-1 tanh MLP, {args.epochs} epochs, best of {args.repeats} (test RMSE is the same "
          "in every repeat: the runs are seeded)")
    print(f"{'optimizer':<12} {'test RMSE':>10} {'train s min':>12} {'median':>8}")
    for name, _, _, _ in CASES:
        print(f"{name:<12} {rmse[name]:>10.2f} {min(seconds[name]):>12.3f} {statistics.median(seconds[name]):>8.3f}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
