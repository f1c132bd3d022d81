"""The text examples' EDA figures: a spec trained with its `data.augment` and without (`data.augment=[]`), on
several training seeds (`train.seed`: initialization, batch order and the augmentation's draws; the split stays
the spec's, so every run has the same training rows and the same test rows). Prints each run's test accuracy
(the best epoch's checkpoint), both means ± sd, and the paired difference (augmented − without) with its
standard error; asserts nothing.

    .venv/bin/python bench/text_augment_example.py [--spec examples/text-reviews-eda.yaml] [--seeds 10]
        [--first 0] [--only eda|without] [--augment "[{random_swap: 1}]"] [--set data.split=[0.1,0.2,0.7]]

examples/text-reviews-eda.yaml (the default: 300 templated reviews, synonym replacement; ~10 s a run on one
core) is where EDA helps; examples/text-lines-eda.yaml (300 lines of the standard library, swap and deletion;
~30 s a run) is where it does not.
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import tempfile
from pathlib import Path

from timing import test_accuracy  # bench/timing.py

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "examples" / "text-reviews-eda.yaml"


def sizes(spec: Path, overrides: list[str]) -> tuple[int, int]:
    """The training and test rows of the spec's CSV under its split."""
    from udlc.spec.data import split_sizes
    from udlc.tasks import compile_spec

    data = compile_spec(spec, overrides).spec.data
    with open(spec.parent / data.source, newline="", encoding="utf-8") as f:
        rows = sum(1 for _ in csv.reader(f)) - 1  # less the header
    train, _, test = split_sizes(rows, data.split)
    return train, test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", type=Path, default=SPEC)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first", type=int, default=0, help="the first train.seed")
    parser.add_argument("--set", action="append", default=[], help="another override for both arms")
    parser.add_argument("--augment", help="the EDA arm's data.augment instead of the spec's, as YAML (a flow list)")
    parser.add_argument("--only", choices=["eda", "without"], help="train one arm")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)  # small models: more threads only contend (and the figures are the same)
    spec = args.spec.resolve()
    arms = {"without augmentation": ["data.augment=[]"],
            "augmented": [f"data.augment={args.augment}"] if args.augment else []}  # the spec's EDA by default
    if args.only:
        arms = {k: v for k, v in arms.items() if k.startswith("augmented" if args.only == "eda" else "without")}
    found: dict[str, list[float]] = {arm: [] for arm in arms}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.first, args.first + args.seeds):
            for arm, overrides in arms.items():
                acc, epochs, seconds = test_accuracy(spec, Path(tmp), [f"train.seed={seed}", *overrides, *args.set])
                found[arm].append(acc)
                print(f"seed {seed}  {arm:22s} test accuracy {acc:.4f}  ({epochs} epochs, {seconds:.0f} s)", flush=True)
    train, test = sizes(spec, args.set)
    print(f"\n{spec.name}: {train} training rows, {test} test rows, train.seed {args.first}..{args.first + args.seeds - 1}")
    for arm, accs in found.items():
        spread = statistics.stdev(accs) if len(accs) > 1 else 0.0
        print(f"  {arm:22s} mean test accuracy {statistics.mean(accs):.4f} ± {spread:.4f} (sd)  "
              f"[{', '.join(f'{a:.3f}' for a in accs)}]")
    if len(found) == 2 and args.seeds > 1:
        diffs = [a - b for a, b in zip(found["augmented"], found["without augmentation"])]
        se = statistics.stdev(diffs) / math.sqrt(len(diffs))
        wins = sum(d > 0 for d in diffs)
        print(f"  augmented − without: {statistics.mean(diffs):+.4f} ± {statistics.stdev(diffs):.4f} (sd), "
              f"± {se:.4f} (se); augmented better on {wins} of {args.seeds} seeds")


if __name__ == "__main__":
    main()
