"""The passes in order. `check` stops after resolve (shapes included) and never imports torch."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from udlc.compiler.graph import Graph
from udlc.compiler.resolve import resolve
from udlc.errors import SpecError, SpecErrors, Span, did_you_mean, one_of
from udlc.spec.data import IMAGE_AUGMENTS
from udlc.spec.loader import Document, dotted, load_file, load_text
from udlc.spec.model import ModelSpec
from udlc.spec.spec import Spec
from udlc.spec.training import metric_name
from udlc.spec.validate import validate_model


@dataclass
class Compiled:
    doc: Document
    spec: Spec
    graph: Graph

    @property
    def base_dir(self) -> Path:
        """Relative data paths in a spec are relative to the spec's folder."""
        return Path(self.doc.file).parent


def compile_spec(path: str | Path, overrides: Iterable[str] = (), *, check_files: bool = True) -> Compiled:
    """load → validate → resolve (with shapes). Raises SpecErrors with every problem found.
    `check_files=False` skips checking that a data file exists (exporting a run needs no data)."""
    doc = load_file(path)
    apply_overrides(doc, overrides)
    return compile_doc(doc, check_files=check_files)


def compile_text(text: str, file: str = "<spec>") -> Compiled:
    return compile_doc(load_text(text, file))


def compile_doc(doc: Document, *, check_files: bool = True) -> Compiled:
    errors: list[SpecError] = []
    spec = model = graph = None
    try:
        spec = validate_model(Spec, doc.data, doc)
        model = spec.model
    except SpecErrors as e:
        errors += e.errors
        # The model section may still be sound: check it too, so one run reports everything.
        if isinstance(doc.data.get("model"), dict) and not any(err.path.startswith("model") for err in e.errors):
            model = validate_model(ModelSpec, doc.data["model"], doc, ("model",))
    if model is not None:
        try:
            graph = resolve(model, doc)
        except SpecErrors as e:
            errors += e.errors
    if spec is not None and graph is not None:
        errors += _image_augments(spec, graph, doc) + _monitors(spec, doc)
    if spec is not None and spec.data.is_file() and check_files:
        source = Path(doc.file).parent / spec.data.source
        if not source.is_file():
            errors.append(SpecError(f"data file not found: {source}", path="data.source",
                                    span=doc.span(("data", "source")), hint="the path is relative to the spec file"))
    if errors:
        raise SpecErrors(errors)
    assert spec is not None and graph is not None
    return Compiled(doc, spec, graph)


def _image_augments(spec: Spec, graph: Graph, doc: Document) -> list[SpecError]:
    errors = []
    shapes = list(graph.inputs.values())
    for i, aug in enumerate(spec.data.augment):
        if aug.type in IMAGE_AUGMENTS and (len(shapes) != 1 or len(shapes[0]) != 3):
            given = ", ".join(str(list(s)) for s in shapes)
            errors.append(SpecError(f"'{aug.type}' augments images, but the model's input is {given}",
                                    path=f"data.augment[{i}]", span=doc.span(("data", "augment", i)),
                                    hint="give model.input as [channels, height, width], or drop this augmentation"))
        elif aug.type == "random_crop" and aug.size is not None and (aug.size,) * 2 != shapes[0][1:]:
            errors.append(SpecError(f"random_crop size {aug.size} differs from the image size {list(shapes[0][1:])}",
                                    path=f"data.augment[{i}]", span=doc.span(("data", "augment", i)),
                                    hint="crops keep the image size so the model's input shape holds; "
                                         "drop `size` or set it to the image size"))
    return errors


def _monitors(spec: Spec, doc: Document) -> list[SpecError]:
    """Early stopping and plateau watch a logged value: train_loss, val_loss or val_<metric>."""
    has_val = spec.data.split[1] > 0
    logged = ["train_loss"] + (["val_loss"] + [f"val_{metric_name(m)}" for m in spec.metrics] if has_val else [])
    watchers = []
    if spec.train.early_stopping is not None:
        watchers.append((("train", "early_stopping", "monitor"), spec.train.early_stopping.monitor))
    if spec.schedule.type == "plateau":
        watchers.append((("schedule", "monitor"), spec.schedule.monitor))
    errors = []
    for path, name in watchers:
        if name in logged:
            continue
        if name.startswith("val_") and not has_val:
            hint = "data.split has no validation part: give it one, or monitor train_loss"
        else:
            hint = did_you_mean(name, logged) or one_of(logged)
        errors.append(SpecError(f"'{name}' is not logged", path=".".join(path), span=doc.span(path), hint=hint))
    return errors


def apply_overrides(doc: Document, overrides: Iterable[str]) -> None:
    """`--set train.epochs=3` (or `model.layers[0].linear=32`): set a value as if the file said so.
    Errors about it then point at the --set, not at the file."""
    for text in overrides:
        key, eq, raw = text.partition("=")
        span = Span("--set", 1, 1, text)
        path = tuple(int(p) if p.isdigit() else p for p in re.split(r"\.|\[(\d+)\]\.?", key) if p)
        if not eq or not path:
            raise SpecError(f"--set needs KEY=VALUE, got {text!r}", span=span, hint="e.g. --set train.epochs=3")
        try:
            value = load_text(f"v: {raw}" if raw.strip() else "v: null", "--set").data["v"]
        except SpecError as e:  # point into the --set text, not the wrapper it was parsed in
            col = len(key) + 1 + max((e.span.col if e.span else 1) - 3, 1)
            raise SpecError(e.message, span=Span("--set", 1, col, text), hint=e.hint) from None
        parent = doc.data
        for i, part in enumerate(path[:-1]):
            child = _child(parent, part)
            if child is None:
                if not isinstance(parent, dict) or isinstance(part, int):
                    raise SpecError(f"--set {key}: there is no {dotted(path[: i + 1])} to set", span=span)
                child = parent[part] = {}
            parent = child
        last = path[-1]
        if isinstance(parent, list) and isinstance(last, int) and last < len(parent) or isinstance(parent, dict):
            parent[last] = value
        else:
            raise SpecError(f"--set {key}: there is no {dotted(path)} to set", span=span)
        here = Span("--set", 1, len(key) + 2, text)
        for spans in (doc.value_spans, doc.key_spans):
            for p in [p for p in spans if p[: len(path)] == path]:
                del spans[p]
        for n in range(1, len(path) + 1):  # new keys, and the value, all point at the --set
            doc.key_spans.setdefault(path[:n], here)
            doc.value_spans.setdefault(path[:n], here)
        doc.value_spans[path] = doc.key_spans[path] = here


def _child(parent: object, part: str | int) -> object:
    if isinstance(parent, dict) and part in parent:
        return parent[part]
    if isinstance(parent, list) and isinstance(part, int) and part < len(parent):
        return parent[part]
    return None
