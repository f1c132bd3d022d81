"""Raw samples from a data source: scikit-learn's bundled sets, generated sets, or a CSV/NPZ/NPY file.

Everything here returns unnormalized numpy arrays; splitting and normalizing live in dataset.py.
Errors are `SpecError`s without a span: the compiler attaches the position of the `data:` key.
"""

from __future__ import annotations

import math
import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from udlc.errors import SpecError, did_you_mean
from udlc.spec.data import BUNDLED_SOURCES, GENERATED_SOURCES, DataSpec

DEFAULT_SAMPLES = 1000
DEFAULT_NOISE = {"moons": 0.1, "circles": 0.05, "blobs": 1.0, "spirals": 0.2, "xor": 0.05, "sine": 0.1}


@dataclass
class Arrays:
    """Raw samples: x is float32 (N, F...); y is int64 class indices when `classes` is set, else numbers."""

    x: np.ndarray
    y: np.ndarray
    classes: list[str] | None
    task: str  # the source's natural task; the spec or the loss may override it
    name: str  # how messages call the source


def load_arrays(spec: DataSpec, base_dir: Path, seed: int) -> Arrays:
    if spec.source in BUNDLED_SOURCES or spec.source in GENERATED_SOURCES:
        if spec.target is not None or spec.features is not None:
            key = "target" if spec.target is not None else "features"
            raise SpecError(f"'{spec.source}' is a built-in set; {key} applies only to files", path=f"data.{key}")
        if spec.source in BUNDLED_SOURCES:
            return _bundled(spec.source)
        return _generated(spec.source, spec.samples or DEFAULT_SAMPLES, spec.noise, seed)
    path = Path(base_dir) / spec.source
    if not path.is_file():
        raise SpecError(f"data file not found: {path}", path="data.source", hint="paths are relative to the spec")
    suffix = path.suffix.lower()
    arrays = _csv(path, spec) if suffix == ".csv" else _npz(path, spec) if suffix == ".npz" else _npy(path, spec)
    if len(arrays.x) == 0:
        raise SpecError(f"{path.name} holds no samples", path="data.source")
    return arrays


def _bundled(name: str) -> Arrays:
    from sklearn import datasets  # imported here: `udlc check` must not need scikit-learn

    bunch = getattr(datasets, f"load_{name}")()
    x = np.asarray(bunch.data, dtype=np.float32)
    if name == "diabetes":
        return Arrays(x, np.asarray(bunch.target, dtype=np.float32), None, "regression", name)
    classes = [str(c) for c in bunch.target_names]
    return Arrays(x, np.asarray(bunch.target, dtype=np.int64), classes, "classification", name)


def _generated(name: str, n: int, noise: float | None, seed: int) -> Arrays:
    noise = DEFAULT_NOISE[name] if noise is None else noise
    rng = np.random.default_rng(seed)
    if name == "sine":
        x = rng.uniform(-np.pi, np.pi, size=(n, 1))
        y = np.sin(x) + rng.normal(0, noise, size=(n, 1))
        return Arrays(x.astype(np.float32), y.astype(np.float32), None, "regression", name)
    if name == "spirals":
        y = np.arange(n) % 3
        t = rng.uniform(0, 1, n)
        # each arm winds 1.25 turns outward from the center, offset by a third of a turn
        theta = y * 2 * np.pi / 3 + t * 2.5 * np.pi + rng.normal(0, noise, n)
        x = np.stack([t * np.cos(theta), t * np.sin(theta)], axis=1)
    elif name == "xor":
        x = rng.uniform(-1, 1, size=(n, 2))
        y = (np.sign(x[:, 0]) != np.sign(x[:, 1])).astype(np.int64)
        x = x + rng.normal(0, noise, size=x.shape)  # labels come from the clean points
    else:
        from sklearn import datasets

        state = int(rng.integers(2**31))
        if name == "moons":
            x, y = datasets.make_moons(n, noise=noise, random_state=state)
        elif name == "circles":
            x, y = datasets.make_circles(n, noise=noise, factor=0.5, random_state=state)
        else:
            x, y = datasets.make_blobs(n, centers=3, n_features=2, cluster_std=noise, random_state=state)
    k = int(y.max()) + 1 if name not in ("blobs", "spirals") else 3
    return Arrays(x.astype(np.float32), y.astype(np.int64), [str(i) for i in range(k)], "classification", name)


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
        header = next(reader, None)
        if not header:
            raise SpecError(f"{path.name} is empty; a CSV needs a header row", path="data.source")
        header = [h.strip() for h in header]
        rows, lines = [], []
        for row in reader:
            if not row or all(not c.strip() for c in row):
                continue  # blank lines, e.g. a trailing one
            if len(row) != len(header):
                raise SpecError(f"{path.name} line {reader.line_num}: {len(row)} cells, but the header has "
                                f"{len(header)}", path="data.source", hint="every row needs one cell per column")
            rows.append(row)
            lines.append(reader.line_num)
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
    x = np.empty((len(rows), len(cols)), dtype=np.float32)
    for r, (row, line) in enumerate(zip(rows, lines)):
        for c, col in enumerate(cols):
            x[r, c] = _cell(row[col], path, line, header[col])
    targets = [row[t].strip() for row in rows]
    for row_targets, line in zip(targets, lines):
        if not row_targets:
            raise SpecError(f"{path.name} line {line}, column '{header[t]}': empty target cell", path="data.source")
    try:
        y = np.array([float(v) for v in targets], dtype=np.float32)
    except ValueError:
        y, classes = _labels(np.array(targets))
        return Arrays(x, y, classes, "classification", path.name)
    return Arrays(x, y, None, _numeric_task(y), path.name)


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


