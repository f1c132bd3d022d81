"""Raw samples from a data source: a built-in set (its generator is udlc.data.builtin_sets'), or a
CSV/NPZ/NPY file or a folder of pictures, read here (each kind's entry in udlc.data.file_kinds names its loader).

Everything here returns unnormalized numpy arrays; splitting, normalizing and filling missing values
live in dataset.py. Errors are `SpecError`s without a span: the compiler attaches the position of the
`data:` key. The checks on a file's layout (columns, keys, shapes) are layout.py's, shared with peek.py, so
`udlc check` and training refuse the same files in the same words.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from udlc.data.arrays import Arrays, LazyRows
from udlc.data.builtin_sets import generator
from udlc.data.peek import folder_labelled, samples_shape
from udlc.data.layout import (DEFAULT_SAMPLES, MAX_NUMERIC_CLASSES, NO_OBJECTS, check_builtin_options,
                              check_npz_keys, check_npz_shapes, npy_target, npz_keys, numeric_cell, read_csv,
                              target_task)
from udlc.errors import SpecError
from udlc.spec.data import DataSpec
from udlc.spec.sources import BuiltinSet


def load_builtin(entry: BuiltinSet, spec: DataSpec, seed: int) -> Arrays:
    """A registered set's samples; its names and task are the entry's, as `udlc check` reports them."""
    check_builtin_options(spec)
    noise = entry.noise if spec.noise is None else spec.noise
    x, y = generator(entry.name)(spec.samples or DEFAULT_SAMPLES, noise, np.random.default_rng(seed))
    x = np.asarray(x, dtype=np.float32)
    if entry.classes is None:
        return Arrays(x, np.asarray(y, dtype=np.float32), None, "regression", entry.name)
    return Arrays(x, np.asarray(y, dtype=np.int64), list(entry.classes), "classification", entry.name)


def _labels(values: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Non-numeric targets: sorted unique strings become class indices."""
    classes, y = np.unique(values.astype(str), return_inverse=True)
    return y.reshape(-1).astype(np.int64), [str(c) for c in classes]


def _numeric_task(y: np.ndarray) -> str:
    # whole-number targets with few distinct values read as class labels; the loss may still override
    whole = np.issubdtype(y.dtype, np.integer) or bool(np.all(np.mod(y, 1) == 0))
    return "classification" if whole and y.ndim == 1 and len(np.unique(y)) <= MAX_NUMERIC_CLASSES else "regression"


def load_csv(path: Path, spec: DataSpec) -> Arrays:
    table = read_csv(path, spec)
    names = table.feature_names
    x = np.zeros((len(table.rows), len(names)), dtype=np.float32)
    empty_ok = spec.missing == "mean"
    position = {name: {v: i for i, v in enumerate(values)} for name, values in table.categories.items()}
    for r, (row, line) in enumerate(zip(table.rows, table.lines)):
        j = 0
        for c in table.columns:
            name = table.header[c]
            if name in position:
                x[r, j + position[name][row[c].strip()]] = 1.0
                j += len(position[name])
            else:
                x[r, j] = numeric_cell(row[c], path, line, name, empty_ok)
                j += 1
    info = {"feature_columns": names, "target_column": table.header[table.target], "categories": table.categories,
            "dropped_rows": table.dropped}
    targets = table.targets(path, spec)
    task, classes = target_task(targets)
    if classes is not None:
        index = {c: i for i, c in enumerate(classes)}
        return Arrays(x, np.array([index[v] for v in targets], dtype=np.int64), classes, task, path.name, **info)
    return Arrays(x, np.array([float(v) for v in targets], dtype=np.float32), None, task, path.name, **info)


def _load(path: Path):
    try:
        return np.load(path, allow_pickle=False)  # never unpickle: a data file must not run code
    except ValueError as e:
        raise SpecError(f"cannot read {path.name}: {e}", path="data.source",
                        hint=NO_OBJECTS) from None
    except OSError as e:
        raise SpecError(f"cannot read {path.name}: {e}", path="data.source") from None


def load_npz(path: Path, spec: DataSpec) -> Arrays:
    xkey, ykey = npz_keys(spec)
    with _load(path) as archive:
        labeled = spec.target is not None or ykey in archive.files  # as peek.read_npz_header decides
        check_npz_keys(list(archive.files), xkey, ykey if labeled else xkey, path)
        try:  # an NPZ reads its arrays lazily, so a pickled one fails only here
            x, y = archive[xkey], archive[ykey] if labeled else None
        except ValueError as e:
            raise SpecError(f"cannot read {path.name}: {e}", path="data.source", hint=NO_OBJECTS) from None
    if y is None:
        check_npz_shapes(x.shape, x.shape[:1], xkey, xkey, path)
        return unlabeled_arrays(x, path, xkey)
    check_npz_shapes(x.shape, y.shape, xkey, ykey, path)
    return _finish(x, y, path, xkey)


