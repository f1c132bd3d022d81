"""Pictures with picture-shaped targets, for the dense tasks (udlc.tasks.dense): a class mask per picture (task
segmentation: x (N, C, H, W), y (N, H, W) class ids) or a target picture (task image_to_image: y (N, C', H', W')).

Three sources: a built-in picture set (udlc.spec.sources.PictureSet: `shape_masks`, `digits_2x`); an .npz with the two
arrays (`x` and `y` unless data.features / data.target name others); a folder of pictures with a parallel folder
of targets (`source: pics/, targets: masks/`), matched by file name — masks as grey or palette PNGs of class ids,
resized with their pictures by nearest neighbour; target pictures read at their own size, with the pictures'
channels. `dense_signature` is what `udlc check` knows of them, from the registry, the .npz members' headers or
the folders' listing and one target's header (no numpy, nothing decoded); `load_dense` loads, splits and
standardizes.
Inputs are standardized per channel on the training split; target pictures too (the task reports and exports
them back in their own units); masks are class ids, left alone.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import udlc.data.layout as layout
from udlc.errors import SpecError
from udlc.spec.data import DataSpec
from udlc.spec.sources import SOURCES, FileKind, PictureSet

MASKS, PICTURES = "masks", "pictures"


@dataclass(frozen=True)
class DenseSignature:
    source: str  # how messages call the source
    shape: tuple[int, ...]  # one input picture, (C, H, W)
    target: str  # MASKS or PICTURES
    target_shape: tuple[int, ...]  # one target: (H, W) or (C', H', W')
    classes: list[str] | None  # a mask's classes where known before loading (a built-in set's)


def dense_signature(spec: DataSpec, base_dir: Path, wanted: str) -> DenseSignature | None:
    """What the source gives, without loading it; None for a source that has no picture-shaped targets. A folder's
    targets are what the task (`wanted`) reads them as: masks or pictures."""
    entry = SOURCES.find(spec.source)
    if isinstance(entry, PictureSet):
        classes = list(entry.classes) if entry.classes is not None else None
        return DenseSignature(entry.name, entry.shape, entry.target, entry.target_shape, classes)
    if isinstance(entry, FileKind) and entry.folder:
        if spec.targets is None:
            return None
        _, targets = folder_pairs(spec, base_dir)
        size = layout.size_of(spec.image_size)
        target_shape = size if wanted == MASKS else (spec.channels, *_picture_size(targets[0]))
        return DenseSignature(spec.source, (spec.channels, *size), wanted, target_shape, None)
    if not isinstance(entry, FileKind) or entry.name != ".npz":
        return None
    path = Path(base_dir) / spec.source
    xkey, ykey = layout.npz_keys(spec)
    try:
        with zipfile.ZipFile(path) as archive:
            members = {n.removesuffix(".npy"): n for n in archive.namelist()}  # np.load names 'x.npy' 'x'
            layout.check_npz_keys(list(members), xkey, ykey, path)
            headers = {}
            for key in (xkey, ykey):
                with archive.open(members[key]) as f:
                    headers[key] = layout.read_array_header(f)
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise SpecError(f"cannot read {path.name}: {e}", path="data.source") from None
    x, y = headers[xkey], headers[ykey]
    layout.check_npz_shapes(x.shape, y.shape, xkey, ykey, path)
    if len(x.shape) != 4 or not x.numeric:
        raise SpecError(f"{path.name}: '{xkey}' is {list(x.shape)} of {x.descr}; dense targets need pictures, a "
                        "numeric (N, channels, height, width) array", path="data.source",
                        hint="save the pictures as x with shape (N, C, H, W)")
    if len(y.shape) == 3 and y.kind in "iub":
        return DenseSignature(path.name, x.shape[1:], MASKS, y.shape[1:], None)
    if len(y.shape) == 4 and y.numeric:
        return DenseSignature(path.name, x.shape[1:], PICTURES, y.shape[1:], None)
    raise SpecError(f"{path.name}: '{ykey}' is {list(y.shape)} of {y.descr}, neither masks nor pictures",
                    path="data.source", hint="give masks as whole-number class ids (N, H, W), or target pictures "
                                             "as (N, C, H, W)")


def folder_pairs(spec: DataSpec, base_dir: Path) -> tuple[list[Path], list[Path]]:
    """Every picture of the source folder and its target, matched by name (the suffix may differ: a.jpg ↔ a.png)."""
    pictures = layout.picture_files(Path(base_dir) / spec.source, labelled=False)[1]
    folder = Path(base_dir) / str(spec.targets)
    if not folder.is_dir():
        raise SpecError(f"no folder at {folder}", path="data.targets", hint="the path is relative to the spec")
    root = Path(base_dir) / spec.source
    by_name = {f.relative_to(folder).with_suffix(""): f for f in layout.unlabelled_pictures(folder)}
    targets = []
    for picture in pictures:
        target = by_name.get(picture.relative_to(root).with_suffix(""))
        if target is None:
            named = Path(str(spec.targets)) / picture.relative_to(root).with_suffix(".png")
            raise SpecError(f"{spec.targets} has no target for {picture.relative_to(root)}", path="data.targets",
                            hint=f"name each target as its picture: {named}")
        targets.append(target)
    return pictures, targets


def _picture_size(path: Path) -> tuple[int, int]:
    """(height, width) from the file's header; Pillow reads no pixels to tell it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as picture:
            return picture.height, picture.width
    except (UnidentifiedImageError, OSError) as e:
        raise SpecError(f"cannot read the picture {path}: {e}", path="data.targets",
                        hint="remove or replace the file") from None


