"""A ready-to-train dataset: samples shaped like model.input, split, and normalized on train only."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from udlc.compiler.infer import fit_sample, is_symbolic
from udlc.data.layout import is_number
from udlc.data.arrays import Arrays, LazyRows
from udlc.data.file_kinds import load_arrays
from udlc.errors import SpecError
from udlc.spec.data import DataSpec, split_sizes


# An .npy source larger than this is memory-mapped and read batch by batch, never loaded whole; its
# splits are then LazyRows, which make_batches streams once they pass its own memory limit.
LAZY_NPY_BYTES = 1024**3


@dataclass
class Normalization:
    """normalized = (raw - shift) / scale; shift and scale broadcast over one sample (or a batch)."""

    kind: str
    shift: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, kind: str, x: np.ndarray, axis: int | None = 0) -> Normalization:
        """Fit on x (N, *input_shape): per entry of a sample's `axis` (features of a vector, channels of an
        image), or one shift and scale for everything when `axis` is None."""
        return cls.fit_chunks(kind, [x], tuple(x.shape[1:]), axis)

    @classmethod
    def fit_chunks(cls, kind: str, chunks: Iterable[np.ndarray], sample_shape: tuple[int, ...],
                   axis: int | None = 0) -> Normalization:
        """Fit on the samples of several (n, *sample_shape) chunks, e.g. read one by one from a memmap."""
        if kind not in ("standard", "minmax", "none"):
            raise ValueError(f"unknown normalization {kind!r}")
        rank = len(sample_shape)
        axis = None if axis is None or rank == 0 else axis % rank
        stat_shape = tuple(sample_shape[i] if i == axis else 1 for i in range(rank))
        axes = (0,) + tuple(i + 1 for i in range(rank) if i != axis)
        count, mean, m2, low, high = 0, 0.0, 0.0, np.inf, -np.inf
        for chunk in chunks if kind != "none" else ():
            if len(chunk) == 0:
                continue
            data = chunk.astype(np.float64)  # float32 sums drift on large sets
            n = data.size // math.prod(stat_shape)
            if kind == "minmax":
                low, high = np.minimum(low, data.min(axis=axes)), np.maximum(high, data.max(axis=axes))
            else:  # Chan et al.'s merge of running (count, mean, sum of squared deviations) with this chunk's
                m = data.mean(axis=axes)
                chunk_m2 = ((data - m.reshape((1,) + stat_shape)) ** 2).sum(axis=axes)
                delta, total = m - mean, count + n
                mean, m2 = mean + delta * n / total, m2 + chunk_m2 + delta**2 * count * n / total
            count += n
        if count == 0:
            return cls(kind, np.zeros(stat_shape, np.float32), np.ones(stat_shape, np.float32))
        if kind == "standard":
            shift, scale = np.asarray(mean), np.sqrt(m2 / count)
        else:
            shift, scale = low, high - low
        scale = np.where(scale > 1e-12, scale, 1.0)  # constant features: shift only, never divide by 0
        return cls(kind, shift.reshape(stat_shape).astype(np.float32), scale.reshape(stat_shape).astype(np.float32))

    def apply_normalization(self, raw: np.ndarray) -> np.ndarray:
        return ((np.asarray(raw, dtype=np.float32) - self.shift) / self.scale).astype(np.float32)

    def invert(self, values: np.ndarray) -> np.ndarray:
        """Back to raw units: what a regression model's standardized outputs mean in the data's terms."""
        return (np.asarray(values, dtype=np.float32) * self.scale + self.shift).astype(np.float32)

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
    """The splits, normalized. x_* are float32 arrays, or LazyRows (read on demand, with the same len,
    shape and indexing) for an .npy source above LAZY_NPY_BYTES."""

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
    # Regression targets, standardized on the train split (y_* hold standardized values); None for
    # classification or normalize: none. Metrics and predictions in raw units go through .invert().
    target_normalization: Normalization | None = None
    # CSV only: x's columns by header name (one-hot ones as 'color=red'), in the order the model sees them
    feature_columns: list[str] | None = None
    target_column: str | None = None
    categories: dict[str, list[str]] = field(default_factory=dict)  # categorical column -> one-hot order
    fill_values: dict[str, float] = field(default_factory=dict)  # missing: mean -> raw train mean per column
    dropped_rows: int = 0  # rows missing: drop left out

    @property
    def target_shape(self) -> tuple[int, ...]:
        """Per-sample target shape: () for class indices, (k,) for regression."""
        return tuple(self.y_train.shape[1:])


def prepare(spec: DataSpec, input_shape: tuple[int | str, ...] | None, base_dir: Path, seed: int,
            task: str | None = None) -> Dataset:
    """Load, reshape to (N, *input_shape), split by spec.split, and normalize with train statistics.

    `task` is the resolved task (from the spec or the loss); None means the source's natural one.
    Regression targets are standardized with train statistics too, unless normalize is 'none'. An input_shape of
    None takes each sample as one flat row (a model without a declared input: gradient-boosted trees).
    `data.fraction`/`limit` keep a subset of the training split (subset_of), the other splits whole.
    """
    arrays = load_arrays(spec, Path(base_dir), seed, lazy_bytes=LAZY_NPY_BYTES)
    if input_shape is None:
        input_shape = (math.prod(arrays.x.shape[1:]),)
    train, val, test = _split(len(arrays.x), spec.split, seed)
    fill_values = _fill_missing(arrays, train) if spec.missing == "mean" else {}
    x = _reshape(arrays, input_shape)
    axis = stat_axis(input_shape)
    input_shape = tuple(x.shape[1:])  # the symbols (T) bound to the data's sizes
    task = task or spec.task or arrays.task
    y, classes = _targets(arrays, task)
    if spec.fraction is not None or spec.limit is not None:
        train = subset_of(train, y[train] if task == "classification" else None, spec, seed)
    if isinstance(x, LazyRows):  # statistics in one streaming pass; each split normalizes as it is read
        norm = Normalization.fit_chunks(spec.normalize, (c for _, c in x.subset(train).chunks()), input_shape, axis)
        xs = [x.subset(idx, norm.apply_normalization) for idx in (train, val, test)]
    else:
        norm = Normalization.fit(spec.normalize, x[train], axis)
        xs = [norm.apply_normalization(x[idx]) for idx in (train, val, test)]
    target_norm = None
    if task == "regression" and spec.normalize != "none":
        # Raw targets in the hundreds of thousands make mse start near 1e10 and Adam's steps far too small;
        # standardized ones start near 1, like the inputs. Always 'standard': minmax is for inputs.
        target_norm = Normalization.fit("standard", y[train])
        y = target_norm.apply_normalization(y)
    parts = [(xi, y[idx]) for xi, idx in zip(xs, (train, val, test))]
    return Dataset(*parts[0], *parts[1], *parts[2], task=task, classes=classes,
                   n_classes=len(classes) if classes is not None else None,
                   input_shape=input_shape, normalization=norm, source=arrays.name,
                   target_normalization=target_norm, feature_columns=arrays.feature_columns,
                   target_column=arrays.target_column, categories=arrays.categories,
                   fill_values=fill_values, dropped_rows=arrays.dropped_rows)


def _fill_missing(arrays: Arrays, train: np.ndarray) -> dict[str, float]:
    """Fill NaN cells (empty CSV cells) in place with each column's mean over the train rows that have it.

    Returns the raw fill value of every numeric feature column, so predict can fill the same way.
    """
    x = arrays.x
    names = arrays.feature_columns or [str(j) for j in range(x.shape[1])]
    one_hot = {f"{c}={v}" for c, values in arrays.categories.items() for v in values}
    fill: dict[str, float] = {}
    for j, name in enumerate(names):
        column = x[train, j].astype(np.float64)
        present = column[~np.isnan(column)]
        empty = np.isnan(x[:, j])
        if empty.any():
            if not len(present):
                raise SpecError(f"column '{name}' has no values in the training split, so missing: mean has "
                                "nothing to fill it with", path="data.missing",
                                hint="use missing: drop, or fill the column in")
            x[empty, j] = present.mean()
        if name not in one_hot:
            fill[name] = float(present.mean())
    return fill


def stat_axis(input_shape: tuple[int | str, ...]) -> int | None:
    """The sample axis inputs are standardized along: the first (features, channels) when its size is fixed,
    else the last ((T, features)); statistics along a symbolic axis would not fit another length."""
    if input_shape and isinstance(input_shape[0], int):
        return 0
    if input_shape and isinstance(input_shape[-1], int):
        return len(input_shape) - 1
    return None


def _reshape(arrays: Arrays, input_shape: tuple[int | str, ...]) -> np.ndarray | LazyRows:
    """Samples shaped as the model's input; its symbols (T) take their sizes from the data."""
    have = math.prod(arrays.x.shape[1:])
    fitted = fit_sample(input_shape, tuple(arrays.x.shape[1:]), have)
    if fitted is None:
        natural = list(arrays.x.shape[1:])
        holds = math.prod(input_shape) if not is_symbolic(input_shape) else "a different number"
        raise SpecError(f"{arrays.name} gives samples of {have} values, but model.input "
                        f"[{', '.join(map(str, input_shape))}] holds {holds}", path="model.input",
                        hint=f"e.g. input: {natural}")
    input_shape = fitted
    if isinstance(arrays.x, LazyRows):
        return arrays.x.reshaped(input_shape)
    return np.ascontiguousarray(arrays.x.reshape((len(arrays.x),) + input_shape), dtype=np.float32)


