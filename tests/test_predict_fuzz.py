"""Fuzz the files `udlc predict` reads: CSV text (garbage bytes, ragged rows, quotes, blank lines, category
names, numbers out of range), numpy arrays of any dtype and shape, npz archives, whole or cut short.
The only outcomes allowed are predictions that make sense or a one-line UdlcError naming the file:
anything else is the internal error (exit 70) a user once met.

One small model serves every example: tiny-csv from test_predict (columns color (categorical), a, b;
missing: mean), since it exercises the most of predict: names, categories, fill values, 5 features."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tests.conftest import TrainedRun
from udlc.errors import UdlcError

# database=None: no .hypothesis folder in the shared tree; the failing example is printed in full anyway
FUZZ = settings(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
FEATURES = 5  # color one-hot (3) + a + b


@pytest.fixture(scope="module")
def model(csv_run: TrainedRun):
    from udlc.runtime.predict import Model

    return Model(csv_run.run / "model.onnx")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def predict_or_error(model, path: Path):
    """Predictions, checked for sense, or None after a UdlcError that names the file on one line."""
    from udlc.runtime.predict import read_inputs

    try:
        got = model.predict(read_inputs(path))
    except UdlcError as e:
        message = str(e)
        assert str(path) in message and "\n" not in message, message
        event("refused")  # --hypothesis-show-statistics: how often each outcome came up
        return None
    n = len(got.values)
    assert n >= 1 and got.probabilities.shape == (n, 2), got.probabilities.shape
    assert np.isfinite(got.probabilities).all() and np.allclose(got.probabilities.sum(axis=1), 1, atol=1e-5)
    assert set(got.labels()) <= {"no", "yes"}
    event("predicted")
    return got


# ---- CSV ----------------------------------------------------------------------------------------------

NUMBER = st.one_of(st.floats(-1e6, 1e6).map(repr), st.integers(-1000, 1000).map(str))
CELL = st.one_of(
    NUMBER,
    st.sampled_from(["red", "green", "blue", "purple", "", " ", "color", "a", "b", "label", "nan", "inf", "-inf",
                     "1e39", "1e400", "0x10", "1_0", " 7 ", "\ufeffa", '"', "a,b", "1\n2"]),
    st.floats().map(repr),  # nan, inf, subnormals, 1e308
    st.text(max_size=6),  # any unicode: quotes, commas, newlines, NUL
)
GOOD_ROW = st.tuples(st.sampled_from(["red", "green", "blue"]), NUMBER | st.just(""), NUMBER).map(list)
HEADER = st.one_of(
    st.none(),
    st.sampled_from([["color", "a", "b"], ["b", "a", "color"], ["color", "a"], ["0", "1", "2"]]),
    st.lists(CELL, max_size=5),
)


@settings(FUZZ, max_examples=35)
@example(header=None, rows=[], bad=[], where=0, blank=True)  # nothing but blank lines
@example(header=["color", "a", "b"], rows=[], bad=None, where=0, blank=False)  # a header alone
@example(header=["color", "a", "b"], rows=[["red", "1", "2"]], bad=["red", "1"], where=1, blank=False)  # ragged
@given(header=HEADER, rows=st.lists(GOOD_ROW, min_size=1, max_size=5), bad=st.none() | st.lists(CELL, max_size=5),
       where=st.integers(0, 5), blank=st.booleans())
def test_csv_rows(model, folder: Path, header, rows, bad, where: int, blank: bool) -> None:
    """Mostly well-formed rows (some files predict), with at most one row of anything among them."""
    if header is not None and len(header) == 3 and header[0] == "b":  # the good rows, in this header's order
        rows = [[r[2], r[1], r[0]] for r in rows]
    if bad is not None:
        rows.insert(where, bad)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")  # quotes whatever needs quoting: the structure stays CSV
    w.writerows(([header] if header is not None else []) + rows)
    text = buf.getvalue() + ("\n\n  \n" if blank else "")
    path = folder / "rows.csv"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    predict_or_error(model, path)


@settings(FUZZ, max_examples=15)
@given(raw=st.one_of(st.binary(max_size=120),
                     st.text(st.sampled_from(list('color,ab"\n\r \t0123456789.-e+red\x00\ufeff')), max_size=120)
                     .map(lambda t: t.encode("utf-8"))))
def test_csv_bytes(model, folder: Path, raw: bytes) -> None:
    path = folder / "bytes.csv"
    path.write_bytes(raw)
    predict_or_error(model, path)


# ---- NPY and NPZ ---------------------------------------------------------------------------------------

DTYPES = st.sampled_from(["bool", "int8", "uint8", "int64", "uint64", "float16", "float32", "float64",
                          "longdouble", "complex64", "<U3", "|S2", "datetime64[s]", "timedelta64[s]",
                          "f4,i2"])  # the last a record dtype
SHAPES = st.one_of(st.tuples(st.integers(0, 3), st.just(FEATURES)), st.just((FEATURES,)),  # the right width
                   hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6))
ARRAYS = st.one_of(
    hnp.arrays(st.sampled_from([np.float32, np.float64, np.int64]),  # a feature matrix, as it should be
               st.tuples(st.integers(1, 4), st.just(FEATURES)), elements=st.integers(-100, 100)),
    DTYPES.flatmap(lambda d: hnp.arrays(np.dtype(d), SHAPES)),
    hnp.arrays(object, SHAPES, elements=st.integers() | st.text(max_size=3)),
)


def saved(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)  # object arrays are pickled: predict must refuse, not unpickle
    return buf.getvalue()


@settings(FUZZ, max_examples=40)
@example(array=np.zeros((0, FEATURES)), cut=None)  # no rows
@example(array=np.ones(FEATURES), cut=None)  # one sample without a batch axis
@example(array=np.array([["1", "2", "3", "4", "5"]]), cut=None)  # numbers, as text
@given(array=ARRAYS, cut=st.none() | st.integers(0, 200))
def test_npy(model, folder: Path, array: np.ndarray, cut: int | None) -> None:
    path = folder / "x.npy"
    data = saved(array)
    path.write_bytes(data if cut is None else data[:cut])
    got = predict_or_error(model, path)
    if got is not None:  # the whole file read: one prediction per 5 values
        assert cut is None or cut >= len(data)
        assert len(got.values) * FEATURES == array.size


@settings(FUZZ, max_examples=15)
@given(arrays=st.dictionaries(st.sampled_from(["x", "y", "arr_0", "data"]), ARRAYS, max_size=3),
       cut=st.none() | st.integers(0, 400))
def test_npz(model, folder: Path, arrays: dict[str, np.ndarray], cut: int | None) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    data = buf.getvalue()
    path = folder / "x.npz"
    path.write_bytes(data if cut is None else data[:cut])
    predict_or_error(model, path)
