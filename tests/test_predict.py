"""`udlc predict`: an exported model on raw CSV/NPY/NPZ inputs, with onnxruntime and numpy only. The graph
standardizes inputs and gives probabilities or un-standardized values itself; predict only builds the
input matrix (CSV columns by name, categories one-hot, empty cells filled) and names the file in every error."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import CSV_HEADER, TrainedRun, csv_rows, write_csv
from tests.processes import child_env, cli, describe, finish, udlc_argv
from udlc.errors import UdlcError

N = 7  # samples to predict


def torch_network(run_dir: Path):
    """The run's network in torch with its final weights, and run.json: to compute what a model file should
    give, independently of the exported graph."""
    from udlc.compiler.lower import lower
    from udlc.runs import RunFolder, checkpoint

    run = RunFolder.open(run_dir)
    compiled = run.compiled()
    (name, graph), = compiled.graphs.items()
    network = lower(graph).eval()
    checkpoint.load_models({name: network}, run.final_checkpoint(compiled.spec))
    return network, run.info


@pytest.fixture(scope="module")
def raw_digits() -> np.ndarray:
    """Raw (unnormalized) 8x8 digits, as a user would have them."""
    from sklearn.datasets import load_digits

    return load_digits().data[:N].astype(np.float32)


def write_inputs(folder: Path, raw: np.ndarray) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"npy": folder / "x.npy", "npz": folder / "x.npz", "csv": folder / "x.csv"}
    np.save(paths["npy"], raw)
    np.savez(paths["npz"], x=raw.reshape(len(raw), 8, 8))  # any shape holding 64 values a sample
    header = ",".join(f"px{i}" for i in range(raw.shape[1]))
    paths["csv"].write_text(header + "\n" + "\n".join(",".join(f"{v:g}" for v in row) for row in raw) + "\n")
    return paths


def parse(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, raw_digits: np.ndarray) -> dict[str, Path]:
    return write_inputs(tmp_path_factory.mktemp("inputs"), raw_digits)


NO_TORCH = "import sys; sys.modules['torch'] = None; from udlc.cli import main; main()"


@pytest.fixture(scope="module")
def predictions(digits_run: TrainedRun, inputs: dict[str, Path]) -> dict[str, list[dict[str, str]]]:
    """`udlc predict` once per input format (the NPY one with -o), and once more in an interpreter where
    torch cannot be imported; all started together."""
    model = digits_run.run / "model.onnx"
    written = inputs["npy"].with_suffix(".pred.csv")
    argv = {
        "npy": udlc_argv("predict", model, inputs["npy"], "-o", written),
        "npz": udlc_argv("predict", model, inputs["npz"]),
        "csv": udlc_argv("predict", model, inputs["csv"]),
        "no-torch": [sys.executable, "-c", NO_TORCH, "predict", str(model), str(inputs["npy"])],
    }
    procs = {k: subprocess.Popen(a, cwd=inputs["npy"].parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, env=child_env()) for k, a in argv.items()}
    out = {}
    for kind, proc in procs.items():
        result = finish(proc, argv[kind])
        assert result.returncode == 0, describe(result)
        assert "Traceback" not in result.stderr
        if kind == "npy":
            assert result.stdout.strip() == str(written)
            out[kind] = parse(written.read_text())
        else:
            out[kind] = parse(result.stdout)
    return out


@pytest.mark.parametrize("kind", ["npy", "npz", "csv"])
def test_one_row_per_sample_with_probabilities(predictions, kind: str) -> None:
    rows = predictions[kind]
    assert len(rows) == N
    keys = ["line"] if kind == "csv" else []  # a CSV's answers say which line they answer (line 1: the header)
    assert list(rows[0]) == keys + ["prediction"] + [f"p_{i}" for i in range(10)]
    assert [r.get("line") for r in rows] == ([str(i + 2) for i in range(N)] if keys else [None] * N)
    for row in rows:
        probs = np.array([float(row[f"p_{i}"]) for i in range(10)])
        assert (probs >= 0).all() and abs(probs.sum() - 1) < 1e-4
        assert row["prediction"] == str(int(probs.argmax()))


def test_formats_agree(predictions) -> None:
    csv_answers = [{k: v for k, v in row.items() if k != "line"} for row in predictions["csv"]]
    assert predictions["npy"] == predictions["npz"] == csv_answers


def test_predictions_match_torch_on_normalized_inputs(digits_run: TrainedRun, predictions, raw_digits) -> None:
    """What the CLI prints from raw inputs is softmax(network(standardized inputs)), computed here in torch."""
    import torch

    from udlc.data import Normalization

    network, info = torch_network(digits_run.run)
    x = Normalization.from_json(info["normalization"]).apply_normalization(raw_digits)
    with torch.no_grad():
        probs = torch.softmax(network(torch.from_numpy(x)), dim=1).numpy()
    expected = [info["classes"][i] for i in probs.argmax(axis=1)]
    rows = predictions["npy"]
    assert [r["prediction"] for r in rows] == expected
    got = np.array([[float(r[f"p_{i}"]) for i in range(10)] for r in rows])
    np.testing.assert_allclose(got, probs, atol=2e-6)
    # and the predictions are mostly right: these are digits 0..6 in order
    assert sum(p == str(i) for i, p in enumerate(expected)) >= N - 2


def test_predict_works_without_torch(predictions) -> None:
    assert predictions["no-torch"] == predictions["npy"]
    blocked = subprocess.run([sys.executable, "-c", "import sys; sys.modules['torch'] = None; import torch"],
                             capture_output=True, text=True, timeout=60, check=False)
    assert blocked.returncode != 0 and "import of torch halted" in blocked.stderr  # the trick really hides torch


def test_regression_gives_values_in_the_targets_units(sine_run: TrainedRun, tmp_path: Path) -> None:
    """The CLI's values are network(standardized x), un-standardized with run.json's target normalization,
    computed here in torch: the exported graph does both standardizations, predict neither."""
    import torch

    from udlc.data import Normalization

    x = np.linspace(-3, 3, 9, dtype=np.float32)
    (tmp_path / "x.csv").write_text("x\n" + "\n".join(f"{v:g}" for v in x) + "\n")
    result = cli("predict", sine_run.run / "model.onnx", "x.csv", cwd=tmp_path)
    assert result.returncode == 0, describe(result)
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["line", "y"] and len(rows) == 1 + len(x)  # sine's target has no name: y
    got = np.array([float(r[1]) for r in rows[1:]])

    network, info = torch_network(sine_run.run)
    target = Normalization.from_json(info["target_normalization"])
    standardized = Normalization.from_json(info["normalization"]).apply_normalization(x.reshape(-1, 1))
    with torch.no_grad():
        out = network(torch.from_numpy(standardized)).numpy()
    expected = target.invert(out).reshape(-1)
    assert np.abs(expected - out.reshape(-1)).max() > 1e-2  # un-standardizing changes the values: it shows
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_wrong_input_width_is_a_clear_error(digits_run: TrainedRun, tmp_path: Path) -> None:
    np.save(tmp_path / "narrow.npy", np.zeros((3, 10), np.float32))
    result = cli("predict", digits_run.run / "model.onnx", "narrow.npy", cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr, describe(result)
    assert "internal error" not in result.stderr, describe(result)
    assert "(64,)" in result.stderr or "64" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_inputs_file_is_a_clear_error(digits_run: TrainedRun, tmp_path: Path) -> None:
    result = cli("predict", digits_run.run / "model.onnx", "missing.npy", cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr, describe(result)
    assert "internal error" not in result.stderr, describe(result)
    assert "missing.npy" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_foreign_onnx_is_refused(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(tmp_path / "m.onnx"))
    np.save(tmp_path / "x.npy", np.zeros((2, 3), np.float32))
    result = cli("predict", "m.onnx", "x.npy", cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr, describe(result)
    assert "internal error" not in result.stderr, describe(result)
    assert "udlc" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_classes_in_predictions_are_the_labels(tmp_path: Path) -> None:
    """The CSV shows class names, not indices, when the training data had names (in-process Model)."""
    from udlc.runtime.predict import Predictions

    p = Predictions("classification", np.array([1, 0]), np.array([[0.2, 0.8], [0.9, 0.1]]), ["cat", "dog"])
    rows = parse(p.to_csv())
    assert [r["prediction"] for r in rows] == ["dog", "cat"] and list(rows[0]) == ["prediction", "p_cat", "p_dog"]
    assert json.dumps(p.labels()) == '["dog", "cat"]'


def test_non_finite_inputs_are_refused(digits_run: TrainedRun) -> None:
    from udlc.errors import UdlcError
    from udlc.runtime.predict import Model

    raw = np.zeros((2, 64), np.float32)
    raw[1, 5] = np.nan
    with pytest.raises(UdlcError):
        Model(digits_run.run / "model.onnx").predict(raw)


@pytest.mark.parametrize("header", ["names", "pandas-numbers", "none"])
def test_csv_header_row_is_optional(digits_run: TrainedRun, raw_digits: np.ndarray, tmp_path: Path,
                                    header: str) -> None:
    """A built-in data set's model has no column names: CSV columns count by position, a header row or not."""
    from udlc.runtime.predict import Model, read_inputs

    first = {"names": [f"px{i}" for i in range(64)], "pandas-numbers": [str(i) for i in range(64)], "none": None}
    path = write_csv(tmp_path / "x.csv", first[header], [[f"{v:g}" for v in row] for row in raw_digits])
    model = Model(digits_run.run / "model.onnx")
    got = model.predict(read_inputs(path))
    np.testing.assert_array_equal(got.probabilities, model.predict(raw_digits).probabilities)


