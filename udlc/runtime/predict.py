"""Predictions from an exported model with onnxruntime and numpy only (no torch).

The ONNX graph itself standardizes raw inputs and gives answers: class `probabilities`, or a `prediction`
in the targets' own units (udlc.exporter.serving). Its metadata says how a CSV row becomes the numeric
input matrix: the feature columns by name, the categories to one-hot encode, the values that fill empty
cells. So predict reads a file, builds that matrix, runs the graph and writes the answers; it never
standardizes anything itself.

Every mistake in an inputs file is a UdlcError that names the file. A CSV gets one answer per row, keyed by
the row's line in the file (or by a column the caller names, `--id`): an empty row between samples is an
error, never skipped, so answers and rows stay aligned.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from udlc.errors import UdlcError
from udlc.runtime.audio import is_sound_model, read_clips
from udlc.runtime.files import Opened, damaged, opened
from udlc.runtime.pictures import is_picture_model, read_pictures
from udlc.runtime.rows import column_index, read_csv_rows, refuse_blank_rows, refuse_id
from udlc.tasks.served import CLASSES, DECODED, LATENTS, VALUES

BATCH = 4096  # rows per onnxruntime call: a large file never needs all its activations at once
_FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass
class Predictions:
    answers: str  # 'classification' (classes and their probabilities) or 'regression' (values)
    values: np.ndarray  # class indices (N,) or regressed values (N, k)
    probabilities: np.ndarray | None  # (N, classes) for classification
    classes: list[str] | None
    keys: list[str] | None = None  # what names each sample in the CSV's first column (a CSV's lines or ids)
    key_name: str = "line"  # that column's header
    target: str | None = None  # a regression's target column: the name of its prediction column

    def labels(self) -> list[str]:
        if self.classes is None:
            return [str(v) for v in self.values]
        return [self.classes[i] for i in self.values]

    def to_csv(self, names: list[str] | None = None) -> str:
        """One row per sample; `names` (the pictures' files) first where given, else the samples' keys."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        keys, key_name = (names, "file") if names is not None else (self.keys, self.key_name)
        head = [key_name] if keys is not None else []
        first = (lambda i: [keys[i]]) if keys is not None else (lambda i: [])
        if self.answers == "classification":
            assert self.probabilities is not None
            classes = self.classes or [str(i) for i in range(self.probabilities.shape[1])]
            w.writerow(head + ["prediction"] + [f"p_{c}" for c in classes])
            for i, (label, probs) in enumerate(zip(self.labels(), self.probabilities)):
                w.writerow(first(i) + [label] + [f"{p:.6f}" for p in probs])
        else:
            values = self.values.reshape(len(self.values), -1)
            single = self.target or "y"  # named after what it predicts, where the data named it
            w.writerow(head + [f"y{i}" if values.shape[1] > 1 else single for i in range(values.shape[1])])
            w.writerows([first(i) + [f"{v:.6g}" for v in row] for i, row in enumerate(values)])
        return buf.getvalue()


@dataclass
class Inputs:
    """Samples as a file holds them, before they meet a model: a numeric array (NPY, NPZ), or a CSV's text
    cells (matched to the model's columns by name, and one-hot encoded, only once the model is known)."""

    source: str  # the file, named in every error
    array: np.ndarray | None = None
    rows: list[list[str]] | None = None  # CSV: its rows from the first to the last that holds a cell, header included
    lines: list[int] | None = None  # CSV: each row's line number in the file
    id_column: str | None = None  # CSV: the column whose cells name the answers (else the rows' line numbers)


class Model:
    """An exported udlc model of samples (feature rows, arrays, pictures), ready to predict on raw inputs: class
    probabilities, values in the targets' units, an encoder's codes, or a decoder's samples for codes."""

    serves = (CLASSES, VALUES, LATENTS, DECODED)
    reads = "a model of samples"

    def __init__(self, path: str | Path | Opened, device: str = "cpu"):
        file = opened(path, device, self)
        path, self.session, meta = file.path, file.session, file.meta
        self.classifies = file.kind.name == CLASSES  # its answer: classes and their probabilities
        if "input_shapes" not in meta:
            raise UdlcError(f"{path} was not exported by udlc (its metadata has no input shape)")
        if "outputs" not in meta:
            raise UdlcError(f"{path} was exported by an older udlc, whose file leaves input standardization to "
                            "predict — export it again with `udlc export RUN_FOLDER`")
        try:
            # A flat row (a CSV line) takes the shape the data had in training; an array with a sample axis
            # per declared axis may give a symbolic one (T) any size.
            self.declared = tuple(json.loads(meta["input_shapes"])[0])
            # The multiple a symbol's size must be where the graph halves it (H: 4 after two poolings).
            self.steps: dict[str, int] = json.loads(meta.get("symbol_steps", "{}"))
            self.input_shape = tuple(int(d) for d in json.loads(meta.get("sample_shapes", meta["input_shapes"]))[0])
            self.classes = json.loads(meta["classes"])
            self.feature_columns: list[str] | None = json.loads(meta.get("feature_columns", "null"))
            self.categories: dict[str, list[str]] = json.loads(meta.get("categories", "{}"))
            self.fill_values: dict[str, float] = json.loads(meta.get("fill_values", "{}"))
            outputs = json.loads(meta["outputs"])
        except (KeyError, ValueError, TypeError, IndexError) as e:
            raise damaged(path, e) from None
        # The graph's answer: probabilities for a classifier, the values themselves otherwise (a prediction,
        # an encoder's latent, a decoder's sample).
        self.answer = "probabilities" if self.classifies else outputs[0]
        if self.answer not in [o.name for o in self.session.get_outputs()]:
            raise UdlcError(f"{path} has no output named '{self.answer}' — export it again with "
                            "`udlc export RUN_FOLDER`")
        self.input_name = self.session.get_inputs()[0].name
        self.per_sample = math.prod(self.input_shape)
        if self.feature_columns is not None and len(self.feature_columns) != self.per_sample:
            raise UdlcError(f"{path}: its metadata names {len(self.feature_columns)} feature columns for inputs of "
                            f"{self.per_sample} values — export it again with `udlc export RUN_FOLDER`")
        self.columns = _raw_columns(self.feature_columns, self.categories) if self.feature_columns else None
        self.target = target_name(meta)
        self.path, self.meta = path, meta

    # ---- predicting ------------------------------------------------------------------------------------

    def answer_file(self, inputs: Path, id_column: str | None = None) -> str:
        """`udlc predict`: the answers for a file of samples as CSV — one row per CSV row (keyed by its line or
        its `id_column` cell) or array sample; for a model trained on pictures, per picture file; on sound clips,
        per sound file."""
        if is_sound_model(self.meta) and inputs.suffix.lower() not in (".npy", ".npz"):  # arrays: waveforms
            refuse_id(id_column, inputs)
            names, clips = read_clips(self.meta, inputs)
            return self.predict(clips).to_csv(names)
        if not is_picture_model(self.meta):
            return self.predict(read_inputs(inputs, id_column)).to_csv()
        refuse_id(id_column, inputs)
        names, pictures = read_pictures(self.meta, inputs)
        by_shape: dict[tuple[int, ...], list[int]] = {}  # each picture at its own size: the graph resizes it
        for i, picture in enumerate(pictures):
            by_shape.setdefault(picture.shape, []).append(i)
        probabilities = np.zeros((len(pictures), len(self.classes or [])), np.float32)
        for rows in by_shape.values():
            probabilities[rows] = self.predict(np.stack([pictures[i] for i in rows]).astype(np.float32)).probabilities
        return Predictions("classification", probabilities.argmax(axis=1), probabilities, self.classes).to_csv(names)

    def predict(self, inputs: Inputs | np.ndarray) -> Predictions:
        """Predictions for raw samples: an `Inputs` from read_inputs, or an array of (N, *input shape)."""
        if not isinstance(inputs, Inputs):
            inputs = Inputs("inputs", array=np.asarray(inputs))
        x, keys, key_name = self._from_csv(inputs) if inputs.rows is not None else (
            self._from_array(inputs.array, inputs.source), None, "line")
        out = np.concatenate([self.session.run([self.answer], {self.input_name: x[i:i + BATCH]})[0]
                              for i in range(0, len(x), BATCH)])
        if not self.classifies:
            return Predictions("regression", out, None, None, keys, key_name, self.target)
        return Predictions("classification", out.argmax(axis=1), out, self.classes, keys, key_name)

    def _from_array(self, x: np.ndarray, source: str) -> np.ndarray:
        """A numeric array as a float32 batch of the input shape; one sample may come without a batch axis."""
        if x.dtype.kind not in "biuf":
            raise UdlcError(f"{source} holds {_kind(x.dtype)} (dtype {x.dtype}), not numbers — give the numeric "
                            "feature matrix, or a CSV with a header for categorical columns")
        if x.size == 0:
            raise UdlcError(f"{source} holds no samples (an array of shape {x.shape})")
        if self._fits_declared(x):
            for d, n in zip(self.declared, x.shape[1:]):
                if isinstance(d, str) and n % self.steps.get(d, 1):
                    raise UdlcError(f"{source}: samples of shape {x.shape[1:]} give {d} = {n}, but this network "
                                    f"takes {d} in multiples of {self.steps[d]} (it halves that axis) — pad or crop "
                                    f"the samples to a multiple of {self.steps[d]}")
            return self._finite(x, source)
        if x.ndim <= len(self.input_shape) and x.size == self.per_sample:
            x = x.reshape((1,) + self.input_shape)  # e.g. (4,) for a 4-feature model: one sample
        if x.ndim == 0 or math.prod(x.shape[1:]) != self.per_sample:
            raise UdlcError(f"{source}: an array of shape {x.shape} does not hold samples of shape "
                            f"{self.input_shape} ({self.per_sample} values each) — give an array of shape "
                            f"(N, {self.per_sample}) or (N, {', '.join(map(str, self.input_shape))})")
        return self._finite(x.reshape((len(x),) + self.input_shape), source)

    def _fits_declared(self, x: np.ndarray) -> bool:
        """(N, *sample) whose fixed axes match the declared input and whose symbolic ones (T) are any size."""
        if not any(isinstance(d, str) for d in self.declared) or x.ndim != len(self.declared) + 1:
            return False
        sizes: dict[str, int] = {}
        return all(n == d if isinstance(d, int) else sizes.setdefault(d, n) == n and n > 0
                   for d, n in zip(self.declared, x.shape[1:]))

    def _finite(self, x: np.ndarray, source: str) -> np.ndarray:
        """x as float32, refusing NaN, inf and values beyond float32, sample by sample."""
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below, sample by sample
            values = x.astype(np.float64).reshape(len(x), -1)
        bad = ~(np.isfinite(values) & (np.abs(values) <= _FLOAT32_MAX)).all(axis=1)
        if bad.any():
            rows = ", ".join(str(i) for i in np.flatnonzero(bad)[:5]) + (" …" if bad.sum() > 5 else "")
            raise UdlcError(f"{source} holds NaN, inf or values beyond float32 in samples {rows} (counted from 0): "
                            "predictions for them would be meaningless — fix or drop those samples")
        return values.astype(np.float32).reshape(x.shape)

    def _from_csv(self, inputs: Inputs) -> tuple[np.ndarray, list[str], str]:
        """CSV rows as the model's input matrix, with each row's key (its line, or its cell of the id column)
        and the keys' name: columns matched by name when the model knows its feature columns and the file
        has a header, by position otherwise; categories one-hot encoded; empty numeric cells filled as
        training filled them (missing: mean)."""
        source, rows, lines = inputs.source, inputs.rows, inputs.lines
        assert rows is not None and lines is not None
        header = None
        if inputs.id_column is not None or self._is_header(rows[0]):  # an id column is named in a header
            header, rows, lines = [c.strip() for c in rows[0]], rows[1:], lines[1:]
        if not rows:
            raise UdlcError(f"{source} has a header row but no samples — add rows of values below it")
        refuse_blank_rows(rows, lines, source)
        keys, key_name = [str(line) for line in lines], "line"
        if inputs.id_column is not None:
            assert header is not None
            at = column_index(header, inputs.id_column, source, "--id names the answers by")
            keys, key_name = [row[at].strip() if at < len(row) else "" for row in rows], inputs.id_column
            if inputs.id_column not in (self.columns or []):  # not a feature: the columns by position skip it
                header = header[:at] + header[at + 1:]
                rows = [row[:at] + row[at + 1:] for row in rows]
        if header is not None and self.columns is not None:
            width, columns = len(header), self.columns
            index = [_column_index(header, name, source, self.columns) for name in columns]
            expected = f"the header has {width}"
        elif self.columns is not None:
            width, columns, index = len(self.columns), self.columns, list(range(len(self.columns)))
            expected = f"the model takes {_names(self.columns)} in this order (or give a header row)"
        else:  # a built-in data set's model: columns by position, named by the fill values' keys
            width = self.per_sample
            columns, index = [str(j) for j in range(width)], list(range(width))
            expected = f"the model takes {width} values per sample"
        x = np.zeros((len(rows), self._encoded_width(columns)), np.float32)
        for r, (row, line) in enumerate(zip(rows, lines)):
            if len(row) != width:
                raise UdlcError(f"{source} line {line}: {len(row)} cells, but {expected}")
            j = 0
            for name, i in zip(columns, index):
                if name in self.categories:
                    x[r, j + self._category(row[i], name, source, line)] = 1.0
                    j += len(self.categories[name])
                else:
                    x[r, j] = self._number(row[i], name, source, line)
                    j += 1
        return x.reshape((len(x),) + self.input_shape), keys, key_name

    def _is_header(self, row: list[str]) -> bool:
        """A first row is a header when it names one of the model's columns, when it holds a cell no sample
        could hold, or when it is 0..n-1 (the numbers pandas writes for unnamed columns)."""
        cells = [c.strip() for c in row]
        if self.columns is not None and any(c in self.columns for c in cells):
            return True
        if cells == [str(i) for i in range(len(cells))]:
            return True
        known = {v for values in self.categories.values() for v in values}
        return not all(not c or c in known or _is_number(c) for c in cells)

    def _encoded_width(self, columns: list[str]) -> int:
        return sum(len(self.categories[c]) if c in self.categories else 1 for c in columns)

    def _category(self, text: str, column: str, source: str, line: int) -> int:
        values = self.categories[column]
        text = text.strip()
        if text not in values:
            got = f"{text[:40]!r} is not" if text else "an empty cell is not"
            raise UdlcError(f"{source} line {line}, column '{column}': {got} one of the categories the model "
                            f"was trained on ({_names(values)})")
        return values.index(text)

    def _number(self, text: str, column: str, source: str, line: int) -> float:
        label = f"column {int(column) + 1}" if self.columns is None else f"column '{column}'"
        text = text.strip()
        if not text:
            if column in self.fill_values:  # missing: mean in training: fill as it did
                return self.fill_values[column]
            raise UdlcError(f"{source} line {line}, {label}: empty cell — fill it in (the model was not trained "
                            "with data.missing: mean)")
        try:
            value = float(text)
        except ValueError:
            raise UdlcError(f"{source} line {line}, {label}: {text[:40]!r} is not a number") from None
        if not math.isfinite(value) or abs(value) > _FLOAT32_MAX:
            raise UdlcError(f"{source} line {line}, {label}: {text[:40]!r} is not a finite float32 value — "
                            "a prediction for it would be meaningless")
        return value


def _raw_columns(feature_columns: list[str], categories: dict[str, list[str]]) -> list[str]:
    """The CSV's own columns in the model's order: a categorical column once, where its one-hot columns
    ('color=red', 'color=blue') stand in feature_columns."""
    one_hot = {f"{c}={v}": c for c, values in categories.items() for v in values}
    columns: list[str] = []
    for name in feature_columns:
        column = one_hot.get(name, name)
        if column not in columns:
            columns.append(column)
    return columns


def target_name(meta: dict[str, str]) -> str | None:
    """The column a regression predicts, where the data named it: the file's `target_column`, else its training
    spec's `data.target` given by name (an index, or the default last column, names nothing)."""
    if meta.get("target_column"):
        return meta["target_column"]
    import yaml

    try:
        target = ((yaml.safe_load(meta.get("spec") or "") or {}).get("data") or {}).get("target")
    except (yaml.YAMLError, AttributeError):  # a spec edited by hand into something else: no name then
        return None
    return target if isinstance(target, str) and target.strip() else None


def _column_index(header: list[str], name: str, source: str, columns: list[str]) -> int:
    if header.count(name) > 1:
        raise UdlcError(f"{source} has two columns named '{name}' — keep one")
    if name not in header:
        missing = [c for c in columns if c not in header]
        raise UdlcError(f"{source} has no column {_names(missing, quote=True)} — the model takes the columns "
                        f"{_names(columns)} (by name, in any order; other columns are ignored)")
    return header.index(name)


def _names(names: list[str], quote: bool = False, limit: int = 12) -> str:
    shown = [repr(n) if quote else n for n in names[:limit]]
    return ", ".join(shown) + (f", … ({len(names)} in all)" if len(names) > limit else "")


def _kind(dtype: np.dtype) -> str:
    return {"U": "text", "S": "bytes", "O": "Python objects", "c": "complex numbers", "M": "dates",
            "m": "time spans", "V": "records"}.get(dtype.kind, "values that are not numbers")


# ---- reading files ---------------------------------------------------------------------------------------


def read_inputs(path: str | Path, id_column: str | None = None) -> Inputs:
    """Raw samples from CSV (numbers, or category names in categorical columns; a header row optional, needed
    for `id_column`, the column whose cells name the answers), NPY, or NPZ (key 'x', else the only array)."""
    path = Path(path)
    if not path.is_file():
        raise UdlcError(f"no input file at {path}")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows, lines = read_csv_rows(path)
        return Inputs(str(path), rows=rows, lines=lines, id_column=id_column)
    if id_column is not None:
        raise UdlcError(f"--id names a column of a CSV file; {path} has none — leave --id out")
    if suffix not in (".npy", ".npz"):
        raise UdlcError(f"{path}: inputs must be .csv, .npy or .npz")
    try:
        loaded = np.load(path, allow_pickle=False)  # never unpickle: an inputs file must not run code
        if isinstance(loaded, np.ndarray):  # .npy content, whatever the suffix says
            return Inputs(str(path), array=loaded)
        with loaded:
            return Inputs(str(path), array=_one_array(loaded, path))
    except UdlcError:
        raise
    except Exception as e:  # numpy's many ways of saying the file is not what it claims
        reason = (str(e).splitlines() or [""])[0][:200]
        raise UdlcError(f"cannot read {path} as a numpy file ({type(e).__name__}: {reason}) — save it with "
                        "numpy.save or numpy.savez") from None


def _one_array(loaded: Any, path: Path) -> np.ndarray:
    keys = list(loaded.keys())
    if "x" in keys:
        return loaded["x"]
    if len(keys) == 1:
        return loaded[keys[0]]
    if not keys:
        raise UdlcError(f"{path} holds no arrays — save the inputs in it as 'x'")
    raise UdlcError(f"{path} holds arrays {keys}: name the inputs 'x'")


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False
