"""Writes shapes64.npz beside this file: 64x64 colour pictures of one filled disc or square each, on a dark
background, as one uint8 array `x` (N, 3, 64, 64) and no labels — the data of examples/dcgan-64.yaml and
bench/gan_eval_speed.py. Flat colours compress well: 1000 pictures take 140 kB.

    python examples/data/make_shapes64.py [COUNT]      # default 1000 pictures
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def shapes(count: int, size: int = 64, seed: int = 0) -> np.ndarray:
    """(count, size, size, 3) uint8: each a disc or a square of a random colour, place and radius."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:size, 0:size]
    pictures = np.empty((count, size, size, 3), np.uint8)
    for i in range(count):
        background = rng.integers(0, 60, 3)
        colour = rng.integers(90, 256, 3)
        radius = rng.uniform(size / 8, size / 3)
        cy, cx = rng.uniform(radius, size - radius, 2)
        if rng.random() < 0.5:
            inside = (rows - cy) ** 2 + (cols - cx) ** 2 <= radius**2
        else:
            inside = (np.abs(rows - cy) <= radius) & (np.abs(cols - cx) <= radius)
        pictures[i] = np.where(inside[..., None], colour, background)
    return pictures


def write(path: Path, count: int, size: int = 64) -> Path:
    np.savez_compressed(path, x=shapes(count, size).transpose(0, 3, 1, 2))  # channels first, as convolutions read
    return path


if __name__ == "__main__":
    print(write(Path(__file__).with_name("shapes64.npz"), int(sys.argv[1]) if len(sys.argv) > 1 else 1000))
