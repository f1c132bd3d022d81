"""The image zoo's speed: images per second training the zoo's ResNet-18 at 32x32 pixels with udlc against a
hand-written PyTorch loop on the same model, data and optimizer in the same process, for each memory format
(`train.memory_format`) and, with --compile, `train.compile`; then the wall time of `udlc summary` on every zoo
spec (the issue's goal: 0.5 s each).

Whole epochs of either side swing by ±10 % on a shared machine, so each memory format is also timed in lockstep:
one udlc run whose step runs the hand loop's step beside it on the same batch (as bench/lm_speed.py does), step
time udlc/hand over the second epoch (the time of udlc's step, not of udlc's epoch).

The data are random pictures (3x32x32, 1,000 classes so the zoo's own head fits), written to a temporary .npz;
the spec is examples/zoo/resnet18.yaml extended to that input and data. Figures are epoch 2's training phase
(epoch 1 warms up), udlc's from its metrics.jsonl, the loop's timed the same way.

    .venv/bin/python bench/zoo_speed.py [--images 2048] [--batch 128] [--repeats 3] [--compile] [--threads N]

A benchmark: it prints figures and asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ZOO = ROOT / "examples" / "zoo"


def write_spec(folder: Path, images: int, batch: int, memory_format: str, compile_: bool) -> Path:
    import numpy as np

    rng = np.random.default_rng(0)
    np.savez(folder / "pictures.npz", x=rng.integers(0, 256, (images, 3, 32, 32), dtype=np.uint8),
             y=np.arange(images) % 1000)
    spec = folder / f"resnet18-{memory_format}-{int(compile_)}.yaml"
    spec.write_text(json.dumps({  # JSON is YAML
        "udlc": 1, "extends": str(ZOO / "resnet18.yaml"), "name": "resnet18-32px",
        "data": {"source": "pictures.npz", "split": [0.9, 0.05, 0.05]}, "model": {"input": [3, 32, 32]},
        "metrics": [], "schedule": {"type": "constant"},
        "train": {"epochs": 2, "batch_size": batch, "checkpoint_seconds": 3600, "memory_format": memory_format,
                  "compile": compile_}}))
    return spec


def udlc_rate(spec: Path, out: Path) -> float:
    from udlc.tasks import compile_spec
    from udlc.trainer.run import train_spec

    run = train_spec(compile_spec(spec), out=out, quiet=True)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return rows[-1]["samples_per_s"]


def hand_rate(spec: Path, memory_format: str, compile_: bool) -> float:
    """The same model (udlc's build, same init), data (the task's split and standardization) and optimizer, in a
    plain loop: shuffle, forward, cross-entropy, backward, SGD step."""
    import torch
    import torch.nn.functional as F

    from udlc.tasks import compile_spec
    from udlc.objectives.optimizers import make_optimizer
    from udlc.trainer.run import build_models

    compiled = compile_spec(spec)
    data = compiled.task.load_data(compiled)
    model = build_models(compiled, torch.device("cpu"))["model"]
    if memory_format == "channels_last":
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, compiled.spec.optimizer)[0]
    step_model = torch.compile(model) if compile_ else model
    x, y = torch.as_tensor(data.x_train), torch.as_tensor(data.y_train)
    batch, generator, rate = compiled.spec.train.batch_size, torch.Generator().manual_seed(0), 0.0
    for _ in range(2):  # the second epoch is timed
        started = time.perf_counter()
        order = torch.randperm(len(x), generator=generator)
        for i in range(0, len(x), batch):
            idx = order[i:i + batch]
            loss = F.cross_entropy(step_model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        rate = len(x) / (time.perf_counter() - started)
    return rate


def lockstep(spec: Path, memory_format: str, out: Path) -> tuple[float, float]:
    """One udlc run whose task step also runs the hand loop's step (its own copy of the model and optimizer) on
    the same batch, before udlc's on odd steps and after it on even ones: pairs timed under the same load. Returns
    the ratio of median step times (udlc/hand) and the median of the pairs' ratios, over the second epoch."""
    import torch
    import torch.nn.functional as F

    from udlc.tasks import compile_spec
    from udlc.objectives.optimizers import make_optimizer
    from udlc.trainer.run import build_models, train_spec

    compiled = compile_spec(spec)
    task = compiled.task
    model = build_models(compiled, torch.device("cpu"))["model"]
    if memory_format == "channels_last":
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, compiled.spec.optimizer)[0]
    pairs: list[tuple[float, float]] = []
    original = task.train_step

    def hand_step(xb, yb) -> float:
        started = time.perf_counter()
        loss = F.cross_entropy(model(xb), yb)
        loss.item()  # a hand loop's logging: one sync a step, as udlc's
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - started

    def paired(s, batch):
        xb, yb = batch[s.run_state.input], batch["target"]
        first = len(pairs) % 2
        hand = hand_step(xb, yb) if first else 0.0
        started = time.perf_counter()
        result = original(s, batch)
        ours = time.perf_counter() - started
        if not first:
            hand = hand_step(xb, yb)
        pairs.append((ours, hand))
        return result

    task.train_step = paired
    try:
        train_spec(compiled, out=out, quiet=True)
    finally:
        del task.train_step  # the instance attribute: the class's method again
    warm = pairs[len(pairs) // 2:]  # the second epoch
    return (statistics.median(u for u, _ in warm) / statistics.median(h for _, h in warm),
            statistics.median(u / h for u, h in warm))


def summary_seconds() -> list[tuple[str, float]]:
    times = []
    for spec in sorted(ZOO.glob("*.yaml")):
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "udlc", "summary", str(spec)], capture_output=True)
        if done.returncode == 0:
            times.append((spec.stem, time.perf_counter() - started))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--compile", action="store_true", help="also time train.compile (10-20 s to compile)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's own)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each, alternating; medians are shown")
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"ResNet-18 at 32x32, batch {args.batch}, {args.images} pictures, {torch.get_num_threads()} threads; "
          f"images/s of epoch 2's training, median of {args.repeats}")
    print(f"{'memory format':<16}{'compile':<9}{'udlc':>10}{'hand loop':>12}{'udlc/hand':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        for memory_format in ("contiguous", "channels_last"):
            for compile_ in (False, True) if args.compile else (False,):
                spec = write_spec(Path(tmp), args.images, args.batch, memory_format, compile_)
                ours, theirs = [], []
                for repeat in range(args.repeats):  # alternating who goes first: a busy machine drifts
                    pair = (lambda: ours.append(udlc_rate(spec, Path(tmp) / "runs")),
                            lambda: theirs.append(hand_rate(spec, memory_format, compile_)))
                    for run in pair if repeat % 2 == 0 else pair[::-1]:
                        run()
                a, b = statistics.median(ours), statistics.median(theirs)
                step = "" if compile_ else \
                    "  step time udlc/hand in lockstep {:.3f} (median of pair ratios {:.3f})".format(
                        *lockstep(spec, memory_format, Path(tmp) / "lockstep"))
                print(f"{memory_format:<16}{str(compile_):<9}{a:>10.1f}{b:>12.1f}{a / b:>11.3f}{step}")
    print("\n`udlc summary` wall time per zoo spec (a fresh process each; goal 0.5 s):")
    for name, seconds in summary_seconds():
        print(f"  {name:<18}{seconds:.2f} s")


if __name__ == "__main__":
    main()
