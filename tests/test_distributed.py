"""Training on two CPU processes (gloo) with `udlc train --devices 2`, torchrun's launcher: the same global batch
trains the same weights as one process, a killed run resumes exactly (and on another number of processes), and a
failure in one process ends all of them with one message."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DIGITS_MLP, edited_spec, refused_at, train_here, write_spec
from tests.processes import (
    child_env, cli, describe, early_job, job_results, last_epoch, run_folder, udlc_argv, wait_for_checkpoint,
)

pytestmark = pytest.mark.slow

NO_EXPORT = {k: v for k, v in DIGITS_MLP.items() if k != "export"}
DETERMINISTIC = {**NO_EXPORT, "name": "two-processes", "train": {"epochs": 3, "batch_size": 50}}  # 1437 rows:
# the last batch (37) splits 18/19
WITH_DROPOUT = {**NO_EXPORT, "name": "resumable", "seed": 5, "data": {"source": "digits", "split": [0.3, 0.1, 0.6]},
                "model": {"input": [64], "layers": [{"linear": 32}, "relu", {"dropout": 0.2}, {"linear": 10}]},
                "optimizer": {"type": "adamw", "lr": 0.003}, "schedule": {"type": "cosine", "warmup_steps": 10},
                "train": {"epochs": 8, "batch_size": 32, "checkpoint_seconds": 0}}


def workers_of(launcher: subprocess.Popen) -> list[int]:
    """The processes the launcher started (torchrun's launcher starts each in a session of its own)."""
    found = subprocess.run(["pgrep", "-P", str(launcher.pid)], capture_output=True, text=True).stdout.split()
    return sorted(int(pid) for pid in found)


def kill_all(launcher: subprocess.Popen) -> None:
    """The launcher and its processes at once, as when the machine dies."""
    for pid in [*workers_of(launcher), launcher.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def weights(run: Path, name: str = "last") -> dict:
    from safetensors.torch import load_file

    return {k: v for k, v in load_file(str(run / "checkpoints" / f"{name}.safetensors")).items()
            if k.startswith("models.")}


@early_job("two_processes")
def _two_processes_job(root: Path) -> dict[str, tuple | list]:
    """Launches that need no timing: started with the session, beside the in-process tests."""
    for strategy in ("ddp", "fsdp"):  # the main process exports the gathered FSDP weights
        train = {**DETERMINISTIC["train"], "strategy": strategy, "grad_accum": 2}  # gradients exchanged every 2nd
        export = {"export": DIGITS_MLP["export"]} if strategy == "fsdp" else {}
        write_spec(root / f"{strategy}.yaml", {**DETERMINISTIC, "train": train, **export})
    write_spec(root / "diverges.yaml", {**DETERMINISTIC, "optimizer": {"type": "sgd", "lr": 1e9}})
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    return {"ddp": [*torchrun, "-m", "udlc", "train", "ddp.yaml", "--out", "runs"],  # torchrun by hand
            "fsdp": ("train", "fsdp.yaml", "--out", "runs", "--devices", "2"),
            "diverges": ("train", "diverges.yaml", "--out", "runs", "--devices", "2", "-q")}


@pytest.fixture(scope="module")
def two_processes() -> tuple[Path, dict[str, subprocess.CompletedProcess]]:
    return job_results("two_processes")


@early_job("uninterrupted")
def _uninterrupted_job(root: Path) -> dict[str, tuple]:
    """The killed run's reference, uninterrupted: a job of its own, started only where the long tier runs."""
    write_spec(root / "dropout.yaml", WITH_DROPOUT)
    return {"dropout": ("train", "dropout.yaml", "--out", "runs", "--devices", "2", "-q")}


@pytest.fixture(scope="module")
def uninterrupted() -> tuple[Path, dict[str, subprocess.CompletedProcess]]:
    return job_results("uninterrupted")


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_train_the_same_weights_as_one(two_processes, tmp_path: Path, strategy: str,
                                                      one_torch_thread) -> None:
    """DDP (a copy of the model each; started with torchrun by hand) and FSDP (a shard each; with --devices) alike;
    an FSDP run's checkpoint holds the whole state, so one process resumes it."""
    import torch

    root, results = two_processes
    together = results[strategy]
    assert together.returncode == 0, describe(together)
    assert f"2 processes ({strategy}), 50 samples a batch in all" in together.stdout
    two = run_folder(together, root)
    alone = train_here(root / f"{strategy}.yaml", tmp_path / "one")
    a, b = weights(alone), weights(two)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5, rtol=1e-4), (key, (a[key] - b[key]).abs().max())
    rows = [json.loads(line) for line in (two / "metrics.jsonl").read_text().splitlines()]
    ref = [json.loads(line) for line in (alone / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]  # one row an epoch: only the main process logs
    for mine, theirs in zip(rows, ref):  # the logged loss is over every process's slices
        assert mine["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-4)
        assert mine["val_accuracy"] == theirs["val_accuracy"]  # over the gathered shares of the split
        assert mine["val_loss"] == pytest.approx(theirs["val_loss"], rel=1e-5)
    assert json.loads((two / "results.json").read_text())["test_accuracy"] == \
        json.loads((alone / "results.json").read_text())["test_accuracy"]
    assert (two / "model.onnx").is_file() is (strategy == "fsdp")
    if strategy == "fsdp":
        from udlc.trainer.run import resume_run

        resume_run(two, ["train.epochs=4"], quiet=True)
        assert json.loads((two / "checkpoints" / "last.json").read_text())["position"]["epoch"] == 4


@pytest.mark.long  # two processes, one killed for real, then a resume: the longer tier
def test_a_killed_process_ends_the_run_with_one_message_and_the_run_resumes_exactly(
        uninterrupted, tmp_path: Path, one_torch_thread) -> None:
    """Process 1 is killed after epoch 2's checkpoint: the launcher stops process 0 too and says which died, in one
    line. Resumed on two processes, the run ends with the uninterrupted run's weights bit for bit (each process's
    dropout stream was saved); resumed on one process, it finishes too, from the same checkpoint."""
    import torch

    write_spec(tmp_path / "spec.yaml", WITH_DROPOUT)
    victim = subprocess.Popen(udlc_argv("train", "spec.yaml", "--out", "killed", "--devices", "2", "-q"),
                              cwd=tmp_path, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_checkpoint(victim, tmp_path / "killed", epoch=2)
        workers = workers_of(victim)
        assert len(workers) == 2, workers
        os.kill(workers[-1], signal.SIGKILL)  # started second: process 1
        out, err = victim.communicate(timeout=60)
    finally:
        if victim.poll() is None:
            kill_all(victim)
    assert victim.returncode == 1, (out, err)
    assert err.strip().splitlines() == ["error: process 1 of 2 was killed by SIGKILL without a message (out of "
                                        "memory? killed by hand?), and the others were stopped"], err
    assert all(not Path(f"/proc/{pid}").exists() or _zombie(pid) for pid in workers)
    killed_at = last_epoch(tmp_path / "killed")
    assert 2 <= killed_at < WITH_DROPOUT["train"]["epochs"], "killed too late to test a resume"
    (run,) = (tmp_path / "killed" / "resumable").iterdir()
    on_one = shutil.copytree(run, tmp_path / "copy" / run.name)

    resumed = cli("train", "--resume", run, "--devices", "2", cwd=tmp_path)
    assert resumed.returncode == 0, describe(resumed)
    ref_run = run_folder(uninterrupted[1]["dropout"], uninterrupted[0])  # the same spec, uninterrupted
    for name in ("last", "best"):
        a, b = weights(ref_run, name), weights(run, name)
        different = [k for k in a if not torch.equal(a[k], b[k])]
        assert a.keys() == b.keys() and different == [], f"{name}: differ after resuming at {killed_at}: {different}"
    assert json.loads((run / "results.json").read_text()) == json.loads((ref_run / "results.json").read_text())

    from udlc.trainer.run import resume_run

    resume_run(on_one, quiet=True)  # one process continues two processes' run
    info = json.loads((on_one / "run.json").read_text())
    assert info["status"] == "done" and info["epochs_done"] == WITH_DROPOUT["train"]["epochs"]


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def test_a_failure_in_the_processes_is_told_once(two_processes) -> None:
    """A run that diverges fails in every process at the same step: one message, the first process's, with the
    loss's place in the spec."""
    result = two_processes[1]["diverges"]
    assert result.returncode == 3, describe(result)
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("process ") and lines[0].endswith("of 2 failed, and the others were stopped:"), lines
    assert lines[1].startswith("error: the loss became nan") and sum("error:" in ln for ln in lines) == 1, lines
    assert "Traceback" not in result.stderr and "ChildFailedError" not in result.stderr


def test_check_refuses_fsdp_where_the_task_keeps_an_unsharded_copy(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parent.parent / "examples" / "diffusion-spirals.yaml"
    spec = edited_spec(tmp_path / "spec.yaml", example, {"train.strategy": "fsdp"})
    refused_at(spec, "strategy: fsdp", "moving-average copy")
    spec = edited_spec(tmp_path / "spec.yaml", example, {"train.strategy": "fsdp", "task.diffusion.ema": 0})
    from udlc.tasks import compile_spec

    assert compile_spec(spec).spec.train.strategy == "fsdp"


def test_a_mistake_in_the_spec_is_told_before_any_process_starts(tmp_path: Path, invoke) -> None:
    write_spec(tmp_path / "spec.yaml", {**DETERMINISTIC, "train": {"epochs": 3, "strategy": "zero3"}})
    result = invoke("train", "spec.yaml", "--devices", "2")
    assert result.returncode == 2
    assert "spec.yaml:" in result.stderr.splitlines()[0]  # file:line:col, as `udlc check` says it
    assert "train.strategy: must be one of ddp, fsdp" in result.stderr and "process" not in result.stderr
    assert not (tmp_path / "runs").exists()


def test_validation_shares_drop_stand_in_rows_and_gather_the_whole_split(tmp_path: Path, one_torch_thread) -> None:
    """Validation batches of one row on two processes: process 0's share of each is a stand-in row, which counts
    for nothing; gathered in rank order, both processes score the whole split as one process does. (The gather
    is played here by hand, so that no process group is needed.)"""
    import torch

    from udlc.tasks import compile_spec
    from udlc.trainer.distributed import Processes, Shard
    from udlc.guide.probe import probe_setup

    compiled = compile_spec(write_spec(tmp_path / "spec.yaml", DETERMINISTIC))
    data = compiled.task.load_data(compiled)
    s = probe_setup(compiled, data)
    val = compiled.task.batches(s.run_state, "val", batch_size=1, shuffle=False, device=torch.device("cpu"))
    whole = compiled.task.evaluate(s, val)
    shares: dict[int, list] = {}

    class Played(Processes):
        """Records each process's share; once both are known, gives the gathered whole in rank order."""

        def concat(self, tensors: list) -> list:
            shares[self.rank] = tensors
            if len(shares) < 2:
                return tensors
            return [torch.cat([first, second]) for first, second in zip(shares[0], shares[1])]

    for rank in (0, 1):  # the first pass records the shares
        compiled.task.evaluate(s, Shard(val, Played(rank, 2, rank), order=None))
    assert [len(t) for t in shares[0]] == [0, 0]  # only stand-ins in process 0
    assert [len(t) for t in shares[1]] == [len(data.y_val)] * 2
    for rank in (0, 1):
        score = compiled.task.evaluate(s, Shard(val, Played(rank, 2, rank), order=None))
        assert score["accuracy"] == whole["accuracy"]
        assert score["loss"] == pytest.approx(whole["loss"], rel=1e-6)
