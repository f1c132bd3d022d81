"""Batch augmentation on the training device, vectorized over the batch.

Every random number comes from the given generator, drawn on the generator's device and then moved
to the batch's, so a run is reproducible from its seed whether it trains on CPU or GPU.
"""

from __future__ import annotations

import math
from typing import Any

from udlc.spec.data import IMAGE_AUGMENTS as IMAGE_ONLY


def augment_batch(x: Any, augments: list, generator: Any) -> Any:
    """Apply the DataSpec.augment entries, in order, to a batch x of shape (B, ...)."""
    for aug in augments:
        kind = aug.type
        if kind in IMAGE_ONLY and x.dim() != 4:
            raise ValueError(f"augment '{kind}' needs image batches (B, C, H, W), got {tuple(x.shape)}")
        x = _APPLY[kind](x, aug, generator)
    return x


def _rand(generator: Any, *shape: int, like: Any) -> Any:
    """Uniform [0, 1) numbers from the generator, on the batch's device and dtype."""
    import torch

    return torch.rand(shape, generator=generator, device=generator.device).to(like.device, like.dtype)


def _per_sample(values: Any, x: Any) -> Any:
    """(B,) -> (B, 1, ..., 1), to broadcast one value per sample."""
    return values.view((-1,) + (1,) * (x.dim() - 1))


def _random_crop(x: Any, aug: Any, generator: Any) -> Any:
    import torch
    import torch.nn.functional as F

    b, c, h, w = x.shape
    p = aug.padding  # the crop keeps the image's size (checked against the spec's `size`), so shapes hold
    padded = F.pad(x, (p, p, p, p)) if p else x  # zeros: the mean of standardized input
    hp, wp = padded.shape[-2:]
    g = generator.device
    oy = torch.randint(0, hp - h + 1, (b,), generator=generator, device=g).to(x.device)
    ox = torch.randint(0, wp - w + 1, (b,), generator=generator, device=g).to(x.device)
    # gather rows, then columns, at each sample's own offset: no loop over the batch
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None].expand(b, c, h, wp)
    cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :].expand(b, c, h, w)
    return padded.gather(2, rows).gather(3, cols)


def _hflip(x: Any, aug: Any, generator: Any) -> Any:
    import torch

    flip = _rand(generator, x.shape[0], like=x) < aug.p
    return torch.where(_per_sample(flip, x), x.flip(-1), x)


def _rotate(x: Any, aug: Any, generator: Any) -> Any:
    import torch
    import torch.nn.functional as F

    angles = (_rand(generator, x.shape[0], like=x) * 2 - 1) * math.radians(aug.degrees)
    cos, sin, zero = angles.cos(), angles.sin(), torch.zeros_like(angles)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _brightness(x: Any, aug: Any, generator: Any) -> Any:
    offset = (_rand(generator, x.shape[0], like=x) * 2 - 1) * aug.amount
    return x + _per_sample(offset, x)


def _contrast(x: Any, aug: Any, generator: Any) -> Any:
    factor = 1 + (_rand(generator, x.shape[0], like=x) * 2 - 1) * aug.amount
    mean = x.mean(dim=tuple(range(1, x.dim())), keepdim=True) if x.dim() > 1 else x
    return (x - mean) * _per_sample(factor, x) + mean


def _noise(x: Any, aug: Any, generator: Any) -> Any:
    import torch

    noise = torch.randn(x.shape, generator=generator, device=generator.device)
    return x + noise.to(x.device, x.dtype) * aug.std


_APPLY = {"random_crop": _random_crop, "hflip": _hflip, "rotate": _rotate,
          "brightness": _brightness, "contrast": _contrast, "noise": _noise}