@dataclass
class DenseData:
    """A dense source's splits: inputs standardized, targets as the task trains on them."""

    x_train: Any
    y_train: Any
    x_val: Any
    y_val: Any
    x_test: Any
    y_test: Any
    target: str  # MASKS or PICTURES
    classes: list[str] | None  # the masks' classes in id order
    normalization: Any  # udlc.data.Normalization of the inputs, per channel
    target_normalization: Any  # of target pictures, per channel; None for masks
    input_shape: tuple[int, ...]
    value_range: tuple[float, float] | None  # target pictures' raw min and max over the training split

    @property
    def n_classes(self) -> int | None:
        return len(self.classes) if self.classes is not None else None


def load_dense(spec: DataSpec, base_dir: Path, seed: int, wanted: str) -> DenseData:
    """The source's pictures and targets, split by spec.split (the split's own seeded order, as prepare's)."""
    import numpy as np

    from udlc.data.builtin_sets import generator
    from udlc.data.dataset import Normalization, _split

    entry = SOURCES.find(spec.source)
    if isinstance(entry, PictureSet):
        rng = np.random.default_rng(seed)
        noise = spec.noise if spec.noise is not None else entry.noise
        x, y = generator(entry.name)(spec.samples or layout.DEFAULT_SAMPLES, noise, rng)
        classes = list(entry.classes) if entry.classes is not None else None
        target = entry.target
    elif isinstance(entry, FileKind) and entry.folder:
        from udlc.data.image_folder import decode_folder

        pictures, targets = folder_pairs(spec, base_dir)
        size = layout.size_of(spec.image_size)
        x = decode_folder(pictures, size, spec.channels, spec.resize)
        target = wanted
        try:  # masks cut and sized as their pictures; target pictures each at its own size, all alike
            y = decode_folder(targets, size if target == MASKS else None, spec.channels, spec.resize, target == MASKS)
        except ValueError as e:
            raise SpecError(f"the targets in {spec.targets} differ in size: {e}", path="data.targets",
                            hint="give every target picture one size") from None
        y = y[:, 0] if target == MASKS else y
        classes = [str(i) for i in range(int(y.max()) + 1)] if target == MASKS else None
    else:
        xkey, ykey = layout.npz_keys(spec)
        with np.load(Path(base_dir) / spec.source, allow_pickle=False) as arrays:
            x, y = arrays[xkey], arrays[ykey]
        target = MASKS if y.ndim == 3 else PICTURES
        classes = None
        if target == MASKS:
            if y.min() < 0:
                raise SpecError(f"{spec.source}: the masks hold negative class ids ({int(y.min())})",
                                path="data.source", hint="number the classes 0, 1, 2, …")
            classes = [str(i) for i in range(int(y.max()) + 1)]
    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.int64) if target == MASKS else np.asarray(y, np.float32)
    if not (np.isfinite(x).all() and (target == MASKS or np.isfinite(y).all())):
        raise SpecError(f"{spec.source} holds NaN or inf", path="data.source", hint="fix or drop those pictures")
    idx = _split(len(x), spec.split, seed)
    norm = Normalization.fit(spec.normalize, x[idx[0]], 0)  # per channel: axis 0 of (C, H, W)
    target_norm, value_range = None, None
    if target == PICTURES:
        value_range = (float(y[idx[0]].min()), float(y[idx[0]].max()))
        if spec.normalize != "none":
            target_norm = Normalization.fit("standard", y[idx[0]], 0)
            y = target_norm.apply_normalization(y)
    xs = [norm.apply_normalization(x[i]) for i in idx]
    ys = [y[i] for i in idx]
    return DenseData(xs[0], ys[0], xs[1], ys[1], xs[2], ys[2], target, classes, norm, target_norm,
                     tuple(x.shape[1:]), value_range)
