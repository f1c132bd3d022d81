"""A folder of pictures as a data source: `source: pictures/` holds one subfolder per class, each of PNG or JPEG
(or BMP, GIF, WebP) files — or, for a task that needs no labels, pictures loose or in any subfolders. Each picture
is decoded with Pillow, converted to grey or RGB, resized to `data.image_size` (`crop`: the shorter side scaled to
fit and the middle cut out; `stretch`: scaled to the size whatever its shape) and kept as uint8 (channels, height,
width).

Decoding is done once: worker processes decode a large folder in parallel, and the pictures are kept in a uint8
memory-mapped file under `<folder>/.udlc-cache/`, named by the files' names, sizes and times and the decoding
settings, so later runs (and `udlc check`) read the cache instead. A folder that cannot be written to is decoded
each time. An unreadable picture stops the run with its path.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from udlc.data.layout import picture_files, size_of
from udlc.errors import SpecError

CACHE = ".udlc-cache"
PARALLEL_FROM = 512  # pictures; fewer decode faster in this process than worker start-up takes


def decode(path: Path, size: tuple[int, int] | None, channels: int, resize: str = "crop", mask: bool = False
           ) -> np.ndarray:
    """One picture as uint8 (channels, height, width), as training reads it; `size` None keeps the picture's own
    size (`udlc predict`: an exported picture model resizes in its graph, as this does). `mask`: a segmentation
    mask, (1, height, width) class ids — a grey PNG's values or a palette PNG's indices, never mixed by a
    resize (nearest neighbour), cut as its picture is."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as picture:
            if mask and picture.mode not in ("L", "P"):
                raise ValueError(f"a mask is a grey or palette PNG of class ids, not mode {picture.mode}")
            picture = picture if mask else picture.convert("L" if channels == 1 else "RGB")
            sampling = Image.Resampling.NEAREST if mask else Image.Resampling.BILINEAR
            height, width = size or (picture.height, picture.width)
            if size is None:
                pass
            elif resize == "crop":  # the shorter side to fit, then the middle
                scale = max(width / picture.width, height / picture.height)
                fitted = (max(width, round(picture.width * scale)), max(height, round(picture.height * scale)))
                picture = picture.resize(fitted, sampling)
                left, top = (fitted[0] - width) // 2, (fitted[1] - height) // 2
                picture = picture.crop((left, top, left + width, top + height))
            else:
                picture = picture.resize((width, height), sampling)
            array = np.asarray(picture, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise SpecError(f"cannot read the picture {path}: {e}", path="data.source",
                        hint="remove or replace the file") from None
    return array[None] if channels == 1 or mask else array.transpose(2, 0, 1)


def _decode_all(args: tuple[list[Path], tuple[int, int] | None, int, str, bool]) -> np.ndarray:
    files, size, channels, resize, mask = args
    return np.stack([decode(f, size, channels, resize, mask) for f in files])


def decode_folder(files: list[Path], size: tuple[int, int] | None, channels: int, resize: str, mask: bool = False
                  ) -> np.ndarray:
    """Every file decoded, in order: in worker processes when there are many. `size` None: each at its own
    size, which must be the same for all (np.stack says so otherwise)."""
    workers = min(os.cpu_count() or 1, 8)
    if len(files) < PARALLEL_FROM or workers < 2:
        return _decode_all((files, size, channels, resize, mask))
    chunks = [files[i:i + 64] for i in range(0, len(files), 64)]
    with ProcessPoolExecutor(workers) as pool:
        return np.concatenate(list(pool.map(_decode_all, [(c, size, channels, resize, mask) for c in chunks])))


def cache_key(files: list[Path], size: tuple[int, int], channels: int, resize: str) -> str:
    """Changes when a file is added, removed, replaced or touched, or the decoding settings change."""
    stats = [(f.name, f.parent.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    text = json.dumps([stats, list(size), channels, resize])
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def read_folder(folder: Path, image_size: int | tuple[int, int], channels: int, resize: str, labelled: bool = True
                ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(x uint8 (N, C, H, W), memory-mapped from the cache when it can be; y; class names). `labelled=False`:
    every picture under the folder, class folders or not, with y empty and no class names (layout.picture_files)."""
    classes, files, label_list = picture_files(folder, labelled)
    labels = np.asarray(label_list, dtype=np.int64)
    size = size_of(image_size)
    cached = folder / CACHE / f"{cache_key(files, size, channels, resize)}.npy"
    if cached.is_file():
        return np.load(cached, mmap_mode="r"), labels, classes
    x = decode_folder(files, size, channels, resize)
    try:
        cached.parent.mkdir(exist_ok=True)
        partial = cached.with_suffix(f".{os.getpid()}.partial")
        with open(partial, "wb") as f:
            np.save(f, x)
        os.replace(partial, cached)  # whole or absent: a killed run leaves no half cache
    except OSError:
        pass  # a read-only folder: decode again next time
    return x, labels, classes
