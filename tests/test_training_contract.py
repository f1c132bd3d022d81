"""The generic loop's contract: gradient accumulation and clipping do what they say, and a task with two
networks (each with its own optimizer and schedule) trains, checkpoints and resumes exactly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import pytest

from tests.conftest import DIGITS_MLP, read_csv, train_here, write_spec

PLAIN = {**DIGITS_MLP, "export": {}, "metrics": [], "optimizer": {"type": "sgd", "lr": 0.1}}


def final_weights(run: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(run / "checkpoints" / "last.safetensors"))


def test_two_accumulated_batches_make_the_step_of_one_twice_as_large(tmp_path: Path, one_torch_thread) -> None:
    """Accumulating 2 batches of 32 gives each step the mean gradient of 64 samples: the same run as batches
    of 64 (the epoch's last, shorter group too), up to float rounding."""
    import torch

    accumulated = train_here(write_spec(tmp_path / "a.yaml", PLAIN, train={"epochs": 2, "batch_size": 32,
                                                                          "grad_accum": 2}), tmp_path / "a")
    whole = train_here(write_spec(tmp_path / "b.yaml", PLAIN, train={"epochs": 2, "batch_size": 64}), tmp_path / "b")
    a, b = final_weights(accumulated), final_weights(whole)
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    halved = train_here(write_spec(tmp_path / "c.yaml", PLAIN, train={"epochs": 2, "batch_size": 32}), tmp_path / "c")
    assert not all(torch.allclose(a[k], final_weights(halved)[k], atol=1e-3) for k in a)  # the test can tell


def test_grad_clip_bounds_every_step(tmp_path: Path, one_torch_thread) -> None:
    """With plain SGD at lr 1, a step moves the weights by exactly the clipped gradient: at most grad_clip."""
    import torch

    from udlc.compiler.lower import lower
    from udlc.tasks import compile_spec

    def moved(spec_path: Path, out: Path) -> float:
        compiled = compile_spec(spec_path)
        start = lower(compiled.graph, seed=compiled.spec.seed).state_dict()
        end = final_weights(train_here(spec_path, out))
        return float(torch.sqrt(sum(((end[f"models.model.{k}"] - v) ** 2).sum() for k, v in start.items())))

    one_step = {**PLAIN, "optimizer": {"type": "sgd", "lr": 1.0}}
    clipped = moved(write_spec(tmp_path / "a.yaml", one_step, train={"epochs": 1, "batch_size": 2000,
                                                                      "grad_clip": 0.001}), tmp_path / "a")
    free = moved(write_spec(tmp_path / "b.yaml", one_step, train={"epochs": 1, "batch_size": 2000}), tmp_path / "b")
    assert clipped == pytest.approx(0.001, rel=1e-3)  # one step of norm exactly grad_clip
    assert free > 0.01


@pytest.fixture
def twin_task():
    """A task with two networks trained side by side on the same targets, each by its own optimizer: the
    smallest thing that exercises the loop's dicts of models, optimizers and schedules."""
    import udlc.tasks.registry as registry
    from udlc.spec.base import StrictModel
    from udlc.tasks.supervised import Supervised

    class TwinOptions(StrictModel):
        type: Literal["twin"] = "twin"

    class Twin(Supervised):
        name, config, description = "twin", TwinOptions, "two networks on the same targets (tests only)"

        def check(self, compiled: Any, check_files: bool) -> list:
            return []

        def train_step(self, s: Any, batch: Any) -> tuple[dict[str, float], int]:
            xb, yb = batch["x"], batch["target"]
            loss_fn = s.run_state.loss_fn
            values = {f"loss_{net}": s.update(net, loss_fn(s.models[net](xb), yb), (xb, yb)) for net in s.models}
            return values, len(xb)

        def evaluate(self, s: Any, batches: Any) -> dict[str, float]:
            import torch

            losses = {}
            with torch.no_grad():
                for net, model in s.models.items():
                    model.eval()
                    outs, ys = zip(*[(model(b["x"]), b["target"]) for b in batches.epoch_batches(None)])
                    losses[f"loss_{net}"] = s.run_state.loss_fn(torch.cat(outs), torch.cat(ys)).item()
                    model.train()
            return {"loss": sum(losses.values()) / len(losses), **losses}

    registry.register(Twin)
    yield Twin
    registry.TASKS.pop("twin")


def test_two_networks_each_with_its_own_optimizer_train_and_resume_exactly(
        tmp_path: Path, twin_task, one_torch_thread) -> None:
    import torch

    from udlc.trainer.run import resume_run

    net = {"input": [64], "layers": [{"linear": 16}, "relu", {"dropout": 0.1}, {"linear": 10}]}
    doc = {k: v for k, v in PLAIN.items() if k != "model"}
    twin = {**doc, "task": "twin", "models": {"a": net, "b": net},
            "optimizers": {"a": {"type": "sgd", "lr": 0.1, "momentum": 0.9}, "b": {"type": "adam", "lr": 0.003}},
            "schedules": {"a": {"type": "step", "step_size": 1, "gamma": 0.5, "warmup_steps": 5}}}  # length-free
    straight = train_here(write_spec(tmp_path / "s.yaml", twin, train={"epochs": 3, "batch_size": 128}),
                          tmp_path / "straight")
    rows = read_csv(straight / "metrics.csv")
    assert {"train_loss_a", "train_loss_b", "val_loss_a", "val_loss_b"} <= set(rows[0])
    assert float(rows[-1]["val_loss_a"]) < float(rows[0]["val_loss_a"])  # each network learns
    assert float(rows[-1]["val_loss_b"]) < float(rows[0]["val_loss_b"])
    last = json.loads((straight / "checkpoints" / "last.json").read_text())
    assert set(last["models"]) == set(last["optimizers"]) == {"a", "b"} and set(last["schedulers"]) == {"a"}
    assert "momentum_buffer" in json.dumps(last["optimizers"]["a"]) and "exp_avg" in json.dumps(last["optimizers"]["b"])

    short = train_here(write_spec(tmp_path / "t.yaml", twin, train={"epochs": 2, "batch_size": 128}),
                       tmp_path / "short")
    resume_run(short, ["train.epochs=3"], quiet=True)
    a, b = final_weights(straight), final_weights(short)
    assert a.keys() == b.keys() and any(k.startswith("models.b.") for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a), "two networks resumed from epoch 2 end elsewhere than straight"


@pytest.mark.parametrize("loss,source,metric,better_than", [
    ({"type": "bce", "pos_weight": 1.5}, "moons", "test_accuracy", 0.85),  # one logit, two classes
    ({"type": "huber", "delta": 0.5}, "sine", "test_r2", 0.8),
])
def test_training_with_bce_and_huber_learns(tmp_path: Path, one_torch_thread, loss, source, metric,
                                            better_than) -> None:
    spec = write_spec(tmp_path / "s.yaml", {
        "udlc": 1, "name": "learns", "seed": 0, "data": {"source": source, "samples": 600},
        "model": {"input": [2 if source == "moons" else 1],
                  "layers": [{"linear": 32}, "tanh", {"linear": 32}, "tanh", {"linear": 1}]},
        "loss": loss, "metrics": [metric.removeprefix("test_")], "optimizer": {"type": "adam", "lr": 0.01},
        "train": {"epochs": 25, "batch_size": 32}})
    results = json.loads((train_here(spec, tmp_path / "runs") / "results.json").read_text())
    assert results[metric] > better_than, results
