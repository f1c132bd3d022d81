"""`udlc train` end to end: the run folder, --set, resume after SIGKILL, early stopping, the NaN stop,
file sources, `udlc eval`, and the messages for bad command-line input."""

from __future__ import annotations

import csv
import json
import shutil
import signal
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import (
    DIGITS_MLP,
    SINE_PLATEAU,
    TrainedRun,
    cli,
    describe,
    early_job,
    finish,
    job_results,
    run_folder,
    start_cli,
    write_spec,
)

METRIC_COLUMNS = ("epoch", "train_loss", "val_loss", "lr", "seconds", "samples_per_s")


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def safetensors_header(path: Path) -> dict:
    """The JSON header of a safetensors file, read by hand: 8 bytes of length, then JSON."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + n])


def assert_clean_failure(result, *, code: int | None = None) -> str:
    """A user error: non-zero exit, a message on stderr, never a traceback. Returns stderr."""
    assert result.returncode != 0, describe(result)
    if code is not None:
        assert result.returncode == code, describe(result)
    assert "Traceback" not in result.stdout + result.stderr, describe(result)
    assert "internal error" not in result.stderr, describe(result)  # the CLI's catch-all for crashes
    assert result.stderr.strip(), describe(result)
    return result.stderr


def train_here(spec: Path, out: Path) -> Path:
    """Train in this process (no interpreter start-up): what `udlc train -q` does."""
    from udlc.compiler.pipeline import compile_spec
    from udlc.trainer.run import train_spec

    return train_spec(compile_spec(spec), out=out, quiet=True)


# ---- the run folder ------------------------------------------------------------------------------


def test_train_prints_the_run_folder_and_fills_it(digits_run: TrainedRun) -> None:
    run = digits_run.run
    assert run.is_dir() and run.parent.name == "tiny-digits" and run.parent.parent.name == "runs"
    for name in ("spec.yaml", "run.json", "metrics.csv", "metrics.jsonl", "results.json", "model.onnx"):
        assert (run / name).is_file(), name
    info = digits_run.read_json("run.json")
    assert info["status"] == "done" and info["task"] == "classification"
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
        assert any(k.startswith("model.") for k in tensors)
    last = json.loads((ckpts / "last.json").read_text())
    assert last["position"]["epoch"] == 2 and "optimizer" in last and "rng" in last


@pytest.mark.parametrize("value,expect", [
    ("train.epochs=abc", "train.epochs"),
    ("train.epochs=0", "train.epochs"),
    ("train.epochs", "KEY=VALUE"),
    ("optimizer.lr=-1", "optimizer.lr"),
])
def test_bad_set_value_exits_2_with_a_message(run_cli, tmp_path: Path, value: str, expect: str) -> None:
    write_spec(tmp_path / "spec.yaml", DIGITS_MLP)
    result = run_cli("train", "spec.yaml", "--out", "runs", "--set", value)
    err = assert_clean_failure(result, code=2)
    assert expect in err and "--set" in err
    assert not (tmp_path / "runs").exists()  # nothing trained, no half-made run folder


# ---- resume ----------------------------------------------------------------------------------------

# Deterministic, with everything a resume must restore: dropout (torch RNG), shuffling (the data
# generator), AdamW moments and a warmup + cosine schedule. ~0.1 s an epoch on one thread.
RESUMABLE = {
    **DIGITS_MLP,
    "name": "resumable",
    "seed": 3,
    "model": {"input": [64], "layers": [{"linear": 32}, "relu", {"dropout": 0.2}, {"linear": 10}]},
    "optimizer": {"type": "adamw", "lr": 0.003},
    "schedule": {"type": "cosine", "warmup_steps": 20},
    "train": {"epochs": 16, "batch_size": 16, "deterministic": True},
}
RESUMABLE.pop("export")


def _last_epoch(run_root: Path) -> int:
    for path in run_root.glob("*/*/checkpoints/last.json"):
        try:
            return int(json.loads(path.read_text())["position"]["epoch"])
        except (ValueError, KeyError):  # not there yet
            return 0
    return 0


def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    write_spec(tmp_path / "spec.yaml", RESUMABLE)
    epochs = RESUMABLE["train"]["epochs"]
    ref_args = ("train", "spec.yaml", "--out", "reference", "-q")
    reference = start_cli(*ref_args, cwd=tmp_path)  # meanwhile, on the other core
    victim = start_cli("train", "spec.yaml", "--out", "killed", "-q", cwd=tmp_path)
    try:
        deadline = time.monotonic() + 240
        while _last_epoch(tmp_path / "killed") < 2:
            assert victim.poll() is None, f"training ended before it could be killed: {victim.communicate()}"
            assert time.monotonic() < deadline, "no checkpoint for epoch 2 in time"
            time.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=30)
    finally:
        if victim.poll() is None:
            victim.kill()
    assert victim.returncode == -signal.SIGKILL
    killed_at = _last_epoch(tmp_path / "killed")
    assert 2 <= killed_at < epochs, "killed too late to test a resume: make the run longer"
    (run,) = (tmp_path / "killed" / "resumable").iterdir()
    assert json.loads((run / "run.json").read_text())["status"] == "running"
    assert not (run / "results.json").exists()

    resumed = cli("train", "--resume", run, cwd=tmp_path)
    assert resumed.returncode == 0, describe(resumed)
    assert Path(resumed.stdout.strip().splitlines()[-1]).resolve() == run.resolve()
    assert "resum" in resumed.stdout
    ref = finish(reference, ref_args)
    ref_run = run_folder(ref, tmp_path)

    for name in ("last", "best"):
        a = load_file(str(ref_run / "checkpoints" / f"{name}.safetensors"))
        b = load_file(str(run / "checkpoints" / f"{name}.safetensors"))
        assert a.keys() == b.keys()
        different = [k for k in a if a[k].dtype != b[k].dtype or not torch.equal(a[k], b[k])]
        assert different == [], f"{name}: tensors differ after resuming from epoch {killed_at}: {different[:8]}"
    assert json.loads((run / "checkpoints" / "last.json").read_text())["position"]["epoch"] == epochs
    assert json.loads((run / "results.json").read_text()) == json.loads((ref_run / "results.json").read_text())
    assert json.loads((run / "run.json").read_text())["status"] == "done"


def test_resume_after_a_kill_between_row_and_checkpoint_keeps_one_row_per_epoch(
        tmp_path: Path, monkeypatch, one_torch_thread) -> None:
    """Epoch 2's row is written, then the run dies before its checkpoint: the resume replays epoch 2
    from epoch 1's checkpoint, and metrics.csv ends with exactly one row per epoch."""
    import udlc.trainer.loop as loop
    from udlc.trainer.run import resume_run

    real_save_last = loop.save_last

    def die_at_epoch_2(s):
        if s.state["epoch"] == 2:
            raise KeyboardInterrupt  # stands in for SIGKILL at this exact point
        real_save_last(s)

    monkeypatch.setattr(loop, "save_last", die_at_epoch_2)
    spec = write_spec(tmp_path / "spec.yaml", {**DIGITS_MLP, "export": {}}, train={"epochs": 3, "batch_size": 128})
    with pytest.raises(KeyboardInterrupt):
        train_here(spec, tmp_path / "runs")
    [run] = (tmp_path / "runs" / "tiny-digits").iterdir()
    assert [int(r["epoch"]) for r in read_csv(run / "metrics.csv")] == [1, 2]
    monkeypatch.setattr(loop, "save_last", real_save_last)
    resume_run(run, quiet=True)
    rows = read_csv(run / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3


def test_resume_refuses_a_spec_and_a_folder_without_checkpoint(run_cli, tmp_path: Path, digits_run) -> None:
    empty = tmp_path / "empty-run"
    empty.mkdir()
    for name in ("run.json", "spec.yaml"):
        shutil.copy(digits_run.run / name, empty / name)
    err = assert_clean_failure(run_cli("train", "--resume", empty))
    assert "checkpoint" in err and len(err.strip().splitlines()) == 1
    err = assert_clean_failure(run_cli("train", digits_run.spec, "--resume", empty))
    assert "--resume" in err


# ---- early stopping --------------------------------------------------------------------------------


def test_early_stopping_stops_a_plateau_and_says_so(sine_run: TrainedRun) -> None:
    rows = read_csv(sine_run.run / "metrics.csv")
    epochs = SINE_PLATEAU["train"]["epochs"]
    assert len(rows) == 2 < epochs  # best at epoch 1, no improvement at 2, patience 1
    assert "early stopping" in sine_run.result.stdout.lower()
    assert "val_loss" in sine_run.result.stdout
    assert sine_run.read_json("run.json")["status"] == "done"
    assert json.loads((sine_run.run / "checkpoints" / "best.json").read_text())["epoch"] == 1


# ---- the NaN stop ----------------------------------------------------------------------------------

# Linear regression with plain SGD at lr 1.5: each step multiplies the error by about 2, so the
# loss overflows float32 after a few epochs, not in the first.
DIVERGES = {
    "udlc": 1,
    "name": "diverges",
    "seed": 0,
    "data": {"source": "sine", "samples": 400},
    "model": {"input": [1], "layers": [{"linear": 1}]},
    "loss": "mse",
    "optimizer": {"type": "sgd", "lr": 1.5},
    "train": {"epochs": 30, "batch_size": 32},
}


@early_job("diverged")
def _diverged_job(root: Path) -> dict[str, tuple]:
    write_spec(root / "spec.yaml", DIVERGES)
    return {"train": ("train", "spec.yaml", "--out", "runs")}


@pytest.fixture(scope="module")
def diverged(tmp_path_factory) -> tuple:
    root, results = job_results("diverged", tmp_path_factory)
    runs = root / "runs" / "diverges"
    return results["train"], sorted(runs.iterdir()) if runs.is_dir() else []


def test_nan_stop_exits_with_where_and_what_to_try(diverged) -> None:
    result, runs = diverged
    err = assert_clean_failure(result, code=3)
    assert "epoch" in err and "step" in err
    assert "learning rate" in err and "grad_clip" in err
    assert len(runs) == 1 and json.loads((runs[0] / "run.json").read_text())["status"] == "failed"


def test_nan_stop_keeps_the_earlier_checkpoints(diverged) -> None:
    result, (run,) = diverged
    last = json.loads((run / "checkpoints" / "last.json").read_text())
    assert last["position"]["epoch"] >= 1  # it diverged after the first epoch, as designed
    assert (run / "checkpoints" / "last.safetensors").is_file()
    assert (run / "checkpoints" / "best.safetensors").is_file()
    assert str(Path("checkpoints") / "last.safetensors") in result.stderr
    rows = read_csv(run / "metrics.csv")
    assert len(rows) == last["position"]["epoch"]
    assert f"epoch {last['position']['epoch'] + 1}" in result.stderr  # the epoch it failed in


def test_nan_stop_names_the_layer_when_the_model_diverged(diverged) -> None:
    result, _ = diverged
    assert "layer 'linear" in result.stderr
    assert "check the targets" not in result.stderr


def test_non_finite_csv_values_are_refused_with_their_line(tmp_path: Path) -> None:
    import udlc
    from udlc.errors import SpecError
    from udlc.trainer.run import load_dataset

    rng = np.random.default_rng(0)
    lines = ["a,b,y"] + [f"{rng.normal():.4f},{rng.normal():.4f},{rng.normal():.4f}" for _ in range(20)]
    lines[5] = "1e39,0.5,0.1"  # overflows float32 to inf
    (tmp_path / "huge.csv").write_text("\n".join(lines) + "\n")
    spec = write_spec(tmp_path / "spec.yaml", {
        "udlc": 1, "name": "huge", "seed": 0, "data": {"source": "huge.csv", "task": "regression"},
        "model": {"input": [2], "layers": [{"linear": 1}]}, "loss": "mse"})
    with pytest.raises(SpecError) as info:
        load_dataset(udlc.load_spec(spec))
    assert "huge.csv line 6, column 'a': 1e39 is not a finite float32 value" in str(info.value)
    assert info.value.span is not None and info.value.span.text.strip() == "source: huge.csv"


def test_nan_stop_blames_the_data_when_inputs_are_infinite(tmp_path: Path, monkeypatch, one_torch_thread) -> None:
    import udlc.trainer.run as run
    from udlc.trainer.debug import TrainingDiverged

    real = run.load_dataset

    def with_an_inf(compiled):
        data = real(compiled)
        data.x_train[3, 0] = np.inf  # as if a bad value had slipped into the data
        return data

    monkeypatch.setattr(run, "load_dataset", with_an_inf)
    spec = write_spec(tmp_path / "spec.yaml", {**DIGITS_MLP, "name": "inf", "export": {}},
                      train={"epochs": 2, "batch_size": 2000})
    with pytest.raises(TrainingDiverged) as info:
        train_here(spec, tmp_path / "runs")
    message = str(info.value)
    assert "epoch 1" in message and "input batch itself holds NaN or inf" in message
    assert "learning rate" in message


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
    assert info["classes"] == ["cat", "dog"] and info["task"] == "classification" and info["status"] == "done"
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


def test_eval_prints_the_test_metrics_of_results_json(digits_run: TrainedRun) -> None:
    result = cli("eval", digits_run.run, cwd=digits_run.run.parent)
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
def bad_inputs(tmp_path_factory) -> dict:
    """Each bad command once, all started together (they spend most of their time importing)."""
    return job_results("bad_inputs", tmp_path_factory)[1]


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


def test_python_api_train_and_export_stay_callable() -> None:
    import udlc
    import udlc.exporter.onnx
    import udlc.trainer.run

    assert callable(udlc.train) and callable(udlc.export)


@pytest.mark.parametrize("split,monitor", [([0.8, 0.1, 0.1], "val_acc"), ([0.9, 0.0, 0.1], "val_loss")])
def test_early_stopping_on_a_metric_that_is_never_logged(tmp_path: Path, one_torch_thread, split, monitor) -> None:
    from udlc.errors import UdlcError

    spec = write_spec(tmp_path / "spec.yaml", {**DIGITS_MLP, "export": {},
                                               "data": {"source": "digits", "split": split}},
                      train={"epochs": 3, "batch_size": 256, "early_stopping": {"monitor": monitor, "patience": 1}})
    with pytest.raises(UdlcError, match=monitor):
        train_here(spec, tmp_path / "runs")
