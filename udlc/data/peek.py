"""What a data source will give the model, read from its header alone: for `udlc check`.

numpy and the standard library only, never torch or scikit-learn, and never a whole data file: a CSV's
header line and first data row, an NPY's header, an NPZ's member headers. A built-in set's signature is its
registry entry's (spec/sources.py; tests/test_sources_registry.py holds each to what its loader gives). A
field that cannot be known this way is None,
and `mismatches` makes no complaint about it: training still checks everything on the real data.

The layout checks (columns, keys, shapes) are the loaders' own, from sources.py, so a bad column name
or array key fails `udlc check` with the message training would give.
"""

from __future__ import annotations

import csv
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

import udlc.data.sources as sources
from udlc.compiler.infer import fit_sample, is_symbolic
from udlc.errors import SpecError
from udlc.spec.data import DataSpec
from udlc.spec.sources import FOLDER, SOURCES, BuiltinSet
from udlc.spec.training import CLASSIFICATION_LOSSES


@dataclass(frozen=True)
class DataSignature:
    source: str  # how messages call the source
    sample_size: int | None = None  # values per sample the model sees, after one-hot encoding
    natural_shape: tuple[int, ...] | None = None  # the source's own sample shape, for hints
    task: str | None = None  # the source's natural task: 'classification' | 'regression'
    n_classes: int | None = None
    classes: list[str] | None = None
    target_width: int | None = None  # values per target sample when read as regression
    text_labels: bool | None = None  # the target holds non-numeric labels, so no regression
    feature_columns: list[str] | None = None  # CSV header names, in the order the model sees them


@dataclass(frozen=True)
class Mismatch:
    where: str  # 'input' | 'output' | 'loss': what the caller attaches the span to
    message: str
    hint: str


def peek(spec: DataSpec, base_dir: Path) -> DataSignature:
    """The signature of spec's source; raises the loaders' SpecErrors for a missing or malformed file."""
    entry = SOURCES.find(spec.source)
    if isinstance(entry, BuiltinSet):
        sources.check_builtin_options(spec)
        return builtin_signature(entry)
    path = sources.data_file(spec, base_dir)
    return HEADER_READERS[entry.name](path, spec)


def builtin_signature(entry: BuiltinSet) -> DataSignature:
    classes = list(entry.classes) if entry.classes is not None else None
    return DataSignature(
        entry.name, math.prod(entry.shape), entry.shape, "regression" if classes is None else "classification",
        None if classes is None else len(classes), classes, entry.target_width,
        classes is not None and not all(sources.is_number(c) for c in classes), None)


def _csv(path: Path, spec: DataSpec) -> DataSignature:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = sources.csv_header(next(reader, None), path)
            row = next((r for r in reader if not sources.is_blank(r)), None)
            line = reader.line_num
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise SpecError(f"cannot read {path.name}: {e}", path="data.source") from None
    t, cols = sources.csv_layout(header, spec, path)
    if row is None:
        raise SpecError(f"{path.name} holds no samples", path="data.source")
    sources.check_row_width(row, header, path, line)
    # The first row's numeric cells parse as training would parse them: a text cell in a column not
    # listed under `categorical` fails here, not after the model is built.
    for c in cols:
        if header[c] not in spec.categorical:
            sources.numeric_cell(row[c], path, line, header[c], empty_ok=spec.missing != "error")
    value = row[t].strip()
    sources.check_target_cell(value, path, line, header[t], spec)
    task, text = None, None
    if value:
        text = not sources.is_number(value)
        if text:
            task = "classification"
        elif float(value) % 1 != 0:
            task = "regression"  # a fractional target is never a class label
        # else whole numbers: class labels or not depends on the other rows
    # One-hot widths need every row of the categorical columns: left unknown rather than read the file.
    names = None if spec.categorical else [header[c] for c in cols]
    size = None if names is None else len(names)
    return DataSignature(path.name, size, None if size is None else (size,), task, None, None,
                         None if text else 1, text, names)


def _npy(path: Path, spec: DataSpec) -> DataSignature:
    try:
        with open(path, "rb") as f:
            shape, dtype = _array_header(f)
    except (OSError, ValueError) as e:
        raise SpecError(f"cannot read {path.name}: {e}", path="data.source") from None
    _refuse_objects(dtype, path)
    sources.npy_target(spec, shape, path)
    if not sources.is_numeric(dtype):
        raise SpecError(f"{path.name}: features must be numeric, got {dtype}", path="data.source")
    # one numeric array: its target column is numbers, class labels or not depending on the values
    return DataSignature(path.name, shape[1] - 1, (shape[1] - 1,), None, None, None, 1, False, None)


