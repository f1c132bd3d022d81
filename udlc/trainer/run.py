"""A training run: its folder, its setup from the spec, the loop, the test metrics, the export.

    runs/<name>/<run-id>/
        spec.yaml          the spec as trained (overrides applied, data paths absolute)
        run.json           what export and predict need: task, classes, normalization, status
        metrics.csv  metrics.jsonl
        checkpoints/last.safetensors (+ .json)   checkpoints/best.safetensors (+ .json)
        results.json       test metrics
        model.onnx         when the spec has export.onnx
"""

from __future__ import annotations

import json
import math
import os
import time
from contextlib import contextmanager, nullcontext
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from udlc import __version__
from udlc.compiler.pipeline import Compiled, compile_spec
from udlc.errors import SpecError, SpecErrors, UdlcError


def train_spec(compiled: Compiled, out: Path = Path("runs"), resume: Path | None = None, quiet: bool = False) -> Path:
    with _deterministic(compiled.spec.train.deterministic):
        return _train(compiled, out, resume, quiet)


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


def _train(compiled: Compiled, out: Path, resume: Path | None, quiet: bool) -> Path:
    import torch

    from udlc.compiler.lower import lower
    from udlc.data import augment_batch, make_batches
    from udlc.trainer.loop import Setup, fit, restore_last
    from udlc.trainer.logging import EpochLog
    from udlc.trainer.objectives import higher_is_better, make_loss, make_optimizer
    from udlc.trainer.schedules import Plateau, lr_factor

    spec, graph = compiled.spec, compiled.graph
    train = spec.train
    device = pick_device(train.device)
    torch.manual_seed(spec.seed)
    data = load_dataset(compiled)

    run_dir = resume or new_run_dir(out, spec.name)
    if resume is None:
        write_run_files(run_dir, compiled, data)

    model = lower(graph, seed=spec.seed).to(device)
    loss_fn = make_loss(spec.loss, device)
    optimizer, decay_note = make_optimizer(model, spec.optimizer)
    batch = partial(make_batches, device=device)
    train_batches = batch(data.x_train, data.y_train, batch_size=train.batch_size, shuffle=True)
    eval_size = train.eval_batch_size or max(train.batch_size, 256)
    val_batches = batch(data.x_val, data.y_val, batch_size=eval_size, shuffle=False) if len(data.x_val) else None
    steps_per_epoch = math.ceil(len(train_batches) / train.grad_accum)
    factor = lr_factor(spec.schedule, spec.optimizer.lr, steps_per_epoch, steps_per_epoch * train.epochs)
    plateau = None
    if spec.schedule.type == "plateau":
        plateau = Plateau(spec.schedule, spec.optimizer.lr, "max" if higher_is_better(spec.schedule.monitor) else "min")
    constant = spec.schedule.type == "constant" and spec.schedule.warmup_steps == 0
    scheduler = None if constant else torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: factor(step) * (plateau.scale if plateau else 1.0))
    bf16 = train.precision == "bf16" or (train.precision == "auto" and device.type == "cuda")
    autocast = partial(torch.autocast, device.type, dtype=torch.bfloat16) if bf16 else nullcontext
    augments = list(spec.data.augment)
    log = EpochLog(run_dir, train.epochs, quiet=quiet)
    s = Setup(spec=spec, graph=graph, model=model, optimizer=optimizer, scheduler=scheduler, plateau=plateau,
              loss_fn=loss_fn, train=train_batches, val=val_batches,
              augment=(lambda x, g: augment_batch(x, augments, g)) if augments else None,
              generator=torch.Generator().manual_seed(spec.seed), device=device, autocast=autocast,
              run_dir=run_dir, log=log)
    if resume is not None:
        restore_last(s)
        log.resume(s.state["epoch"])
        log.note(f"resuming {run_dir} after epoch {s.state['epoch']}")
    if train.compile:
        s.model = torch.compile(model)
    log.note(f"run {run_dir} · {device.type}{' bf16' if bf16 else ''} · {graph.total_params:,} parameters · "
             f"{len(data.x_train)}/{len(data.x_val)}/{len(data.x_test)} train/val/test samples · {decay_note}")
    set_status(run_dir, "running")
    try:
        fit(s)
    except BaseException as e:  # a diverged run is "failed"; Ctrl-C leaves it "stopped", resumable
        set_status(run_dir, "failed" if isinstance(e, UdlcError) else "stopped")
        raise
    finally:
        log.close()

    s.model = model  # evaluate and export the plain module, not a compiled wrapper
    final = final_checkpoint(run_dir, spec)
    load_weights(model, final, device)
    results = {"checkpoint": final.name, **test_metrics(s, data)}
    (run_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    log.note("test: " + "  ".join(f"{k} {v:.4f}" for k, v in results.items() if isinstance(v, float)))
    set_status(run_dir, "done")
    if spec.export.onnx is not None:
        from udlc.exporter.onnx import export_run

        path = export_run(run_dir)
        log.note(f"exported {path}")
    return run_dir


def pick_device(choice: str):
    import torch

    if choice == "cuda" and not torch.cuda.is_available():
        raise UdlcError("train.device is 'cuda' but no CUDA device is available — use 'auto' or 'cpu'")
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(choice)


def load_dataset(compiled: Compiled) -> Any:
    """The spec's data, split and normalized; a data mistake becomes a SpecError at its place in the spec."""
    from udlc.data import prepare
    from udlc.spec.training import CLASSIFICATION_LOSSES

    spec = compiled.spec
    # A classification loss makes the task classification; otherwise the source's own task stands,
    # and check_outputs says so when it does not fit the loss.
    task = spec.data.task or ("classification" if spec.loss.type in CLASSIFICATION_LOSSES else None)
    (shape,) = compiled.graph.inputs.values() if len(compiled.graph.inputs) == 1 else (None,)
    if shape is None:
        raise SpecError("training reads one input; this model has several", path="model.inputs",
                        span=compiled.doc.span(("model", "inputs")))
    try:
        data = prepare(spec.data, shape, compiled.base_dir, spec.seed, task)
    except SpecError as e:
        if e.span is None and e.path:
            e.span = compiled.doc.span(tuple(e.path.split(".")))
        raise
    check_outputs(compiled, data)
    return data


def check_outputs(compiled: Compiled, data: Any) -> None:
    """The last layer must produce what the loss and the data need."""
    out = compiled.graph.output_shapes[0] or ()
    loss = compiled.spec.loss.type
    last = compiled.graph.nodes[compiled.graph.outputs[0]]
    where = {"path": last.path, "span": last.span}
    if loss == "cross_entropy":
        if len(out) != 1 or out[0] != data.n_classes:
            raise SpecErrors([SpecError(
                f"cross_entropy needs one logit per class: the data has {data.n_classes} classes but the model "
                f"outputs {out}", hint=f"end the model with `linear: {data.n_classes}`", **where)])
    elif loss == "bce":
        if data.n_classes not in (None, 2) or out != (1,):
            raise SpecErrors([SpecError(
                f"bce needs one logit for two classes: the data has {data.n_classes} classes, the model outputs {out}",
                hint="end the model with `linear: 1`, or use cross_entropy for more classes", **where)])
    elif data.task == "classification":
        raise SpecErrors([SpecError(f"{loss} is a regression loss but the data is classification",
                                    path="loss", span=compiled.doc.span(("loss",)),
                                    hint="use cross_entropy, or set data.task: regression")])
    elif tuple(out) != tuple(data.y_train.shape[1:]):
        raise SpecErrors([SpecError(f"the targets have shape {tuple(data.y_train.shape[1:])} but the model outputs "
                                    f"{out}", hint=f"end the model with `linear: {data.y_train.shape[-1]}`",
                                    **where)])


def test_metrics(s: Any, data: Any) -> dict[str, float]:
    from udlc.data import make_batches
    from udlc.trainer.loop import evaluate

    if not len(data.x_test):
        return {}
    batches = make_batches(data.x_test, data.y_test, batch_size=256, shuffle=False, device=s.device)
    return {f"test_{k}": v for k, v in evaluate(s, batches).items()}


def final_checkpoint(run_dir: Path, spec: Any) -> Path:
    """The weights a run ends with: the best epoch's, unless early stopping says not to restore them."""
    stop = spec.train.early_stopping
    best = run_dir / "checkpoints" / "best"
    if (stop is None or stop.restore_best) and best.with_suffix(".safetensors").is_file():
        return best
    return run_dir / "checkpoints" / "last"


def load_weights(model: Any, path: Path, device: Any = "cpu") -> None:
    from udlc.trainer import checkpoint

    model.load_state_dict(checkpoint.load(path, device)["model"])


def new_run_dir(out: Path, name: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        run_dir = out / name / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            run_dir.mkdir(parents=True)
            return run_dir
        except FileExistsError:
            continue
    raise UdlcError(f"cannot create a run folder under {out / name}")


def write_run_files(run_dir: Path, compiled: Compiled, data: Any) -> None:
    spec_data = json.loads(json.dumps(compiled.doc.data))  # a deep copy
    if compiled.spec.data.is_file():
        spec_data["data"]["source"] = str((compiled.base_dir / compiled.spec.data.source).resolve())
    (run_dir / "spec.yaml").write_text(yaml.safe_dump(spec_data, sort_keys=False))
    info = {
        "udlc_version": __version__,
        "spec_file": str(Path(compiled.doc.file).resolve()),
        "name": compiled.spec.name,
        "status": "created",
        "task": data.task,
        "classes": data.classes,
        "input_names": list(compiled.graph.inputs),
        "input_shapes": [list(s) for s in compiled.graph.inputs.values()],
        "normalization": data.normalization.to_json(),
    }
    (run_dir / "run.json").write_text(json.dumps(info, indent=2) + "\n")


def read_run(run_dir: Path) -> tuple[dict, Compiled]:
    """A run folder's run.json and its spec, compiled again; a clear error for anything else."""
    if not run_dir.is_dir():
        raise UdlcError(f"no run folder at {run_dir}")
    info_path, spec_path = run_dir / "run.json", run_dir / "spec.yaml"
    if not info_path.is_file() or not spec_path.is_file():
        raise UdlcError(f"{run_dir} is not a udlc run folder (no run.json and spec.yaml) — "
                        "give the folder `udlc train` printed")
    return json.loads(info_path.read_text()), compile_spec(spec_path, check_files=False)


def set_status(run_dir: Path, status: str) -> None:
    path = run_dir / "run.json"
    info = json.loads(path.read_text())
    info["status"] = status
    path.write_text(json.dumps(info, indent=2) + "\n")


def resume_run(run_dir: Path, quiet: bool = False) -> Path:
    _, compiled = read_run(run_dir)
    if not (run_dir / "checkpoints" / "last.safetensors").is_file():
        raise UdlcError(f"{run_dir} has no checkpoint to resume from (checkpoints/last.safetensors)")
    return train_spec(compiled, resume=run_dir, quiet=quiet)