def _cell(text: str, path: Path, line: int, column: str) -> float:
    text = text.strip()
    if not text:
        raise SpecError(f"{path.name} line {line}, column '{column}': empty cell", path="data.source",
                        hint="fill in or drop rows with missing values")
    try:
        value = float(text)
    except ValueError:
        raise SpecError(f"{path.name} line {line}, column '{column}': '{text}' is not a number",
                        path="data.source", hint="only the target column may hold class labels") from None
    if not math.isfinite(value) or abs(value) > _FLOAT32_MAX:
        raise SpecError(f"{path.name} line {line}, column '{column}': {text} is not a finite float32 value",
                        path="data.source", hint="fix or drop the row; training on NaN or inf values fails")
    return value


_FLOAT32_MAX = 3.4028234e38


_NO_OBJECTS = "object arrays are not supported; save plain numeric or string arrays"


def _load(path: Path):
    try:
        return np.load(path, allow_pickle=False)  # never unpickle: a data file must not run code
    except ValueError as e:
        raise SpecError(f"cannot read {path.name}: {e}", path="data.source",
                        hint=_NO_OBJECTS) from None
    except OSError as e:
        raise SpecError(f"cannot read {path.name}: {e}", path="data.source") from None


def _npz(path: Path, spec: DataSpec) -> Arrays:
    if spec.features is not None and len(spec.features) != 1:
        raise SpecError("an NPZ source takes one features key", path="data.features", hint="e.g. features: [x]")
    if isinstance(spec.target, int):
        raise SpecError("an NPZ target is an array key, not an index", path="data.target", hint="e.g. target: y")
    xkey = spec.features[0] if spec.features else "x"
    ykey = spec.target if spec.target is not None else "y"
    with _load(path) as archive:
        keys = list(archive.files)
        for key, where in ((xkey, "data.features"), (ykey, "data.target")):
            if key not in keys:
                raise SpecError(f"{path.name} has no array '{key}'", path=where,
                                hint=did_you_mean(key, keys) or f"arrays: {', '.join(keys)}")
        try:  # an NPZ reads its arrays lazily, so a pickled one fails only here
            x, y = archive[xkey], archive[ykey]
        except ValueError as e:
            raise SpecError(f"cannot read {path.name}: {e}", path="data.source", hint=_NO_OBJECTS) from None
    if x.ndim < 2 or len(x) != len(y):
        raise SpecError(f"{path.name}: '{xkey}' {list(x.shape)} and '{ykey}' {list(y.shape)} must be (N, ...) "
                        "arrays with the same N", path="data.source")
    return _finish(x, y, path, xkey)


def _npy(path: Path, spec: DataSpec) -> Arrays:
    if spec.features is not None or isinstance(spec.target, str):
        key = "features" if spec.features is not None else "target"
        raise SpecError("an NPY array has no column names", path=f"data.{key}",
                        hint="give target as a column index, or use a CSV or NPZ")
    data = _load(path)
    if data.ndim != 2 or data.shape[1] < 2:
        raise SpecError(f"{path.name} holds a {list(data.shape)} array; expected 2-D (samples, columns) with "
                        "feature columns and a target column", path="data.source")
    t = -1 if spec.target is None else spec.target
    if not -data.shape[1] <= t < data.shape[1]:
        raise SpecError(f"column index {t} is out of range: {path.name} has {data.shape[1]} columns",
                        path="data.target")
    return _finish(np.delete(data, t, axis=1), data[:, t], path, "features")


def _finish(x: np.ndarray, y: np.ndarray, path: Path, what: str) -> Arrays:
    if not np.issubdtype(x.dtype, np.number) and x.dtype != np.bool_:
        raise SpecError(f"{path.name}: {what} must be numeric, got {x.dtype}", path="data.source")
    with np.errstate(over="ignore"):
        x = x.astype(np.float32)
    bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    if bad.any():
        raise SpecError(f"{path.name}: {what} sample {int(np.flatnonzero(bad)[0])} (counted from 0) holds NaN or inf "
                        "(or a value too large for float32)", path="data.source",
                        hint="fix or drop those samples; training on them fails")
    if not np.issubdtype(y.dtype, np.number) and y.dtype != np.bool_:
        y, classes = _labels(y)
        return Arrays(x, y, classes, "classification", path.name)
    y = y.astype(np.int64 if np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_ else np.float32)
    return Arrays(x, y, None, _numeric_task(y), path.name)
