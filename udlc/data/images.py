"""Samples as a picture a person can look at: images in a grid, or 2-D points in a scatter plot (over the
data's points, where given). numpy and Pillow only: `udlc sample` uses it without torch."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

TILE = 32  # pixels a sample's image is scaled to (at least): an 8x8 digit is too small to see
PLOT = 480  # side of a scatter plot


def as_images(samples: np.ndarray) -> np.ndarray | None:
    """(n, C, H, W) with C 1 or 3, or (n, F) with F a square number: as (n, H, W, C); None for other shapes."""
    if samples.ndim == 4 and samples.shape[1] in (1, 3):
        return samples.transpose(0, 2, 3, 1)
    if samples.ndim == 3:  # (n, H, W)
        return samples[..., None]
    if samples.ndim == 2 and samples.shape[1] > 3:
        side = math.isqrt(samples.shape[1])
        if side * side == samples.shape[1]:
            return samples.reshape(len(samples), side, side, 1)
    return None


def picturable(sample_shape: tuple[int, ...]) -> bool:
    """Whether samples of this shape make a picture: images, or 2-D points."""
    return tuple(sample_shape) == (2,) or as_images(np.zeros((1, *sample_shape))) is not None


def save_picture(samples: np.ndarray, path: str | Path, value_range: tuple[float, float] | None = None,
                 reference: np.ndarray | None = None, columns: int | None = None) -> Path:
    """Images in a grid of `columns` (default: square-ish; values mapped from `value_range`, default the
    samples' own range, to black..white), or 2-D points as a scatter plot over `reference` points. Raises
    ValueError for other shapes."""
    from PIL import Image

    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 2 and samples.shape[1] == 2:
        image = scatter(samples, reference)
    else:
        images = as_images(samples)
        if images is None:
            raise ValueError(f"samples of shape {samples.shape[1:]} are not images (C, H, W) or 2-D points; "
                             "write them to a .npy file instead")
        image = Image.fromarray(grid(images, value_range, columns))
    path = Path(path)
    image.save(path)
    return path


def grid(images: np.ndarray, value_range: tuple[float, float] | None, columns: int | None = None) -> np.ndarray:
    """(n, H, W, C) images as one uint8 picture: a grid (square-ish unless `columns` is given), each image
    scaled up by whole pixels, one pixel of grey between them."""
    lo, hi = value_range if value_range is not None else (float(images.min()), float(images.max()))
    pixels = np.clip((images - lo) / max(hi - lo, 1e-12), 0.0, 1.0) * 255
    n, h, w, c = pixels.shape
    zoom = max(1, TILE // max(h, w))
    pixels = pixels.repeat(zoom, axis=1).repeat(zoom, axis=2)
    h, w = h * zoom, w * zoom
    cols = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    canvas = np.full((rows * (h + 1) + 1, cols * (w + 1) + 1, c), 128, dtype=np.float32)
    for i, tile in enumerate(pixels):
        r, k = divmod(i, cols)
        canvas[1 + r * (h + 1):1 + r * (h + 1) + h, 1 + k * (w + 1):1 + k * (w + 1) + w] = tile
    canvas = canvas.round().astype(np.uint8)
    return canvas[..., 0] if c == 1 else canvas


def scatter(points: np.ndarray, reference: np.ndarray | None) -> "Image.Image":  # noqa: F821
    """2-D points (dark blue) over reference points (light grey), both in one frame that holds them all."""
    from PIL import Image, ImageDraw

    both = points if reference is None else np.concatenate([points, reference])
    both = both[np.isfinite(both).all(axis=1)]
    lo, hi = (both.min(axis=0), both.max(axis=0)) if len(both) else (np.zeros(2), np.ones(2))
    span = np.maximum(hi - lo, 1e-9)
    margin = 12

    def place(p: np.ndarray) -> np.ndarray:
        xy = (p - lo) / span * (PLOT - 2 * margin) + margin
        xy[:, 1] = PLOT - xy[:, 1]  # y grows upward, as in a plot
        return xy

    image = Image.new("RGB", (PLOT, PLOT), "white")
    draw = ImageDraw.Draw(image)
    for points_, colour in ((reference, (190, 190, 190)), (points, (20, 60, 160))):
        if points_ is None:
            continue
        for x, y in place(points_[np.isfinite(points_).all(axis=1)]):
            draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=colour)
    return image
