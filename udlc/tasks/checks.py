"""Checks every task shares, at `udlc check` time (no torch): the spec's sections keyed by network, the values
early stopping and plateau watch, and pointing a data error at its line."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from udlc.errors import SpecError, did_you_mean, one_of

if TYPE_CHECKING:
    from udlc.compiler.pipeline import Compiled
    from udlc.tasks.registry import Task


def check_sections(compiled: Compiled, task: Task) -> list[SpecError]:
    """What every task checks of the training sections: `optimizers:`/`schedules:` name its networks, and what
    early stopping and a plateau schedule watch is a value it logs."""
    spec = compiled.spec
    return (check_subsets(compiled, task) + check_network_keys(compiled) + check_sample_rates(compiled)
            + check_monitors(compiled, task.logged(spec, spec.data.split[1] > 0)))


def check_sample_rates(compiled: Compiled) -> list[SpecError]:
    """A layer that takes the clips' sample rate (the mel scale's) says the rate the data reads them at: another
    number would train without a word on filters placed at the wrong frequencies."""
    data = compiled.spec.data
    if not data.sound:
        return []
    return [SpecError(f"{node.op} places its filters for {node.config.sample_rate} Hz, but data.sample_rate reads the "
                      f"clips at {data.sample_rate} Hz", path=f"{node.path}.sample_rate", span=node.span,
                      hint=f"write sample_rate: {data.sample_rate}")
            for graph in compiled.graphs.values() for node in graph.nodes.values()
            if getattr(node.config, "sample_rate", None) not in (None, data.sample_rate)]


def check_subsets(compiled: Compiled, task: Task) -> list[SpecError]:
    """data.fraction and limit draw a subset of the training split where udlc.data.prepare splits the data (the
    task's `draws_subsets`); a task that splits its data its own way would leave them unused."""
    from udlc.spec.data import split_sizes
    from udlc.spec.sources import SOURCES, BuiltinSet

    data = compiled.spec.data
    key = "fraction" if data.fraction is not None else "limit" if data.limit is not None else None
    if key is None:
        return []
    where = ("data", key)
    if not task.draws_subsets:
        return [SpecError(f"task {task.name} splits its data its own way and draws no subset of its training split",
                          path=".".join(where), span=compiled.doc.span(where), hint=f"leave `{key}` out")]
    entry = SOURCES.find(data.source)
    if key == "limit" and isinstance(entry, BuiltinSet) and entry.count is not None:  # a fixed set: counted here
        n = split_sizes(entry.count, data.split)[0]  # as udlc.data.prepare splits it (the generated sets: DataSpec)
        if data.limit > n:
            return [SpecError(f"limit {data.limit} is more than the training split's {n} samples",
                              path=".".join(where), span=compiled.doc.span(where),
                              hint=f"give at most {n}, or leave `limit` out to train on them all")]
    return []


def located(e: SpecError, doc: Any) -> SpecError:
    """A data error carries the spec path it is about (data.source, model.input); point it at that line."""
    if e.span is None and e.path:
        e.span = doc.span(tuple(int(p) if p.isdigit() else p for p in e.path.split(".")))
    return e


def check_network_keys(compiled: Compiled) -> list[SpecError]:
    """`optimizers:` and `schedules:` are keyed by network name."""
    errors = []
    for section in ("optimizers", "schedules"):
        for key in getattr(compiled.spec, section) or {}:
            if key not in compiled.graphs:
                errors.append(SpecError(f"no network named '{key}'", path=f"{section}.{key}",
                                        span=compiled.doc.span((section, key), key=True),
                                        hint=did_you_mean(key, compiled.graphs) or one_of(compiled.graphs)))
    return errors


def check_monitors(compiled: Compiled, logged: list[str]) -> list[SpecError]:
    """Early stopping and plateau watch a logged value."""
    spec, doc = compiled.spec, compiled.doc
    has_val = spec.data.split[1] > 0
    watchers = []
    if spec.train.early_stopping is not None:
        watchers.append((("train", "early_stopping", "monitor"), spec.train.early_stopping.monitor))
    for network in compiled.graphs:
        schedule = spec.schedule_of(network)
        if schedule.type == "plateau":
            where = ("schedules", network, "monitor") if network in (spec.schedules or {}) else ("schedule", "monitor")
            watchers.append((where, schedule.monitor))
    errors = []
    for path, name in dict.fromkeys(watchers):
        if name in logged:
            continue
        if name.startswith("val_") and not has_val:
            hint = "data.split has no validation part: give it one, or monitor train_loss"
        else:
            hint = did_you_mean(name, logged) or one_of(logged)
        errors.append(SpecError(f"'{name}' is not logged", path=".".join(path), span=doc.span(path), hint=hint))
    return errors


def windows_corpus(compiled: Any, specials: Any, context: int) -> Any:
    """A corpus tokenized with a task's special tokens (udlc.data.specials), long enough for one window of
    `context` tokens and the next; its errors at the spec's lines."""
    from udlc.data.specials import load_special_corpus

    try:
        data = load_special_corpus(compiled.spec.data, compiled.base_dir, specials)
    except SpecError as e:
        raise located(e, compiled.doc) from None
    if len(data.ids["train"]) <= context:
        raise located(SpecError(f"the training text holds {len(data.ids['train'])} tokens, fewer than one window of "
                                f"context {context} + 1", path="data.source",
                                hint="give more text (max_chars), or a shorter context"), compiled.doc)
    return data