def _npz(path: Path, spec: DataSpec) -> DataSignature:
    xkey, ykey = sources.npz_keys(spec)
    try:
        with zipfile.ZipFile(path) as archive:
            # np.load names a member 'x.npy' as array 'x'
            members = {n.removesuffix(".npy"): n for n in archive.namelist()}
            sources.check_npz_keys(list(members), xkey, ykey, path)
            headers = {}
            for key in (xkey, ykey):
                with archive.open(members[key]) as f:
                    headers[key] = _array_header(f)
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise SpecError(f"cannot read {path.name}: {e}", path="data.source") from None
    (x_shape, x_dtype), (y_shape, y_dtype) = headers[xkey], headers[ykey]
    _refuse_objects(x_dtype, path)
    _refuse_objects(y_dtype, path)
    sources.check_npz_shapes(x_shape, y_shape, xkey, ykey, path)
    if not sources.is_numeric(x_dtype):
        raise SpecError(f"{path.name}: {xkey} must be numeric, got {x_dtype}", path="data.source")
    text = not sources.is_numeric(y_dtype)
    # mirrors sources._numeric_task: targets with more than one axis are regression targets
    task = "classification" if text else "regression" if len(y_shape) > 1 else None
    size = math.prod(x_shape[1:])
    return DataSignature(path.name, size, tuple(x_shape[1:]), task, None, None,
                         None if text else math.prod(y_shape[1:]), text, None)


def _array_header(f: IO[bytes]) -> tuple[tuple[int, ...], np.dtype]:
    """An .npy stream's shape and dtype, from its header only."""
    version = np.lib.format.read_magic(f)
    # version 3.0 differs from 2.0 only in the header's text encoding (utf-8 field names)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _fortran, dtype = read(f)
    return tuple(int(d) for d in shape), dtype


def _refuse_objects(dtype: np.dtype, path: Path) -> None:
    if dtype.hasobject:
        raise SpecError(f"cannot read {path.name}: it holds an object array", path="data.source",
                        hint=sources.NO_OBJECTS)


# How `udlc check` reads each file kind registered in spec/sources.py, from its header alone; the twin of
# sources.FILE_LOADERS.
def _pictures(path: Path, spec: DataSpec) -> DataSignature:
    """A folder of pictures: its classes and files are listed, none decoded; a sample is the size asked for."""
    from udlc.data.image_folder import picture_files, size_of

    classes, _, _ = picture_files(path)
    shape = (spec.channels, *size_of(spec.image_size))
    return DataSignature(path.name + "/", sample_size=math.prod(shape), natural_shape=shape,
                         task="classification", n_classes=len(classes), classes=classes, text_labels=True)


HEADER_READERS = {".csv": _csv, ".npz": _npz, ".npy": _npy, FOLDER: _pictures}


def mismatches(sig: DataSignature, input_shape: tuple[int | str, ...], output_shape: tuple[int, ...] | None,
               loss_type: str, task_override: str | None) -> list[Mismatch]:
    """What training would refuse about this model and loss on this data, as far as the signature tells.

    Mirrors prepare()'s reshape check and trainer.run.check_outputs; None fields raise no complaint.
    """
    found: list[Mismatch] = []
    if sig.sample_size is not None and fit_sample(input_shape, sig.natural_shape, sig.sample_size) is None:
        natural = list(sig.natural_shape or (sig.sample_size,))
        want = math.prod(input_shape) if not is_symbolic(input_shape) else "a different number"
        found.append(Mismatch("input", f"{sig.source} gives samples of {sig.sample_size} values, but model.input "
                                       f"[{', '.join(map(str, input_shape))}] holds {want}", f"e.g. input: {natural}"))
    out = tuple(output_shape) if output_shape is not None else None
    n = sig.n_classes
    if loss_type in CLASSIFICATION_LOSSES and task_override == "regression":
        found.append(Mismatch("loss", f"{loss_type} is a classification loss but data.task is regression",
                              "use a regression loss such as mse, or set data.task: classification"))
    elif loss_type == "cross_entropy":
        if n is not None and out is not None and out != (n,):
            found.append(Mismatch("output", f"cross_entropy needs one logit per class: {sig.source} has {n} "
                                            f"classes but the model outputs {out}",
                                  f"end the model with `linear: {n}`"))
    elif loss_type == "bce":
        if n is not None and n != 2:
            found.append(Mismatch("loss", f"bce is for two classes, but {sig.source} has {n}",
                                  f"use cross_entropy and end the model with `linear: {n}`"))
        if out is not None and out != (1,):
            found.append(Mismatch("output", f"bce needs one logit: the model outputs {out}",
                                  "end the model with `linear: 1`"))
    elif sig.text_labels:  # a regression loss; text labels never become numbers, whatever data.task says
        shown = f" ({', '.join(sig.classes[:3])}, ...)" if sig.classes else ""
        found.append(Mismatch("loss", f"{loss_type} is a regression loss, but {sig.source} holds text labels{shown}",
                              "use cross_entropy for class labels"))
    elif (task_override or sig.task) == "classification":
        found.append(Mismatch("loss", f"{loss_type} is a regression loss but {sig.source} is a classification set",
                              "use cross_entropy, or set data.task: regression"))
    elif sig.target_width is not None and out is not None and out != (sig.target_width,):
        # Also when the task is unknown: read as classes, a regression loss is refused anyway.
        w = sig.target_width
        found.append(Mismatch("output", f"the targets have {w} value{'s' if w != 1 else ''} per sample but the "
                                        f"model outputs {out}", f"end the model with `linear: {w}`"))
    return found
