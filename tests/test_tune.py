"""`udlc tune`: the `tune:` section's check, the study (a tune beats a bad start, prunes, resumes) and best.yaml."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import DIGITS_MLP, assert_clean_failure, refused_at, train_here, write_spec
from tests.processes import describe
from udlc.errors import UdlcError

# DIGITS_MLP without export (faster), two epochs, and a learning rate far too small to learn in them.
BAD_START = {k: v for k, v in DIGITS_MLP.items() if k != "export"} | {
    "optimizer": {"type": "adam", "lr": 1e-5}, "train": {"epochs": 2, "batch_size": 64}}
# Adam's betas are left at their default in the spec: a tuple, tuned as a whole (choices of lists).
SPACE = {"optimizer.lr": {"log_uniform": [1e-4, 1e-1]}, "train.batch_size": [32, 64],
         "optimizer.betas": [[0.9, 0.999], [0.8, 0.99]]}

TUNE_TEXT = """\
udlc: 1
name: tiny-tune
data: {source: digits, split: [0.8, 0.1, 0.1]}
model:
  input: [64]
  blocks:
    mlp:
      params: {ch: 32}
      layers: [{linear: $ch}, relu]
  layers: [{mlp: {ch: 16}}, {linear: 10}]
loss: cross_entropy
metrics: [accuracy]
optimizer: adam
train: {epochs: 2, batch_size: 64}
tune:
"""


@pytest.mark.parametrize("section, marker, words", [
    ("  space: {optimizer.lr: {log_uniform: [0, 0.1]}}", "log_uniform", "needs low > 0"),
    ("  space: {train.grad_clip: {uniform: [2, 1]}}", "uniform", "low must be < high"),
    ("  space: {train.grad_clip: {uniform: [0.5, 2], stepp: 0.5}}", "uniform", "did you mean 'step'"),
    ("  space: {train.grad_clip: {int: [1, 4], log_uniform: [1, 2]}}", "int:", "give one range"),
    ("  space: {train.epochs: 3}", "train.epochs", "must be a list of choices or a range"),
    ("  spaec: {}", "spaec", "did you mean 'space'"),
    ("  metric: val_acuracy", "val_acuracy", "did you mean 'val_accuracy'"),
    ("  space: {model.foo.units: [1, 2]}", "model.foo", "there is no model.foo"),
    ("  space: {optimizer.lrr: {log_uniform: [1e-4, 1e-1]}}", "lrr", "did you mean 'lr'"),
    ("  space: {train.batch_size: [32, 0, 128]}", "train.batch_size",
     "train.batch_size = 0 would make the spec invalid"),
    ("  space: {\"model.layers[0].mlp.ch\": {int: [0, 64], step: 16}}", "mlp.ch", "out_features must be > 0"),
    ("  space: {\"model.layers[0].mlp.ch\": {int: [8, 64], step: 0.5}}", "step", "whole number"),
    ("  space: {\"optimizer.betas[0]\": {uniform: [0.5, 1.5]}}", "optimizer.betas", "would make the spec invalid"),
    ("  space: {optimizer.betas: [[0.9, 0.999], [0.9]]}", "optimizer.betas", "would make the spec invalid"),
])
def test_check_refuses_a_bad_tune_section_at_its_line(tmp_path, section, marker, words):
    spec = tmp_path / "spec.yaml"
    spec.write_text(TUNE_TEXT + section + "\n")
    refused_at(spec, marker, words)


def test_a_good_tune_section_passes_check_without_torch_or_optuna(tmp_path, run_cli):
    spec = tmp_path / "spec.yaml"
    spec.write_text(TUNE_TEXT + "  metric: val_accuracy\n  space:\n"
                    "    optimizer.lr: {log_uniform: [1e-4, 1e-1]}\n"
                    "    optimizer.weight_decay: {uniform: [0, 0.1], step: 0.05}\n"  # not in the file: settable
                    "    model.blocks.mlp.params.ch: {int: [16, 64], step: 16}\n"
                    "    model.layers[0].mlp.ch: [8, 24]\n"
                    "    optimizer.betas[1]: {uniform: [0.9, 0.9999]}\n")  # one element of a default tuple
    code = ("import sys; from udlc.tasks import compile_spec; compile_spec('spec.yaml'); "
            "print(sorted(m for m in ('torch', 'optuna') if m in sys.modules))")
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "[]", describe(result)
    assert run_cli("check", "spec.yaml").returncode == 0


def test_the_default_space_is_lr_then_batch_size_then_weight_decay(tmp_path):
    from udlc.tasks import compile_spec
    from udlc.guide.tune import default_space, starting_point

    spec = write_spec(tmp_path / "spec.yaml", DIGITS_MLP, optimizer={"type": "adamw", "lr": 0.01})
    compiled = compile_spec(spec)
    space = default_space(compiled)
    assert list(space) == ["optimizer.lr", "train.batch_size", "optimizer.weight_decay"]
    assert space["optimizer.lr"].log_uniform == pytest.approx((1e-3, 0.1))
    assert space["train.batch_size"].choices == [32, 64, 128]
    assert space["optimizer.weight_decay"].log_uniform == pytest.approx((1e-3, 0.1))  # adamw's default 0.01
    # the spec as written (weight decay at its default) is the first trial
    assert starting_point(compiled.doc.data, space, compiled.spec) == {
        "optimizer.lr": 0.01, "train.batch_size": 64, "optimizer.weight_decay": 0.01}


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """4 trials x 2 epochs from lr 1e-5, in this process; and the starting point trained alone."""
    import torch

    from udlc.guide.tune import tune

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as one_torch_thread does, for the whole module's study
    try:
        root = tmp_path_factory.mktemp("tune")
        spec = write_spec(root / "spec.yaml", BAD_START, tune={"space": SPACE})
        lines: list[str] = []
        folder = tune(spec, 4, out=root / "runs", say=lines.append)
        start = train_here(write_spec(root / "start.yaml", BAD_START), root / "start")
    finally:
        torch.set_num_threads(threads)
    return root, folder, lines, start


def test_a_tune_beats_a_bad_starting_point(tuned, one_torch_thread):
    import optuna

    root, folder, lines, start = tuned
    start_best = min(float(r["val_loss"]) for r in _rows(start))
    study = optuna.load_study(study_name="udlc", storage=f"sqlite:///{folder / 'study.db'}")
    assert len(study.trials) == 4
    assert study.best_value < start_best * 0.7, (study.best_value, start_best)
    # one line per trial, then the plots, the best trial and best.yaml; the folder last
    assert [ln.split()[:2] for ln in lines if ln.startswith("trial ")] == [["trial", str(i)] for i in range(4)]
    assert f"best trial {study.best_trial.number}: val_loss {study.best_value:.4f}" in "\n".join(lines)
    assert lines[-2] == f"best spec {folder / 'best.yaml'}" and lines[-1] == str(folder)
    assert folder.parent == root / "runs" / "tiny-digits" and folder.name.startswith("tune-")
    for name in ("study.db", "best.yaml", "history.png", "importances.png", "spec.yaml"):
        assert (folder / name).is_file(), name
    runs = list((folder / "trials" / "tiny-digits").iterdir())
    assert len(runs) == 4


def test_best_yaml_holds_the_best_values_checks_and_trains(tuned, one_torch_thread, tmp_path):
    import optuna

    from udlc.tasks import compile_spec

    _, folder, _, _ = tuned
    best = optuna.load_study(study_name="udlc", storage=f"sqlite:///{folder / 'study.db'}").best_trial
    compiled = compile_spec(folder / "best.yaml")
    assert compiled.spec.optimizer.lr == pytest.approx(best.params["optimizer.lr"])
    assert compiled.spec.train.batch_size == best.params["train.batch_size"]
    assert list(compiled.spec.optimizer.betas) == json.loads(best.params["optimizer.betas"])  # a tuple, not text
    run = train_here(folder / "best.yaml", tmp_path)
    assert json.loads((run / "run.json").read_text())["status"] == "done"


def test_pruning_stops_a_hopeless_trial_and_keeps_its_run(tmp_path, one_torch_thread):
    import optuna

    from udlc.tasks import compile_spec
    from udlc.guide.tune import train_trial

    study = optuna.create_study(pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0))
    for _ in range(2):  # two earlier trials that did well from the first epoch on
        study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=0.1,
                                                  intermediate_values={1: 0.2, 2: 0.1}))
    trial = study.ask()
    spec = write_spec(tmp_path / "spec.yaml", BAD_START, optimizer={"type": "adam", "lr": 1e-6})
    with pytest.raises(optuna.TrialPruned):
        train_trial(trial, compile_spec(spec), tmp_path / "trials", "val_loss", maximize=False)
    run = Path(trial.user_attrs["run"])
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "stopped" and info["epochs_done"] == 1 and trial.user_attrs["pruned_at"] == 1


def test_resume_adds_trials_to_the_same_study(tuned, invoke):
    import optuna

    _, folder, _, _ = tuned
    result = invoke("tune", "--resume", folder, "--trials", "2")
    assert result.returncode == 0, describe(result)
    out = result.stdout.strip().splitlines()
    assert [ln.split()[:2] for ln in out if ln.startswith("trial ")] == [["trial", "4"], ["trial", "5"]]
    assert out[-1] == str(folder)
    study = optuna.load_study(study_name="udlc", storage=f"sqlite:///{folder / 'study.db'}")
    assert len(study.trials) == 6
    # new values, not the first trials' again
    assert study.trials[4].params != study.trials[0].params


def test_resume_without_a_study_is_refused(tmp_path, invoke):
    from udlc.guide.tune import tune

    with pytest.raises(UdlcError, match="no study.db"):
        tune(None, 1, resume=tmp_path)
    err = assert_clean_failure(invoke("tune", "--resume", tmp_path), code=1)
    assert "no study.db" in err


def _rows(run: Path) -> list[dict[str, str]]:
    import csv

    with (run / "metrics.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def test_best_yaml_is_plain_yaml(tuned):
    _, folder, _, _ = tuned
    data = yaml.safe_load((folder / "best.yaml").read_text())
    assert data["tune"] == {"space": SPACE}  # kept, so best.yaml can be tuned again
