"""What a data source will give the model, read from its header alone: for `udlc check`.

The standard library only, never numpy, torch or scikit-learn (`udlc check` runs on every save): a CSV of
up to READ_WHOLE_BYTES is scanned whole (its classes and one-hot widths need every row), a larger one only to
its first data row; an NPY's header; an NPZ's member headers. A built-in set's signature is its registry
entry's (spec/sources.py; tests/test_sources_registry.py holds each to what its loader gives). A field that
cannot be known this way is None, and `mismatches` makes no complaint about it: training still checks
everything on the real data.

The layout checks (columns, keys, shapes) are the loaders' own, from layout.py, so a bad column name
or array key fails `udlc check` with the message training would give.
"""

from __future__ import annotations

import csv
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import udlc.data.layout as layout
from udlc.compiler.infer import fit_sample, is_symbolic
from udlc.errors import SpecError
from udlc.spec.data import DataSpec
from udlc.spec.sources import BuiltinSet
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
    # Known when every target was read (a CSV scanned whole): how many distinct values, and whether all are
    # whole numbers (None for text labels), so a classification loss can count their classes.
    distinct: int | None = None
    whole: bool | None = None
    # False for samples without labels (an .npz of `x` alone, an .npy of 3 or more axes): what an
    # unconditional generative task learns from, and what file_kinds.peek refuses to every other task.
    labeled: bool = True
    # What `udlc check` can say of the source beyond its shape (sound clips: classes, counts, lengths).
    listing: str | None = None


# A CSV up to this size is read whole by `udlc check` (a few hundred ms at most); a larger one to its
# first row, and training counts its classes.
READ_WHOLE_BYTES = 32 * 2**20


@dataclass(frozen=True)
class Mismatch:
    where: str  # 'input' | 'output' | 'loss': what the caller attaches the span to
    message: str
    hint: str


def builtin_signature(entry: BuiltinSet) -> DataSignature:
    classes = list(entry.classes) if entry.classes is not None else None
    return DataSignature(
        entry.name, math.prod(entry.shape), entry.shape, "regression" if classes is None else "classification",
        None if classes is None else len(classes), classes, entry.target_width,
        classes is not None and not all(layout.is_number(c) for c in classes), None)


def read_csv_header(path: Path, spec: DataSpec) -> DataSignature:
    try:
        small = path.stat().st_size <= READ_WHOLE_BYTES
    except OSError as e:
        raise SpecError(f"cannot read {path.name}: {e}", path="data.source") from None
    return _csv_whole(path, spec) if small else _csv_first_row(path, spec)


def _csv_whole(path: Path, spec: DataSpec) -> DataSignature:
    """Every row: the one-hot widths, the classes (text labels, or whole numbers as the loss may read them)."""
    table = layout.read_csv(path, spec)
    if not table.rows:
        raise layout.no_samples(path, table.dropped)
    row, line = table.rows[0], table.lines[0]
    for c in table.columns:  # the first row parses as training parses it: a text cell in a numeric column
        if table.header[c] not in table.categories:
            layout.numeric_cell(row[c], path, line, table.header[c], empty_ok=spec.missing != "error")
    targets = table.targets(path, spec)
    task, classes = layout.target_task(targets)
    names = table.feature_names
    whole, distinct = None, len(set(targets))
    if classes is None:
        numbers = {float(v) for v in targets}
        whole, distinct = all(v % 1 == 0 for v in numbers), len(numbers)
        if task == "classification":
            classes = [str(int(v)) for v in sorted(numbers)]
    return DataSignature(path.name, len(names), (len(names),), task, None if classes is None else len(classes),
                         classes, None if whole is None else 1, whole is None, names, distinct, whole)


def _csv_first_row(path: Path, spec: DataSpec) -> DataSignature:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = layout.csv_header(next(reader, None), path)
            row = next((r for r in reader if not layout.is_blank(r)), None)
            line = reader.line_num
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise SpecError(f"cannot read {path.name}: {e}", path="data.source") from None
    t, cols = layout.csv_layout(header, spec, path)
    if row is None:
        raise SpecError(f"{path.name} holds no samples", path="data.source")
    layout.check_row_width(row, header, path, line)
    for c in cols:
        if header[c] not in spec.categorical:
            layout.numeric_cell(row[c], path, line, header[c], empty_ok=spec.missing != "error")
    value = row[t].strip()
    layout.check_target_cell(value, path, line, header[t], spec)
    task, text = None, None
    if value:
        text = not layout.is_number(value)
        if text:
            task = "classification"
        elif float(value) % 1 != 0:
            task = "regression"  # a fractional target is never a class label
        # else whole numbers: class labels or not depends on the other rows
    # One-hot widths need every row of the categorical columns: left unknown.
    names = None if spec.categorical else [header[c] for c in cols]
    size = None if names is None else len(names)
    return DataSignature(path.name, size, None if size is None else (size,), task, None, None,
                         None if text else 1, text, names)


