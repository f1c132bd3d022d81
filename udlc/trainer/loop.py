"""The training loop, top to bottom, the same for every task. The task contributes its step and its
evaluation; everything else (checkpoints, early stopping, logging, the NaN locator) is a small function
this loop calls (what a checkpoint holds and how a resume restores it: udlc.trainer.resume)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch import nn

from udlc.errors import UdlcError
from udlc.runs import RunFolder
from udlc.spec.optimizers import OPTIMIZERS
from udlc.trainer.debug import nonfinite_report
from udlc.trainer.device import float64
from udlc.trainer.distributed import Shard, accumulating, unwrap
from udlc.trainer.logging import EpochLog
from udlc.trainer.resume import random_streams, save_checkpoints, saved_models, set_streams
from udlc.objectives.finetune import base_entry, release_layers
from udlc.objectives.schedules import PlateauScale

if TYPE_CHECKING:
    from udlc.tasks.registry import RunState, Task

# Gradient norms measured per epoch, evenly spread (their mean is the epoch's grad_norm), and never more than
# one step in four: a norm is a pass over every gradient, a few per cent of a small convnet's step.
GRAD_NORM_SAMPLES = 8


@dataclass
class Setup:
    """Everything `fit` and a task's step need, built by udlc.trainer.run from the spec (and by the probes and
    `udlc eval` for a few steps). Networks, optimizers and schedules are keyed by network name ('model' for a
    spec with `model:`). A task's step reads its own RunState from `run_state`, and the loop's position and
    processes through the services below (step, stepped, main, counted, gather, all_reduce_sum), not its
    fields."""

    spec: Any  # the validated Spec
    task: Task
    graphs: dict[str, Any]  # the compiled Graphs, for the NaN locator's messages
    models: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, torch.optim.lr_scheduler.LambdaLR]  # none for a constant lr: nothing to step
    plateaus: dict[str, PlateauScale]
    train: Any  # batches: .epoch_batches(generator), len()
    val: Any | None
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None
    generator: torch.Generator  # shuffling and augmentation
    device: torch.device
    autocast: Any  # a context manager factory: bf16 autocast on CUDA, or a no-op
    run: RunFolder
    log: EpochLog
    run_state: RunState | None = None  # what the task's `start` built for this run
    state: dict = field(default_factory=lambda: {"epoch": 0, "step": 0, "best": None, "best_epoch": None, "bad": 0})
    boundary: bool = True  # this batch ends a gradient-accumulation group: optimizers step after it
    group: int = 1  # micro-batches in this accumulation group (the epoch's last may be short)
    epoch: int = 0  # the epoch being trained, for messages
    best_state: dict | None = None  # the best epoch's weights (a copy), until written to checkpoints/best
    written_at: float = 0.0  # time.monotonic() of the last checkpoint write
    written_epoch: int = 0  # the epoch checkpoints/last holds
    measure: bool = False  # this step's gradient norm is sampled (a few steps an epoch: a norm costs a pass)
    grad_norms: dict[str, list[torch.Tensor]] = field(default_factory=dict)  # the epoch's samples, by network
    on_epoch: Callable[[dict[str, Any]], None] | None = None  # sees each epoch's row (a tuner prunes by raising)
    processes: Any = None  # udlc.trainer.distributed.Processes of a run on several processes; `train` is a Shard
    loss_weight: float = 1.0  # this process's slice's weight in the global batch (Shard.weight)
    replay: tuple[Any, dict] | None = None  # the batch and the random streams before its step, for a closure
    evaluated: float = 0.0  # the value of the loss `update` last backpropagated (what a closure returns)

    def __post_init__(self) -> None:
        # train.precision fp64: every network (and the inputs it reads) in float64, in training, validation,
        # `udlc eval` and the probes alike. The optimizers already built keep their parameters: .double() casts
        # each one's data in place.
        if self.spec.train.precision == "fp64":
            float64(self.models)

    @property
    def step(self) -> int:
        """Optimizer steps taken so far in the run (the current step's number, counting from 0)."""
        return self.state["step"]

    @property
    def stepped(self) -> bool:
        """Whether this batch ended an accumulation group: the optimizers stepped in its `update`."""
        return self.boundary

    @property
    def main(self) -> bool:
        """Whether this process writes the run folder: the main one of several, or the only one."""
        return self.processes is None or self.processes.main

    def counted(self, batches: Any, rows: int) -> int:
        """How many of a batch's `rows` count in an evaluation: all, or none for the stand-in row that a process
        with an empty share of the split takes (it is scored, so that every process runs alike)."""
        return rows if not isinstance(batches, Shard) or batches.weight > 0 else 0

    def gather(self, batches: Any, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        """Rows of this process's share of `batches` (each tensor's) joined with every other process's, in
        rank order: the whole split, in each process. As they are when the split is not shared."""
        return batches.processes.concat(tensors) if isinstance(batches, Shard) else tensors

    def all_reduce_sum(self, batches: Any, values: list[float]) -> list[float]:
        """Each value summed over the processes that share `batches`; as they are when the split is not shared."""
        return batches.processes.sum(values) if isinstance(batches, Shard) else values

    def module(self, network: str) -> nn.Module:
        """The plain module, also under torch.compile or DDP: checkpoints hold its names, not the wrapper's."""
        return unwrap(self.models[network])

    def update(self, network: str | tuple[str, ...], loss: torch.Tensor, batch: Any) -> float:
        """Backpropagate one of the task's losses into `network` (or into several networks that one loss
        trains together, as a VAE's encoder and decoder) and, at the end of an accumulation group, step their
        optimizers and schedules. `batch` is what the network read, (inputs, targets), or a dict of that by
        network for a loss that several networks computed (the report names the one at fault). Returns the
        loss's value; a non-finite one stops the run."""
        value = self.evaluated = loss.item()  # one sync per step, as a hand-written loop's logging does
        names = (network,) if isinstance(network, str) else network
        if not math.isfinite(value):
            batches = batch if isinstance(batch, dict) else {names[0]: batch}
            raise nonfinite_report(self, batches, loss, self.epoch, self.step + 1)
        factor = self.loss_weight / self.group  # the group's mean gradient, over all processes
        (loss * factor if factor != 1 else loss).backward()
        if self.boundary:
            for name in names:
                self.step_optimizer(name)
        return value

    def step_optimizer(self, network: str) -> None:
        optimizer = self.optimizers[network]
        if self.spec.train.grad_clip:
            norm = nn.utils.clip_grad_norm_(self.models[network].parameters(), self.spec.train.grad_clip)
        elif self.measure:
            norm = nn.utils.get_total_norm([p.grad for p in self.models[network].parameters() if p.grad is not None])
        if self.measure:  # the norm before clipping: what the clip threshold is compared with
            norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm  # FSDP's is a DTensor
            self.grad_norms.setdefault(network, []).append(norm.detach())
        if not self.closure(network):
            optimizer.step()
        elif any(group["lr"] > 0 for group in optimizer.param_groups):
            # A step of length 0 (a run resumed with more epochs starts where its schedule had ended) moves
            # nothing, and torch's strong-Wolfe search would divide by it.
            optimizer.step(self.reevaluation(network))
        optimizer.zero_grad(set_to_none=True)
        if network in self.schedulers:
            self.schedulers[network].step()

    def closure(self, network: str) -> bool:
        """Whether the network's optimizer re-evaluates the loss in its step (L-BFGS: optimizer.step(closure))."""
        return network in self.optimizers and OPTIMIZERS[self.spec.optimizer_of(network).type].closure

    def train_step(self, batch: Any) -> tuple[dict[str, float], int]:
        """The task's step on one batch. Where an optimizer re-evaluates the loss, the batch and the random streams
        are kept first, so that every re-evaluation draws what the first drew (augmentation, dropout, a
        diffusion's noise): the line search sees one function, not a new sample each time."""
        if any(self.closure(name) for name in self.optimizers):
            self.replay = (batch, random_streams(self))
        return self.task.train_step(self, batch)

    def reevaluation(self, network: str) -> Callable[[], float]:
        """The closure an L-BFGS step calls: the task's step again on the same batch and random draws, backward
        only. Its first call answers with the evaluation `update` has just made, whose gradients are in place,
        so a step costs what a hand-written closure loop costs."""
        if self.replay is None:
            raise UdlcError(f"{self.spec.optimizer_of(network).type} re-evaluates the batch in its step: call "
                            "Setup.train_step(batch), which keeps it, rather than the task's train_step")
        batch, streams = self.replay
        optimizer, calls = self.optimizers[network], 0

        def closure() -> float:
            nonlocal calls
            calls += 1
            if calls == 1:
                return self.evaluated
            set_streams(self, streams)
            optimizer.zero_grad(set_to_none=True)
            self.boundary = False  # `update` backpropagates only, and the task sees no step (an EMA waits)
            try:
                self.task.train_step(self, batch)
            finally:
                self.boundary = True
            return self.evaluated

        return closure


def fit(s: Setup) -> None:
    train = s.spec.train
    if s.processes is not None and any(s.closure(name) for name in s.optimizers):
        # Each process's line search would follow its own loss and take its own number of backward passes,
        # and DDP's gradient exchange needs every process in every one.
        raise UdlcError("an optimizer that re-evaluates the loss (lbfgs) trains on one process — run it without "
                        "torchrun or --devices")
    monitor, mode = monitored(s.spec, s.task, has_val=s.val is not None)
    if train.early_stopping is not None and s.state["bad"] >= train.early_stopping.patience:
        s.log.note("this run had stopped early; there is nothing left to train")
        return
    s.log.start()
    while s.state["epoch"] < train.epochs:
        s.epoch = s.state["epoch"] + 1
        release_layers(s)  # train.unfreeze: requires_grad as this epoch trains, from the epoch alone (so on resume)
        if not train_epoch(s, monitor, mode):
            break


def train_epoch(s: Setup, monitor: str, mode: str) -> bool:
    """One epoch: train, validate, log, checkpoint. False when early stopping ends the run."""
    train = s.spec.train
    for model in s.models.values():
        model.train()
    started = time.perf_counter()
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}  # samples behind each value: a GAN's generator loss is not on every batch
    seen = 0
    n_batches = len(s.train)
    accum = train.grad_accum
    every = max(4, -(-n_batches // GRAD_NORM_SAMPLES))  # at most 8 an epoch, and 1 step in 4
    s.grad_norms = {}
    for i, batch in enumerate(s.train.epoch_batches(s.generator)):
        s.boundary = (i + 1) % accum == 0 or i + 1 == n_batches
        s.group = min(accum, n_batches - i // accum * accum)
        s.measure = s.boundary and i // accum % every == 0
        s.loss_weight = s.train.weight if s.processes is not None else 1.0
        if s.processes is not None and not s.boundary:  # the processes exchange gradients at the group's end
            with accumulating(s.models.values()):
                values, size = s.train_step(batch)
        else:
            values, size = s.train_step(batch)
        size *= s.loss_weight > 0  # a stand-in row (Shard) counts for nothing
        for key, value in values.items():
            sums[key] = sums.get(key, 0.0) + value * size
            counts[key] = counts.get(key, 0) + size
        seen += size
        if s.boundary:
            s.state["step"] += 1
        s.log.batch(i + 1, n_batches)
    seconds = time.perf_counter() - started
    if s.processes is not None:  # the epoch's values over every process's slices
        keys = sorted(sums)
        totals = s.processes.sum([sums[k] for k in keys] + [counts[k] for k in keys] + [seen])
        sums, counts, seen = dict(zip(keys, totals)), dict(zip(keys, totals[len(keys):])), int(totals[-1])

    row: dict[str, Any] = {"epoch": s.epoch, **{f"train_{k}": v / counts[k] for k, v in sums.items()}}
    if s.val is not None:
        row.update({f"val_{k}": v for k, v in s.task.evaluate(s, s.val).items()})
    first = next(iter(s.optimizers.values()))
    row["lr"] = first.param_groups[0]["lr"]
    for name, norms in s.grad_norms.items():
        row["grad_norm" if len(s.optimizers) == 1 else f"grad_norm_{name}"] = torch.stack(norms).mean().item()
    row.update(seconds=round(seconds, 4), samples_per_s=round(seen / max(seconds, 1e-9), 1))
    due = time.monotonic() - s.written_at >= train.checkpoint_seconds
    if s.processes is not None:  # the main process's row and clock decide for all: they must not drift apart
        row, due = s.processes.share((row, due))
    for plateau in s.plateaus.values():  # its scale enters the scheduler's factor from the next step on
        plateau.update(row[plateau.spec.monitor])
    if update_best(s.state, row.get(monitor), mode, train.early_stopping):
        states = saved_models(s)  # sharded: every process gathers
        if s.main:
            s.best_state = {"models": {name: {k: v.detach().clone() for k, v in state.items()}
                                       for name, state in states.items()}, "epoch": s.epoch, monitor: row.get(monitor),
                            **base_entry(s)}
    s.state["epoch"] = s.epoch
    stop = train.early_stopping
    stopping = stop is not None and s.state["bad"] >= stop.patience
    # The row first, then the checkpoints: a kill in between loses no row, and a resume drops rows
    # past its checkpoint.
    s.log.epoch(row)
    s.task.after_epoch(s)
    if s.epoch == 1 or stopping or s.epoch == train.epochs or due:
        save_checkpoints(s)
    if s.on_epoch is not None:
        s.on_epoch(row)
    if stopping:
        value = "no value yet" if s.state["best"] is None else \
            f"best {s.state['best']:.4g} at epoch {s.state['best_epoch']}"
        s.log.note(f"early stopping: {monitor} has not improved for {stop.patience} "
                   f"epoch{'s' * (stop.patience != 1)} ({value})")
        return False
    return True


def monitored(spec: Any, task: Any, has_val: bool) -> tuple[str, str]:
    """What decides the best checkpoint and early stopping, and whether lower or higher is better."""
    stop = spec.train.early_stopping
    name = stop.monitor if stop else task.monitor(has_val)
    mode = stop.mode if stop else "auto"
    if mode == "auto":
        mode = "max" if task.higher_is_better(name) else "min"
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
