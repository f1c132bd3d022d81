"""Raw samples from a data source: a built-in set (its loader is its entry in spec/sources.py), or a
CSV/NPZ/NPY file, read here.

Everything here returns unnormalized numpy arrays; splitting, normalizing and filling missing values
live in dataset.py. Errors are `SpecError`s without a span: the compiler attaches the position of the
`data:` key. The checks on a file's layout (columns, keys, shapes) are shared with peek.py, so
`udlc check` and training refuse the same files in the same words.
"""

from __future__ import annotations

import math
import csv
from pathlib import Path

import numpy as np

from udlc.data.arrays import Arrays, LazyRows
from udlc.errors import SpecError, did_you_mean
from udlc.spec.data import DataSpec
from udlc.spec.sources import FOLDER, SOURCES, BuiltinSet, is_folder

DEFAULT_SAMPLES = 1000  # what a generated set makes when `samples` is left out


def load_arrays(spec: DataSpec, base_dir: Path, seed: int, lazy_bytes: int | None = None) -> Arrays:
    """The source's raw samples. An .npy file larger than `lazy_bytes` gives x as LazyRows, not in memory."""
    entry = SOURCES.find(spec.source)
    if isinstance(entry, BuiltinSet):
        return load_builtin(entry, spec, seed)
    path = data_file(spec, base_dir)
    arrays = FILE_LOADERS[entry.name](path, spec, lazy_bytes)  # a validated spec names a registered kind
    if len(arrays.x) == 0:
        if arrays.dropped_rows:
            raise SpecError(f"every row of {path.name} has an empty cell, so missing: drop leaves no samples",
                            path="data.missing", hint="use missing: mean, or fill in the file")
        raise SpecError(f"{path.name} holds no samples", path="data.source")
    return arrays


def load_builtin(entry: BuiltinSet, spec: DataSpec, seed: int) -> Arrays:
    """A registered set's samples; its names and task are the entry's, as `udlc check` reports them."""
    check_builtin_options(spec)
    noise = entry.noise if spec.noise is None else spec.noise
    x, y = entry.load(spec.samples or DEFAULT_SAMPLES, noise, np.random.default_rng(seed))
    x = np.asarray(x, dtype=np.float32)
    if entry.classes is None:
        return Arrays(x, np.asarray(y, dtype=np.float32), None, "regression", entry.name)
    return Arrays(x, np.asarray(y, dtype=np.int64), list(entry.classes), "classification", entry.name)


def check_builtin_options(spec: DataSpec) -> None:
    for key in ("target", "features"):
        if getattr(spec, key) is not None:
            raise SpecError(f"'{spec.source}' is a built-in set; {key} applies only to files", path=f"data.{key}")


def data_file(spec: DataSpec, base_dir: Path) -> Path:
    path = Path(base_dir) / spec.source
    if is_folder(spec.source):
        if not path.is_dir():
            raise SpecError(f"data folder not found: {path}", path="data.source", hint="paths are relative to the spec")
    elif not path.is_file():
        raise SpecError(f"data file not found: {path}", path="data.source", hint="paths are relative to the spec")
    return path


