"""Predictions from an exported model with onnxruntime and numpy only (no torch).

The ONNX file carries everything needed (udlc.exporter.onnx writes it as metadata): the input shape, the
normalization fitted on the training split, the task, the loss and the class labels.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from udlc.errors import UdlcError


@dataclass
class Predictions:
    task: str
    values: np.ndarray  # class indices (N,) or regressed values (N, k)
    probabilities: np.ndarray | None  # (N, classes) for classification
    classes: list[str] | None

    def labels(self) -> list[str]:
        if self.classes is None:
            return [str(v) for v in self.values]
        return [self.classes[i] for i in self.values]

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        if self.task == "classification":
            assert self.probabilities is not None
            names = self.classes or [str(i) for i in range(self.probabilities.shape[1])]
            w.writerow(["prediction"] + [f"p_{c}" for c in names])
            for label, probs in zip(self.labels(), self.probabilities):
                w.writerow([label] + [f"{p:.6f}" for p in probs])
        else:
            values = self.values.reshape(len(self.values), -1)
            w.writerow([f"y{i}" if values.shape[1] > 1 else "y" for i in range(values.shape[1])])
            w.writerows([[f"{v:.6g}" for v in row] for row in values])
        return buf.getvalue()


class Model:
    """An exported udlc model, ready to predict on raw inputs."""

    def __init__(self, path: str | Path, device: str = "cpu"):
        try:
            import onnxruntime as ort
        except ImportError:  # pragma: no cover - installed with udlc[predict]
            raise UdlcError("predicting needs onnxruntime: pip install 'udlc[predict]'") from None
        path = Path(path)
        if not path.is_file():
            raise UdlcError(f"no model file at {path}")
        providers = ["CPUExecutionProvider"]
        if device == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise UdlcError("--device cuda: this onnxruntime has no CUDA provider (install onnxruntime-gpu)")
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(path), providers=providers)
        except Exception as e:
            raise UdlcError(f"{path} is not a valid ONNX model: {str(e).splitlines()[0][:200]}") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if "input_shapes" not in meta:
            raise UdlcError(f"{path} was not exported by udlc (its metadata has no input shape)")
        self.input_shape = tuple(json.loads(meta["input_shapes"])[0])
        self.task, self.loss = meta["task"], meta["loss"]
        self.classes = json.loads(meta["classes"])
        norm = json.loads(meta["normalization"])
        self.shift = np.asarray(norm["shift"], dtype=np.float32).reshape(norm["shape"])
        self.scale = np.asarray(norm["scale"], dtype=np.float32).reshape(norm["shape"])

    def predict(self, raw: np.ndarray) -> Predictions:
        x = np.asarray(raw, dtype=np.float32)
        per_sample = int(np.prod(self.input_shape))
        if x.ndim == 0 or x.size % per_sample or (x.ndim > 1 and int(np.prod(x.shape[1:])) != per_sample):
            raise UdlcError(f"inputs of shape {x.shape} do not hold samples of shape {self.input_shape} "
                            f"({per_sample} values each)")
        bad = ~np.isfinite(x.reshape(len(x) if x.ndim > 1 else -1, -1)).all(axis=1)
        if bad.any():
            rows = ", ".join(str(i) for i in np.flatnonzero(bad)[:5]) + (" …" if bad.sum() > 5 else "")
            raise UdlcError(f"inputs hold NaN or inf values (samples {rows}, counted from 0): "
                            "predictions for them would be meaningless")
        x = x.reshape((-1,) + self.input_shape)
        x = (x - self.shift) / self.scale
        inp = self.session.get_inputs()[0].name
        out = self.session.run(None, {inp: x})[0]
        if self.task != "classification":
            return Predictions(self.task, out, None, None)
        if self.loss == "bce" and out.shape[-1] == 1:
            p1 = 1 / (1 + np.exp(-out[:, 0]))
            probs = np.stack([1 - p1, p1], axis=1)
        else:
            e = np.exp(out - out.max(axis=1, keepdims=True))
            probs = e / e.sum(axis=1, keepdims=True)
        return Predictions(self.task, probs.argmax(axis=1), probs, self.classes)


def read_inputs(path: str | Path) -> np.ndarray:
    """Raw samples from CSV (a header row, numeric columns), NPY, or NPZ (key 'x', else the only array)."""
    path = Path(path)
    if not path.is_file():
        raise UdlcError(f"no input file at {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                keys = list(z.keys())
                if "x" in keys:
                    return z["x"]
                if len(keys) == 1:
                    return z[keys[0]]
                raise UdlcError(f"{path} holds arrays {keys}: name the inputs 'x'")
        if suffix == ".csv":
            return _read_csv(path)
    except UdlcError:
        raise
    except Exception as e:
        raise UdlcError(f"cannot read {path}: {e}") from None
    raise UdlcError(f"{path}: inputs must be .csv, .npy or .npz")


def _read_csv(path: Path) -> np.ndarray:
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    # A header row: names, or the column numbers 0..n-1 that pandas writes for unnamed columns.
    if rows and (not all(_is_number(c) for c in rows[0]) or rows[0] == [str(i) for i in range(len(rows[0]))]):
        rows = rows[1:]
    try:
        return np.array([[float(c) for c in row] for row in rows if row], dtype=np.float32)
    except ValueError as e:
        raise UdlcError(f"{path}: every value must be a number ({e})") from None


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False
