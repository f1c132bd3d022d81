"""The text example's figures: examples/text-lines-eda.yaml (300 labelled lines of the Python standard library:
code, comment or docstring) trained with its EDA augmentation and without (`data.augment` emptied), on several
training seeds (`train.seed`: initialization, batch order and the augmentation's draws; the split stays the
spec's). Prints each run's test accuracy (the best epoch's checkpoint, on the 2,400 test lines) and the means;
asserts nothing.

    .venv/bin/python bench/text_augment_example.py [--seeds 10] [--first 0] [--only eda|without]
        [--augment "[{token_mask: 0.05}]"] [--set data.split=[0.05,0.15,0.8]]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "examples" / "text-lines-eda.yaml"


def test_accuracy(out: Path, overrides: list[str]) -> tuple[float, int, float]:
    """The run's test accuracy, its epochs and its seconds."""
    from udlc.tasks import compile_spec
    from udlc.trainer.run import train_spec

    start = time.perf_counter()
    run = train_spec(compile_spec(SPEC, overrides), out=out, quiet=True)
    seconds = time.perf_counter() - start
    rows = (run / "metrics.csv").read_text().strip().splitlines()
    return json.loads((run / "results.json").read_text())["test_accuracy"], len(rows) - 1, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first", type=int, default=0, help="the first train.seed")
    parser.add_argument("--set", action="append", default=[], help="another override for both arms")
    parser.add_argument("--augment", help="the EDA arm's data.augment instead of the spec's, as YAML (a flow list)")
    parser.add_argument("--only", choices=["eda", "without"], help="train one arm")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)  # a small model: more threads only contend (and the figures are the same)
    arms = {"without augmentation": ["data.augment=[]"],
            "augmented": [f"data.augment={args.augment}"] if args.augment else []}  # the spec's EDA by default
    if args.only:
        arms = {k: v for k, v in arms.items() if k.startswith("augmented" if args.only == "eda" else "without")}
    found: dict[str, list[float]] = {arm: [] for arm in arms}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.first, args.first + args.seeds):
            for arm, overrides in arms.items():
                acc, epochs, seconds = test_accuracy(Path(tmp), [f"train.seed={seed}", *overrides, *args.set])
                found[arm].append(acc)
                print(f"seed {seed}  {arm:22s} test accuracy {acc:.4f}  ({epochs} epochs, {seconds:.0f} s)", flush=True)
    from udlc.spec.data import split_sizes
    from udlc.tasks import compile_spec

    split = compile_spec(SPEC, args.set).spec.data.split
    train, _, test = split_sizes(3000, split)  # examples/data/stdlib-lines.csv's 3,000 rows
    print(f"\n{SPEC.name}: {train} training lines, {test} test lines, train.seed {args.first}..{args.first + args.seeds - 1}")
    for arm, accs in found.items():
        spread = statistics.stdev(accs) if len(accs) > 1 else 0.0
        print(f"  {arm:22s} mean test accuracy {statistics.mean(accs):.4f} ± {spread:.4f} (sd)  "
              f"[{', '.join(f'{a:.3f}' for a in accs)}]")
    if len(found) == 2:
        wins = sum(a > b for a, b in zip(found["augmented"], found["without augmentation"]))
        print(f"  augmented better on {wins} of {args.seeds} seeds")


if __name__ == "__main__":
    main()
