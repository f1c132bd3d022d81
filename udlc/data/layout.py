"""A data file's layout, read with the standard library alone: shared by the loaders (sources.py, numpy) and
by `udlc check` (peek.py, no numpy), so both refuse the same files in the same words.

A CSV is scanned here whole (its cells stay text): the columns, the one-hot categories, the target cells.
The loader turns that scan into arrays; `check` reads classes and widths from it. An .npy stream's header
(shape and dtype) is read here too. Errors are `SpecError`s without a span: the compiler attaches the
position of the `data:` key.
"""

from __future__ import annotations

import ast
import csv
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from udlc.errors import SpecError, did_you_mean
from udlc.spec.sources import GENERATED_SAMPLES, is_folder

if TYPE_CHECKING:  # annotations only: udlc.runtime reads picture folders through this module without pydantic
    from udlc.spec.data import DataSpec

# What a generated set makes when `samples` is left out: the registry's number (pydantic-free, as this module must
# be), which data.limit's check counts a generated set's training split by.
DEFAULT_SAMPLES = GENERATED_SAMPLES
# Whole-number targets with at most this many distinct values read as class labels (else as values).
MAX_NUMERIC_CLASSES = 50


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


def is_number(text: str) -> bool:
    """Does a text cell (or a class label) read as a number?"""
    try:
        float(text)
    except ValueError:
        return False
    return True


# ---- a CSV scanned whole --------------------------------------------------------------------------


@dataclass
class CsvTable:
    """A CSV's cells as text, after `missing: drop`: what the loader makes arrays of."""

    header: list[str]
    target: int  # the target column's index
    columns: list[int]  # the feature columns' indices, in the order the model sees them
    rows: list[list[str]]
    lines: list[int]  # each row's line in the file
    categories: dict[str, list[str]]  # categorical column -> its values, sorted: the one-hot order
    dropped: int  # rows `missing: drop` left out

    @property
    def feature_names(self) -> list[str]:
        """One name per value the model sees: one-hot columns take their column's place, in category order."""
        names: list[str] = []
        for c in self.columns:
            name = self.header[c]
            names += [f"{name}={v}" for v in self.categories[name]] if name in self.categories else [name]
        return names

    def targets(self, path: Path, spec: DataSpec) -> list[str]:
        """The target cells, each checked (an empty one is an error unless `missing: drop` dropped its row)."""
        values = [row[self.target].strip() for row in self.rows]
        for value, line in zip(values, self.lines):
            check_target_cell(value, path, line, self.header[self.target], spec)
        return values


def read_csv(path: Path, spec: DataSpec) -> CsvTable:
    """Every row of a CSV, checked for width and empty categorical cells."""
    try:
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
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise SpecError(f"cannot read {path.name}: {e}", path="data.source") from None
    t, cols = csv_layout(header, spec, path)
    n_read = len(rows)
    if spec.missing == "drop":
        kept = [i for i, row in enumerate(rows) if all(row[c].strip() for c in [t, *cols])]
        rows, lines = [rows[i] for i in kept], [lines[i] for i in kept]
    # Categories come from the whole file, not the train split: deterministic, independent of the
    # split, and no validation row meets a category the encoding lacks.
    categories: dict[str, list[str]] = {}
    for c in cols:
        if header[c] in spec.categorical:
            for row, line in zip(rows, lines):
                if not row[c].strip():
                    hint = ("mean fills numeric columns only; use missing: drop" if spec.missing == "mean"
                            else "fill it in, or set data.missing: drop")
                    raise SpecError(f"{path.name} line {line}, column '{header[c]}': empty cell in a categorical "
                                    "column", path="data.source", hint=hint)
            categories[header[c]] = sorted({row[c].strip() for row in rows})
    return CsvTable(header, t, cols, rows, lines, categories, n_read - len(rows))


def no_samples(path: Path, dropped: int) -> SpecError:
    if dropped:
        return SpecError(f"every row of {path.name} has an empty cell, so missing: drop leaves no samples",
                         path="data.missing", hint="use missing: mean, or fill in the file")
    return SpecError(f"{path.name} holds no samples", path="data.source")


def target_task(values: list[str]) -> tuple[str, list[str] | None]:
    """A target column's natural task and, for text labels, its classes (sorted): text is classes; whole
    numbers with few distinct values read as class labels; anything else as values. The loss may override."""
    try:
        numbers = [float(v) for v in values]
    except ValueError:
        return "classification", sorted(set(values))
    whole = all(v % 1 == 0 for v in numbers)  # NaN and inf are not
    return ("classification" if whole and len(set(numbers)) <= MAX_NUMERIC_CLASSES else "regression"), None


# ---- an .npy stream's header ------------------------------------------------------------------------


