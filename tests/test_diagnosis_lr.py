"""The "not learning" verdict reads the lr metrics.csv logs at each epoch's end: a schedule that decays to 0 within
one epoch ends there, and that is no evidence that the run never moved its weights."""

from __future__ import annotations

from udlc.runs.diagnosis import diagnose


def rows(lrs: list[float], train: list[float]) -> list[dict[str, str]]:
    return [{"epoch": str(i + 1), "train_loss": str(t), "lr": str(lr)} for i, (lr, t) in enumerate(zip(lrs, train))]


def test_one_epoch_that_a_schedule_ends_at_zero_is_too_short_not_not_learning() -> None:
    found = diagnose(rows([0.0], [1.2]))  # cosine over one epoch: the logged (end-of-epoch) lr is 0
    assert found.verdict == "too short", found


def test_a_learning_rate_of_zero_in_every_epoch_is_still_named() -> None:
    found = diagnose(rows([0.0, 0.0, 0.0], [1.2, 1.19, 1.21]))
    assert found.verdict == "not learning" and "learning rate was 0" in found.evidence, found


def test_a_schedule_that_reaches_zero_at_the_end_is_not_not_learning() -> None:
    found = diagnose(rows([0.01, 0.005, 0.0], [1.2, 0.6, 0.5]))
    assert found.verdict != "not learning", found