def unlabeled_arrays(x: np.ndarray, path: Path, what: str) -> Arrays:
    """Samples without labels, for an unconditional generative task (`udlc check` refuses them to the others):
    their targets are zeros, read as values, never as classes, so no class-based measure is taken of them."""
    arrays = _finish(x, np.zeros(len(x), np.float32), path, what)
    arrays.task, arrays.classes, arrays.labeled = "regression", None, False
    return arrays


def _npy(path: Path, spec: DataSpec) -> Arrays:
    data = _load(path)
    if data.ndim >= 3:  # samples without labels: pictures (N, C, H, W) or (N, H, W, C)
        if samples_shape(data.shape) != data.shape[1:]:
            data = data.transpose(0, 3, 1, 2)
        return unlabeled_arrays(data, path, "samples")
    t = npy_target(spec, data.shape, path)
    return _finish(np.delete(data, t, axis=1), data[:, t], path, "features")


def _npy_lazy(path: Path, spec: DataSpec) -> Arrays:
    """_npy through a memmap: the same checks, but the samples stay on disk, read a chunk at a time."""
    try:
        data = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as e:
        raise SpecError(f"cannot read {path.name}: {e}", path="data.source", hint=NO_OBJECTS) from None
    if not is_numeric(data.dtype):
        raise SpecError(f"{path.name}: features must be numeric, got {data.dtype}", path="data.source")
    if data.ndim >= 3:  # samples without labels, read as rows of their flattened values
        if samples_shape(data.shape) != data.shape[1:]:
            raise SpecError(f"{path.name} holds {list(data.shape)} pictures with their channels last; an array "
                            "this large is read from disk a few samples at a time, which needs them channels "
                            "first", path="data.source",
                            hint="save it as (N, C, H, W): np.save(path, x.transpose(0, 3, 1, 2))")
        flat = data.reshape(len(data), -1)  # a view of the memmap: C order keeps each sample's values together
        x = LazyRows(flat, np.arange(len(data)), list(range(flat.shape[1])), tuple(data.shape[1:]))
        _check_finite(x, path, "samples")
        return Arrays(x, np.zeros(len(data), np.float32), None, "regression", path.name,  # type: ignore[arg-type]
                      labeled=False)
    t = npy_target(spec, data.shape, path) % data.shape[1]
    x = LazyRows(data, np.arange(len(data)), [c for c in range(data.shape[1]) if c != t], (data.shape[1] - 1,))
    _check_finite(x, path, "features")
    y = np.asarray(data[:, t])  # one column: small next to the samples
    y = y.astype(np.int64 if np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_ else np.float32)
    return Arrays(x, y, None, _numeric_task(y), path.name)  # type: ignore[arg-type]


def _check_finite(x: LazyRows, path: Path, what: str) -> None:
    for start, chunk in x.chunks():  # one streaming pass, as _finish checks the whole array
        bad = ~np.isfinite(chunk.reshape(len(chunk), -1)).all(axis=1)
        if bad.any():
            raise SpecError(f"{path.name}: {what} sample {start + int(np.flatnonzero(bad)[0])} (counted from 0) "
                            "holds NaN or inf (or a value too large for float32)", path="data.source",
                            hint="fix or drop those samples; training on them fails")


def is_numeric(dtype: np.dtype) -> bool:
    return bool(np.issubdtype(dtype, np.number) or dtype == np.bool_)


def _finish(x: np.ndarray, y: np.ndarray, path: Path, what: str) -> Arrays:
    if not is_numeric(x.dtype):
        raise SpecError(f"{path.name}: {what} must be numeric, got {x.dtype}", path="data.source")
    with np.errstate(over="ignore"):
        x = x.astype(np.float32)
    bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    if bad.any():
        raise SpecError(f"{path.name}: {what} sample {int(np.flatnonzero(bad)[0])} (counted from 0) holds NaN or inf "
                        "(or a value too large for float32)", path="data.source",
                        hint="fix or drop those samples; training on them fails")
    if not is_numeric(y.dtype):
        y, classes = _labels(y)
        return Arrays(x, y, classes, "classification", path.name)
    y = y.astype(np.int64 if np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_ else np.float32)
    return Arrays(x, y, None, _numeric_task(y), path.name)


def load_npy(path: Path, spec: DataSpec, lazy_bytes: int | None) -> Arrays:
    if lazy_bytes is not None and path.stat().st_size > lazy_bytes:
        return _npy_lazy(path, spec)
    return _npy(path, spec)


def load_pictures(path: Path, spec: DataSpec) -> Arrays:
    from udlc.data.image_folder import read_folder

    labelled = folder_labelled(path, spec)  # as peek.read_picture_folder decides
    x, y, classes = read_folder(path, spec.image_size, spec.channels, spec.resize, labelled)
    if not labelled:
        return unlabeled_arrays(np.asarray(x, dtype=np.float32), path, "pictures")
    return Arrays(np.asarray(x, dtype=np.float32), y, classes, "classification", path.name)
