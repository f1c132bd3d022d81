"""What a run leaves for watching it: TensorBoard events (the rows of metrics.csv as scalars, the gradient norm, the
networks as the spec wrote them), curves.png from `udlc train`, and the time the run has left."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import read_csv


def events(run: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = EventAccumulator(str(run))
    board.Reload()
    return board


@pytest.mark.slow
def test_the_event_files_hold_each_epochs_row_and_the_network(digits_run) -> None:
    rows = read_csv(digits_run.run / "metrics.csv")
    board = events(digits_run.run)
    for column, tag in (("train_loss", "loss/train"), ("val_accuracy", "accuracy/val"), ("lr", "optim/lr"),
                        ("grad_norm", "optim/grad_norm")):
        logged = [(e.step, e.value) for e in board.Scalars(tag)]
        assert logged == [(int(r["epoch"]), pytest.approx(float(r[column]), rel=1e-6)) for r in rows], tag
    assert all(float(r["grad_norm"]) > 0 for r in rows)
    nodes = {n.name: n for n in board.Graph().node}
    assert set(nodes) == {"model/x", "model/linear", "model/relu", "model/linear_1"}
    assert list(nodes["model/linear_1"].input) == ["model/relu"]
    assert b"digits.yaml:" in nodes["model/linear"].attr["attr"].s  # the spec line it came from


@pytest.mark.slow
def test_udlc_train_draws_the_curves_and_says_where(digits_run) -> None:
    from PIL import Image

    curves = digits_run.run / "curves.png"
    assert f"curves {curves.relative_to(digits_run.spec.parent)}" in digits_run.result.stdout
    assert Image.open(curves).size[0] > 400


def test_a_resumed_run_drops_the_events_its_checkpoint_does_not_hold(tmp_path: Path) -> None:
    from udlc.trainer.logging import EpochLog

    first = EpochLog(tmp_path, epochs=4, quiet=True)
    for epoch, loss in ((1, 3.0), (2, 2.0), (3, 1.0)):
        first.epoch({"epoch": epoch, "train_loss": loss})
    first.close()
    again = EpochLog(tmp_path, epochs=4, quiet=True)
    again.resume(1)  # its checkpoint holds epoch 1: epochs 2 and 3 are trained again
    for epoch, loss in ((2, 2.5), (3, 1.5)):
        again.epoch({"epoch": epoch, "train_loss": loss})
    again.close()
    assert [(e.step, e.value) for e in events(tmp_path).Scalars("loss/train")] == [(1, 3.0), (2, 2.5), (3, 1.5)]


def test_the_time_left_is_the_epochs_to_go_times_the_mean_epoch(tmp_path: Path) -> None:
    from udlc.trainer.logging import EpochLog

    log = EpochLog(tmp_path, epochs=50, quiet=True)
    log.durations = [2.0, 4.0]
    assert log.left(2) == "~2m24s left"  # 48 epochs × 3 s
    assert log.left(49) == "~3s left"
    assert log.left(50) == ""
    log.close()
