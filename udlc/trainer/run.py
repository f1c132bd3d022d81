"""A training run: its setup from the spec and the task, the loop, the test metrics. The run folder's
layout is udlc.runs' business; exporting is the caller's (udlc.train, `udlc train`)."""

from __future__ import annotations

import math
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, TYPE_CHECKING

import yaml

from udlc.errors import UdlcError
from udlc.runs import RunFolder, checkpoint
from udlc.runs.adapters import load_base
from udlc.runs.diagnosis import diagnose
from udlc.spec.model import tree_model
from udlc.trainer.starting import start_weights, write_run_files

if TYPE_CHECKING:  # annotations only: the check path imports no more than it needs
    from udlc.compiler.pipeline import Compiled

# Overrides a resumed run accepts: anything else would change what the run is.
RESUME_OVERRIDES = ("train.epochs",)


class TrainingInterrupted(UdlcError):
    exit_code = 130


def train_spec(compiled: Compiled, out: Path = Path("runs"), resume: RunFolder | None = None, quiet: bool = False,
               init_from: Path | None = None, on_epoch: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """Train a compiled spec into a new run folder under `out` (or continue `resume`); returns the folder.
    `on_epoch` sees each epoch's logged row once its checkpoints are written; an exception it raises ends the
    run there ("stopped", resumable), as a tuner's pruning does. So do Ctrl-C and SIGTERM; any other error
    ends it "failed", its one-line message in run.json's `error`."""
    ending = Ending()
    with _deterministic(compiled.spec.train.deterministic), _sigterm_interrupts():
        try:
            if tree_model(compiled.spec) is not None:  # no network: fitted by udlc.trainer.trees, not by the loop
                from udlc.trainer.trees import train_trees

                return train_trees(compiled, out, resume, quiet, init_from, on_epoch, ending)
            return _train(compiled, out, resume, quiet, init_from, on_epoch, ending)
        except BaseException as e:
            ending.record(e)
            raise


@dataclass
class Ending:
    """What a run that ends badly writes to run.json: filled in by _train as the run takes shape (the folder
    on the main process only; the loop's Setup once it exists)."""

    run: RunFolder | None = None
    started: float | None = None
    setup: Any = None
    stopped_by: BaseException | None = None  # what on_epoch raised: the caller's stop, not an error

    def record(self, e: BaseException) -> None:
        if self.run is None:
            return  # no folder yet (or not the main process): a run that cannot start leaves nothing behind
        stopped = isinstance(e, (KeyboardInterrupt, TrainingInterrupted)) or e is self.stopped_by
        ended = time.time()
        fields: dict[str, Any] = {"ended": _now(ended), "status": "stopped" if stopped else "failed",
                                  "error": None if stopped else one_line(e)}
        if self.started is not None:
            fields["seconds"] = round(ended - self.started, 3)
        if self.setup is not None:
            fields.update(epochs_done=self.setup.state["epoch"], best_epoch=self.setup.state["best_epoch"])
        try:
            self.run.update_info(**fields)
        except OSError:
            pass  # the folder went away (a full disk, a removed tree): the error itself still reaches the user


def one_line(e: BaseException) -> str:
    """An error as run.json and `udlc runs` show it: a UdlcError's own words, others with their type."""
    text = str(e).strip().splitlines()
    first = text[0] if text else ""
    return first if isinstance(e, UdlcError) and first else f"{type(e).__name__}: {first}".rstrip(": ")


@contextmanager
def _sigterm_interrupts():
    """SIGTERM (a scheduler's or `kill`'s stop) ends a run as Ctrl-C does: recorded "stopped", resumable.
    Only in a lone process's main thread: signal handlers belong there, and under torchrun or --devices the
    launcher's SIGTERM stops the other processes after one failed, which its own report explains."""
    import signal
    import threading

    from udlc.trainer.distributed import launched_processes

    if threading.current_thread() is not threading.main_thread() or launched_processes() > 1:
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    before = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


@contextmanager
def _deterministic(enabled: bool):
    """Deterministic algorithms for this run only: the caller's process gets its settings back."""
    import torch

    before = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    if enabled:
        # cuBLAS refuses deterministic mode without a fixed workspace; set before its first use.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0])
        torch.backends.cudnn.benchmark = before[1]


def _train(compiled: Compiled, out: Path, resume: RunFolder | None, quiet: bool, init_from: Path | None,
           on_epoch: Callable[[dict[str, Any]], None] | None, ending: Ending) -> Path:
    import torch

    from udlc.data import augment_batch
    from udlc.trainer import distributed
    from udlc.trainer.device import channels_last, pick_device, precision, tf32
    from udlc.trainer.logging import EpochLog, QuietLog
    from udlc.trainer.loop import Setup, fit
    from udlc.trainer.resume import restore_last
    from udlc.objectives.finetune import held
    from udlc.objectives.optimizers import make_optimizer
    from udlc.objectives.schedules import PlateauScale, lr_factor

    spec, task = compiled.spec, compiled.task
    train = spec.train
    processes = distributed.start(train.device)
    if processes is not None and not task.splits_batches:
        raise UdlcError(f"task {task.name} trains on one process: its batches are whole graphs, which cannot be "
                        "split between processes — run it without torchrun or --devices")
    if processes is not None and train.unfreeze:  # DDP and FSDP fix the trained parameters when they wrap
        raise UdlcError("train.unfreeze changes which layers train during the run, and DDP and FSDP fix that when "
                        "they start — run it without torchrun or --devices, or each stage as a run (--init-from)")
    main = processes is None or processes.main
    device = pick_device(train.device, processes)
    torch.manual_seed(spec.seed)
    data = task.load_data(compiled)  # drawn from the spec's seed: train.seed (--seeds) keeps the split
    state = task.start(compiled, data, device)  # draws no random numbers
    seed = spec.init_seed
    if seed != spec.seed:
        torch.manual_seed(seed)

    models = build_models(compiled, device)
    if channels_last(train.memory_format, device, models):  # a convolution's output follows its weight's layout
        for model in models.values():
            model.to(memory_format=torch.channels_last)
    # Before the run folder exists: a run that cannot start leaves nothing behind.
    start = start_weights(models, compiled, init_from) if resume is None else None
    notes = [start.text] if start is not None else []
    if resume is not None and spec.lora is not None:  # LoRA's checkpoints leave the base out: load it as it first was
        notes += [note for note in [load_base(models, compiled, resume.info)] if note]
    notes += getattr(data, "notes", [])  # what the loader read, said once (an edge list's directions)
    fsdp = processes is not None and train.strategy == "fsdp"
    if fsdp:  # before the optimizers: they hold the shards
        for name in compiled.graphs:
            distributed.shard(models[name], device, processes)
    run = resume or (RunFolder.create(out, spec.name) if main else None)
    if resume is None and main:
        write_run_files(run, compiled, {**task.info(compiled, state),
                                        "init_from": str(start.source.path.resolve()) if start else None,
                                        "init_sha256": start.sha256 if start else None})
    ending.run = run if main else None
    if on_epoch is not None:
        on_epoch = _marking_stops(on_epoch, ending)
    if resume is None and processes is not None:  # the main process made the folder; the others only learn
        run = RunFolder(processes.share(str(run.path) if main else None))  # its path: it may be on its disk alone
    batch = partial(task.batches, state, device=device)
    train_batches = batch("train", batch_size=train.batch_size, shuffle=True)
    generator = torch.Generator().manual_seed(seed)
    if processes is not None:  # the epoch order from a generator alike in all; each its own stream besides
        train_batches = distributed.Shard(train_batches, processes, order=generator)
        generator = torch.Generator().manual_seed(seed + 1 + processes.rank)
        torch.manual_seed(seed + 1 + processes.rank)
    eval_size = train.eval_batch_size or max(train.batch_size, 256)
    val_batches = batch("val", batch_size=eval_size, shuffle=False)
    if processes is not None and task.splits_evaluation and val_batches is not None:  # each validates its share
        val_batches = distributed.Shard(val_batches, processes, order=None)
    steps_per_epoch = math.ceil(len(train_batches) / train.grad_accum)

    optimizers, schedulers, plateaus = {}, {}, {}
    for name in compiled.graphs:
        model = models[name]
        opt_spec, schedule = spec.optimizer_of(name), spec.schedule_of(name)
        # Held from the start: what train.unfreeze releases later (no gradient until then), LoRA's adapters only.
        optimizers[name], decay_note = make_optimizer(model, opt_spec, compiled.graphs[name],
                                                      held(model, spec, compiled.graphs[name]))
        notes.append(decay_note if len(models) == 1 else f"{name}: {decay_note}")
        factor = lr_factor(schedule, opt_spec.lr, task.optimizer_steps(name, steps_per_epoch),
                           task.optimizer_steps(name, steps_per_epoch * train.epochs))
        plateau = None
        if schedule.type == "plateau":
            plateau = plateaus[name] = PlateauScale(schedule, opt_spec.lr,
                                               "max" if task.higher_is_better(schedule.monitor) else "min")
        if schedule.type != "constant" or schedule.warmup_steps:
            schedulers[name] = torch.optim.lr_scheduler.LambdaLR(
                optimizers[name], lambda step, f=factor, p=plateau: f(step) * (p.scale if p else 1.0))
    bf16, autocast = precision(train, device)
    augments = list(spec.data.augment)
    log = EpochLog(run.path, train.epochs, quiet=quiet) if main else QuietLog(run.path, train.epochs)
    s = Setup(spec=spec, task=task, graphs=compiled.graphs, models=models, optimizers=optimizers,
              schedulers=schedulers, plateaus=plateaus, train=train_batches, val=val_batches,
              augment=(lambda x, g: augment_batch(x, augments, g)) if augments else None,
              generator=generator, device=device, autocast=autocast, run=run, log=log, run_state=state,
              on_epoch=on_epoch, processes=processes)
    ending.setup = s
    if resume is not None:
        restore_last(s)
        s.written_epoch = s.state["epoch"]
        log.resume(s.state["epoch"])
        log.note(f"resuming {run} after epoch {s.state['epoch']}")
    if processes is not None and not fsdp:  # after the resume: DDP starts every process from the main one's weights
        s.models = {name: distributed.wrap(model, device) if name in optimizers else model
                    for name, model in models.items()}
    if processes is not None:
        notes.append(f"{processes.world} processes ({train.strategy}), {train.batch_size} samples a batch in all")
    if train.compile:
        s.models = {name: torch.compile(model) for name, model in s.models.items()}
    if resume is None and main:
        log.tensorboard().graphs(compiled.graphs)
    params = sum(g.total_params for g in compiled.graphs.values())
    arithmetic = " bf16" if bf16 else " fp64" if train.precision == "fp64" else ""
    log.note(f"run {run} · {device.type}{arithmetic} · {params:,} parameters · "
             f"{task.sizes(state)} train/val/test samples · " + " · ".join(notes))
    started = time.time()
    ending.started = started
    if main:
        run.update_info(status="running", device=str(device), started=_now(started), ended=None, error=None)
    try:
        with tf32(device):
            fit(s)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the run stays resumable from its last checkpoint
        if not run.has_checkpoint("last"):  # the first checkpoint comes with the first epoch's end
            raise TrainingInterrupted(f"interrupted during epoch {s.state['epoch'] + 1}, before any epoch "
                                      f"finished: there is no checkpoint, so nothing can be resumed — start again "
                                      f"with: udlc train {compiled.doc.file}") from None
        raise TrainingInterrupted(f"interrupted after epoch {s.state['epoch']}; the last checkpoint is kept — "
                                  f"continue with: udlc train --resume {run}") from None
    finally:
        log.close()
    if not main:  # the test split, results and diagnosis are the main process's
        return run.path

    s.models = build_models(compiled, device) if fsdp else models  # plain modules, not wrappers or shards
    final = run.final_checkpoint(spec)
    checkpoint.load_models(s.models, final, device)
    results = {"checkpoint": final.name, **test_metrics(s)}
    run.write_results(results)
    task.after_training(s)
    log.note("test: " + "  ".join(f"{k} {v:.4f}" for k, v in results.items() if isinstance(v, float)))
    diagnosis = diagnose(run.metrics_rows(), task.loss_floor_zero)
    if diagnosis is not None:
        log.note(f"diagnosis: {diagnosis}")
    run.update_info(status="done", diagnosis=diagnosis.to_json() if diagnosis else None, **_ended(started, s))
    return run.path


def _marking_stops(on_epoch: Callable[[dict[str, Any]], None], ending: Ending) -> Callable[[dict[str, Any]], None]:
    """on_epoch, with what it raises noted as the caller's stop (a tuner's pruning), not the run's failure."""
    def marked(row: dict[str, Any]) -> None:
        try:
            on_epoch(row)
        except BaseException as e:
            ending.stopped_by = e
            raise
    return marked


def build_models(compiled: Compiled, device: Any) -> dict[str, Any]:
    """The spec's networks, initialized from the seed (train.freeze's layers frozen; with `lora`, adapters on a
    frozen base), and the task's shadow copies of them (an EMA)."""
    import copy

    from udlc.compiler.lower import lower
    from udlc.objectives.finetune import put_adapters, set_trainable

    seed = compiled.spec.init_seed
    models = {name: lower(graph, seed=seed + i).to(device) for i, (name, graph) in enumerate(compiled.graphs.items())}
    for i, (name, graph) in enumerate(compiled.graphs.items()):  # frozen: no gradient, so no optimizer moves them
        put_adapters(models[name], compiled.spec, graph, seed + i)
        set_trainable(models[name], compiled.spec, graph, epoch=1)  # the loop releases train.unfreeze's later
    for shadow, source in compiled.task.shadows(compiled).items():
        models[shadow] = copy.deepcopy(models[source]).requires_grad_(False)
    return models


def _now(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t))


