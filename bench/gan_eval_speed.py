"""A DCGAN at 64x64x3 (examples/dcgan-64.yaml): one epoch's training time against its evaluation's (the
validation split's losses and `frechet`), on this machine's CPU, with a small sample count so it ends in a few
minutes. Evaluation measures Fréchet on a fixed random projection to 256 values (udlc.tasks.generative.features);
the raw-pixel Fréchet it replaces is timed at smaller widths, for scale (its cost grows with the cube of the width:
12,288 values would take hours and 7 GB).

    .venv/bin/python bench/gan_eval_speed.py [--samples 400] [--epochs 2]      (~2 min on 2 cores)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples" / "data"))

from make_shapes64 import write  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=400, help="pictures generated (default 400)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs trained (default 2; the first warms up)")
    parser.add_argument("--val", type=float, default=0.2, help="validation share (default 0.2)")
    args = parser.parse_args()

    import torch

    from udlc.tasks import compile_spec
    from udlc.tasks.generative import features, frechet_distance
    from udlc.trainer.run import train_spec

    print(f"load average before: {os.getloadavg()[0]:.2f}; torch threads: {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write(tmp / "shapes64.npz", args.samples)
        doc = yaml.safe_load((ROOT / "examples" / "dcgan-64.yaml").read_text())
        doc["data"].update(source="shapes64.npz", split=[1.0 - args.val, args.val, 0.0])
        doc["task"]["gan"].pop("samples_every", None)
        doc["train"] = {"epochs": args.epochs, "batch_size": 64, "checkpoint_seconds": 0}
        doc.pop("export", None)
        (tmp / "spec.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        compiled = compile_spec(tmp / "spec.yaml")
        task, timings, rows = compiled.task, [], []
        evaluate = task.evaluate

        def timed(s, batches):
            started = time.perf_counter()
            out = evaluate(s, batches)
            timings.append(time.perf_counter() - started)
            return out

        task.evaluate = timed
        train_spec(compiled, out=tmp / "runs", quiet=True, on_epoch=rows.append)
    n_val = round(args.samples * args.val)
    print(f"DCGAN 64x64x3, {compiled.spec.name}: {args.samples - n_val} training and {n_val} validation pictures, "
          f"batches of 64")
    print(f"{'epoch':>5}  {'train s':>8}  {'evaluate s':>10}  {'evaluate/train':>14}  val_frechet")
    for row, seconds in zip(rows, timings):
        print(f"{row['epoch']:>5}  {row['seconds']:>8.2f}  {seconds:>10.2f}  {seconds / row['seconds']:>14.2f}  "
              f"{row['val_frechet']:.4g}")

    rng = np.random.default_rng(0)
    real, fake = rng.standard_normal((n_val, 12288)), rng.standard_normal((n_val, 12288))
    started = time.perf_counter()
    frechet_distance(features(real), features(fake))
    print(f"Fréchet of {n_val} + {n_val} samples of 12,288 values, projected to {features(real).shape[1]}: "
          f"{time.perf_counter() - started:.3f} s")
    from scipy import linalg

    for width in (256, 512, 1024):  # the raw-pixel measure it replaces: scipy's sqrtm of C_a C_b, width²
        a, b = real[:, :width], fake[:, :width]
        started = time.perf_counter()
        ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
        linalg.sqrtm(ca @ cb)
        print(f"raw-pixel Fréchet (scipy sqrtm) at {width} values: {time.perf_counter() - started:.2f} s")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