@dataclass(frozen=True)
class ArrayHeader:
    shape: tuple[int, ...]
    descr: str  # numpy's type string: '<f4', '|b1', '<U5', '|O'; a structured dtype's list as text

    @property
    def kind(self) -> str:
        """numpy's kind letter: b (bool), i, u, f, c (numbers), U/S (text), O (objects), V (structured)."""
        return self.descr[1] if self.descr[:1] in "<>|=" and len(self.descr) > 1 else "V"

    @property
    def numeric(self) -> bool:
        return self.kind in "biufc"

    @property
    def objects(self) -> bool:
        return self.kind == "O" or "'O'" in self.descr or "|O" in self.descr


def read_array_header(f: IO[bytes]) -> ArrayHeader:
    """The shape and dtype of an .npy stream, from its header (numpy's format: magic, version, length,
    then a Python dict literal). Raises ValueError for anything else."""
    if f.read(6) != b"\x93NUMPY":
        raise ValueError("not an .npy array (bad magic)")
    major = f.read(2)[:1]
    size_format = "<H" if major == b"\x01" else "<I"
    raw = f.read(struct.calcsize(size_format))
    if len(raw) != struct.calcsize(size_format):
        raise ValueError("truncated .npy header")
    (length,) = struct.unpack(size_format, raw)
    if length > 10_000:  # numpy's own limit: a larger header is no array's (and literal_eval of it could be slow)
        raise ValueError(f"an .npy header of {length} bytes is too large")
    text = f.read(length).decode("utf-8" if major == b"\x03" else "latin1")
    try:
        header = ast.literal_eval(text)
        shape, descr = tuple(int(d) for d in header["shape"]), header["descr"]
    except (ValueError, SyntaxError, KeyError, TypeError, MemoryError, RecursionError):
        raise ValueError("malformed .npy header") from None
    return ArrayHeader(shape, descr if isinstance(descr, str) else repr(descr))


# ---- a folder of pictures, one subfolder per class ----------------------------------------------------

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


def picture_files(folder: Path, labelled: bool = True) -> tuple[list[str], list[Path], list[int]]:
    """The class names (the subfolders, sorted), every picture file in class order, and each file's class.
    `labelled=False` (a task that needs no labels: a GAN's, an autoencoder's, or pictures matched with their
    masks by name): every picture in the folder and its subfolders, in path order, with no classes or labels —
    so a folder of loose pictures is a data set too."""
    if not folder.is_dir():
        raise SpecError(f"no folder at {folder}", path="data.source", hint="the path is relative to the spec")
    if not labelled:
        return [], unlabelled_pictures(folder), []
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes and any(f.suffix.lower() in SUFFIXES for f in folder.iterdir() if f.is_file()):
        raise SpecError(f"{folder} holds pictures but no class folders, and this task learns classes: it reads "
                        "one subfolder per class", path="data.source",
                        hint=f"sort them into {folder.name}/<class>/, or learn from unlabelled pictures with a task "
                             "that needs no labels (gan, vae, autoencoder)")
    return class_files(folder, classes, SUFFIXES, "pictures", ("cat/1.png", "dog/1.png"))


def class_files(folder: Path, classes: list[str], suffixes: tuple[str, ...], noun: str, example: tuple[str, str]
                ) -> tuple[list[str], list[Path], list[int]]:
    """A folder of `noun` (pictures, sound clips) with one subfolder per class, two or more: the classes, every
    file with one of `suffixes` in class order, and each file's class."""
    if len(classes) < 2:
        raise SpecError(f"{folder} holds {len(classes)} class folder{'s' * (len(classes) != 1)}: a folder of "
                        f"{noun} has one subfolder per class, two or more", path="data.source",
                        hint=f"e.g. {folder.name}/{example[0]}, {folder.name}/{example[1]}")
    files: list[Path] = []
    labels: list[int] = []
    for index, name in enumerate(classes):
        found = sorted(f for f in (folder / name).iterdir() if f.suffix.lower() in suffixes and f.is_file())
        if not found:
            raise SpecError(f"{folder / name} holds no {noun} ({', '.join(suffixes)})", path="data.source",
                            hint=f"remove the empty class folder, or add its {noun}")
        files += found
        labels += [index] * len(found)
    return classes, files, labels


def unlabelled_pictures(folder: Path) -> list[Path]:
    """Every picture file under `folder` (subfolders too, hidden ones left out), sorted by path."""
    found = sorted(f for f in folder.rglob("*") if f.suffix.lower() in SUFFIXES and f.is_file()
                   and not any(part.startswith(".") for part in f.relative_to(folder).parts))
    if not found:
        raise SpecError(f"{folder} holds no pictures ({', '.join(SUFFIXES)})", path="data.source",
                        hint="the path is relative to the spec")
    return found


def size_of(image_size: int | tuple[int, int]) -> tuple[int, int]:
    """(height, width)"""
    return (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
