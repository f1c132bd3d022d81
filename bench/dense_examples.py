"""The dense-prediction examples' figures: examples/digits-superres.yaml's PSNR against bicubic (and bilinear,
nearest) upscaling of the same 4×4 test inputs, and examples/shapes-unet.yaml's mean IoU and pixel accuracy,
cross-checked with scikit-learn. Each example is trained as `udlc train` would (CPU, its own seed); the figures
are the test split's. Prints; asserts nothing.

    .venv/bin/python bench/dense_examples.py [--only superres|unet]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent


def psnr(out: np.ndarray, y: np.ndarray, span: float = 255.0) -> float:
    """10·log10(span² / MSE), one MSE over every value of the split (udlc's `psnr`)."""
    return 10 * math.log10(span**2 / float(np.mean((out.astype(np.float64) - y) ** 2)))


def trained(spec: str, out: Path):
    from udlc.compiler.lower import lower
    from udlc.runs import checkpoint
    from udlc.tasks import compile_spec
    from udlc.trainer.run import train_spec

    compiled = compile_spec(ROOT / "examples" / spec)
    start = time.perf_counter()
    run = train_spec(compiled, out=out, quiet=True)
    seconds = time.perf_counter() - start
    state = compiled.task.start(compiled, compiled.task.load_data(compiled), "cpu")
    network = lower(compiled.graphs["model"])
    checkpoint.load_models({"model": network}, run / "checkpoints" / "best.safetensors")
    network.eval()
    with torch.no_grad():
        outputs = network(torch.from_numpy(state.data.x_test)).numpy()
    return compiled, state.data, outputs, json.loads((run / "results.json").read_text()), seconds


def superres(out: Path) -> None:
    compiled, data, outputs, results, seconds = trained("digits-superres.yaml", out)
    x = data.normalization.invert(data.x_test)  # the raw 4×4 inputs, grey 0..255
    y = data.target_normalization.invert(data.y_test)
    learned = data.target_normalization.invert(outputs)
    print(f"digits-superres: {len(x)} test digits, 4×4 → 8×8, trained in {seconds:.0f} s on "
          f"{torch.get_num_threads()} threads")
    print(f"  learned (pixel_shuffle)  PSNR {psnr(np.clip(learned, 0, 255), y):6.2f} dB   "
          f"(udlc's test_psnr {results['test_psnr']:.2f}, unclipped)")
    for mode in ("bicubic", "bilinear", "nearest"):
        up = F.interpolate(torch.from_numpy(x), scale_factor=2, mode=mode,
                           **({} if mode == "nearest" else {"align_corners": False})).numpy()
        print(f"  {mode:<8} (torch.nn.functional.interpolate, clipped to 0..255)  PSNR "
              f"{psnr(np.clip(up, 0, 255), y):6.2f} dB")


def unet(out: Path) -> None:
    from sklearn.metrics import accuracy_score, jaccard_score

    compiled, data, outputs, results, seconds = trained("shapes-unet.yaml", out)
    pred, true = outputs.argmax(1).reshape(-1), data.y_test.reshape(-1)
    per_class = jaccard_score(true, pred, average=None, labels=range(len(data.classes)))
    print(f"shapes-unet: {len(data.x_test)} test pictures of 32×32, trained in {seconds:.0f} s on "
          f"{torch.get_num_threads()} threads")
    print(f"  mean IoU {results['test_mean_iou']:.4f} (sklearn jaccard_score macro: "
          f"{jaccard_score(true, pred, average='macro'):.4f})  pixel accuracy {results['test_pixel_accuracy']:.4f} "
          f"(sklearn: {accuracy_score(true, pred):.4f})")
    print("  IoU per class: " + ", ".join(f"{c} {v:.3f}" for c, v in zip(data.classes, per_class)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("superres", "unet"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "superres"):
            superres(Path(tmp) / "superres")
        if args.only in (None, "unet"):
            unet(Path(tmp) / "unet")


if __name__ == "__main__":
    main()