def _targets(arrays: Arrays, task: str) -> tuple[np.ndarray, list[str] | None]:
    y = arrays.y
    if task == "regression":
        if arrays.classes is not None and not all(is_number(c) for c in arrays.classes):
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


def _split(n: int, fractions: tuple[float, float, float], seed: int) -> tuple[np.ndarray, ...]:
    """A seeded permutation cut into train/val/test; a nonzero fraction gets at least one sample."""
    n_train, *sizes = split_sizes(n, fractions)
    if n_train < 1:
        raise SpecError(f"{n} samples are too few for split {list(fractions)}", path="data.split",
                        hint="use more samples or give train a larger fraction")
    # its own stream, so a generated source and its split do not share random numbers
    perm = np.random.default_rng([seed, 1]).permutation(n)
    return perm[:n_train], perm[n_train:n_train + sizes[0]], perm[n_train + sizes[0]:]


def subset_of(train: np.ndarray, labels: np.ndarray | None, spec: DataSpec, seed: int) -> np.ndarray:
    """The training split's indices that `data.fraction` or `data.limit` keeps: drawn from the spec's seed (its own
    stream, so the split itself is unchanged), in proportion to each class where `labels` are given (the largest
    remainders round up), in the split's order. The same seed keeps the same samples."""
    n = len(train)
    if spec.limit is not None and spec.limit > n:
        raise SpecError(f"limit {spec.limit} is more than the training split's {n} samples", path="data.limit",
                        hint=f"give at most {n}, or leave `limit` out to train on them all")
    keep = spec.limit if spec.limit is not None else max(1, round(n * spec.fraction))
    rng = np.random.default_rng([seed, 2])
    if labels is None:
        chosen = rng.permutation(n)[:keep]
    else:
        values, counts = np.unique(labels, return_counts=True)
        quota = keep * counts / n
        take = np.floor(quota).astype(np.int64)
        order = np.lexsort((rng.random(len(values)), -(quota - take)))  # largest remainder first, ties at random
        take[order[:keep - take.sum()]] += 1
        chosen = np.concatenate([rng.permutation(np.flatnonzero(labels == v))[:k] for v, k in zip(values, take)])
    return train[np.sort(chosen)]