# ---- CSV columns by name -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def csv_model(csv_run: TrainedRun):
    from udlc.runtime.predict import Model

    return Model(csv_run.run / "model.onnx")


def predict_csv(model, path: Path):
    from udlc.runtime.predict import read_inputs

    return model.predict(read_inputs(path))


def test_csv_columns_are_matched_by_name(csv_model, tmp_path: Path) -> None:
    """The training file's own layout, its columns shuffled, or without the target: the same predictions."""
    rows = csv_rows()[:20]
    as_trained = predict_csv(csv_model, write_csv(tmp_path / "a.csv", CSV_HEADER, rows))
    order = [3, 2, 0, 1]  # b, label, color, a
    shuffled = predict_csv(csv_model, write_csv(tmp_path / "b.csv", [CSV_HEADER[i] for i in order],
                                                [[r[i] for i in order] for r in rows]))
    extra = predict_csv(csv_model, write_csv(tmp_path / "c.csv", ["id"] + CSV_HEADER,
                                             [[str(i)] + r for i, r in enumerate(rows)]))
    positional = predict_csv(csv_model, write_csv(tmp_path / "d.csv", None, [[r[0], r[1], r[3]] for r in rows]))
    for other in (shuffled, extra, positional):
        np.testing.assert_array_equal(other.probabilities, as_trained.probabilities)
    assert len(set(as_trained.labels())) == 2  # the rows are told apart: the comparison above means something


