"""Variable-length samples into batches: pad each named array along its first axis to the longest in the
batch and build the mask that says which positions are real.

A sequence model's samples are {"tokens": (T_i,) int64, "target": (T_i,) int64} with T_i differing;
collate gives {"tokens": (B, T) , "target": (B, T), "tokens_mask": (B, T) bool} with T = max T_i, where
the mask is True at real positions. Arrays of fixed shape (a class label, a feature vector) are stacked.
"""

from __future__ import annotations

import math
from typing import Any, Iterator, Sequence

import numpy as np

MASK_SUFFIX = "_mask"


def collate(samples: Sequence[dict[str, np.ndarray]], pad_values: dict[str, Any] | None = None
            ) -> dict[str, np.ndarray]:
    """Stack samples into a batch; arrays whose first axis varies are padded (with `pad_values[name]`,
    default 0) and get a `<name>_mask`."""
    if not samples:
        raise ValueError("collate needs at least one sample")
    pad_values = pad_values or {}
    out: dict[str, np.ndarray] = {}
    for key in samples[0]:
        arrays = [np.asarray(s[key]) for s in samples]
        if len({a.shape for a in arrays}) == 1:
            out[key] = np.stack(arrays)
            continue
        if len({a.shape[1:] for a in arrays}) != 1 or arrays[0].ndim == 0:
            raise ValueError(f"'{key}': samples may differ only in their first axis, got "
                             f"{sorted({a.shape for a in arrays})}")
        longest = max(len(a) for a in arrays)
        batch = np.full((len(arrays), longest) + arrays[0].shape[1:], pad_values.get(key, 0), dtype=arrays[0].dtype)
        mask = np.zeros((len(arrays), longest), dtype=bool)
        for i, a in enumerate(arrays):
            batch[i, :len(a)] = a
            mask[i, :len(a)] = True
        out[key], out[key + MASK_SUFFIX] = batch, mask
    return out


class PaddedBatches:
    """Batches of variable-length samples, padded per batch; the same protocol (len, epoch_batches) as
    udlc.data.batches, and the same epoch order for a given generator state."""

    def __init__(self, samples: Sequence[dict[str, np.ndarray]], batch_size: int, shuffle: bool,
                 device: Any = "cpu", pad_values: dict[str, Any] | None = None):
        self.samples, self.batch_size, self.shuffle, self.device = samples, batch_size, shuffle, device
        self.pad_values = pad_values or {}

    def __len__(self) -> int:
        return math.ceil(len(self.samples) / self.batch_size)

    def epoch_batches(self, generator: Any = None) -> Iterator[dict[str, Any]]:
        import torch

        from udlc.data.batches import epoch_order

        order = epoch_order(len(self.samples), self.shuffle, generator).tolist()
        for start in range(0, len(order), self.batch_size):
            batch = collate([self.samples[i] for i in order[start:start + self.batch_size]], self.pad_values)
            yield {k: torch.as_tensor(v).to(self.device) for k, v in batch.items()}
