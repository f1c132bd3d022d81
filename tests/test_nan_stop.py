"""The NaN stop: where the loss turned non-finite, what to try, and the earlier checkpoints kept."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import DIGITS_MLP, assert_clean_failure, read_csv, train_here, write_spec
from tests.processes import early_job, job_results

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
    "train": {"epochs": 30, "batch_size": 32, "checkpoint_seconds": 0},
}


@early_job("diverged")
def _diverged_job(root: Path) -> dict[str, tuple]:
    write_spec(root / "spec.yaml", DIVERGES)
    return {"train": ("train", "spec.yaml", "--out", "runs")}


@pytest.fixture(scope="module")
def diverged() -> tuple:
    root, results = job_results("diverged")
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
    assert f"epoch {last['position']['epoch'] + 1})" in result.stderr  # the epoch it failed in
    assert f"(after epoch {last['position']['epoch']};" in result.stderr  # the checkpoint it kept


def test_nan_stop_names_the_layer_when_the_model_diverged(diverged) -> None:
    result, _ = diverged
    assert "layer 'linear" in result.stderr
    assert "check the targets" not in result.stderr


def test_non_finite_csv_values_are_refused_with_their_line(tmp_path: Path) -> None:
    import udlc
    from udlc.errors import SpecError

    rng = np.random.default_rng(0)
    lines = ["a,b,y"] + [f"{rng.normal():.4f},{rng.normal():.4f},{rng.normal():.4f}" for _ in range(20)]
    lines[5] = "1e39,0.5,0.1"  # overflows float32 to inf
    (tmp_path / "huge.csv").write_text("\n".join(lines) + "\n")
    spec = write_spec(tmp_path / "spec.yaml", {
        "udlc": 1, "name": "huge", "seed": 0, "data": {"source": "huge.csv", "task": "regression"},
        "model": {"input": [2], "layers": [{"linear": 1}]}, "loss": "mse"})
    with pytest.raises(SpecError) as info:
        compiled = udlc.load_spec(spec)
        compiled.task.load_data(compiled)
    assert "huge.csv line 6, column 'a': 1e39 is not a finite float32 value" in str(info.value)
    assert info.value.span is not None and info.value.span.text.strip() == "source: huge.csv"


def test_nan_stop_blames_the_data_when_inputs_are_infinite(tmp_path: Path, monkeypatch, one_torch_thread) -> None:
    from udlc.tasks.supervised import Supervised
    from udlc.trainer.debug import TrainingDiverged

    real = Supervised.load_data

    def with_an_inf(self, compiled):
        data = real(self, compiled)
        data.x_train[3, 0] = np.inf  # as if a bad value had slipped into the data
        return data

    monkeypatch.setattr(Supervised, "load_data", with_an_inf)
    spec = write_spec(tmp_path / "spec.yaml", {**DIGITS_MLP, "name": "inf", "export": {}},
                      train={"epochs": 2, "batch_size": 2000})
    with pytest.raises(TrainingDiverged) as info:
        train_here(spec, tmp_path / "runs")
    message = str(info.value)
    assert "epoch 1" in message and "input batch itself holds NaN or inf" in message
    assert "learning rate" in message
