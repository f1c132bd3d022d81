"""A ready-to-train dataset: samples shaped like model.input, split, and normalized on train only."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from udlc.data.sources import Arrays, load_arrays
from udlc.errors import SpecError
from udlc.spec.data import DataSpec


@dataclass
class Normalization:
    """normalized = (raw - shift) / scale; shift and scale broadcast over one sample (or a batch)."""

    kind: str
    shift: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, kind: str, x: np.ndarray) -> Normalization:
        """Fit on x (N, *input_shape): per feature for vectors, per channel (axis 1) otherwise."""
        stat_shape = x.shape[1:2] + (1,) * (x.ndim - 2)
        if kind == "none" or len(x) == 0:
            return cls(kind, np.zeros(stat_shape, np.float32), np.ones(stat_shape, np.float32))
        axes = (0,) + tuple(range(2, x.ndim))
        data = x.astype(np.float64)  # float32 sums drift on large sets
        if kind == "standard":
            shift, scale = data.mean(axis=axes), data.std(axis=axes)
        elif kind == "minmax":
            shift = data.min(axis=axes)
            scale = data.max(axis=axes) - shift
        else:
            raise ValueError(f"unknown normalization {kind!r}")
        scale = np.where(scale > 1e-12, scale, 1.0)  # constant features: shift only, never divide by 0
        return cls(kind, shift.reshape(stat_shape).astype(np.float32), scale.reshape(stat_shape).astype(np.float32))

    def apply_normalization(self, raw: np.ndarray) -> np.ndarray:
        return ((np.asarray(raw, dtype=np.float32) - self.shift) / self.scale).astype(np.float32)

    def to_json(self) -> dict:
        return {"kind": self.kind, "shape": list(self.shift.shape),
                "shift": self.shift.reshape(-1).tolist(), "scale": self.scale.reshape(-1).tolist()}

    @classmethod
    def from_json(cls, d: dict) -> Normalization:
        shape = tuple(d["shape"])
        return cls(d["kind"], np.asarray(d["shift"], np.float32).reshape(shape),
                   np.asarray(d["scale"], np.float32).reshape(shape))


@dataclass
class Dataset:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    task: str  # 'classification' | 'regression'
    classes: list[str] | None
    n_classes: int | None
    input_shape: tuple[int, ...]
    normalization: Normalization
    source: str = ""

    @property
    def target_shape(self) -> tuple[int, ...]:
        """Per-sample target shape: () for class indices, (k,) for regression."""
        return tuple(self.y_train.shape[1:])


def prepare(spec: DataSpec, input_shape: tuple[int, ...], base_dir: Path, seed: int,
            task: str | None = None) -> Dataset:
    """Load, reshape to (N, *input_shape), split by spec.split, and normalize with train statistics.

    `task` is the resolved task (from the spec or the loss); None means the source's natural one.
    """
    arrays = load_arrays(spec, Path(base_dir), seed)
    input_shape = tuple(int(d) for d in input_shape)
    x = _reshape(arrays, input_shape)
    task = task or spec.task or arrays.task
    y, classes = _targets(arrays, task)
    train, val, test = _split(len(x), spec.split, seed)
    norm = Normalization.fit(spec.normalize, x[train])
    parts = [(norm.apply_normalization(x[idx]), y[idx]) for idx in (train, val, test)]
    return Dataset(*parts[0], *parts[1], *parts[2], task=task, classes=classes,
                   n_classes=len(classes) if classes is not None else None,
                   input_shape=input_shape, normalization=norm, source=arrays.name)


def _reshape(arrays: Arrays, input_shape: tuple[int, ...]) -> np.ndarray:
    have, want = math.prod(arrays.x.shape[1:]), math.prod(input_shape)
    if have != want:
        natural = list(arrays.x.shape[1:])
        raise SpecError(f"{arrays.name} gives samples of {have} values, but model.input {list(input_shape)} "
                        f"holds {want}", path="model.input", hint=f"e.g. input: {natural}")
    return np.ascontiguousarray(arrays.x.reshape((len(arrays.x),) + input_shape), dtype=np.float32)


def _targets(arrays: Arrays, task: str) -> tuple[np.ndarray, list[str] | None]:
    y = arrays.y
    if task == "regression":
        if arrays.classes is not None and not all(_is_number(c) for c in arrays.classes):
            raise SpecError(f"{arrays.name} has class labels ({', '.join(arrays.classes[:5])}, ...); regression "
                            "needs numeric targets", path="data.task", hint="use task: classification")
        y = y.astype(np.float32)
        return y.reshape(len(y), -1), None
    if arrays.classes is not None:
        return y.astype(np.int64).reshape(-1), list(arrays.classes)
    # numeric targets read as class labels: whole numbers, remapped to 0..K-1 in sorted order
    if y.ndim > 1 and math.prod(y.shape[1:]) != 1:
        raise SpecError(f"{arrays.name} has {list(y.shape[1:])} targets per sample; classification needs one label",
                        path="data.target", hint="use task: regression")
    y = y.reshape(-1)
    if not np.all(np.mod(y, 1) == 0):
        raise SpecError(f"{arrays.name} has fractional targets; classification needs whole-number labels",
                        path="data.task", hint="use task: regression, or a regression loss such as mse")
    values, idx = np.unique(y.astype(np.int64), return_inverse=True)
    return idx.reshape(-1).astype(np.int64), [str(v) for v in values]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _split(n: int, fractions: tuple[float, float, float], seed: int) -> tuple[np.ndarray, ...]:
    """A seeded permutation cut into train/val/test; a nonzero fraction gets at least one sample."""
    sizes = [round(n * f) if f == 0 else max(1, round(n * f)) for f in fractions[1:]]
    n_train = n - sum(sizes)
    if n_train < 1:
        raise SpecError(f"{n} samples are too few for split {list(fractions)}", path="data.split",
                        hint="use more samples or give train a larger fraction")
    # its own stream, so a generated source and its split do not share random numbers
    perm = np.random.default_rng([seed, 1]).permutation(n)
    return perm[:n_train], perm[n_train:n_train + sizes[0]], perm[n_train + sizes[0]:]
