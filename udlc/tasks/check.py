"""The whole check of a spec: load → validate → resolve (udlc.compiler.pipeline) → the task check. `compile_spec`
(and compile_doc, compile_text) is the one that `udlc check`, train, export and the API run."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Iterable

from udlc.compiler import pipeline
from udlc.compiler.pipeline import Compiled
from udlc.errors import SpecError, SpecErrors
from udlc.spec.loader import Document, load_text
from udlc.spec.optimizers import check_closure_optimizers
from udlc.tasks import load_tasks
from udlc.tasks.registry import Task, make_task


def compile_spec(path: str | Path, overrides: Iterable[str] = (), *, check_files: bool = True) -> Compiled:
    """load → validate → resolve → task check. Raises SpecErrors with every problem found.
    `check_files=False` skips the data file (exporting a run needs no data)."""
    compiled = pipeline.resolve_spec(path, overrides, check_files=check_files)
    return check_task(compiled, check_files)


def compile_text(text: str, file: str = "<spec>") -> Compiled:
    return compile_doc(load_text(text, file))


def compile_doc(doc: Document, *, check_files: bool = True) -> Compiled:
    return check_task(pipeline.resolve_doc(doc, check_files=check_files), check_files)


def check_mixing(compiled: Compiled, task: Task) -> list[SpecError]:
    """mixup and cutmix blend targets: only a task whose step takes them (supervised) may list them."""
    from udlc.spec.augments import MIXING_AUGMENTS

    if task.mixes_targets:
        return []
    return [SpecError(f"'{aug.type}' mixes samples and their targets, and task {task.name} does not train on "
                      "labelled targets", path=f"data.augment[{i}]", span=compiled.doc.span(("data", "augment", i)),
                      hint="drop it, or use an augmentation of the inputs alone (random_crop, rotate, noise, …)")
            for i, aug in enumerate(compiled.spec.data.augment) if aug.type in MIXING_AUGMENTS]


def check_text_augments(compiled: Compiled) -> list[SpecError]:
    """The text augmentations change a CSV's text column (`data.text`): data without one has no words to change."""
    from udlc.spec.augments import AUGMENTS

    data = compiled.spec.data
    if data.text is not None:
        return []
    return [SpecError(f"'{aug.type}' changes a text column's words, and {data.source} has no text column",
                      path=f"data.augment[{i}]", span=compiled.doc.span(("data", "augment", i)),
                      hint="drop it; text augmentations are for task: sequence_classification on a CSV's text "
                           "column (`text: <column>`)")
            for i, aug in enumerate(data.augment) if AUGMENTS[aug.type].text_only]


def check_strategy(compiled: Compiled, task: Task) -> list[SpecError]:
    """FSDP shards the trained networks; a copy of one kept beside it (an EMA) would need sharding alike."""
    if compiled.spec.train.strategy != "fsdp" or not task.shadows(compiled):
        return []
    return [SpecError(f"train.strategy fsdp shards the networks, and task {task.name} keeps a moving-average copy "
                      f"({', '.join(task.shadows(compiled))}) that it does not shard", path="train.strategy",
                      span=compiled.doc.span(("train", "strategy")),
                      hint="use strategy: ddp (the default), or turn the moving average off (ema: 0)")]


def check_loss(compiled: Compiled, task: Task) -> list[SpecError]:
    """`loss:` is given exactly when the task takes one; `data.nodes` only for a task that reads graphs."""
    doc, given = compiled.doc, compiled.spec.loss is not None
    if compiled.spec.data.nodes is not None and not task.reads_graphs:
        return [SpecError(f"`nodes` is a graph's node file, and task {task.name} reads no graph", path="data.nodes",
                          span=doc.span(("data", "nodes"), key=True),
                          hint="drop `nodes`, or write `task: node_classification`")]
    if task.takes_loss and not given:
        return [SpecError(f"task {task.name} needs a `loss`", path="loss", span=doc.span(()),
                          hint="e.g. `loss: cross_entropy` for classes, `loss: mse` for values")]
    if given and not task.takes_loss:
        return [SpecError(f"task {task.name} defines its own losses; `loss` is not used", path="loss",
                          span=doc.span(("loss",), key=True), hint=f"drop `loss` (options go under `task: {{{task.name}: "
                          "{...}}`)")]
    return []


