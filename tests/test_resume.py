"""`udlc train --resume`: a killed run continues exactly where its last checkpoint left it."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import pytest

from tests.conftest import DIGITS_MLP, assert_clean_failure, read_csv, train_here, write_spec
from tests.processes import cli, describe, finish, last_epoch, run_folder, start_cli, wait_for_checkpoint

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
    "train": {"epochs": 16, "batch_size": 16, "deterministic": True, "checkpoint_seconds": 0},
}
RESUMABLE.pop("export")


@pytest.mark.long  # a real SIGKILL through the CLI; tests/test_task_contract.py resumes every task in `make test`
def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    write_spec(tmp_path / "spec.yaml", RESUMABLE)
    epochs = RESUMABLE["train"]["epochs"]
    ref_args = ("train", "spec.yaml", "--out", "reference", "-q")
    reference = start_cli(*ref_args, cwd=tmp_path)  # meanwhile, on the other core
    victim = start_cli("train", "spec.yaml", "--out", "killed", "-q", cwd=tmp_path)
    try:
        wait_for_checkpoint(victim, tmp_path / "killed", epoch=2)
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=30)
    finally:
        if victim.poll() is None:
            victim.kill()
    assert victim.returncode == -signal.SIGKILL
    killed_at = last_epoch(tmp_path / "killed")
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
    from udlc.trainer.run import TrainingInterrupted, resume_run

    real_save = loop.save_checkpoints

    def die_at_epoch_2(s, *args):
        if s.state["epoch"] == 2:
            raise KeyboardInterrupt  # stands in for SIGKILL at this exact point
        real_save(s, *args)

    monkeypatch.setattr(loop, "save_checkpoints", die_at_epoch_2)
    spec = write_spec(tmp_path / "spec.yaml", {**DIGITS_MLP, "export": {}},
                      train={"epochs": 3, "batch_size": 128, "checkpoint_seconds": 0})
    with pytest.raises(TrainingInterrupted) as info:
        train_here(spec, tmp_path / "runs")
    [run] = (tmp_path / "runs" / "tiny-digits").iterdir()
    assert f"udlc train --resume {run}" in str(info.value)  # the real folder, not a placeholder
    assert [int(r["epoch"]) for r in read_csv(run / "metrics.csv")] == [1, 2]
    monkeypatch.setattr(loop, "save_checkpoints", real_save)
    resume_run(run, quiet=True)
    rows = read_csv(run / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3


def test_resume_refuses_a_spec_and_a_folder_without_checkpoint(invoke, tmp_path: Path, digits_run) -> None:
    empty = tmp_path / "empty-run"
    empty.mkdir()
    for name in ("run.json", "spec.yaml"):
        shutil.copy(digits_run.run / name, empty / name)
    err = assert_clean_failure(invoke("train", "--resume", empty))
    assert "checkpoint" in err and len(err.strip().splitlines()) == 1
    err = assert_clean_failure(invoke("train", digits_run.spec, "--resume", empty))
    assert "--resume" in err


def test_checkpoints_are_written_after_the_first_epoch_then_by_elapsed_time_and_at_the_end(
        tmp_path: Path, monkeypatch, one_torch_thread) -> None:
    """A synced checkpoint costs milliseconds, a small model's epoch not many more: `last` (and `best`, when it
    improved) is written after epoch 1, then once checkpoint_seconds have passed, and after the last epoch."""
    import udlc.trainer.resume as resume  # the loop's checkpoints are written there

    written: list[tuple[str, int]] = []
    real_save = resume.checkpoint.save

    def counting(path, state):
        written.append((path.name, state["position"]["epoch"] if "position" in state else state["epoch"]))
        real_save(path, state)

    monkeypatch.setattr(resume.checkpoint, "save", counting)
    spec = write_spec(tmp_path / "spec.yaml", {**DIGITS_MLP, "export": {}},
                      train={"epochs": 5, "batch_size": 256, "checkpoint_seconds": 3600})
    run = train_here(spec, tmp_path / "runs")
    assert [w for w in written if w[0] == "last"] == [("last", 1), ("last", 5)]
    best_epoch = json.loads((run / "run.json").read_text())["best_epoch"]
    bests = [epoch for name, epoch in written if name == "best"]
    assert bests[0] == 1 and bests[-1] == best_epoch and len(bests) <= 2  # the best kept until the final write
    assert json.loads((run / "checkpoints" / "best.json").read_text())["epoch"] == best_epoch