def test_csv_is_encoded_as_run_json_says(csv_run: TrainedRun, csv_model, tmp_path: Path) -> None:
    """One-hot columns in the order of run.json's categories, empty cells filled with its fill values, then
    standardized and softmaxed in the graph: the same as torch on the matrix built here by hand."""
    import torch

    from udlc.data import Normalization

    rows = csv_rows()[:40]
    assert any(r[1] == "" for r in rows)  # some rows use the fill value
    got = predict_csv(csv_model, write_csv(tmp_path / "x.csv", CSV_HEADER, rows))

    network, info = torch_network(csv_run.run)
    assert info["feature_columns"] == ["color=blue", "color=green", "color=red", "a", "b"]
    matrix = np.array([[float(r[0] == c) for c in info["categories"]["color"]]
                       + [float(r[1]) if r[1] else info["fill_values"]["a"], float(r[3])] for r in rows], np.float32)
    x = Normalization.from_json(info["normalization"]).apply_normalization(matrix)
    with torch.no_grad():
        expected = torch.softmax(network(torch.from_numpy(x)), dim=1).numpy()
    np.testing.assert_allclose(got.probabilities, expected, atol=1e-6)
    assert got.labels() == [info["classes"][i] for i in expected.argmax(axis=1)]
    # the encoded matrix as .npy gives the same answers
    np.save(tmp_path / "x.npy", matrix)
    np.testing.assert_allclose(predict_csv(csv_model, tmp_path / "x.npy").probabilities, got.probabilities,
                               atol=1e-7)


@pytest.mark.parametrize("header,row,message", [
    (["color", "a"], ["red", "1"], "has no column 'b' — the model takes the columns color, a, b"),
    (["color", "a", "b"], ["purple", "1", "2"], "line 2, column 'color': 'purple' is not one of the categories"),
    (["color", "a", "b"], ["red", "1", "two"], "line 2, column 'b': 'two' is not a number"),
    (["color", "a", "b"], ["red", "1"], "line 2: 2 cells, but the header has 3"),
    (["color", "a", "b", "a"], ["red", "1", "2", "3"], "two columns named 'a'"),
], ids=["missing-column", "unknown-category", "not-a-number", "ragged", "duplicate"])
def test_csv_mistakes_are_named(csv_run: TrainedRun, csv_model, tmp_path: Path, header, row, message) -> None:
    path = write_csv(tmp_path / "bad.csv", header, [row])
    with pytest.raises(UdlcError) as err:
        predict_csv(csv_model, path)
    assert str(path) in str(err.value) and message in str(err.value), err.value
    assert "\n" not in str(err.value)


def test_empty_cells_are_filled_only_where_training_filled(csv_run: TrainedRun, csv_model, tmp_path: Path) -> None:
    """missing: mean filled every numeric column: an empty `b` cell predicts as b = its training mean."""
    fill = csv_run.read_json("run.json")["fill_values"]
    empty = predict_csv(csv_model, write_csv(tmp_path / "e.csv", ["color", "a", "b"], [["red", "", ""]]))
    means = predict_csv(csv_model, write_csv(tmp_path / "m.csv", ["color", "a", "b"],
                                             [["red", repr(fill["a"]), repr(fill["b"])]]))
    np.testing.assert_allclose(empty.probabilities, means.probabilities, atol=1e-7)


