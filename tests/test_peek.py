"""udlc.data.peek: what a source gives the model, from its header only; and the mismatches `udlc check` reports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from udlc.data import prepare
from udlc.data.file_kinds import peek
from udlc.data.peek import DataSignature, mismatches
from udlc.data.file_kinds import load_arrays
from udlc.errors import SpecError
from udlc.spec.data import DataSpec


def spec(**kw) -> DataSpec:
    return DataSpec.model_validate(kw)


# ---- built-in sets: tests/test_sources_registry.py holds every entry's signature to its loader ----------


def test_builtin_options_are_refused_like_the_loader() -> None:
    with pytest.raises(SpecError) as e:
        peek(spec(source="iris", target="species"), Path("."))
    assert e.value.path == "data.target"


# ---- CSV: header and first row -------------------------------------------------------------------------


def write(tmp_path: Path, name: str, text: str) -> Path:
    (tmp_path / name).write_text(text)
    return tmp_path


def test_csv_signature_matches_the_loader(tmp_path: Path) -> None:
    base = write(tmp_path, "d.csv", "sqft,rooms,age,price\n1200,3,10,250000.5\n900,2,40,180000\n")
    sig = peek(spec(source="d.csv"), base)
    arrays = load_arrays(spec(source="d.csv"), base, 0)
    assert sig.sample_size == arrays.x.shape[1] == 3 and sig.natural_shape == (3,)
    assert sig.feature_columns == arrays.feature_columns == ["sqft", "rooms", "age"]
    assert (sig.task, sig.text_labels, sig.target_width) == ("regression", False, 1)  # 250000.5 is no class
    sig = peek(spec(source="d.csv", target="rooms", features=["age", "sqft"]), base)
    arrays = load_arrays(spec(source="d.csv", target="rooms", features=["age", "sqft"]), base, 0)
    assert sig.feature_columns == ["age", "sqft"]  # whole numbers, few of them: class labels, as the loader reads
    assert (sig.task, sig.n_classes, sig.whole) == (arrays.task, 2, True) == ("classification", 2, True)


def test_a_small_csv_is_read_whole_for_its_classes_and_widths(tmp_path: Path) -> None:
    base = write(tmp_path, "d.csv", "color,x,kind\nred,1,dog\nblue,2,cat\ngreen,3,bird\nred,4,dog\n")
    sig = peek(spec(source="d.csv", categorical=["color"]), base)
    arrays = load_arrays(spec(source="d.csv", categorical=["color"]), base, 0)
    assert sig.feature_columns == arrays.feature_columns == ["color=blue", "color=green", "color=red", "x"]
    assert sig.sample_size == arrays.x.shape[1] == 4
    assert sig.classes == arrays.classes == ["bird", "cat", "dog"] and sig.n_classes == 3


def test_a_large_csv_is_read_to_its_first_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import udlc.data.peek as peek_module

    monkeypatch.setattr(peek_module, "READ_WHOLE_BYTES", 10)  # this file counts as large
    # Row 3 would stop the loader; peek never gets there.
    base = write(tmp_path, "d.csv", "a,b,kind\n\n1,2,dog\n3,oops,cat\n")
    sig = peek(spec(source="d.csv"), base)
    assert (sig.task, sig.text_labels, sig.n_classes, sig.target_width) == ("classification", True, None, None)
    with pytest.raises(SpecError, match="line 4, column 'b'"):
        load_arrays(spec(source="d.csv"), base, 0)
    base = write(tmp_path, "c.csv", "color,x,y\nred,1,0.5\n")  # one-hot widths need every row: unknown
    sig = peek(spec(source="c.csv", categorical=["color"]), base)
    assert sig.sample_size is None and sig.feature_columns is None and sig.natural_shape is None


def test_csv_text_cells_need_categorical(tmp_path: Path) -> None:
    base = write(tmp_path, "d.csv", "color,x,y\nred,1,0.5\n")
    with pytest.raises(SpecError) as e:  # the same text cell without `categorical`
        peek(spec(source="d.csv"), base)
    assert "line 2, column 'color': 'red' is not a number" in e.value.message and "categorical" in e.value.hint


@pytest.mark.parametrize("options, path, hint", [
    ({"target": "prize"}, "data.target", "price"),
    ({"features": ["rooms", "sqtf"]}, "data.features", "sqft"),
    ({"categorical": ["colour"]}, "data.categorical", "color"),
    ({"categorical": ["price"]}, "data.categorical", "class labels"),  # the default target
])
def test_csv_column_errors_match_the_loader(tmp_path: Path, options: dict, path: str, hint: str) -> None:
    base = write(tmp_path, "d.csv", "sqft,rooms,color,price\n1200,3,red,250000\n")
    with pytest.raises(SpecError) as peeked:
        peek(spec(source="d.csv", **options), base)
    with pytest.raises(SpecError) as loaded:
        load_arrays(spec(source="d.csv", **options), base, 0)
    assert peeked.value.path == loaded.value.path == path
    assert peeked.value.message == loaded.value.message and hint in peeked.value.hint


def test_csv_empty_cells_follow_missing(tmp_path: Path) -> None:
    base = write(tmp_path, "d.csv", "a,b,y\n1,,\n")
    with pytest.raises(SpecError, match="line 2, column 'b': empty cell"):
        peek(spec(source="d.csv"), base)
    with pytest.raises(SpecError, match="empty target cell"):
        peek(spec(source="d.csv", missing="mean"), base)
    with pytest.raises(SpecError) as peeked:  # its one row is dropped: refused as training refuses it
        peek(spec(source="d.csv", missing="drop"), base)
    with pytest.raises(SpecError) as loaded:
        load_arrays(spec(source="d.csv", missing="drop"), base, 0)
    assert peeked.value.message == loaded.value.message and "leaves no samples" in peeked.value.message


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    for name in ("nope.csv", "nope.npy", "nope.npz"):
        with pytest.raises(SpecError, match="not found") as e:
            peek(spec(source=name), tmp_path)
        assert e.value.path == "data.source"
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header.csv").write_text("a,b\n\n")
    (tmp_path / "bad.npz").write_text("not a zip")
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPX garbage")
    for name, words in (("empty.csv", "is empty"), ("header.csv", "holds no samples"), ("bad.npz", "cannot read"),
                        ("bad.npy", "cannot read")):
        with pytest.raises(SpecError, match=words) as e:
            peek(spec(source=name), tmp_path)
        assert e.value.path == "data.source"


# ---- NPY and NPZ: array headers ----------------------------------------------------------------------


def npy_header_only(path: Path, shape: tuple[int, ...], dtype: str = "<f4") -> None:
    """An .npy file that claims `shape` but holds no data: only a reader of headers gets through it."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": dtype, "fortran_order": False, "shape": shape})


