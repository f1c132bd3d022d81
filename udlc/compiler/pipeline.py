"""The compiler's passes in order: load, validate, resolve (shapes included), as `resolve_spec`, `resolve_doc`
and `resolve_text`; none of it imports torch. The whole check, the task check included, is udlc.tasks.compile_spec
(and compile_doc, compile_text): what `udlc check`, train and export run. These are for what needs a spec's typed
graphs without its task (a model with no task yet, tests of layers)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from udlc.compiler.finetune import check_finetune
from udlc.compiler.graph import Graph
from udlc.compiler.resolve import resolve
from udlc.errors import SpecError, SpecErrors, Span, did_you_mean
from udlc.spec.extends import load_spec
from udlc.spec.sources import is_folder
from udlc.spec.loader import Document, dotted, load_text
from udlc.spec.model import ModelSpec
from udlc.spec.spec import Spec
from udlc.spec.validate import validate_model


@dataclass
class Compiled:
    doc: Document
    spec: Spec
    graphs: dict[str, Graph]  # one typed graph per network, by name ('model' for `model:`)
    task: Any = None  # the bound udlc.tasks Task, set by the task check
    listing: str | None = None  # what the task check read of the data's files, for `udlc check` to print

    @property
    def graph(self) -> Graph:
        """The network of a one-network spec."""
        if len(self.graphs) != 1:
            raise ValueError(f"this spec has {len(self.graphs)} networks; use .graphs")
        return next(iter(self.graphs.values()))

    @property
    def base_dir(self) -> Path:
        """Relative data paths in a spec are relative to the spec's folder."""
        return Path(self.doc.file).parent


def resolve_spec(path: str | Path, overrides: Iterable[str] = (), *, check_files: bool = True) -> Compiled:
    """load → validate → resolve (with shapes), without the task check. Raises SpecErrors with every problem found.
    `check_files=False` skips checking that a data file exists (exporting a run needs no data)."""
    doc = load_spec(path)
    apply_overrides(doc, overrides)
    return resolve_doc(doc, check_files=check_files)


def resolve_text(text: str, file: str = "<spec>") -> Compiled:
    return resolve_doc(load_text(text, file))


def resolve_doc(doc: Document, *, check_files: bool = True) -> Compiled:
    """validate → resolve a loaded spec, without the task check."""
    errors: list[SpecError] = []
    if "extends" in doc.data:  # load_spec merges it: a spec given as text has no folder to find the base in
        errors.append(SpecError("extends names a file, and this spec was given as text, not read from a file",
                                path="extends", span=doc.span(("extends",)), hint="write it to a file first"))
    spec = None
    networks: dict[str, tuple[ModelSpec, tuple]] = {}
    try:
        spec = validate_model(Spec, doc.data, doc)
        networks = {name: (model, ("model",) if spec.model is not None else ("models", name))
                    for name, model in spec.networks.items()}
    except SpecErrors as e:
        errors += e.errors
        networks = _sound_networks(doc, e.errors)
    graphs = {}
    for name, (model, base) in networks.items():
        try:
            graphs[name] = resolve(model, doc, name, base)
        except SpecErrors as e:
            errors += e.errors
    if spec is not None and spec.data.is_file() and check_files:
        source = Path(doc.file).parent / spec.data.source
        folder = is_folder(spec.data.source)
        if not (source.is_dir() if folder else source.is_file()):
            errors.append(SpecError(f"data {'folder' if folder else 'file'} not found: {source}", path="data.source",
                                    span=doc.span(("data", "source")), hint="the path is relative to the spec file"))
    if spec is not None and len(graphs) == len(networks):
        errors += check_freeze(spec, graphs, doc) + check_finetune(spec, graphs, doc)
    if errors:
        raise SpecErrors(errors)
    assert spec is not None
    return Compiled(doc, spec, graphs)


def frozen_nodes(spec: Spec, graph: Graph) -> list[str]:
    """The nodes of `graph` that train.freeze names (shell-style patterns over node names)."""
    from fnmatch import fnmatchcase

    return [name for name in graph.nodes if any(fnmatchcase(name, pattern) for pattern in spec.train.freeze)]


def check_freeze(spec: Spec, graphs: dict[str, Graph], doc: Document) -> list[SpecError]:
    """Each train.freeze pattern names a layer with weights; no network is frozen whole (nothing would train)."""
    from fnmatch import fnmatchcase

    errors = []
    weighted = [name for g in graphs.values() for name, node in g.nodes.items() if node.params]
    for i, pattern in enumerate(spec.train.freeze):
        if not any(fnmatchcase(name, pattern) for name in weighted):
            errors.append(SpecError(f"'{pattern}' names no layer with weights", path=f"train.freeze[{i}]",
                                    span=doc.span(("train", "freeze", i)),
                                    hint=did_you_mean(pattern, weighted) or "give node names as `udlc summary` "
                                         "shows them (* and ? match any characters)"))
    for network, graph in graphs.items():
        frozen = set(frozen_nodes(spec, graph))
        if spec.train.freeze and graph.total_params and all(n in frozen for n, node in graph.nodes.items()
                                                              if node.params):
            errors.append(SpecError(f"train.freeze freezes every layer of network '{network}': nothing would train",
                                    path="train.freeze", span=doc.span(("train", "freeze"), key=True),
                                    hint="leave some layers out of the patterns"))
    return errors


def _sound_networks(doc: Document, errors: list[SpecError]) -> dict[str, tuple[ModelSpec, tuple]]:
    """When the spec as a whole fails, its networks may still be sound: check them too, so one run reports
    everything."""
    found = {}
    if isinstance(doc.data.get("model"), dict):
        found["model"] = (doc.data["model"], ("model",))
    elif isinstance(doc.data.get("models"), dict):
        found = {name: (m, ("models", name)) for name, m in doc.data["models"].items() if isinstance(m, dict)}
    sound = {}
    for name, (data, base) in found.items():
        if any(err.path.startswith(".".join(base)) for err in errors):
            continue
        try:
            sound[name] = (validate_model(ModelSpec, data, doc, base), base)
        except SpecErrors:
            continue
    return sound


class Override(str):
    """A KEY=VALUE that another option sets (`--init-from FILE` sets init.from): errors about it point at that
    option as it was typed, not at a --set the user never wrote."""

    option: str
    typed: str

    def __new__(cls, key_value: str, option: str, typed: str) -> "Override":
        made = super().__new__(cls, key_value)
        made.option, made.typed = option, typed
        return made


def apply_overrides(doc: Document, overrides: Iterable[str]) -> None:
    """`--set train.epochs=3` (or `model.layers[0].linear=32`): set a value as if the file said so.
    Errors about it then point at the --set (or the Override's option), not at the file."""
    for text in overrides:
        key, eq, raw = text.partition("=")
        span = Span("--set", 1, 1, text)
        if isinstance(text, Override):
            here = Span(text.option, 1, len(text.option) + 2, f"{text.option} {text.typed}")
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
        if not isinstance(text, Override):
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
