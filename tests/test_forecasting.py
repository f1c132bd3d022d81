"""task: forecasting and its series source: sine_mixture's windows, the task's check errors at their lines, a
tiny LSTM that beats the last-value baseline, the baseline against numpy, one scale for inputs and targets,
and the exported model (any batch, any context length) against torch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import assert_clean_failure, line_of, read_csv, train_here, write_spec
from udlc.data.file_kinds import load_arrays
from udlc.errors import SpecErrors
from udlc.spec.data import DataSpec
from udlc.tasks import compile_spec

ROOT = Path(__file__).resolve().parent.parent

# Small enough to train in a few seconds on one thread, and still well past the baseline.
FORECAST = {
    "udlc": 1,
    "name": "tiny-forecast",
    "seed": 0,
    "task": "forecasting",
    "data": {"source": "sine_mixture", "samples": 600},
    "model": {"input": ["T", 1], "layers": [{"lstm": {"hidden_size": 24, "id": "enc"}},
                                            {"seq_pool": {"mode": "last", "from": "enc.out"}}, {"linear": 8}]},
    "loss": "mse",
    "metrics": ["mae"],
    "optimizer": {"type": "adam", "lr": 0.01},
    "train": {"epochs": 6, "batch_size": 32},
    "export": {"onnx": {"opset": 18}},
}


def windows(seed: int, samples: int = 40, **kw):
    return load_arrays(DataSpec.model_validate({"source": "sine_mixture", "samples": samples, **kw}), ROOT, seed)


def one_error(path: Path):
    with pytest.raises(SpecErrors) as info:
        compile_spec(path)
    (error,) = info.value.errors
    return error


# ---- the source ---------------------------------------------------------------------------------------


def test_sine_mixture_gives_windows_of_one_series_under_its_seed() -> None:
    a, b, c = windows(1), windows(1), windows(2)
    assert a.x.shape == (40, 32, 1) and a.y.shape == (40, 8) and a.task == "regression"
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y)
    assert not np.array_equal(a.x, c.x)
    # The noise is drawn last: the same seed without it gives the same waves, and the difference is the noise.
    clean = windows(1, noise=0)
    noise = np.concatenate([(a.x - clean.x)[..., 0], a.y - clean.y], axis=1)
    assert noise.std() == pytest.approx(0.1, rel=0.1) and abs(noise.mean()) < 0.02


def test_a_clean_window_is_continued_by_its_targets() -> None:
    """A sum of at most 3 sines obeys a linear recurrence of order 6: fitted on the 32 past values alone, it
    rolls forward into the 8 targets. So x and y are one series, y right after x, with nothing else in it."""
    a = windows(3, samples=20, noise=0)
    for x, y in zip(a.x[:, :, 0].astype(np.float64), a.y.astype(np.float64)):
        past = np.stack([x[i:i + 6] for i in range(len(x) - 6)])
        coef, *_ = np.linalg.lstsq(past, x[6:], rcond=None)
        series = list(x)
        for _ in range(8):
            series.append(float(np.dot(series[-6:], coef)))
        np.testing.assert_allclose(series[32:], y, atol=0.02)


# ---- check time ---------------------------------------------------------------------------------------


def test_the_example_and_the_tiny_spec_pass_check(tmp_path: Path) -> None:
    compiled = compile_spec(ROOT / "examples" / "sine-lstm.yaml")
    assert compiled.task.name == "forecasting"
    assert compiled.task.logged(compiled.spec, True)[-2:] == ["val_baseline_loss", "val_relative_loss"]
    watched = {**FORECAST, "train": {**FORECAST["train"], "early_stopping": {"monitor": "val_relative_loss"}}}
    assert compile_spec(write_spec(tmp_path / "s.yaml", watched)).task.name == "forecasting"


@pytest.mark.parametrize("change,words,at,hint", [
    ({"loss": "cross_entropy"}, "cross_entropy is a classification loss", "loss:", "mse"),
    ({"model": {**FORECAST["model"], "layers": FORECAST["model"]["layers"][:2] + [{"linear": 4}]}},
     "the targets have 8 values per sample but the model outputs (4,)", "linear: 4", "linear: 8"),
    ({"model": {**FORECAST["model"], "input": ["T", 2]}}, "one value per step, but model.input is [T, 2]",
     "input:", "[T, 1]"),
    ({"data": {"source": "diabetes"}}, "diabetes is not a series", "source:", "sine_mixture"),
    ({"data": {**FORECAST["data"], "task": "classification"}}, "data.task is classification", "task: class", "drop"),
])
def test_check_refuses_misuse_at_its_line(tmp_path: Path, change, words, at, hint) -> None:
    spec = write_spec(tmp_path / "s.yaml", {**FORECAST, **change})
    err = one_error(spec)
    assert words in err.message and hint in err.hint
    assert err.span is not None and err.span.line == line_of(spec, at)


def test_a_file_of_windows_is_a_series_whose_horizon_is_read_from_its_header(tmp_path: Path) -> None:
    a = windows(0)
    np.savez(tmp_path / "w.npz", x=a.x, y=a.y[:, :5])  # a horizon of 5
    layers = FORECAST["model"]["layers"][:2]
    ok = write_spec(tmp_path / "ok.yaml", {**FORECAST, "data": {"source": "w.npz"},
                                           "model": {**FORECAST["model"], "layers": layers + [{"linear": 5}]}})
    assert compile_spec(ok).task.name == "forecasting"
    bad = write_spec(tmp_path / "bad.yaml", {**FORECAST, "data": {"source": "w.npz"}})
    err = one_error(bad)
    assert "5 values per sample but the model outputs (8,)" in err.message and err.span.line == line_of(bad, "linear: 8")


def test_the_cli_renders_a_forecasting_error_at_file_line_col(tmp_path: Path, invoke) -> None:
    spec = write_spec(tmp_path / "s.yaml", {**FORECAST, "loss": "bce"})
    err = assert_clean_failure(invoke("check", spec), code=2)
    assert f"s.yaml:{line_of(spec, 'loss:')}:" in err and "bce is a classification loss" in err


# ---- training, the baseline, export --------------------------------------------------------------------


@pytest.fixture(scope="module")
def forecast_run(tmp_path_factory) -> Path:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        root = tmp_path_factory.mktemp("forecast")
        return train_here(write_spec(root / "f.yaml", FORECAST), root / "runs")
    finally:
        torch.set_num_threads(threads)


def test_a_tiny_lstm_beats_the_last_value_baseline(forecast_run: Path) -> None:
    rows = read_csv(forecast_run / "metrics.csv")
    for row in rows:
        assert float(row["val_relative_loss"]) == pytest.approx(
            float(row["val_loss"]) / float(row["val_baseline_loss"]), rel=1e-5)
    assert len({row["val_baseline_loss"] for row in rows}) == 1  # the baseline does not train
    results = json.loads((forecast_run / "results.json").read_text())
    # Always predicting the mean (0) scores about 0.65; this run scores about 0.3.
    assert results["test_relative_loss"] < 0.45 and results["test_loss"] < 0.45 * results["test_baseline_loss"]


def test_one_scale_for_inputs_and_targets_and_the_baseline_in_numpy(forecast_run: Path) -> None:
    from udlc.runs import RunFolder

    compiled = compile_spec(RunFolder.open(forecast_run).spec_file)
    data = compiled.task.load_data(compiled)
    norm, target = data.normalization, data.target_normalization
    assert norm.shift.size == norm.scale.size == 1  # not per time step
    assert target.shift.item() == norm.shift.item() and target.scale.item() == norm.scale.item()
    raw = windows(0, samples=600)

    def rows_of(split: str) -> list[int]:
        """Which raw windows a split holds: its windows back in raw units are the source's own."""
        x = norm.invert(getattr(data, f"x_{split}"))[..., 0]
        rows = [int(np.argmin(np.abs(raw.x[:, :, 0] - xi).sum(axis=1))) for xi in x]
        np.testing.assert_allclose(x, raw.x[rows, :, 0], atol=1e-5)
        np.testing.assert_allclose(target.invert(getattr(data, f"y_{split}")), raw.y[rows], atol=1e-5)
        return rows

    rows, val = rows_of("test"), rows_of("val")
    train = raw.x[np.setdiff1d(np.arange(600), rows + val)]  # the statistics are the training inputs' alone
    assert norm.shift.item() == pytest.approx(train.mean(), abs=1e-5)
    assert norm.scale.item() == pytest.approx(train.std(), rel=1e-4)
    baseline = float(np.mean((raw.x[rows, -1:, 0] - raw.y[rows]) ** 2))
    results = json.loads((forecast_run / "results.json").read_text())
    assert results["test_baseline_loss"] == pytest.approx(baseline, rel=1e-5)


def test_the_exported_model_forecasts_as_torch_does_at_any_batch_and_length(forecast_run: Path) -> None:
    import onnx
    import torch

    from udlc.compiler.lower import lower
    from udlc.exporter.onnx import export_run
    from udlc.runs import RunFolder, checkpoint
    from udlc.runtime.predict import Model

    path = export_run(forecast_run)
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", "T", 1]
    run = RunFolder.open(forecast_run)
    compiled = run.compiled()
    network = lower(compiled.graph).eval()
    checkpoint.load_models({"model": network}, run.final_checkpoint(compiled.spec))
    info = run.info
    shift, scale = info["normalization"]["shift"][0], info["normalization"]["scale"][0]
    assert info["target_normalization"]["shift"] == [shift] and info["target_normalization"]["scale"] == [scale]
    model = Model(path)
    for batch, length in ((5, 32), (3, 20)):
        x = np.random.default_rng(batch).normal(size=(batch, length, 1)).astype(np.float32)
        with torch.no_grad():
            expected = network(torch.from_numpy((x - shift) / scale)).numpy() * scale + shift
        got = model.predict(x).values
        assert got.shape == (batch, 8)
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)