def test_npy_reads_the_header_only(tmp_path: Path) -> None:
    npy_header_only(tmp_path / "huge.npy", (10**12, 5))
    sig = peek(spec(source="huge.npy"), tmp_path)
    assert (sig.sample_size, sig.natural_shape, sig.target_width, sig.text_labels) == (4, (4,), 1, False)


def test_npy_matches_the_loader(tmp_path: Path) -> None:
    np.save(tmp_path / "d.npy", np.arange(24.0).reshape(6, 4))
    np.save(tmp_path / "cube.npy", np.zeros((2, 3, 4)))
    np.save(tmp_path / "text.npy", np.array([["a", "b"], ["c", "d"]]))
    assert peek(spec(source="d.npy"), tmp_path).sample_size == load_arrays(spec(source="d.npy"), tmp_path, 0).x.shape[1]
    for options, path, name in (({"target": 4}, "data.target", "d.npy"), ({"target": "y"}, "data.target", "d.npy"),
                                ({}, "data.source", "cube.npy"), ({}, "data.source", "text.npy")):
        with pytest.raises(SpecError) as peeked:
            peek(spec(source=name, **options), tmp_path)
        with pytest.raises(SpecError) as loaded:
            load_arrays(spec(source=name, **options), tmp_path, 0)
        assert peeked.value.path == loaded.value.path == path and peeked.value.message == loaded.value.message


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_npz_reads_member_headers(tmp_path: Path, save) -> None:
    x = np.zeros((5, 1, 4, 3), np.float32)
    save(tmp_path / "d.npz", x=x, y=np.arange(5), labels=np.array(list("abcab")), multi=np.zeros((5, 2)))
    sig = peek(spec(source="d.npz"), tmp_path)
    assert (sig.sample_size, sig.natural_shape, sig.task, sig.target_width) == (12, (1, 4, 3), None, 1)
    sig = peek(spec(source="d.npz", target="labels"), tmp_path)
    assert (sig.task, sig.text_labels) == ("classification", True)
    sig = peek(spec(source="d.npz", target="multi"), tmp_path)
    assert (sig.task, sig.target_width) == ("regression", 2)
    assert load_arrays(spec(source="d.npz", target="multi"), tmp_path, 0).task == "regression"
    with pytest.raises(SpecError) as e:
        peek(spec(source="d.npz", target="label"), tmp_path)
    assert e.value.path == "data.target" and "labels" in e.value.hint


def test_npz_refuses_object_arrays_and_ragged_pairs(tmp_path: Path) -> None:
    np.savez(tmp_path / "obj.npz", x=np.zeros((2, 2)), y=np.array([{"a": 1}, None], dtype=object))
    np.savez(tmp_path / "ragged.npz", x=np.zeros((3, 2)), y=np.zeros(4))
    with pytest.raises(SpecError, match="object array"):
        peek(spec(source="obj.npz"), tmp_path)
    with pytest.raises(SpecError, match="same N") as e:
        peek(spec(source="ragged.npz"), tmp_path)
    assert e.value.path == "data.source"


