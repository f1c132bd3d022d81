"""The augmentations' implementations, by the names udlc.spec.augments registers.

An implementation takes a batch (B, ...) on the training device, the entry's config and a torch.Generator,
and returns a batch of the same shape, vectorized over the batch; one that mixes samples (mixup, cutmix) also
takes and gives the targets, as a float matrix (one-hot classes): (batch, targets, cfg, generator) -> both.
Every random number comes from the generator, drawn on the generator's device and then moved to the batch's, so
a run is reproducible from its seed whether it trains on CPU or GPU. torch is imported only when one runs.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from udlc.objectives import implements
from udlc.objectives.audio_augments import APPLY_AUDIO, noise_at_snr
from udlc.objectives.text_augments import TEXT_APPLY
from udlc.spec.augments import (
    AUGMENTS,
    Brightness,
    ColorJitter,
    Contrast,
    CutMix,
    HFlip,
    Mixup,
    Noise,
    RandomCrop,
    RandomResizedCrop,
    Rotate,
    VFlip,
)


def _rand(generator: Any, *shape: int, like: Any) -> Any:
    """Uniform [0, 1) numbers from the generator, on the batch's device and dtype."""
    import torch

    return torch.rand(shape, generator=generator, device=generator.device).to(like.device, like.dtype)


def _per_sample(values: Any, x: Any) -> Any:
    """(B,) -> (B, 1, ..., 1), to broadcast one value per sample."""
    return values.view((-1,) + (1,) * (x.dim() - 1))


def _random_crop(x: Any, aug: RandomCrop, generator: Any) -> Any:
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


def _hflip(x: Any, aug: HFlip, generator: Any) -> Any:
    import torch

    flip = _rand(generator, x.shape[0], like=x) < aug.p
    return torch.where(_per_sample(flip, x), x.flip(-1), x)


def _vflip(x: Any, aug: VFlip, generator: Any) -> Any:
    import torch

    flip = _rand(generator, x.shape[0], like=x) < aug.p
    return torch.where(_per_sample(flip, x), x.flip(-2), x)


