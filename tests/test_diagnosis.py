"""The diagnosis of a run's curves, each verdict on rows made to show it, and `udlc plot`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from udlc.runs.diagnosis import diagnose


def rows(train: list[float], val: list[float] | None = None) -> list[dict[str, str]]:
    return [{"epoch": str(i + 1), "train_loss": str(t), **({"val_loss": str(val[i])} if val else {})}
            for i, t in enumerate(train)]


@pytest.mark.parametrize("train, val, verdict, words", [
    ([2.0, 1.0, 0.6, 2.5, 0.5, 0.4], None, "unstable", "epoch 4"),
    ([2.0, 1.0, float("nan"), 0.5], None, "unstable", "non-finite at epoch 3"),
    ([2.0, 1.2, 0.8, 0.6, 0.4, 0.3, 0.2, 0.1], [2.0, 1.3, 1.0, 0.9, 1.0, 1.1, 1.3, 1.5], "overfitting",
     "lowest at epoch 4"),
    ([2.0, 1.5, 1.2, 1.0, 0.8, 0.6], [2.0, 1.6, 1.3, 1.1, 0.9, 0.7], "still improving", "val_loss fell"),
    ([2.0, 1.9, 1.85, 1.85, 1.84, 1.84], [2.0, 1.9, 1.86, 1.86, 1.85, 1.85], "underfitting", "92% of"),
    ([2.0, 0.5, 0.2, 0.15, 0.15, 0.15], [2.0, 0.6, 0.3, 0.25, 0.25, 0.25], "converged", "flat at 0.25"),
    ([2.0, 1.0], None, "too short", "2 epochs"),
])
def test_each_verdict_on_curves_made_to_show_it(train, val, verdict, words) -> None:
    found = diagnose(rows(train, val))
    assert found.verdict == verdict and words in found.evidence, found


def test_a_loss_with_a_floor_of_its_own_is_not_called_underfitting() -> None:
    flat_and_high = rows([31.0, 25.0, 24.2, 24.1, 24.05, 24.0], [31.0, 25.5, 24.5, 24.4, 24.35, 24.3])
    assert diagnose(flat_and_high).verdict == "underfitting"
    assert diagnose(flat_and_high, floor_zero=False).verdict == "converged"
    assert diagnose([{"epoch": "1", "train_d_loss": "1.3"}]) is None  # a GAN's losses alone say nothing


@pytest.mark.slow
def test_a_run_keeps_its_diagnosis_and_plot_draws_the_curves(digits_run, invoke, tmp_path: Path) -> None:
    from PIL import Image

    info = json.loads((digits_run.run / "run.json").read_text())
    assert info["diagnosis"]["verdict"] in ("unstable", "overfitting", "still improving", "underfitting",
                                            "converged", "too short")
    result = invoke("plot", digits_run.run, digits_run.run, "-o", tmp_path / "curves.png")
    assert result.returncode == 0, result.stderr
    assert Image.open(tmp_path / "curves.png").size[0] > 400
    bad = invoke("plot", digits_run.run, "-o", tmp_path / "curves.jpg")
    assert bad.returncode != 0 and ".png, .svg or .pdf" in bad.stderr


def test_runs_lists_each_specs_runs_best_first(tmp_path: Path, invoke) -> None:
    from udlc.runs.listing import list_runs

    for run_id, loss, verdict in (("b", 0.5, "converged"), ("a", 0.2, "overfitting"), ("c", None, None)):
        folder = tmp_path / "runs" / "digits" / run_id
        folder.mkdir(parents=True)
        info = {"status": "done" if loss else "running", "task": "classification", "epochs_done": 3}
        if verdict:
            info["diagnosis"] = {"verdict": verdict}
        (folder / "run.json").write_text(json.dumps(info))
        if loss is not None:
            (folder / "results.json").write_text(json.dumps({"test_loss": loss, "test_accuracy": 1 - loss}))
    (tmp_path / "runs" / "other" / "x").mkdir(parents=True)  # no run.json: not a run
    rows = list_runs(tmp_path / "runs")
    assert [r["run"] for r in rows] == ["digits/a", "digits/b", "digits/c"]
    assert rows[0]["verdict"] == "overfitting" and rows[0]["tests"]["test_accuracy"] == pytest.approx(0.8)
    result = invoke("runs", tmp_path / "runs")
    assert result.returncode == 0 and result.stdout.splitlines()[0].startswith("digits/a")