def test_peek_loads_neither_torch_nor_sklearn(tmp_path: Path) -> None:
    write(tmp_path, "d.csv", "a,b,y\n1,2,3\n")
    code = (
        "import json, sys\nfrom pathlib import Path\n"
        "from udlc.data.file_kinds import peek\nfrom udlc.spec.data import DataSpec\n"
        f"for s in ('digits', 'moons', 'd.csv'): peek(DataSpec(source=s), Path({str(tmp_path)!r}))\n"
        "print(json.dumps([m in sys.modules for m in ('torch', 'sklearn')]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [False, False]


# ---- mismatches ---------------------------------------------------------------------------------------


def messages(found) -> list[tuple[str, str]]:
    return [(m.where, m.message) for m in found]


def test_input_mismatch_says_what_prepare_says() -> None:
    digits = peek(spec(source="digits"), Path("."))
    assert mismatches(digits, (1, 8, 8), (10,), "cross_entropy", None) == []
    (found,) = mismatches(digits, (3, 8, 8), (10,), "cross_entropy", None)
    with pytest.raises(SpecError) as e:
        prepare(spec(source="digits"), (3, 8, 8), Path("."), 0)
    assert (found.where, found.message, found.hint) == ("input", e.value.message, e.value.hint)


def test_classification_outputs() -> None:
    iris = peek(spec(source="iris"), Path("."))
    assert messages(mismatches(iris, (4,), (4,), "cross_entropy", None)) == [
        ("output", "cross_entropy needs one logit per class: iris has 3 classes but the model outputs (4,)")]
    found = mismatches(iris, (4,), (2,), "bce", None)
    assert [m.where for m in found] == ["loss", "output"]
    assert "bce is for two classes, but iris has 3" in found[0].message
    moons = peek(spec(source="moons"), Path("."))
    assert mismatches(moons, (2,), (1,), "bce", None) == []
    assert messages(mismatches(moons, (2,), (2,), "cross_entropy", "regression")) == [
        ("loss", "cross_entropy is a classification loss but data.task is regression")]


def test_regression_losses(tmp_path: Path) -> None:
    base = write(tmp_path, "d.csv", "a,b,kind\n1,2,dog\n")
    labels = peek(spec(source="d.csv"), base)
    for override in (None, "regression", "classification"):
        (found,) = mismatches(labels, (2,), (1,), "mse", override)
        assert found.where == "loss" and "mse is a regression loss, but d.csv holds text labels" in found.message
    iris = peek(spec(source="iris"), Path("."))
    (found,) = mismatches(iris, (4,), (1,), "mae", "regression")
    assert "iris holds text labels (setosa, versicolor, virginica, ...)" in found.message
    digits = peek(spec(source="digits"), Path("."))  # numeric class names: regression is allowed when asked for
    assert messages(mismatches(digits, (64,), (1,), "mse", None)) == [
        ("loss", "mse is a regression loss but digits is a classification set")]
    assert mismatches(digits, (64,), (1,), "mse", "regression") == []
    sine = peek(spec(source="sine"), Path("."))
    assert mismatches(sine, (1,), (1,), "huber", None) == []
    assert messages(mismatches(sine, (1,), (2,), "mse", None)) == [
        ("output", "the targets have 1 value per sample but the model outputs (2,)")]


def test_unknown_fields_raise_no_complaint() -> None:
    unknown = DataSignature("d.csv")
    for loss in ("mse", "mae", "huber", "cross_entropy"):
        assert mismatches(unknown, (7,), (5,), loss, None) == []
    # bce's one logit is the model's side alone, known without the data; an unknown output is not
    assert [m.where for m in mismatches(unknown, (7,), (5,), "bce", None)] == ["output"]
    assert mismatches(unknown, (7,), None, "bce", None) == []


def test_an_npy_header_is_read_without_numpy_and_a_forged_one_is_refused(tmp_path: Path) -> None:
    import struct

    from udlc.data.layout import read_array_header

    np.save(tmp_path / "a.npy", np.zeros((3, 4), dtype=np.float32))
    with open(tmp_path / "a.npy", "rb") as f:
        header = read_array_header(f)
    assert (header.shape, header.numeric, header.objects) == ((3, 4), True, False)
    forged = b"\x93NUMPY\x02\x00" + struct.pack("<I", 2**31) + b"{" * 64
    (tmp_path / "b.npy").write_bytes(forged)
    with pytest.raises(SpecError, match="too large"):
        peek(spec(source="b.npy"), tmp_path)
