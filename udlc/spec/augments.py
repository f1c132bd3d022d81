"""Augmentations: each registered once with its config, whether it needs images, and its implementation.

An implementation takes a batch (B, ...) on the training device, the entry's config and a torch.Generator,
and returns a batch of the same shape, vectorized over the batch. Every random number comes from the
generator, drawn on the generator's device and then moved to the batch's, so a run is reproducible from its
seed whether it trains on CPU or GPU. torch is imported only when one runs, so `udlc check` stays torch-free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Literal

from pydantic import Field, PositiveFloat, PositiveInt, model_validator

from udlc.spec.base import StrictModel
from udlc.spec.registry import Entry, Registry


@dataclass(frozen=True, kw_only=True)
class AugmentEntry(Entry):
    # It moves pixels, so it needs (channels, height, width) samples; the others work on any sample shape.
    images_only: bool
    # (batch, cfg, torch.Generator) -> batch of the same shape; one that mixes samples (mixup, cutmix) also takes
    # and gives the targets, as a float matrix (one-hot classes): (batch, targets, cfg, generator) -> both
    apply: Callable[..., Any]
    mixes: bool = False


AUGMENTS: Registry[AugmentEntry] = Registry("augmentation")


def _rand(generator: Any, *shape: int, like: Any) -> Any:
    """Uniform [0, 1) numbers from the generator, on the batch's device and dtype."""
    import torch

    return torch.rand(shape, generator=generator, device=generator.device).to(like.device, like.dtype)


def _per_sample(values: Any, x: Any) -> Any:
    """(B,) -> (B, 1, ..., 1), to broadcast one value per sample."""
    return values.view((-1,) + (1,) * (x.dim() - 1))


# ---- geometric: images only -----------------------------------------------------------------------------


class RandomCrop(StrictModel):
    """Pad by `padding` on every side, then crop a random window of the image's own size."""

    type: Literal["random_crop"] = "random_crop"
    padding: int = Field(1, ge=0, le=64)
    size: PositiveInt | None = Field(None, description="the crop size; must equal the image size when given")


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


class HFlip(StrictModel):
    type: Literal["hflip"] = "hflip"
    p: float = Field(0.5, ge=0, le=1)


def _hflip(x: Any, aug: HFlip, generator: Any) -> Any:
    import torch

    flip = _rand(generator, x.shape[0], like=x) < aug.p
    return torch.where(_per_sample(flip, x), x.flip(-1), x)


class Rotate(StrictModel):
    """Rotate by an angle drawn uniformly from ±degrees."""

    type: Literal["rotate"] = "rotate"
    degrees: float = Field(gt=0, le=180)


def _rotate(x: Any, aug: Rotate, generator: Any) -> Any:
    import torch
    import torch.nn.functional as F

    angles = (_rand(generator, x.shape[0], like=x) * 2 - 1) * math.radians(aug.degrees)
    cos, sin, zero = angles.cos(), angles.sin(), torch.zeros_like(angles)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class RandomResizedCrop(StrictModel):
    """Crop a random box — `scale` of the image's area, width/height in `ratio` — and resize it back to the image's
    size (Inception's and torchvision's RandomResizedCrop, for a whole batch at once)."""

    type: Literal["random_resized_crop"] = "random_resized_crop"
    scale: list[PositiveFloat] = Field([0.08, 1.0], min_length=2, max_length=2,
                                       description="the box's share of the area: [smallest, largest], at most 1")
    ratio: list[PositiveFloat] = Field([3 / 4, 4 / 3], min_length=2, max_length=2,
                                       description="the box's width / height: [smallest, largest]")

    @model_validator(mode="after")
    def _ranges(self) -> "RandomResizedCrop":
        if self.scale[0] > self.scale[1] or self.scale[1] > 1:
            raise ValueError(f"scale must be [smallest, largest] with largest at most 1 (got {self.scale})")
        if self.ratio[0] > self.ratio[1]:
            raise ValueError(f"ratio must be [smallest, largest] (got {self.ratio})")
        return self


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


AUGMENTS.register(AugmentEntry(config=RandomCrop, main_arg="padding", images_only=True, apply=_random_crop,
                               examples=("random_crop", {"random_crop": 3}, {"random_crop": {"size": 8}})))
AUGMENTS.register(AugmentEntry(config=HFlip, main_arg="p", images_only=True, apply=_hflip,
                               examples=("hflip", {"hflip": 1.0})))
AUGMENTS.register(AugmentEntry(config=Rotate, main_arg="degrees", images_only=True, apply=_rotate,
                               examples=({"rotate": 15},)))
AUGMENTS.register(AugmentEntry(config=RandomResizedCrop, main_arg="scale", images_only=True,
                               apply=_random_resized_crop,
                               examples=("random_resized_crop", {"random_resized_crop": [0.5, 1.0]},
                                         {"random_resized_crop": {"scale": [1.0, 1.0], "ratio": [0.5, 2.0]}})))

