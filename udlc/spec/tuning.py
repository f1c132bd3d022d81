"""The `tune:` section: what `udlc tune` searches over, and its check (no torch, no optuna).

    tune:
      metric: val_accuracy                       # optional: default, what the run monitors (val_loss)
      space:                                     # spec paths, written as --set takes them
        optimizer.lr: {log_uniform: [1e-4, 1e-1]}
        optimizer.weight_decay: {uniform: [0, 0.1]}
        train.batch_size: [32, 64, 128]          # a list: one of these
        model.blocks.conv_bn.params.ch: {int: [16, 64], step: 16}
        optimizer.betas: [[0.9, 0.999], [0.5, 0.999]]   # whole tuples as choices
        optimizer.betas[0]: {uniform: [0.5, 0.95]}       # or one element, left at its default in the file

`udlc check` validates each entry by applying its ends (or each choice) to the spec and checking the result,
so a tune never starts a trial that `check` would refuse alone. `udlc train` ignores the section.
"""

import copy
import json
import math
import re
from typing import Annotated, Any, Callable

from pydantic import Field, WithJsonSchema, model_validator
from pydantic_core import PydanticCustomError

from udlc.errors import SpecError, SpecErrors, did_you_mean, one_of, show
from udlc.spec.base import StrictModel
from udlc.spec.loader import Document, Path_, dotted

Scalar = bool | int | float | str | None  # what optuna's categorical choices may be
# A choice may also be a tuple (Adam's betas): the study sees it as its JSON text, the trial as the list.
Choice = Scalar | list[Scalar]  # type: ignore[valid-type]


_PAIR = {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}
_ENTRY_SCHEMA = {"anyOf": [
    {"type": "array", "minItems": 1, "description": "one of these values (a value may be a list: a tuple)",
     "items": {"anyOf": [{"type": ["boolean", "integer", "number", "string", "null"]},
                         {"type": "array", "items": {"type": ["boolean", "integer", "number", "string", "null"]}}]}},
    {"type": "object", "additionalProperties": False, "properties": {
        "uniform": _PAIR, "log_uniform": _PAIR, "int": {**_PAIR, "items": {"type": "integer"}},
        "step": {"type": "number", "exclusiveMinimum": 0}, "choices": {"type": "array", "minItems": 1}}},
]}


class Distribution(StrictModel):
    """A list of choices, or one of `uniform`, `log_uniform` (low > 0) or `int`, each as [low, high]; `step`
    puts a range's values on a grid. A list is written as is (`[32, 64]`), read as {choices: [32, 64]}."""

    choices: list[Choice] | None = Field(None, min_length=1)  # type: ignore[valid-type]
    uniform: tuple[float, float] | None = None
    log_uniform: tuple[float, float] | None = None
    int_: tuple[int, int] | None = Field(None, alias="int")
    step: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _list_is_choices(cls, data: Any) -> Any:
        if isinstance(data, list):
            return {"choices": data}
        if not isinstance(data, dict):
            raise PydanticCustomError("tune_entry", "must be a list of choices or a range such as "
                                      "{log_uniform: [1e-4, 1e-1]}, {uniform: [0, 0.5]}, {int: [16, 64]} (got {got})",
                                      {"got": show(data)})
        return data

    @model_validator(mode="after")
    def _one_range(self) -> "Distribution":
        given = [k for k in ("choices", "uniform", "log_uniform", "int") if self.bounds_of(k) is not None]
        if len(given) != 1:
            raise ValueError("give one range: {uniform: [low, high]}, {log_uniform: [low, high]} or "
                             "{int: [low, high]} — or a list of choices")
        if self.kind == "choices":
            if self.step is not None:
                raise ValueError("a list of choices takes no `step`")
            return self
        low, high = self.bounds
        if low >= high:
            raise ValueError(f"low must be < high (got [{show(low)}, {show(high)}]); for one fixed value, "
                             "set it in the spec instead")
        if self.kind == "log_uniform" and low <= 0:
            raise ValueError(f"log_uniform needs low > 0 (got {show(low)}): use e.g. [1e-5, {show(high)}], "
                             "or `uniform`")
        if self.step is not None:
            if self.kind == "log_uniform":
                raise ValueError("log_uniform takes no `step`: use `uniform` or `int` for a grid")
            if self.step <= 0 or self.step > high - low:
                raise ValueError(f"step must be > 0 and at most high - low ({show(high - low)}), got {show(self.step)}")
            if self.kind == "int" and self.step != int(self.step):
                raise ValueError(f"an int range's step must be a whole number (got {show(self.step)})")
        return self

    def bounds_of(self, kind: str) -> Any:
        return self.int_ if kind == "int" else getattr(self, kind)

    @property
    def kind(self) -> str:
        return next(k for k in ("choices", "uniform", "log_uniform", "int") if self.bounds_of(k) is not None)

    @property
    def bounds(self) -> tuple[Any, Any]:
        return self.bounds_of(self.kind)  # type: ignore[return-value]

    def probes(self) -> list[Any]:
        """What check tries: every choice, or a range's smallest and largest value (the last grid point)."""
        if self.choices is not None:
            return list(self.choices)
        low, high = self.bounds
        if self.step:
            high = low + math.floor((high - low) / self.step + 1e-9) * self.step
            high = int(high) if self.kind == "int" else high
        return [low, high]


class TuneSpec(StrictModel):
    metric: str | None = Field(None, description="the logged value to optimize, best over epochs; default: the "
                                                 "run's monitored value (early_stopping.monitor, else val_loss)")
    space: dict[str, Annotated[Distribution, WithJsonSchema(_ENTRY_SCHEMA)]] = Field(
        default_factory=dict,
        description="spec path (as --set takes it) → a list of choices or {uniform | log_uniform | int: [low, "
                    "high]}; empty: lr, batch size, weight decay around the spec's values")


