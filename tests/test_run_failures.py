"""A run that ends badly says so in run.json and `udlc runs`: an error in the loop or after it is "failed" with
its one-line message; Ctrl-C, SIGTERM and a caller's stop from on_epoch are "stopped" (resumable)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from tests.conftest import DIGITS_MLP, write_spec


def _compiled(tmp_path: Path):
    from udlc.tasks import compile_spec

    return compile_spec(write_spec(tmp_path / "spec.yaml", DIGITS_MLP, train={"epochs": 3, "batch_size": 64,
                                                                             "checkpoint_seconds": 0}))


def _info(out: Path) -> dict:
    (run,) = out.glob("*/*/run.json")
    return json.loads(run.read_text())


def _on_step(compiled, monkeypatch: pytest.MonkeyPatch, step: int, action) -> None:
    """The task's step calls `action()` on its `step`-th call (counted from 1), mid-training, then steps."""
    calls, step_of = [0], compiled.task.train_step

    def with_action(s, batch):
        calls[0] += 1
        if calls[0] == step:
            action()
        return step_of(s, batch)

    monkeypatch.setattr(compiled.task, "train_step", with_action)


def _raise(error: BaseException):
    def action():
        raise error
    return action


def test_an_error_in_the_loop_is_failed_with_its_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from udlc.runs.listing import format_runs, list_runs
    from udlc.trainer.run import train_spec

    compiled = _compiled(tmp_path)
    _on_step(compiled, monkeypatch, 30, _raise(RuntimeError("the batch was on fire\nsecond line")))  # epoch 2
    with pytest.raises(RuntimeError):
        train_spec(compiled, out=tmp_path / "runs", quiet=True)
    info = _info(tmp_path / "runs")
    assert info["status"] == "failed" and info["error"] == "RuntimeError: the batch was on fire"
    assert info["epochs_done"] == 1 and info["ended"] and info["seconds"] > 0
    listed = format_runs(list_runs(tmp_path / "runs"))
    assert "failed" in listed and "RuntimeError: the batch was on fire" in listed


def test_an_error_after_the_loop_is_failed_not_running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The test split's measures come after the loop: an error there (a reference classifier that cannot fit)
    used to leave run.json saying `running`."""
    from udlc.errors import UdlcError
    from udlc.trainer.run import train_spec

    compiled = _compiled(tmp_path)

    def broken(s):
        raise UdlcError("the measuring stick broke")

    monkeypatch.setattr(compiled.task, "quality", broken)
    with pytest.raises(UdlcError):
        train_spec(compiled, out=tmp_path / "runs", quiet=True)
    info = _info(tmp_path / "runs")
    assert info["status"] == "failed" and info["error"] == "the measuring stick broke"
    assert info["epochs_done"] == 3


def test_sigterm_stops_the_run_resumably(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from udlc.trainer.run import TrainingInterrupted, resume_run, train_spec

    compiled = _compiled(tmp_path)
    steps_per_epoch = 23  # 1437 training samples, batches of 64
    # as `kill` would while a step runs: the handler's KeyboardInterrupt meets the loop at its next bytecode
    _on_step(compiled, monkeypatch, steps_per_epoch + 5, lambda: os.kill(os.getpid(), signal.SIGTERM))
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(TrainingInterrupted, match="interrupted after epoch 1"):
        train_spec(compiled, out=tmp_path / "runs", quiet=True)
    assert signal.getsignal(signal.SIGTERM) == before  # the run's handler is gone with the run
    info = _info(tmp_path / "runs")
    assert info["status"] == "stopped" and info["error"] is None and info["epochs_done"] == 1
    (run,) = (tmp_path / "runs").glob("*/*")
    resume_run(run, quiet=True)
    assert _info(tmp_path / "runs")["status"] == "done"


def test_an_on_epoch_stop_is_stopped(tmp_path: Path) -> None:
    from udlc.trainer.run import train_spec

    class Pruned(Exception):
        pass

    def prune(row: dict) -> None:
        raise Pruned

    with pytest.raises(Pruned):
        train_spec(_compiled(tmp_path), out=tmp_path / "runs", quiet=True, on_epoch=prune)
    info = _info(tmp_path / "runs")
    assert info["status"] == "stopped" and info["error"] is None
