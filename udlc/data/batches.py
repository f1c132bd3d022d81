"""Minibatch iteration: whole split on the device when it fits, else streamed from memory-mapped files.

Both kinds draw each epoch's order from the same generator call, so for a given generator state
they yield the same batches in the same order.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

# Above this many bytes (x and y together) a split is streamed instead of copied to the device.
MEMORY_LIMIT_BYTES = 2 * 1024**3


def _order(n: int, shuffle: bool, generator: Any) -> Any:
    import torch

    if not shuffle:
        return torch.arange(n)
    device = generator.device if generator is not None else "cpu"
    return torch.randperm(n, generator=generator, device=device).cpu()


class InMemoryBatches:
    """The whole split as tensors on the training device; batches are index selections."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool, device: Any = "cpu"):
        import torch

        self.x = torch.as_tensor(_writable(x)).to(device)
        self.y = torch.as_tensor(_writable(y)).to(device)
        self.batch_size, self.shuffle, self.device = batch_size, shuffle, device

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def epoch_batches(self, generator: Any = None) -> Iterator[tuple[Any, Any]]:
        order = _order(len(self.x), self.shuffle, generator).to(self.x.device)
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            yield self.x[idx], self.y[idx]


class _Rows:
    """Map-style dataset for DataLoader: one item is a whole batch of rows, read from the memmap at once."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batches: list[np.ndarray], transform: Callable | None):
        self.x, self.y, self.batches, self.transform = x, y, batches, transform

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        idx = self.batches[i]
        # memmaps read fastest in file order; read sorted, then restore the shuffled order
        ordering = np.argsort(idx, kind="stable")
        inverse = np.empty_like(ordering)
        inverse[ordering] = np.arange(len(idx))
        xb = np.asarray(self.x[idx[ordering]])[inverse]
        yb = np.asarray(self.y[idx[ordering]])[inverse]
        if self.transform is not None:
            xb = self.transform(xb)
        return np.ascontiguousarray(xb), np.ascontiguousarray(yb)


def _writable(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    return a if a.flags.writeable else a.copy()  # torch warns on read-only buffers (e.g. memmaps)


def _mmap(a: np.ndarray | str | Path) -> np.ndarray:
    return np.load(a, mmap_mode="r", allow_pickle=False) if isinstance(a, (str, Path)) else a


class LoaderBatches:
    """Streams batches through a torch DataLoader over (memory-mapped) arrays or .npy paths.

    `transform` (e.g. Normalization.apply_normalization) runs on each numpy batch, so raw files
    never need a normalized copy.
    """

    def __init__(self, x: np.ndarray | str | Path, y: np.ndarray | str | Path, batch_size: int, shuffle: bool,
                 device: Any = "cpu", transform: Callable | None = None, num_workers: int = 0):
        self.x, self.y = _mmap(x), _mmap(y)
        self.batch_size, self.shuffle, self.device = batch_size, shuffle, device
        self.transform, self.num_workers = transform, num_workers

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def epoch_batches(self, generator: Any = None) -> Iterator[tuple[Any, Any]]:
        import torch
        from torch.utils.data import DataLoader

        order = _order(len(self.x), self.shuffle, generator).numpy()
        batches = [order[s:s + self.batch_size] for s in range(0, len(order), self.batch_size)]
        # batch_size=None: each item already is a batch; DataLoader only adds workers and pinning
        cuda = torch.device(self.device).type == "cuda"
        loader = DataLoader(_Rows(self.x, self.y, batches, self.transform), batch_size=None, shuffle=False,
                            num_workers=self.num_workers, pin_memory=cuda)
        for xb, yb in loader:
            yield xb.to(self.device, non_blocking=cuda), yb.to(self.device, non_blocking=cuda)


def make_batches(x: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool, device: Any = "cpu", *,
                 threshold: int = MEMORY_LIMIT_BYTES, transform: Callable | None = None,
                 ) -> InMemoryBatches | LoaderBatches:
    """InMemoryBatches when the split fits under `threshold` bytes, else LoaderBatches.

    `transform` maps raw x to model input (e.g. normalizes): once up front in memory, per batch when streamed.
    """
    x, y = _mmap(x), _mmap(y)
    if x.nbytes + y.nbytes > threshold:
        return LoaderBatches(x, y, batch_size, shuffle, device, transform=transform)
    if transform is not None:
        x = transform(np.asarray(x))
    return InMemoryBatches(x, y, batch_size, shuffle, device)