def read_npy_header(path: Path, spec: DataSpec) -> DataSignature:
    try:
        with open(path, "rb") as f:
            header = layout.read_array_header(f)
    except (OSError, ValueError) as e:
        raise SpecError(f"cannot read {path.name}: {e}", path="data.source") from None
    _refuse_objects(header, path)
    shape = header.shape
    if len(shape) >= 3:
        return _samples_only(path, spec, header)
    layout.npy_target(spec, shape, path)
    if not header.numeric:
        raise SpecError(f"{path.name}: features must be numeric, got {header.descr}", path="data.source")
    # one numeric array: its target column is numbers, class labels or not depending on the values
    return DataSignature(path.name, shape[1] - 1, (shape[1] - 1,), None, None, None, 1, False, None)


def samples_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The sample shape (C, H, W) of an .npy of samples without labels: (N, H, W, C) pictures, their channels
    (1 or 3) last and not also first, are read channels first, as the convolutions take them."""
    if len(shape) == 4 and shape[3] in (1, 3) and shape[1] not in (1, 3):
        return (shape[3], shape[1], shape[2])
    return tuple(shape[1:])


def _samples_only(path: Path, spec: DataSpec, header: layout.ArrayHeader) -> DataSignature:
    """An .npy of 3 or more axes: samples (N, ...) without labels, pictures as they are saved."""
    for key in ("target", "features"):
        if getattr(spec, key) is not None:
            raise SpecError(f"{path.name} holds a {list(header.shape)} array: samples without labels, with no "
                            f"columns to pick", path=f"data.{key}",
                            hint=f"drop `{key}`; labelled samples go in an .npz with arrays x and y")
    if not header.numeric:
        raise SpecError(f"{path.name}: samples must be numeric, got {header.descr}", path="data.source")
    shape = samples_shape(header.shape)
    return DataSignature(path.name, math.prod(shape), shape, labeled=False)


def read_npz_header(path: Path, spec: DataSpec) -> DataSignature:
    xkey, ykey = layout.npz_keys(spec)
    try:
        with zipfile.ZipFile(path) as archive:
            # np.load names a member 'x.npy' as array 'x'
            members = {n.removesuffix(".npy"): n for n in archive.namelist()}
            labeled = spec.target is not None or ykey in members  # a `y` named in the spec must be there
            keys = (xkey, ykey) if labeled else (xkey,)
            layout.check_npz_keys(list(members), xkey, keys[-1], path)
            headers = {}
            for key in keys:
                with archive.open(members[key]) as f:
                    headers[key] = layout.read_array_header(f)
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise SpecError(f"cannot read {path.name}: {e}", path="data.source") from None
    x = headers[xkey]
    _refuse_objects(x, path)
    if not labeled:  # `x` alone: samples without labels
        layout.check_npz_shapes(x.shape, x.shape[:1], xkey, xkey, path)
        if not x.numeric:
            raise SpecError(f"{path.name}: {xkey} must be numeric, got {x.descr}", path="data.source")
        return DataSignature(path.name, math.prod(x.shape[1:]), tuple(x.shape[1:]), labeled=False)
    y = headers[ykey]
    _refuse_objects(y, path)
    x_shape, y_shape = x.shape, y.shape
    layout.check_npz_shapes(x_shape, y_shape, xkey, ykey, path)
    if not x.numeric:
        raise SpecError(f"{path.name}: {xkey} must be numeric, got {x.descr}", path="data.source")
    text = not y.numeric
    # mirrors sources._numeric_task: targets with more than one axis are regression targets
    task = "classification" if text else "regression" if len(y_shape) > 1 else None
    size = math.prod(x_shape[1:])
    return DataSignature(path.name, size, tuple(x_shape[1:]), task, None, None,
                         None if text else math.prod(y_shape[1:]), text, None)


def _refuse_objects(header: layout.ArrayHeader, path: Path) -> None:
    if header.objects:
        raise SpecError(f"cannot read {path.name}: it holds an object array", path="data.source",
                        hint=layout.NO_OBJECTS)


def read_picture_folder(path: Path, spec: DataSpec) -> DataSignature:
    """A folder of pictures: its classes and files are listed, none decoded; a sample is the size asked for.
    Read for a generative task, a folder without two class folders is pictures without labels."""
    labelled = folder_labelled(path, spec)
    classes, _, _ = layout.picture_files(path, labelled)
    shape = (spec.channels, *layout.size_of(spec.image_size))
    if not labelled:
        return DataSignature(path.name + "/", sample_size=math.prod(shape), natural_shape=shape, labeled=False)
    return DataSignature(path.name + "/", sample_size=math.prod(shape), natural_shape=shape,
                         task="classification", n_classes=len(classes), classes=classes, text_labels=True)


def folder_labelled(path: Path, spec: DataSpec) -> bool:
    """Whether a folder of pictures is read by class: always for a task that learns classes (the layout
    check then refuses loose pictures), and for a generative task when it has class folders to read (a
    class-conditional denoiser's labels); otherwise every picture under it, without labels."""
    if not spec.generation or not path.is_dir():
        return True
    return sum(d.is_dir() and not d.name.startswith(".") for d in path.iterdir()) >= 2


def mismatches(sig: DataSignature, input_shape: tuple[int | str, ...], output_shape: tuple[int, ...] | None,
               loss_type: str, task_override: str | None, steps: dict[str, int] | None = None) -> list[Mismatch]:
    """What training would refuse about this model and loss on this data, as far as the signature tells.

    Mirrors prepare()'s reshape check and trainer.run.check_outputs; None fields raise no complaint. `steps`: the
    multiple each input symbol's size must be (udlc.compiler.infer.steps of the network's shapes).
    """
    found: list[Mismatch] = []
    fitted = None if sig.sample_size is None else fit_sample(input_shape, sig.natural_shape, sig.sample_size)
    if sig.sample_size is not None and fitted is None:
        natural = list(sig.natural_shape or (sig.sample_size,))
        want = math.prod(input_shape) if not is_symbolic(input_shape) else "a different number"
        found.append(Mismatch("input", f"{sig.source} gives samples of {sig.sample_size} values, but model.input "
                                       f"[{', '.join(map(str, input_shape))}] holds {want}", f"e.g. input: {natural}"))
    for d, n in zip(input_shape, fitted or ()):
        step = (steps or {}).get(d, 1) if isinstance(d, str) else 1
        if n % step:
            found.append(Mismatch("input", f"the network divides {d} by {step} (its layers halve it), so {d} must be "
                                           f"a multiple of {step}, but {sig.source} makes it {n}",
                                  f"pad or crop the samples to a multiple of {step}, or halve {d} fewer times"))
    out = tuple(output_shape) if output_shape is not None else None
    n = sig.n_classes
    if loss_type in CLASSIFICATION_LOSSES and task_override == "regression":
        return found + [Mismatch("loss", f"{loss_type} is a classification loss but data.task is regression",
                                 "use a regression loss such as mse, or set data.task: classification")]
    if loss_type in CLASSIFICATION_LOSSES:
        if sig.whole is not None and sig.classes is None:  # numbers that the loss makes classes of
            if not sig.whole:
                return found + [Mismatch("loss", f"{sig.source} has fractional targets; {loss_type} needs "
                                                 "whole-number class labels", "use a regression loss such as mse")]
            n = sig.distinct
        elif sig.task == "regression" and sig.whole is None and task_override is None:
            return found + [Mismatch("loss", f"{loss_type} is a classification loss, but {sig.source} is a "
                                             "regression set: its targets are values, not classes",
                                     "use a regression loss such as mse")]
        if n is not None and n < 2:
            shown = f" ('{sig.classes[0]}')" if sig.classes else ""
            return found + [Mismatch("loss", f"{sig.source}'s target holds one class{shown}: there is nothing to "
                                             "tell apart, and the loss would be 0 from the start",
                                     "check the target column")]
    if loss_type == "cross_entropy":
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
