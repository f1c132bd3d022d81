"""The training loop, top to bottom. Everything else (checkpoints, early stopping, logging, the NaN
locator) is a small function this loop calls."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from udlc.trainer import checkpoint
from udlc.trainer.debug import nonfinite_report
from udlc.trainer.logging import EpochLog
from udlc.trainer.objectives import compute_metrics, higher_is_better
from udlc.trainer.schedules import Plateau


@dataclass
class Setup:
    """Everything `fit` needs, built by udlc.trainer.run from the spec."""

    spec: Any  # the validated Spec
    graph: Any  # the compiled Graph, for the NaN locator's messages
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR | None  # None for a constant lr: nothing to step
    plateau: Plateau | None
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    train: Any  # batches: .epoch_batches(generator), len()
    val: Any | None
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None
    generator: torch.Generator  # shuffling and augmentation
    device: torch.device
    autocast: Any  # a context manager factory: bf16 autocast on CUDA, or a no-op
    run_dir: Path
    log: EpochLog
    state: dict = field(default_factory=lambda: {"epoch": 0, "step": 0, "best": None, "best_epoch": None, "bad": 0})

    @property
    def module(self) -> nn.Module:
        """The plain module, also under torch.compile: checkpoints hold its names, not the wrapper's."""
        return getattr(self.model, "_orig_mod", self.model)


def fit(s: Setup) -> None:
    train = s.spec.train
    monitor, mode = monitored(s.spec, has_val=s.val is not None)
    accum = train.grad_accum
    if train.early_stopping is not None and s.state["bad"] >= train.early_stopping.patience:
        return  # a resumed run that had already stopped early: nothing left to do
    while s.state["epoch"] < train.epochs:
        epoch = s.state["epoch"] + 1
        s.model.train()
        started = time.perf_counter()
        total_loss, seen = 0.0, 0
        batches = s.train.epoch_batches(s.generator)
        n_batches = len(s.train)
        for i, (xb, yb) in enumerate(batches):
            if s.augment is not None:
                xb = s.augment(xb, s.generator)
            with s.autocast():
                loss = s.loss_fn(s.model(xb), yb)
            value = loss.item()  # one sync per step, as a hand-written loop's logging does
            if not math.isfinite(value):
                raise nonfinite_report(s, xb, yb, loss, epoch, s.state["step"] + 1)
            (loss / accum if accum > 1 else loss).backward()
            total_loss += value * len(xb)
            seen += len(xb)
            if (i + 1) % accum == 0 or i + 1 == n_batches:
                if train.grad_clip:
                    nn.utils.clip_grad_norm_(s.model.parameters(), train.grad_clip)
                s.optimizer.step()
                s.optimizer.zero_grad(set_to_none=True)
                if s.scheduler is not None:
                    s.scheduler.step()
                s.state["step"] += 1
            s.log.batch(i + 1, n_batches)
        seconds = time.perf_counter() - started

        row = {"epoch": epoch, "train_loss": total_loss / max(seen, 1)}
        if s.val is not None:
            row.update({f"val_{k}": v for k, v in evaluate(s, s.val).items()})
        row.update(lr=s.optimizer.param_groups[0]["lr"], seconds=round(seconds, 4),
                   samples_per_s=round(seen / max(seconds, 1e-9), 1))
        if s.plateau is not None:  # its scale enters the scheduler's factor from the next step on
            s.plateau.update(row[s.plateau.spec.monitor])
        improved = update_best(s.state, row.get(monitor), mode, train.early_stopping)
        s.state["epoch"] = epoch
        # The row first, then the checkpoints: a kill in between loses no row, and a resume drops
        # rows past its checkpoint.
        s.log.epoch(row)
        if improved:
            checkpoint.save(s.run_dir / "checkpoints" / "best", {"model": s.module.state_dict(),
                                                                  "epoch": epoch, monitor: row.get(monitor)})
        save_last(s)
        stop = train.early_stopping
        if stop is not None and s.state["bad"] >= stop.patience:
            best = "no value yet" if s.state["best"] is None else \
                f"best {s.state['best']:.4g} at epoch {s.state['best_epoch']}"
            s.log.note(f"early stopping: {monitor} has not improved for {stop.patience} "
                       f"epoch{'s' * (stop.patience != 1)} ({best})")
            break


def monitored(spec: Any, has_val: bool) -> tuple[str, str]:
    """What decides the best checkpoint and early stopping, and whether lower or higher is better."""
    stop = spec.train.early_stopping
    name = stop.monitor if stop else ("val_loss" if has_val else "train_loss")
    mode = stop.mode if stop else "auto"
    if mode == "auto":
        mode = "max" if higher_is_better(name) else "min"
    return name, mode


def update_best(state: dict, value: float | None, mode: str, stop: Any) -> bool:
    """Track the best value; count epochs without improvement (beyond min_delta). True if improved."""
    if value is None or math.isnan(value):
        state["bad"] += 1
        return False
    delta = stop.min_delta if stop else 0.0
    best = state["best"]
    if best is None or (value < best - delta if mode == "min" else value > best + delta):
        state.update(best=value, best_epoch=state["epoch"] + 1, bad=0)
        return True
    state["bad"] += 1
    return False


@torch.no_grad()
def evaluate(s: Setup, batches: Any) -> dict[str, float]:
    """Mean loss and the spec's metrics over a split, in eval mode."""
    was_training = s.model.training
    s.model.eval()
    outs, ys = [], []
    for xb, yb in batches.epoch_batches(None):
        with s.autocast():
            outs.append(s.model(xb).float())
        ys.append(yb)
    s.model.train(was_training)
    out, y = torch.cat(outs), torch.cat(ys)
    return {"loss": s.loss_fn(out, y).item(), **compute_metrics(s.spec.metrics, out, y, s.spec.loss.type)}


def save_last(s: Setup) -> None:
    """Everything a resume needs to continue exactly: weights, optimizer, schedule, RNGs, position."""
    rng = {"torch": torch.get_rng_state(), "data": s.generator.get_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    checkpoint.save(s.run_dir / "checkpoints" / "last", {
        "model": s.module.state_dict(),
        "optimizer": s.optimizer.state_dict(),
        "scheduler": {k: v for k, v in s.scheduler.state_dict().items() if k != "lr_lambdas"} if s.scheduler else None,
        "plateau": s.plateau.state() if s.plateau else None,
        "rng": rng,
        "position": dict(s.state),
    })


def restore_last(s: Setup) -> None:
    state = checkpoint.load(s.run_dir / "checkpoints" / "last", device=s.device)
    s.module.load_state_dict(state["model"])
    s.optimizer.load_state_dict(state["optimizer"])
    if s.scheduler is not None:
        s.scheduler.load_state_dict({**state["scheduler"], "lr_lambdas": [None] * len(s.scheduler.lr_lambdas)})
    if s.plateau and state["plateau"]:
        s.plateau.load(state["plateau"])
    torch.set_rng_state(state["rng"]["torch"].cpu())
    s.generator.set_state(state["rng"]["data"].cpu())
    if "cuda" in state["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([t.cpu() for t in state["rng"]["cuda"]])
    s.state.update(state["position"])