def _ended(started: float, s: Any) -> dict[str, Any]:
    ended = time.time()
    return {"ended": _now(ended), "seconds": round(ended - started, 3), "epochs_done": s.state["epoch"],
            "best_epoch": s.state["best_epoch"]}


def test_metrics(s: Any) -> dict[str, float]:
    test = s.task.batches(s.run_state, "test", batch_size=256, shuffle=False, device=s.device)
    return {} if test is None else {**{f"test_{k}": v for k, v in s.task.evaluate(s, test).items()},
                                    **s.task.quality(s)}


def resume_run(run_dir: Path, overrides: Iterable[str] = (), quiet: bool = False) -> Path:
    """Continue a run from its last checkpoint; `--set train.epochs=N` extends a finished one."""
    from udlc.tasks import compile_spec

    run = RunFolder.open(run_dir)
    for text in overrides:
        if text.partition("=")[0].strip() not in RESUME_OVERRIDES:
            raise UdlcError(f"--resume continues a run as it was: it takes only --set {', '.join(RESUME_OVERRIDES)} "
                            f"(to train it longer), not --set {text}")
    if not run.has_checkpoint("last"):
        raise UdlcError(f"{run} has no checkpoint to resume from (checkpoints/last.safetensors)")
    compiled = compile_spec(run.spec_file, overrides, check_files=False)
    if overrides:  # the folder's spec says what the run trains for
        run.write_spec(yaml.safe_dump(compiled.doc.data, sort_keys=False))
    return train_spec(compiled, resume=run, quiet=quiet)
