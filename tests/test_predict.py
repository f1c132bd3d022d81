"""`udlc predict`: an exported model on raw CSV/NPY/NPZ inputs, with onnxruntime and numpy only."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TrainedRun, child_env, cli, describe, finish, udlc_argv

N = 7  # samples to predict


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
    assert list(rows[0]) == ["prediction"] + [f"p_{i}" for i in range(10)]
    for row in rows:
        probs = np.array([float(row[f"p_{i}"]) for i in range(10)])
        assert (probs >= 0).all() and abs(probs.sum() - 1) < 1e-4
        assert row["prediction"] == str(int(probs.argmax()))


def test_formats_agree(predictions) -> None:
    assert predictions["npy"] == predictions["npz"] == predictions["csv"]


def test_predictions_match_torch_on_normalized_inputs(digits_run: TrainedRun, predictions, raw_digits) -> None:
    import torch

    from udlc.compiler.lower import lower
    from udlc.data import Normalization
    from udlc.trainer.run import final_checkpoint, load_weights, read_run

    info, compiled = read_run(digits_run.run)
    model = lower(compiled.graph).eval()
    load_weights(model, final_checkpoint(digits_run.run, compiled.spec))
    x = Normalization.from_json(info["normalization"]).apply_normalization(raw_digits)
    with torch.no_grad():
        probs = torch.softmax(model(torch.from_numpy(x)), dim=1).numpy()
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


def test_regression_gives_one_value_per_row(sine_run: TrainedRun, tmp_path: Path) -> None:
    x = np.linspace(-3, 3, 9, dtype=np.float32)
    (tmp_path / "x.csv").write_text("x\n" + "\n".join(f"{v:g}" for v in x) + "\n")
    result = cli("predict", sine_run.run / "model.onnx", "x.csv", cwd=tmp_path)
    assert result.returncode == 0, describe(result)
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["y"] and len(rows) == 1 + len(x)
    assert all(len(r) == 1 and np.isfinite(float(r[0])) for r in rows[1:])

    import onnxruntime as ort

    from udlc.runtime.predict import Model

    values = Model(sine_run.run / "model.onnx").predict(x.reshape(-1, 1)).values.reshape(-1)
    np.testing.assert_allclose([float(r[0]) for r in rows[1:]], values, rtol=1e-5, atol=1e-6)
    assert ort  # imported above only to make the dependency visible


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


@pytest.mark.parametrize("header", ["a,b,c\n", "0,1,2\n", ""], ids=["names", "pandas-numbers", "none"])
def test_csv_inputs_skip_a_header_row(tmp_path: Path, header: str) -> None:
    from udlc.runtime.predict import read_inputs

    (tmp_path / "x.csv").write_text(header + "1.5,2,3\n4,5,6\n")
    assert read_inputs(tmp_path / "x.csv").tolist() == [[1.5, 2.0, 3.0], [4.0, 5.0, 6.0]]