def _rotate(x: Any, aug: Rotate, generator: Any) -> Any:
    import torch
    import torch.nn.functional as F

    angles = (_rand(generator, x.shape[0], like=x) * 2 - 1) * math.radians(aug.degrees)
    cos, sin, zero = angles.cos(), angles.sin(), torch.zeros_like(angles)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _random_resized_crop(x: Any, aug: RandomResizedCrop, generator: Any) -> Any:
    import torch
    import torch.nn.functional as F

    b = x.shape[0]
    area = aug.scale[0] + _rand(generator, b, like=x) * (aug.scale[1] - aug.scale[0])
    low, high = math.log(aug.ratio[0]), math.log(aug.ratio[1])
    ratio = torch.exp(low + _rand(generator, b, like=x) * (high - low))
    # The box's width and height as shares of the image's (at most all of it), and its centre, in [-1, 1].
    w, h = (area * ratio).sqrt().clamp(max=1), (area / ratio).sqrt().clamp(max=1)
    cx, cy = (_rand(generator, b, like=x) * 2 - 1) * (1 - w), (_rand(generator, b, like=x) * 2 - 1) * (1 - h)
    zero = torch.zeros_like(w)
    theta = torch.stack([torch.stack([w, zero, cx], 1), torch.stack([zero, h, cy], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _brightness(x: Any, aug: Brightness, generator: Any) -> Any:
    offset = (_rand(generator, x.shape[0], like=x) * 2 - 1) * aug.amount
    return x + _per_sample(offset, x)


def _contrast(x: Any, aug: Contrast, generator: Any) -> Any:
    factor = 1 + (_rand(generator, x.shape[0], like=x) * 2 - 1) * aug.amount
    mean = x.mean(dim=tuple(range(1, x.dim())), keepdim=True) if x.dim() > 1 else x
    return (x - mean) * _per_sample(factor, x) + mean


def _noise(x: Any, aug: Noise, generator: Any) -> Any:
    import torch

    if aug.snr is not None:
        return noise_at_snr(x, aug.snr, generator)
    noise = torch.randn(x.shape, generator=generator, device=generator.device)
    return x + noise.to(x.device, x.dtype) * aug.std


def _color_jitter(x: Any, aug: ColorJitter, generator: Any) -> Any:
    if aug.brightness:
        x = _brightness(x, Brightness(amount=aug.brightness), generator)
    if aug.contrast:
        x = _contrast(x, Contrast(amount=aug.contrast), generator)
    if aug.saturation and x.shape[1] == 3:
        factor = _per_sample(1 + (_rand(generator, x.shape[0], like=x) * 2 - 1) * aug.saturation, x)
        grey = x.mean(dim=1, keepdim=True)
        x = grey + (x - grey) * factor
    if aug.hue and x.shape[1] == 3:
        x = _turn_hue(x, (_rand(generator, x.shape[0], like=x) * 2 - 1) * aug.hue * 2 * math.pi)
    return x


def _turn_hue(x: Any, angles: Any) -> Any:
    """Each picture's colours turned by its angle around the grey axis (1, 1, 1): Rodrigues' rotation, which keeps
    every pixel's grey level and the distance of its colour from grey; a third of a turn cycles R -> G -> B."""
    import torch

    k = torch.full((3,), 3 ** -0.5, device=x.device, dtype=x.dtype)
    cross = torch.tensor([[0.0, -1, 1], [1, 0, -1], [-1, 1, 0]], device=x.device, dtype=x.dtype) * 3 ** -0.5
    cos, sin = angles.cos()[:, None, None], angles.sin()[:, None, None]
    rotation = cos * torch.eye(3, device=x.device, dtype=x.dtype) + sin * cross + (1 - cos) * torch.outer(k, k)
    return torch.einsum("bij,bjhw->bihw", rotation, x)


def _partners(x: Any, alpha: float, generator: Any) -> tuple[Any, Any]:
    """A partner for each sample (a permutation of the batch) and λ per sample, all from the generator (a Beta
    draw has no torch generator: numpy's, seeded from it)."""
    import numpy as np
    import torch

    b, g = x.shape[0], generator.device
    perm = torch.randperm(b, generator=generator, device=g).to(x.device)
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=g))
    lam = np.random.default_rng(seed).beta(alpha, alpha, size=b)
    return perm, torch.as_tensor(lam, dtype=x.dtype, device=x.device)


def _mixup(x: Any, y: Any, aug: Mixup, generator: Any) -> tuple[Any, Any]:
    perm, lam = _partners(x, aug.alpha, generator)
    mixed_x = _per_sample(lam, x) * x + _per_sample(1 - lam, x) * x[perm]
    return mixed_x, _per_sample(lam, y) * y + _per_sample(1 - lam, y) * y[perm]


def _cutmix(x: Any, y: Any, aug: CutMix, generator: Any) -> tuple[Any, Any]:
    import torch

    perm, lam = _partners(x, aug.alpha, generator)
    h, w = x.shape[-2:]
    side = (1 - lam).sqrt()  # the box's sides as shares of the picture's: its area is 1 - λ
    cy, cx = _rand(generator, x.shape[0], like=x) * h, _rand(generator, x.shape[0], like=x) * w
    top, bottom = (cy - side * h / 2).clamp(0, h).round(), (cy + side * h / 2).clamp(0, h).round()
    left, right = (cx - side * w / 2).clamp(0, w).round(), (cx + side * w / 2).clamp(0, w).round()
    rows, cols = torch.arange(h, device=x.device, dtype=x.dtype), torch.arange(w, device=x.device, dtype=x.dtype)
    inside = (((rows >= top[:, None]) & (rows < bottom[:, None]))[:, :, None] &
              ((cols >= left[:, None]) & (cols < right[:, None]))[:, None, :])[:, None]  # (B, 1, H, W)
    kept = 1 - (bottom - top) * (right - left) / (h * w)  # λ as the box turned out, clipped at the edges
    return torch.where(inside, x[perm], x), _per_sample(kept, y) * y + _per_sample(1 - kept, y) * y[perm]

APPLY: dict[str, Callable[..., Any]] = dict(implements(AUGMENTS, {
    "random_crop": _random_crop,
    "hflip": _hflip,
    "vflip": _vflip,
    "rotate": _rotate,
    "random_resized_crop": _random_resized_crop,
    "brightness": _brightness,
    "contrast": _contrast,
    "noise": _noise,
    "color_jitter": _color_jitter,
    "mixup": _mixup,
    "cutmix": _cutmix,
    **APPLY_AUDIO,  # waveforms (B, channels, samples)
    **TEXT_APPLY,  # applied to a text column's words or ids by udlc.data.text_augment, not to batches
}))