def check_metrics(compiled: Compiled) -> list[SpecError]:
    """Each metric measures what the loss trains: classes (accuracy, f1_macro, top_k) or values (mae, rmse, r2)."""
    from udlc.spec.losses import LOSSES
    from udlc.spec.metrics import METRICS

    loss = compiled.spec.loss
    if loss is None:
        return []
    trains = "classification" if LOSSES[loss.type].classification else "regression"
    fitting = [e.name for e in METRICS if e.task == trains]
    words = {"classification": "classes", "regression": "values"}
    return [SpecError(f"{m.type} measures {words[METRICS[m.type].task]}, and loss {loss.type} trains the model to "
                      f"give {words[trains]}", path=f"metrics[{i}]", span=compiled.doc.span(("metrics", i)),
                      hint=f"use {', '.join(fitting)}, or drop it")
            for i, m in enumerate(compiled.spec.metrics) if METRICS[m.type].task != trains]


def check_sections(compiled: Compiled, task: Task, check_files: bool) -> list[SpecError]:
    """`init:` against the weights' headers, `tune:` against the spec; imported only for a spec that has them."""
    errors: list[SpecError] = []
    if compiled.spec.init is not None and check_files:
        from udlc.weights import check_init

        errors = check_init(compiled)
    if compiled.spec.tune is not None and not errors:
        from udlc.spec.tuning import check_tune

        errors = check_tune(compiled, task, partial(_compile_with, check_files=check_files))
    return errors


def check_task(compiled: Compiled, check_files: bool) -> Compiled:
    """Bind the spec's task and check that its networks and data fit it (no torch)."""
    load_tasks(_task_name(compiled.spec.task))
    task = make_task(compiled.spec.task, compiled.doc)
    errors = (check_loss(compiled, task) or check_mixing(compiled, task) or check_text_augments(compiled)
              or check_strategy(compiled, task)
              or check_closure_optimizers(compiled.spec, compiled.doc) or task.check(compiled, check_files)
              or check_metrics(compiled) or check_sections(compiled, task, check_files))
    if errors:
        raise SpecErrors(errors)
    compiled.task = task
    return compiled


def data_listing(compiled: Compiled) -> str | None:
    """What `udlc check` says of the data beyond its shape: for sound clips (a folder, or a CSV naming them) their
    classes, file counts and spread of lengths, read from the files' headers (udlc.data.audio_headers); for a
    folder of pictures a supervised task classifies, its classes and file counts, from the folder's listing alone.
    None for other data. Called on a spec that passed the task check, so the data reads as the check read it."""
    from udlc.data.layout import data_file, picture_files
    from udlc.spec.sources import is_folder

    data = compiled.spec.data
    if compiled.listing is not None:  # the task check has read it already
        return compiled.listing
    if not data.is_file():
        return None
    try:
        path = data_file(data, compiled.base_dir)
        if data.sound:
            from udlc.data.audio_headers import read_sound

            return read_sound(path, data, compiled.base_dir).listing
        if not is_folder(data.source) or getattr(compiled.task, "name", None) != "supervised":
            return None
        classes, files, labels = picture_files(path)
    except SpecError:  # a generative task's folder of loose pictures, read otherwise: nothing more to say
        return None
    counts = [labels.count(i) for i in range(len(classes))]
    shown = ", ".join(f"{c} {n}" for c, n in zip(classes[:8], counts)) + (" …" if len(classes) > 8 else "")
    return f"{path.name}/: {len(files)} pictures in {len(classes)} classes ({shown})"


def _task_name(raw: Any) -> str:
    """The task a spec's `task:` names (`name`, `{type: name, ...}`, `{name: {...}}`); '' when it names none, which
    make_task reports."""
    if isinstance(raw, dict):
        raw = raw.get("type", next(iter(raw)) if len(raw) == 1 else "")
    return raw if isinstance(raw, str) else ""


def _compile_with(doc: Document, overrides: list[str], check_files: bool) -> Compiled:
    """`doc` with --set overrides applied, through the whole check: how udlc.spec.tuning tries a tune's values."""
    pipeline.apply_overrides(doc, overrides)
    return compile_doc(doc, check_files=check_files)