# ---- values: any sample shape ---------------------------------------------------------------------------


class Brightness(StrictModel):
    """Add an offset drawn from ±amount (in units of the standardized input)."""

    type: Literal["brightness"] = "brightness"
    amount: PositiveFloat


def _brightness(x: Any, aug: Brightness, generator: Any) -> Any:
    offset = (_rand(generator, x.shape[0], like=x) * 2 - 1) * aug.amount
    return x + _per_sample(offset, x)


class Contrast(StrictModel):
    """Scale around each image's mean by a factor drawn from 1 ± amount."""

    type: Literal["contrast"] = "contrast"
    amount: float = Field(gt=0, lt=1)


def _contrast(x: Any, aug: Contrast, generator: Any) -> Any:
    factor = 1 + (_rand(generator, x.shape[0], like=x) * 2 - 1) * aug.amount
    mean = x.mean(dim=tuple(range(1, x.dim())), keepdim=True) if x.dim() > 1 else x
    return (x - mean) * _per_sample(factor, x) + mean


class Noise(StrictModel):
    """Add gaussian noise of this standard deviation."""

    type: Literal["noise"] = "noise"
    std: PositiveFloat


def _noise(x: Any, aug: Noise, generator: Any) -> Any:
    import torch

    noise = torch.randn(x.shape, generator=generator, device=generator.device)
    return x + noise.to(x.device, x.dtype) * aug.std


class ColorJitter(StrictModel):
    """Per picture, a random brightness offset (±brightness), contrast factor (1 ± contrast) and saturation
    factor (1 ± saturation: each pixel's colour pulled towards or pushed away from its grey), in that order, in
    units of the standardized input. Saturation needs colour pictures (3 channels); grey ones skip it."""

    type: Literal["color_jitter"] = "color_jitter"
    brightness: float = Field(0.2, ge=0)
    contrast: float = Field(0.2, ge=0, lt=1)
    saturation: float = Field(0.2, ge=0, lt=1)


def _color_jitter(x: Any, aug: ColorJitter, generator: Any) -> Any:
    if aug.brightness:
        x = _brightness(x, Brightness(amount=aug.brightness), generator)
    if aug.contrast:
        x = _contrast(x, Contrast(amount=aug.contrast), generator)
    if aug.saturation and x.shape[1] == 3:
        factor = _per_sample(1 + (_rand(generator, x.shape[0], like=x) * 2 - 1) * aug.saturation, x)
        grey = x.mean(dim=1, keepdim=True)
        x = grey + (x - grey) * factor
    return x


AUGMENTS.register(AugmentEntry(config=Brightness, main_arg="amount", images_only=False, apply=_brightness,
                               examples=({"brightness": 0.2},)))
AUGMENTS.register(AugmentEntry(config=Contrast, main_arg="amount", images_only=False, apply=_contrast,
                               examples=({"contrast": 0.3},)))
AUGMENTS.register(AugmentEntry(config=Noise, main_arg="std", images_only=False, apply=_noise,
                               examples=({"noise": 0.1},)))
AUGMENTS.register(AugmentEntry(config=ColorJitter, main_arg="brightness", images_only=True, apply=_color_jitter,
                               examples=("color_jitter", {"color_jitter": 0.3},
                                         {"color_jitter": {"saturation": 0.4, "brightness": 0}})))

# ---- mixing samples and their targets --------------------------------------------------------------------


class Mixup(StrictModel):
    """Each sample blended with another of the batch, x·λ + x'·(1 − λ), and its target likewise, λ drawn per
    sample from Beta(alpha, alpha) (Zhang et al. 2018)."""

    type: Literal["mixup"] = "mixup"
    alpha: PositiveFloat = 0.2


class CutMix(StrictModel):
    """A random box of each picture replaced by the same box of another, the targets mixed by the box's share
    of the area (Yun et al. 2019); the box's share is 1 − λ, λ drawn per sample from Beta(alpha, alpha)."""

    type: Literal["cutmix"] = "cutmix"
    alpha: PositiveFloat = 1.0


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


AUGMENTS.register(AugmentEntry(config=Mixup, main_arg="alpha", images_only=False, apply=_mixup, mixes=True,
                               examples=("mixup", {"mixup": 0.4})))
AUGMENTS.register(AugmentEntry(config=CutMix, main_arg="alpha", images_only=True, apply=_cutmix, mixes=True,
                               examples=("cutmix", {"cutmix": 0.5})))

Augment = AUGMENTS.union()
# Names of the augmentations that need (channels, height, width) samples; the compiler checks model.input.
IMAGE_AUGMENTS = frozenset(e.name for e in AUGMENTS if e.images_only)
# Those that mix samples and targets: only a task that trains on targets (supervised) takes them.
MIXING_AUGMENTS = frozenset(e.name for e in AUGMENTS if e.mixes)
