"""The raw samples a source gives: `Arrays` in memory, or `LazyRows` read from a memory-mapped file."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Arrays:
    """Raw samples: x is float32 (N, F...); y is int64 class indices when `classes` is set, else numbers.

    With `missing: mean`, x holds NaN where a CSV cell was empty; prepare() fills it from the train split.
    """

    x: np.ndarray
    y: np.ndarray
    classes: list[str] | None
    task: str  # the source's natural task; the spec or the loss may override it
    name: str  # how messages call the source
    # CSV only: the header names of x's columns in order, one-hot ones as 'color=red'; the target's name
    feature_columns: list[str] | None = None
    target_column: str | None = None
    categories: dict[str, list[str]] = field(default_factory=dict)  # categorical column -> its one-hot order
    dropped_rows: int = 0  # rows `missing: drop` left out
    labeled: bool = True  # False: samples alone (y zeros), for an unconditional generative task


class LazyRows:
    """Samples of a memory-mapped (samples, columns) .npy array, read only when indexed.

    Indexing (a slice or an index array) reads those rows, keeps the feature columns, reshapes them to
    `sample_shape` and applies `transform` (e.g. normalization); `np.asarray` reads them all. It has the
    len/shape/nbytes make_batches looks at, so a split larger than its memory limit is streamed batch by
    batch and never held whole.
    """

    dtype = np.dtype(np.float32)

    def __init__(self, data: np.ndarray, rows: np.ndarray, cols: list[int], sample_shape: tuple[int, ...],
                 transform=None):
        self.data, self.rows, self.cols, self.transform = data, np.asarray(rows, dtype=np.int64), cols, transform
        self.sample_shape = tuple(sample_shape)
        self.shape = (len(self.rows),) + self.sample_shape
        self.ndim = len(self.shape)
        self.nbytes = math.prod(self.shape) * self.dtype.itemsize

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self[[key]][0]
        idx = self.rows[key]
        order = np.argsort(idx, kind="stable")  # a memmap reads fastest in file order
        raw = np.empty((len(idx), len(self.cols)), dtype=np.float32)
        raw[order] = np.asarray(self.data[idx[order]])[:, self.cols]
        x = raw.reshape((len(idx),) + self.sample_shape)
        return self.transform(x) if self.transform is not None else x

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = np.empty(self.shape, np.float32)
        for start, chunk in self.chunks():
            out[start:start + len(chunk)] = chunk
        return out if dtype is None else out.astype(dtype)

    def chunks(self, size_bytes: int = 16 * 1024**2):
        """(start, samples) pieces of about size_bytes each, in order."""
        step = max(1, size_bytes // max(1, math.prod(self.sample_shape) * self.dtype.itemsize))
        for start in range(0, len(self), step):
            yield start, self[start:start + step]

    def subset(self, positions: np.ndarray, transform=None) -> LazyRows:
        return LazyRows(self.data, self.rows[positions], self.cols, self.sample_shape, transform)

    def reshaped(self, sample_shape: tuple[int, ...]) -> LazyRows:
        return LazyRows(self.data, self.rows, self.cols, sample_shape, self.transform)