# ---- files users gave that used to crash predict (exit 70) -------------------------------------------------

BAD_INPUTS = {
    "empty.csv": (b"", "holds no rows"),
    "blank-lines.csv": (b"\n \n\n", "holds no rows"),
    "header-only.csv": (b"px0,px1,px2\n", "has a header row but no samples"),
    "zero-rows.npy": (np.zeros((0, 64), np.float32), "holds no samples"),
    "strings.npy": (np.array([["1", "2"], ["3", "4"]]), "holds text (dtype <U1), not numbers"),
    "nan.npy": (np.full((2, 64), np.nan, np.float32), "holds NaN, inf or values beyond float32 in samples 0, 1"),
    "huge.npy": (np.full((1, 64), 1e300), "values beyond float32 in samples 0"),
    "scalar.npy": (np.float32(3), "an array of shape () does not hold samples of shape (64,)"),
    "two-rows-flat.npy": (np.zeros(128, np.float32), "an array of shape (128,) does not hold samples"),
    "garbage.npy": (b"\x93NUMPY garbage", "cannot read"),
    "no-arrays.npz": (None, "holds no arrays"),
    "ragged.csv": (b"1,2\n3\n", "line 1: 2 cells, but the model takes 64 values per sample"),
    # digits was trained without missing: mean, so nothing may fill an empty cell
    "empty-cell.csv": ((",".join(["1"] * 63) + ",\n").encode(), "line 1, column 64: empty cell"),
    "latin1.csv": ("p\xe9,x\n1,2\n".encode("latin-1"), "is not UTF-8 text"),
    "nul.csv": (b"1,2\x00,3\n", ""),
    "huge-field.csv": (b'"' + b"1" * 200_000 + b'"\n', "line 1: not a valid CSV row (field larger than field limit"),
}


def write_bad(path: Path, content) -> None:
    if path.name == "no-arrays.npz":
        np.savez(path)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        np.save(path, content)


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_inputs_are_clear_errors_naming_the_file(digits_run: TrainedRun, tmp_path: Path, name: str) -> None:
    from udlc.runtime.predict import Model, read_inputs

    content, message = BAD_INPUTS[name]
    path = tmp_path / name
    write_bad(path, content)
    with pytest.raises(UdlcError) as err:
        Model(digits_run.run / "model.onnx").predict(read_inputs(path))
    assert str(path) in str(err.value) and message in str(err.value), err.value
    assert "\n" not in str(err.value)


def test_cli_on_bad_inputs_and_one_flat_sample(digits_run: TrainedRun, raw_digits: np.ndarray,
                                               tmp_path: Path) -> None:
    """Through the command: exit 1 and one line naming the file for the files that crashed it; a 1-D
    array of one sample's values is that one sample."""
    np.save(tmp_path / "one.npy", raw_digits[0])  # shape (64,)
    np.save(tmp_path / "first.npy", raw_digits[:1])  # shape (1, 64)
    for name in ("empty.csv", "header-only.csv", "strings.npy", "zero-rows.npy"):
        write_bad(tmp_path / name, BAD_INPUTS[name][0])
    names = ["one.npy", "first.npy", "empty.csv", "header-only.csv", "strings.npy", "zero-rows.npy"]
    model = digits_run.run / "model.onnx"
    procs = {n: subprocess.Popen(udlc_argv("predict", model, n), cwd=tmp_path, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=child_env()) for n in names}
    results = {n: finish(p, ["predict", n]) for n, p in procs.items()}
    for n in names[:2]:
        assert results[n].returncode == 0, describe(results[n])
    assert results["one.npy"].stdout == results["first.npy"].stdout and len(parse(results["one.npy"].stdout)) == 1
    for n in names[2:]:
        r = results[n]
        assert r.returncode == 1 and "Traceback" not in r.stderr, describe(r)
        assert n in r.stderr and len(r.stderr.strip().splitlines()) == 1, describe(r)


def test_an_old_model_file_asks_to_be_exported_again(digits_run: TrainedRun, tmp_path: Path) -> None:
    """A file from before the graph standardized its inputs must not be fed raw values: predict refuses it."""
    import onnx

    proto = onnx.load(str(digits_run.run / "model.onnx"))
    kept = [p for p in proto.metadata_props if p.key != "outputs"]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    onnx.save(proto, str(tmp_path / "old.onnx"))
    from udlc.runtime.predict import Model

    with pytest.raises(UdlcError, match="export it again"):
        Model(tmp_path / "old.onnx")
