"""Minibatch iteration over named tensors ({"x": inputs, "target": targets}, or a sequence model's
{"tokens": ..., "target": ...}): the whole split on the device when it fits, else streamed from
memory-mapped files.

Both kinds draw each epoch's order from the same generator call, so for a given generator state
they yield the same batches in the same order. A batch is a dict of tensors keyed like the split.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

# Above this many bytes (all of a split's arrays together) a split is streamed instead of copied to the device.
MEMORY_LIMIT_BYTES = 2 * 1024**3

Arrays = dict[str, Any]  # name -> (N, ...) numpy array, memmap, LazyRows or .npy path


def epoch_order(n: int, shuffle: bool, generator: Any) -> Any:
    """The sample order of one epoch: a permutation drawn from the generator, or 0..n-1."""
    import torch

    if not shuffle:
        return torch.arange(n)
    device = generator.device if generator is not None else "cpu"
    return torch.randperm(n, generator=generator, device=device).cpu()


def process_share(n: int, rank: int, world: int) -> tuple[int, int, int]:
    """The rows [start, stop) of a global batch of `n` that process `rank` of `world` trains on — contiguous, the
    shares differing by one row at most — and how many of them count. A share of none is row 0, counting for
    nothing: every process must take part in every step (udlc.trainer.distributed)."""
    start, stop = rank * n // world, (rank + 1) * n // world
    return (start, stop, stop - start) if stop > start else (0, 1, 0)


def _length(arrays: Arrays) -> int:
    lengths = {len(a) for a in arrays.values()}
    if len(lengths) != 1:
        raise ValueError(f"the named arrays differ in length: { {k: len(a) for k, a in arrays.items()} }")
    return lengths.pop()


class InMemoryBatches:
    """The whole split as tensors on the training device; batches are index selections."""

    def __init__(self, arrays: Arrays, batch_size: int, shuffle: bool, device: Any = "cpu"):
        import torch

        self.tensors = {k: torch.as_tensor(_writable(a)).to(device) for k, a in arrays.items()}
        self.n = _length(arrays)
        self.batch_size, self.shuffle, self.device = batch_size, shuffle, device

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def epoch_batches(self, generator: Any = None) -> Iterator[dict[str, Any]]:
        return (batch for _, _, batch in self.epoch_shares(generator, 0, 1))

    def epoch_shares(self, generator: Any, rank: int, world: int) -> Iterator[tuple[int, int, dict[str, Any]]]:
        """Of each global batch: its size, the rows of this process's share that count, and the share itself
        (process_share), only those rows selected."""
        order = epoch_order(self.n, self.shuffle, generator).to(self.device)
        for start in range(0, self.n, self.batch_size):
            idx = order[start:start + self.batch_size]
            first, stop, counted = process_share(len(idx), rank, world)
            yield len(idx), counted, {k: t[idx[first:stop]] for k, t in self.tensors.items()}


class _Rows:
    """Map-style dataset for DataLoader: one item is a whole batch of rows, read from the memmaps at once."""

    def __init__(self, arrays: Arrays, batches: list[np.ndarray], transforms: dict[str, Callable]):
        self.arrays, self.batches, self.transforms = arrays, batches, transforms

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        idx = self.batches[i]
        # memmaps read fastest in file order; read sorted, then restore the shuffled order
        ordering = np.argsort(idx, kind="stable")
        inverse = np.empty_like(ordering)
        inverse[ordering] = np.arange(len(idx))
        out = {}
        for key, a in self.arrays.items():
            rows = np.asarray(a[idx[ordering]])[inverse]
            if key in self.transforms:
                rows = self.transforms[key](rows)
            out[key] = np.ascontiguousarray(rows)
        return out


def _writable(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    return a if a.flags.writeable else a.copy()  # torch warns on read-only buffers (e.g. memmaps)


def _mmap(a: np.ndarray | str | Path) -> np.ndarray:
    return np.load(a, mmap_mode="r", allow_pickle=False) if isinstance(a, (str, Path)) else a


class LoaderBatches:
    """Streams batches through a torch DataLoader over (memory-mapped) arrays or .npy paths.

    `transforms` (e.g. {"x": Normalization.apply_normalization}) run on each numpy batch, so raw files
    never need a normalized copy.
    """

    def __init__(self, arrays: Arrays, batch_size: int, shuffle: bool, device: Any = "cpu",
                 transforms: dict[str, Callable] | None = None, num_workers: int = 0):
        self.arrays = {k: _mmap(a) for k, a in arrays.items()}
        self.n = _length(self.arrays)
        self.batch_size, self.shuffle, self.device = batch_size, shuffle, device
        self.transforms, self.num_workers = transforms or {}, num_workers

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def epoch_batches(self, generator: Any = None) -> Iterator[dict[str, Any]]:
        return (batch for _, _, batch in self.epoch_shares(generator, 0, 1))

    def epoch_shares(self, generator: Any, rank: int, world: int) -> Iterator[tuple[int, int, dict[str, Any]]]:
        """As InMemoryBatches.epoch_shares: a process reads only its share's rows from the files."""
        import torch
        from torch.utils.data import DataLoader

        order = epoch_order(self.n, self.shuffle, generator).numpy()
        batches = [order[s:s + self.batch_size] for s in range(0, len(order), self.batch_size)]
        shares = [process_share(len(b), rank, world) for b in batches]
        # batch_size=None: each item already is a batch; DataLoader only adds workers and pinning
        cuda = torch.device(self.device).type == "cuda"
        loader = DataLoader(_Rows(self.arrays, [b[first:stop] for b, (first, stop, _) in zip(batches, shares)],
                                  self.transforms), batch_size=None, shuffle=False, num_workers=self.num_workers,
                            pin_memory=cuda)
        for whole, (_, _, counted), batch in zip(batches, shares, loader):
            yield len(whole), counted, {k: t.to(self.device, non_blocking=cuda) for k, t in batch.items()}


def make_batches(arrays: Arrays, batch_size: int, shuffle: bool, device: Any = "cpu", *,
                 threshold: int = MEMORY_LIMIT_BYTES, transforms: dict[str, Callable] | None = None,
                 ) -> InMemoryBatches | LoaderBatches:
    """InMemoryBatches when the split fits under `threshold` bytes, else LoaderBatches.

    `transforms` map raw arrays to model inputs (e.g. normalize): once up front in memory, per batch when
    streamed.
    """
    arrays = {k: _mmap(a) for k, a in arrays.items()}
    if sum(a.nbytes for a in arrays.values()) > threshold:
        return LoaderBatches(arrays, batch_size, shuffle, device, transforms=transforms)
    arrays = {k: (transforms[k](np.asarray(a)) if transforms and k in transforms else a) for k, a in arrays.items()}
    return InMemoryBatches(arrays, batch_size, shuffle, device)
