"""Batch augmentation on the training device: the `data.augment` entries applied in order.

Each augmentation's config is its entry in udlc/spec/augments.py, its implementation in
udlc/objectives/augments.py; this applies them.
"""

from __future__ import annotations

from typing import Any

from udlc.objectives.augments import APPLY
from udlc.spec.augments import AUGMENTS
from udlc.spec.augments import IMAGE_AUGMENTS as IMAGE_ONLY

__all__ = ["IMAGE_ONLY", "augment_batch", "mix_batch"]


def augment_batch(x: Any, augments: list, generator: Any) -> Any:
    """Apply the DataSpec.augment entries, in order, to a batch x of shape (B, ...); those that mix samples and
    targets are mix_batch's."""
    for aug in augments:
        entry = AUGMENTS[aug.type]
        if entry.mixes:
            continue
        _check_rank(entry, aug, x)
        x = APPLY[aug.type](x, aug, generator)
    return x


def mix_batch(x: Any, y: Any, augments: list, generator: Any) -> tuple[Any, Any]:
    """Apply the mixing entries (mixup, cutmix) to a batch and its targets, a float matrix (B, K): one-hot classes,
    or values."""
    for aug in augments:
        entry = AUGMENTS[aug.type]
        if entry.mixes:
            _check_rank(entry, aug, x)
            x, y = APPLY[aug.type](x, y, aug, generator)
    return x, y


def _check_rank(entry: Any, aug: Any, x: Any) -> None:
    if entry.text_only:  # check refuses them on every task but sequence_classification, which applies them itself
        raise ValueError(f"augment '{aug.type}' changes a text column's words or token ids (udlc.data.text_augment), "
                         "not a batch of tensors")
    if entry.images_only and x.dim() != 4:
        raise ValueError(f"augment '{aug.type}' needs image batches (B, C, H, W), got {tuple(x.shape)}")
