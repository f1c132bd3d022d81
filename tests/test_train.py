"""`udlc train` end to end: the run folder, --set, resume after SIGKILL, early stopping, the NaN stop,
file sources, `udlc eval`, and the messages for bad command-line input."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import (
    DIGITS_MLP, SINE_PLATEAU, TrainedRun, assert_clean_failure, read_csv, safetensors_header, train_here, write_spec,
)
from tests.processes import describe, early_job, job_results

METRIC_COLUMNS = ("epoch", "train_loss", "val_loss", "lr", "seconds", "samples_per_s")


# ---- the run folder ------------------------------------------------------------------------------


def test_train_prints_the_run_folder_and_fills_it(digits_run: TrainedRun) -> None:
    run = digits_run.run
    assert run.is_dir() and run.parent.name == "tiny-digits" and run.parent.parent.name == "runs"
    for name in ("spec.yaml", "run.json", "metrics.csv", "metrics.jsonl", "results.json", "model.onnx"):
        assert (run / name).is_file(), name
    info = digits_run.read_json("run.json")
    assert info["status"] == "done" and info["task"] == "supervised" and info["target"] == "classification"
    assert info["classes"] == [str(i) for i in range(10)] and info["input_shapes"] == [[64]]


def test_set_overrides_the_epoch_count(digits_run: TrainedRun) -> None:
    # The spec file says 3 epochs; the run was started with --set train.epochs=2.
    assert yaml.safe_load(digits_run.spec.read_text())["train"]["epochs"] == 3
    assert yaml.safe_load((digits_run.run / "spec.yaml").read_text())["train"]["epochs"] == 2
    rows = read_csv(digits_run.run / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    jsonl = [json.loads(line) for line in (digits_run.run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in jsonl] == [1, 2]


def test_metrics_csv_has_one_full_row_per_epoch(digits_run: TrainedRun) -> None:
    rows = read_csv(digits_run.run / "metrics.csv")
    assert len(rows) == 2
    for row in rows:
        for col in METRIC_COLUMNS + ("val_accuracy",):
            assert col in row and row[col] != "", (col, row)
            assert np.isfinite(float(row[col])), (col, row)
        assert float(row["seconds"]) > 0 and float(row["samples_per_s"]) > 0
        assert float(row["lr"]) == pytest.approx(0.01)
        assert 0 <= float(row["val_accuracy"]) <= 1
    assert float(rows[1]["train_loss"]) < float(rows[0]["train_loss"])  # it learns


def test_results_json_has_the_test_metrics(digits_run: TrainedRun) -> None:
    results = digits_run.read_json("results.json")
    assert results["checkpoint"] in ("best", "last")
    assert np.isfinite(results["test_loss"]) and results["test_loss"] > 0
    assert 0.5 < results["test_accuracy"] <= 1.0  # 2 epochs of an MLP on digits get well past chance


def test_checkpoints_are_safetensors_without_pickle(digits_run: TrainedRun) -> None:
    from safetensors.torch import load_file

    ckpts = digits_run.run / "checkpoints"
    for name in ("last", "best"):
        st, js = ckpts / f"{name}.safetensors", ckpts / f"{name}.json"
        assert st.is_file() and js.is_file()
        header = safetensors_header(st)
        metadata = header.pop("__metadata__", {})
        assert set(metadata) == {"udlc_state"}
        assert json.loads(metadata["udlc_state"]) == json.loads(js.read_text())  # plain JSON, the same state
        for key, entry in header.items():  # every other entry is a tensor: dtype, shape, offsets
            assert set(entry) == {"dtype", "shape", "data_offsets"}, key
        # nothing but the header and the tensors' bytes: no room for a pickled payload
        (n,) = struct.unpack("<Q", st.read_bytes()[:8])
        end = max((e["data_offsets"][1] for e in header.values()), default=0)
        assert st.stat().st_size == 8 + n + end
        assert b"_rebuild_tensor" not in st.read_bytes()
        tensors = load_file(str(st))
        assert any(k.startswith("models.model.") for k in tensors)
    last = json.loads((ckpts / "last.json").read_text())
    assert last["position"]["epoch"] == 2 and "model" in last["optimizers"] and "rng" in last


@pytest.mark.parametrize("value,expect", [
    ("train.epochs=abc", "train.epochs"),
    ("train.epochs=0", "train.epochs"),
    ("train.epochs", "KEY=VALUE"),
    ("optimizer.lr=-1", "optimizer.lr"),
])
def test_bad_set_value_exits_2_with_a_message(invoke, tmp_path: Path, value: str, expect: str) -> None:
    write_spec(tmp_path / "spec.yaml", DIGITS_MLP)
    result = invoke("train", "spec.yaml", "--out", "runs", "--set", value)
    err = assert_clean_failure(result, code=2)
    assert expect in err and "--set" in err
    assert not (tmp_path / "runs").exists()  # nothing trained, no half-made run folder


# ---- early stopping --------------------------------------------------------------------------------


def test_early_stopping_stops_a_plateau_and_says_so(sine_run: TrainedRun) -> None:
    rows = read_csv(sine_run.run / "metrics.csv")
    epochs = SINE_PLATEAU["train"]["epochs"]
    assert len(rows) == 2 < epochs  # best at epoch 1, no improvement at 2, patience 1
    assert "early stopping" in sine_run.result.stdout.lower()
    assert "val_loss" in sine_run.result.stdout
    assert sine_run.read_json("run.json")["status"] == "done"
    assert json.loads((sine_run.run / "checkpoints" / "best.json").read_text())["epoch"] == 1


# ---- file sources ----------------------------------------------------------------------------------


def test_csv_with_string_labels_trains(tmp_path: Path, one_torch_thread) -> None:
    from sklearn.datasets import make_moons

    x, y = make_moons(120, noise=0.1, random_state=0)
    names = np.array(["dog", "cat"])[y]
    rows = ["x1,x2,animal"] + [f"{a:.5f},{b:.5f},{n}" for (a, b), n in zip(x, names)]
    (tmp_path / "pets.csv").write_text("\n".join(rows) + "\n")
    spec = write_spec(tmp_path / "spec.yaml", {
        **DIGITS_MLP, "name": "pets", "data": {"source": "pets.csv", "target": "animal"},
        "model": {"input": [2], "layers": [{"linear": 16}, "relu", {"linear": 2}]}, "export": {}},
        train={"epochs": 2, "batch_size": 32})
    run = train_here(spec, tmp_path / "runs")
    info = json.loads((run / "run.json").read_text())
    assert info["classes"] == ["cat", "dog"] and info["target"] == "classification" and info["status"] == "done"
    assert len(read_csv(run / "metrics.csv")) == 2
    assert np.isfinite(json.loads((run / "results.json").read_text())["test_loss"])


def test_npz_source_trains(tmp_path: Path, one_torch_thread) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 1, 4, 4)).astype(np.float32)
    y = (x.mean(axis=(1, 2, 3)) > 0).astype(np.int64)
    np.savez(tmp_path / "images.npz", x=x, y=y)
    spec = write_spec(tmp_path / "spec.yaml", {
        **DIGITS_MLP, "name": "images", "data": {"source": "images.npz"},
        "model": {"input": [1, 4, 4], "layers": [{"conv2d": {"out_channels": 4, "kernel_size": 3, "padding": 1}},
                                                 "relu", "global_avgpool", {"linear": 2}]},
        "export": {}}, train={"epochs": 2, "batch_size": 16})
    run = train_here(spec, tmp_path / "runs")
    info = json.loads((run / "run.json").read_text())
    assert info["classes"] == ["0", "1"] and info["input_shapes"] == [[1, 4, 4]]
    assert len(read_csv(run / "metrics.csv")) == 2
    assert (run / "checkpoints" / "best.safetensors").is_file()


# ---- eval ------------------------------------------------------------------------------------------


def test_eval_prints_the_test_metrics_of_results_json(digits_run: TrainedRun, invoke) -> None:
    result = invoke("eval", digits_run.run)
    assert result.returncode == 0, describe(result)
    printed = dict(line.split() for line in result.stdout.strip().splitlines())
    results = digits_run.read_json("results.json")
    expected = {k: v for k, v in results.items() if isinstance(v, float)}
    assert printed.keys() == expected.keys()
    for key, value in expected.items():  # `udlc eval` prints 4 decimals
        assert abs(float(printed[key]) - value) <= 5e-5 + 1e-9, (key, printed[key], value)


def test_eval_recomputes_results_json_exactly(digits_run: TrainedRun, one_torch_thread) -> None:
    from udlc.trainer.evaluate import evaluate_run

    metrics = evaluate_run(digits_run.run)
    results = digits_run.read_json("results.json")
    assert metrics.keys() == {k for k in results if k != "checkpoint"}
    for key, value in metrics.items():
        assert value == pytest.approx(results[key], abs=1e-6), key


def test_eval_uses_the_same_checkpoint_as_results_json(tmp_path: Path, one_torch_thread) -> None:
    from udlc.trainer.evaluate import evaluate_run

    # mode max on val_loss: the best epoch is the first (worst) one, so best and last differ.
    stop = {"monitor": "val_loss", "mode": "max", "patience": 5, "restore_best": False}
    spec = write_spec(tmp_path / "spec.yaml", {**DIGITS_MLP, "export": {}},
                      train={"epochs": 2, "batch_size": 64, "early_stopping": stop})
    run = train_here(spec, tmp_path / "runs")
    results = json.loads((run / "results.json").read_text())
    assert results["checkpoint"] == "last"
    metrics = evaluate_run(run)
    assert metrics["test_loss"] == pytest.approx(results["test_loss"], abs=1e-6)


# ---- bad command-line input ------------------------------------------------------------------------


@early_job("bad_inputs")
def _bad_inputs_job(root: Path) -> dict[str, tuple]:
    (root / "not-a-run").mkdir()
    (root / "not-a-run" / "notes.txt").write_text("hello\n")
    write_spec(root / "no-checkpoint" / "spec.yaml", DIGITS_MLP)  # what a run has before its first epoch
    (root / "no-checkpoint" / "run.json").write_text(json.dumps({"status": "created"}))
    (root / "model.onnx").write_text("this is not an ONNX file\n")
    np.save(root / "x.npy", np.zeros((2, 64), np.float32))
    return {
        "missing spec": ("train", "missing.yaml"),
        "export not a run": ("export", "not-a-run"),
        "export no checkpoint": ("export", "no-checkpoint"),
        "predict not onnx": ("predict", "model.onnx", "x.npy"),
    }


@pytest.fixture(scope="module")
def bad_inputs() -> dict:
    """Each bad command once, all started together (they spend most of their time importing)."""
    return job_results("bad_inputs")[1]


@pytest.mark.parametrize("case,words", [
    ("missing spec", ["missing.yaml"]),
    ("export not a run", ["not-a-run", "run folder"]),
    ("export no checkpoint", ["no-checkpoint", "checkpoint"]),
    ("predict not onnx", ["model.onnx", "ONNX"]),
])
def test_bad_input_gives_one_clear_line(bad_inputs: dict, case: str, words: list[str]) -> None:
    result = bad_inputs[case]
    err = assert_clean_failure(result)
    assert len(err.strip().splitlines()) == 1, describe(result)
    for word in words:
        assert word in err, describe(result)
    assert result.stdout == "", describe(result)


def test_python_api_trains_and_exports_after_the_subpackages_are_imported(tmp_path: Path, one_torch_thread) -> None:
    """`udlc.train` and `udlc.export` are API functions, not the subpackages trainer/ and exporter/ (a subpackage
    named `train` once replaced the function on the package); and the API exports what the spec asks for."""
    import udlc
    import udlc.exporter.onnx  # noqa: F401
    import udlc.trainer.run  # noqa: F401

    spec = write_spec(tmp_path / "s.yaml", DIGITS_MLP, train={"epochs": 1, "batch_size": 256})
    run = udlc.train(spec, out=tmp_path / "runs", quiet=True)
    assert (run / "model.onnx").is_file() and (run / "results.json").is_file()
    again = udlc.export(run, tmp_path / "again.onnx")
    assert again == tmp_path / "again.onnx" and again.stat().st_size > 0


@pytest.mark.parametrize("split,monitor", [([0.8, 0.1, 0.1], "val_acc"), ([0.9, 0.0, 0.1], "val_loss")])
def test_early_stopping_on_a_metric_that_is_never_logged(tmp_path: Path, one_torch_thread, split, monitor) -> None:
    from udlc.errors import UdlcError

    spec = write_spec(tmp_path / "spec.yaml", {**DIGITS_MLP, "export": {},
                                               "data": {"source": "digits", "split": split}},
                      train={"epochs": 3, "batch_size": 256, "early_stopping": {"monitor": monitor, "patience": 1}})
    with pytest.raises(UdlcError, match=monitor):
        train_here(spec, tmp_path / "runs")
