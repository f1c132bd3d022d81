"""`make demo`: train the digits CNN on the CPU, export it to ONNX, and check the ONNX model's
predictions on the held-out test split with onnxruntime — the whole pipeline on a built-in example."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np

import udlc
from udlc.runtime.predict import Model

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "digits-cnn.yaml"


def main(spec: Path = EXAMPLE) -> float:
    compiled = udlc.load_spec(spec)
    run_dir = udlc.train(compiled)
    data = compiled.task.load_data(compiled)
    norm = data.normalization
    raw = data.x_test * norm.scale + norm.shift  # the test split as a user would have it: unnormalized
    inputs = run_dir / "test_inputs.npy"
    np.save(inputs, raw.astype(np.float32))
    predictions = Model(run_dir / "model.onnx").predict(raw)
    labels = np.array([data.classes[i] for i in data.y_test])
    accuracy = float((np.array(predictions.labels()) == labels).mean())
    print(f"\nONNX model (onnxruntime, CPU) accuracy on the {len(labels)} test samples: {accuracy:.2%}")
    print(f"try it yourself: {udlc_command()} predict {run_dir / 'model.onnx'} {inputs}")
    return accuracy


def udlc_command() -> str:
    """How to call udlc from this shell: `udlc` when it is on PATH, else the virtualenv's own script."""
    script = Path(sys.executable).parent / "udlc"
    if shutil.which("udlc") == str(script) or not script.is_file():
        return "udlc"
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


if __name__ == "__main__":
    sys.exit(0 if main() >= 0.97 else 1)