# ---- spec paths ---------------------------------------------------------------------------------------------

# Sections written in a tagged shorthand (`optimizer: adam`, `{adam: {lr: 1e-3}}`) or left out: a tune sets
# their keys in the full form ({type: adam, lr: ...}), so `optimizer.lr` can always be set.
_TAGGED = ("optimizer", "schedule", "loss")


def parse_path(key: str) -> Path_:
    """'model.layers[0].linear' -> ('model', 'layers', 0, 'linear'), as --set reads it."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"\.|\[(\d+)\]\.?", key) if p)


def copy_doc(doc: Document) -> Document:
    return Document(doc.file, copy.deepcopy(doc.data), doc.lines, dict(doc.value_spans), dict(doc.key_spans))


def settable(doc: Document, spec: Any) -> Document:
    """A copy of `doc` (validated as `spec`) without `tune:` and with the tagged sections in their full form."""
    out = copy_doc(doc)
    out.data.pop("tune", None)
    sections = [(out.data, name, getattr(spec, name)) for name in _TAGGED]
    for plural, single in (("optimizers", "optimizer"), ("schedules", "schedule")):
        given = out.data.get(plural)
        if isinstance(given, dict):
            sections += [(given, name, getattr(spec, plural)[name]) for name in given]
    for parent, name, value in sections:
        if name not in parent and name != "optimizer":  # left out: stays out (the default optimizer has an lr)
            continue
        if value is not None and not (isinstance(parent.get(name), dict) and "type" in parent[name]):
            parent[name] = {**value.model_dump(mode="json", by_alias=True, exclude_unset=True), "type": value.type}
    return out


def override(key: str, value: Any) -> str:
    """A tune value as a --set override (JSON is YAML: 1e-05, "relu", true)."""
    return f"{key}={json.dumps(value)}"


def fill_tuple(data: dict, path: Path_, spec: Any) -> None:
    """Write into `data` (settable's copy) the validated `spec`'s value of a tuple the file leaves at its default,
    where `path` indexes into it (`optimizer.betas[0]`), so that one element can be set alone."""
    node: Any = data
    for i, part in enumerate(path[:-1]):
        if isinstance(node, dict) and isinstance(part, str) and part not in node and isinstance(path[i + 1], int):
            default = spec
            for step in path[: i + 1]:
                default = getattr(default, str(step), None) if not isinstance(default, dict) else default.get(step)
            if isinstance(default, (tuple, list)):
                node[part] = list(default)
        node = node.get(part) if isinstance(node, dict) else (
            node[part] if isinstance(node, list) and isinstance(part, int) and part < len(node) else None)
        if node is None:
            return


def missing_part(data: dict, path: Path_) -> str | None:
    """Where `path` leaves the spec, or None when it can be set: every part but the last must exist; the last
    may be a new key of a mapping (`optimizer.weight_decay` when the spec leaves it at its default)."""
    node: Any = data
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, dict) and isinstance(part, str) and (part in node or last):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return dotted(path[: i + 1])
    return None


# ---- the check ----------------------------------------------------------------------------------------------


def tune_metric(compiled: Any, task: Any) -> str:
    spec = compiled.spec
    if spec.tune is not None and spec.tune.metric:
        return spec.tune.metric
    if spec.train.early_stopping is not None:
        return spec.train.early_stopping.monitor
    return task.monitor(spec.data.split[1] > 0)


def check_tune(compiled: Any, task: Any, compile_with: Callable[[Document, list[str]], Any]) -> list[SpecError]:
    """The metric is logged; each space entry names a settable path, and its ends (or each choice), applied
    alone, leave a spec that `compile_with(doc, overrides)` (the whole check, from udlc.tasks) accepts."""
    spec, doc = compiled.spec, compiled.doc
    if spec.tune is None:
        return []
    errors = []
    logged = task.logged(spec, spec.data.split[1] > 0)
    if spec.tune.metric is not None and spec.tune.metric not in logged:
        errors.append(SpecError(f"'{spec.tune.metric}' is not logged", path="tune.metric",
                                span=doc.span(("tune", "metric")),
                                hint=did_you_mean(spec.tune.metric, logged) or one_of(logged)))
    base = settable(doc, spec)
    for key, choices in spec.tune.space.items():
        where, path = ("tune", "space", key), parse_path(key)
        fill_tuple(base.data, path, spec)
        missing = missing_part(base.data, path) if path and path[0] not in ("tune", "udlc") else key
        if missing is not None:
            errors.append(SpecError(f"there is no {missing} in this spec to tune", path=dotted(where),
                                    span=doc.span(where, key=True),
                                    hint="a key is a spec path, as --set takes it: e.g. optimizer.lr, "
                                         "train.batch_size, model.layers[0].linear"))
            continue
        for value in choices.probes():
            probe = settable(base, spec)
            try:
                compile_with(probe, [override(key, value)])
            except SpecErrors as e:
                first = e.errors[0]
                inner = f"{first.path}: {first.message}" if first.path and first.path != key else first.message
                errors.append(SpecError(f"{key} = {show(value)} would make the spec invalid: {inner}",
                                        path=dotted(where), span=doc.span(where),
                                        hint=first.hint or "narrow the range, or drop that choice"))
                break
            except SpecError as e:
                errors.append(SpecError(f"{key} = {show(value)} cannot be set: {e.message}", path=dotted(where),
                                        span=doc.span(where, key=True)))
                break
    return errors
