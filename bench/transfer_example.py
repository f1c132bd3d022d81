"""What pretraining buys with few labels (examples/transfer/): a small GPT pretrained as a language model of the
standard library's source (stdlib-pretrain.yaml), then the line classifier (stdlib-finetune.yaml: code, comment or
docstring, from 300 labelled rows) trained three ways on the same rows — from scratch, fine-tuned whole from the
pretrained weights, and with LoRA (stdlib-finetune-lora.yaml) — for each seed (a seed draws the 300 rows and the
fresh weights; the three ways share them). Prints test accuracy, macro F1 and trainable parameters as a table.

    nice .venv/bin/python bench/transfer_example.py [--seeds 3] [--pretrained RUN] [--out /tmp/transfer-runs]

About 6 minutes of pretraining an epoch and 2 a fine-tune on two free CPU cores. --pretrained reuses a run of
stdlib-pretrain.yaml instead of pretraining again.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "examples" / "transfer"
WAYS = [("scratch", "stdlib-finetune.yaml", False), ("fine-tune whole", "stdlib-finetune.yaml", True),
        ("fine-tune LoRA", "stdlib-finetune-lora.yaml", True)]


def trainable(spec_file: Path) -> tuple[int, int]:
    """(trainable, all) parameters, as `udlc summary` counts them (LoRA: the adapters and the head)."""
    from udlc.compiler.finetune import parameter_counts
    from udlc.tasks import compile_spec

    compiled = compile_spec(spec_file)
    graph = next(iter(compiled.graphs.values()))
    train, frozen = parameter_counts(compiled.spec, graph)
    return train, train + frozen


def test_results(run: Path) -> dict[str, float]:
    results = json.loads((run / "results.json").read_text())
    return results.get("test", results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0, 1, …: each draws its own 300 rows")
    parser.add_argument("--pretrained", type=Path, help="a finished run of stdlib-pretrain.yaml to start from")
    parser.add_argument("--pretrain-epochs", type=int, help="override stdlib-pretrain.yaml's train.epochs")
    parser.add_argument("--out", type=Path, default=Path("/tmp/transfer-runs"), help="where the run folders go")
    args = parser.parse_args()
    import udlc

    print(f"load average before: {os.getloadavg()[0]:.2f}")
    pretrained = args.pretrained
    if pretrained is None:
        start = time.perf_counter()
        sets = [f"train.epochs={args.pretrain_epochs}"] if args.pretrain_epochs else []
        pretrained = udlc.train(SPECS / "stdlib-pretrain.yaml", out=args.out, overrides=sets, quiet=True)
        print(f"pretrained {pretrained} in {time.perf_counter() - start:.0f} s")
    lm = test_results(pretrained)
    print(f"language model: test loss {lm['test_loss']:.3f} (perplexity {lm['test_perplexity']:.1f}, "
          f"bits per byte {lm['test_bits_per_byte']:.3f}, next-token accuracy {lm['test_accuracy']:.3f})")

    rows: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in WAYS}
    for seed in range(args.seeds):
        for name, spec, warm in WAYS:
            start = time.perf_counter()
            run = udlc.train(SPECS / spec, out=args.out, overrides=[f"seed={seed}"], quiet=True,
                             init_from=pretrained if warm else None)
            got = test_results(run)
            got["seconds"] = time.perf_counter() - start
            got["epochs"] = json.loads((run / "run.json").read_text())["epochs_done"]
            rows[name].append(got)
            print(f"seed {seed} {name:16s} test accuracy {got['test_accuracy']:.4f}  macro F1 "
                  f"{got['test_f1_macro']:.4f}  {got['epochs']} epochs  {got['seconds']:.0f} s  {run}", flush=True)

    def spread(values: list[float]) -> str:
        mean = statistics.fmean(values)
        return f"{mean:.3f} ± {statistics.stdev(values):.3f}" if len(values) > 1 else f"{mean:.3f}"

    print(f"\n300 labelled rows, test on 2,550; mean ± std over {args.seeds} seed(s)\n")
    print("| way | test accuracy | test macro F1 | trainable parameters | of all |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, spec, _ in WAYS:
        train, total = trainable(SPECS / spec)
        acc = spread([r["test_accuracy"] for r in rows[name]])
        f1 = spread([r["test_f1_macro"] for r in rows[name]])
        print(f"| {name} | {acc} | {f1} | {train:,} | {100 * train / total:.1f} % |")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