def _labels(values: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Non-numeric targets: sorted unique strings become class indices."""
    classes, y = np.unique(values.astype(str), return_inverse=True)
    return y.reshape(-1).astype(np.int64), [str(c) for c in classes]


def _numeric_task(y: np.ndarray) -> str:
    # whole-number targets with few distinct values read as class labels; the loss may still override
    whole = np.issubdtype(y.dtype, np.integer) or bool(np.all(np.mod(y, 1) == 0))
    return "classification" if whole and y.ndim == 1 and len(np.unique(y)) <= 50 else "regression"


def _csv(path: Path, spec: DataSpec) -> Arrays:
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = csv_header(next(reader, None), path)
        rows, lines = [], []
        for row in reader:
            if is_blank(row):
                continue  # blank lines, e.g. a trailing one
            check_row_width(row, header, path, reader.line_num)
            rows.append(row)
            lines.append(reader.line_num)
    t, cols = csv_layout(header, spec, path)
    categorical = {header.index(name) for name in spec.categorical}
    n_read = len(rows)
    if spec.missing == "drop":
        kept = [i for i, row in enumerate(rows) if all(row[c].strip() for c in [t, *cols])]
        rows, lines = [rows[i] for i in kept], [lines[i] for i in kept]

    # Categories come from the whole file, not the train split: deterministic, independent of the
    # split, and no validation row meets a category the encoding lacks.
    categories: dict[str, list[str]] = {}
    for c in cols:
        if c in categorical:
            for row, line in zip(rows, lines):
                if not row[c].strip():
                    hint = ("mean fills numeric columns only; use missing: drop" if spec.missing == "mean"
                            else "fill it in, or set data.missing: drop")
                    raise SpecError(f"{path.name} line {line}, column '{header[c]}': empty cell in a categorical "
                                    "column", path="data.source", hint=hint)
            categories[header[c]] = sorted({row[c].strip() for row in rows})
    names: list[str] = []
    for c in cols:  # one-hot columns take the place of their column, in category order
        names += [f"{header[c]}={v}" for v in categories[header[c]]] if c in categorical else [header[c]]

    position = {c: {v: i for i, v in enumerate(categories[header[c]])} for c in cols if c in categorical}
    x = np.zeros((len(rows), len(names)), dtype=np.float32)
    empty_ok = spec.missing == "mean"
    for r, (row, line) in enumerate(zip(rows, lines)):
        j = 0
        for c in cols:
            if c in categorical:
                x[r, j + position[c][row[c].strip()]] = 1.0
                j += len(position[c])
            else:
                x[r, j] = numeric_cell(row[c], path, line, header[c], empty_ok)
                j += 1
    targets = [row[t].strip() for row in rows]
    for value, line in zip(targets, lines):
        check_target_cell(value, path, line, header[t], spec)
    info = {"feature_columns": names, "target_column": header[t], "categories": categories,
            "dropped_rows": n_read - len(rows)}
    try:
        y = np.array([float(v) for v in targets], dtype=np.float32)
    except ValueError:
        y, classes = _labels(np.array(targets))
        return Arrays(x, y, classes, "classification", path.name, **info)
    return Arrays(x, y, None, _numeric_task(y), path.name, **info)


def csv_header(header: list[str] | None, path: Path) -> list[str]:
    if not header:
        raise SpecError(f"{path.name} is empty; a CSV needs a header row", path="data.source")
    return [h.strip() for h in header]


def is_blank(row: list[str]) -> bool:
    return not row or all(not c.strip() for c in row)


def check_row_width(row: list[str], header: list[str], path: Path, line: int) -> None:
    if len(row) != len(header):
        raise SpecError(f"{path.name} line {line}: {len(row)} cells, but the header has {len(header)}",
                        path="data.source", hint="every row needs one cell per column")


def check_target_cell(value: str, path: Path, line: int, column: str, spec: DataSpec) -> None:
    """An empty target cell is an error unless `missing: drop` dropped its row (which the caller checks)."""
    if not value and spec.missing != "drop":
        hint = "mean fills feature cells only; use missing: drop" if spec.missing == "mean" else \
            "fill it in, or set data.missing: drop"
        raise SpecError(f"{path.name} line {line}, column '{column}': empty target cell", path="data.source",
                        hint=hint)


def csv_layout(header: list[str], spec: DataSpec, path: Path) -> tuple[int, list[int]]:
    """The target column's index and the feature columns' indices, in the order the model sees them."""
    t = _csv_column(spec.target, header, path) if spec.target is not None else len(header) - 1
    if spec.features is None:
        cols = [i for i in range(len(header)) if i != t]
    else:
        cols = []
        for name in spec.features:
            if name not in header:
                raise SpecError(f"{path.name} has no column '{name}'", path="data.features",
                                hint=did_you_mean(name, header) or f"columns: {', '.join(header)}")
            cols.append(header.index(name))
        if t in cols:
            raise SpecError(f"the target column '{header[t]}' is also a feature", path="data.features")
    if not cols:
        raise SpecError(f"{path.name} has no feature columns besides the target", path="data.source")
    for name in spec.categorical:
        if name not in header:
            raise SpecError(f"{path.name} has no column '{name}'", path="data.categorical",
                            hint=did_you_mean(name, header) or f"columns: {', '.join(header)}")
        if header.index(name) == t:
            raise SpecError(f"'{name}' is the target column; categorical lists feature columns",
                            path="data.categorical", hint="text class labels in the target need no listing")
    return t, cols


def _csv_column(target: str | int, header: list[str], path: Path) -> int:
    if isinstance(target, int):
        if not -len(header) <= target < len(header):
            raise SpecError(f"column index {target} is out of range: {path.name} has {len(header)} columns",
                            path="data.target")
        return target % len(header)
    if target not in header:
        raise SpecError(f"{path.name} has no column '{target}'", path="data.target",
                        hint=did_you_mean(target, header) or f"columns: {', '.join(header)}")
    return header.index(target)


def numeric_cell(text: str, path: Path, line: int, column: str, empty_ok: bool = False) -> float:
    """One numeric feature cell; an empty one is NaN when `missing: mean` will fill it."""
    text = text.strip()
    if not text:
        if empty_ok:
            return math.nan
        raise SpecError(f"{path.name} line {line}, column '{column}': empty cell", path="data.source",
                        hint="fill it in, or set data.missing: drop or mean")
    try:
        value = float(text)
    except ValueError:
        raise SpecError(f"{path.name} line {line}, column '{column}': '{text}' is not a number",
                        path="data.source", hint=f"if '{column}' holds categories, add it to data.categorical; "
                        "only the target column may hold class labels without that") from None
    if not math.isfinite(value) or abs(value) > _FLOAT32_MAX:
        raise SpecError(f"{path.name} line {line}, column '{column}': {text} is not a finite float32 value",
                        path="data.source", hint="fix or drop the row; training on NaN or inf values fails")
    return value


_FLOAT32_MAX = 3.4028234e38


NO_OBJECTS = "object arrays are not supported; save plain numeric or string arrays"


def _load(path: Path):
    try:
        return np.load(path, allow_pickle=False)  # never unpickle: a data file must not run code
    except ValueError as e:
        raise SpecError(f"cannot read {path.name}: {e}", path="data.source",
                        hint=NO_OBJECTS) from None
    except OSError as e:
        raise SpecError(f"cannot read {path.name}: {e}", path="data.source") from None


def npz_keys(spec: DataSpec) -> tuple[str, str]:
    """The features and target array keys an NPZ source reads."""
    if spec.features is not None and len(spec.features) != 1:
        raise SpecError("an NPZ source takes one features key", path="data.features", hint="e.g. features: [x]")
    if isinstance(spec.target, int):
        raise SpecError("an NPZ target is an array key, not an index", path="data.target", hint="e.g. target: y")
    return (spec.features[0] if spec.features else "x"), (spec.target if spec.target is not None else "y")


def check_npz_keys(keys: list[str], xkey: str, ykey: str, path: Path) -> None:
    for key, where in ((xkey, "data.features"), (ykey, "data.target")):
        if key not in keys:
            raise SpecError(f"{path.name} has no array '{key}'", path=where,
                            hint=did_you_mean(key, keys) or f"arrays: {', '.join(keys)}")


def check_npz_shapes(x_shape: tuple[int, ...], y_shape: tuple[int, ...], xkey: str, ykey: str, path: Path) -> None:
    if len(x_shape) < 2 or not y_shape or x_shape[0] != y_shape[0]:
        raise SpecError(f"{path.name}: '{xkey}' {list(x_shape)} and '{ykey}' {list(y_shape)} must be (N, ...) "
                        "arrays with the same N", path="data.source")


def _npz(path: Path, spec: DataSpec) -> Arrays:
    xkey, ykey = npz_keys(spec)
    with _load(path) as archive:
        check_npz_keys(list(archive.files), xkey, ykey, path)
        try:  # an NPZ reads its arrays lazily, so a pickled one fails only here
            x, y = archive[xkey], archive[ykey]
        except ValueError as e:
            raise SpecError(f"cannot read {path.name}: {e}", path="data.source", hint=NO_OBJECTS) from None
    check_npz_shapes(x.shape, y.shape, xkey, ykey, path)
    return _finish(x, y, path, xkey)


def npy_target(spec: DataSpec, shape: tuple[int, ...], path: Path) -> int:
    """The target column of an NPY (samples, columns) array of this shape."""
    if spec.features is not None or isinstance(spec.target, str):
        key = "features" if spec.features is not None else "target"
        raise SpecError("an NPY array has no column names", path=f"data.{key}",
                        hint="give target as a column index, or use a CSV or NPZ")
    if len(shape) != 2 or shape[1] < 2:
        raise SpecError(f"{path.name} holds a {list(shape)} array; expected 2-D (samples, columns) with "
                        "feature columns and a target column", path="data.source")
    t = -1 if spec.target is None else spec.target
    if not -shape[1] <= t < shape[1]:
        raise SpecError(f"column index {t} is out of range: {path.name} has {shape[1]} columns",
                        path="data.target")
    return t


def _npy(path: Path, spec: DataSpec) -> Arrays:
    data = _load(path)
    t = npy_target(spec, data.shape, path)
    return _finish(np.delete(data, t, axis=1), data[:, t], path, "features")


def _npy_lazy(path: Path, spec: DataSpec) -> Arrays:
    """_npy through a memmap: the same checks, but the samples stay on disk, read a chunk at a time."""
    try:
        data = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as e:
        raise SpecError(f"cannot read {path.name}: {e}", path="data.source", hint=NO_OBJECTS) from None
    t = npy_target(spec, data.shape, path) % data.shape[1]
    if not is_numeric(data.dtype):
        raise SpecError(f"{path.name}: features must be numeric, got {data.dtype}", path="data.source")
    x = LazyRows(data, np.arange(len(data)), [c for c in range(data.shape[1]) if c != t], (data.shape[1] - 1,))
    for start, chunk in x.chunks():  # one streaming pass, as _finish checks the whole array
        bad = ~np.isfinite(chunk).all(axis=1)
        if bad.any():
            raise SpecError(f"{path.name}: features sample {start + int(np.flatnonzero(bad)[0])} (counted from 0) "
                            "holds NaN or inf (or a value too large for float32)", path="data.source",
                            hint="fix or drop those samples; training on them fails")
    y = np.asarray(data[:, t])  # one column: small next to the samples
    y = y.astype(np.int64 if np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_ else np.float32)
    return Arrays(x, y, None, _numeric_task(y), path.name)  # type: ignore[arg-type]


def is_number(text: str) -> bool:
    """Does a text cell (or a class label) read as a number?"""
    try:
        float(text)
    except ValueError:
        return False
    return True


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


def _npy_maybe_lazy(path: Path, spec: DataSpec, lazy_bytes: int | None) -> Arrays:
    if lazy_bytes is not None and path.stat().st_size > lazy_bytes:
        return _npy_lazy(path, spec)
    return _npy(path, spec)


# How each file kind registered in spec/sources.py is read: (path, spec, lazy_bytes) -> Arrays; only an .npy
# is ever memory-mapped. peek.py's HEADER_READERS is its `udlc check` twin; tests/test_sources_registry.py
# checks both cover every registered kind.
def _pictures(path: Path, spec: DataSpec) -> Arrays:
    from udlc.data.image_folder import load_pictures

    x, y, classes = load_pictures(path, spec.image_size, spec.channels, spec.resize)
    return Arrays(np.asarray(x, dtype=np.float32), y, classes, "classification", path.name)


FILE_LOADERS = {
    ".csv": lambda path, spec, lazy_bytes: _csv(path, spec),
    ".npz": lambda path, spec, lazy_bytes: _npz(path, spec),
    ".npy": _npy_maybe_lazy,
    FOLDER: lambda path, spec, lazy_bytes: _pictures(path, spec),
}
