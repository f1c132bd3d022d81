"""pydantic's errors → SpecErrors at file:line:col, in the words a user needs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable

from pydantic import BaseModel, ValidationError

from udlc.errors import SpecError, did_you_mean, one_of, show
from udlc.spec.base import YamlBool
from udlc.spec.loader import Document, Path_, dotted

# What to call the thing a `type` picks, by the section it sits in.
_KINDS = {"loss": "loss", "optimizer": "optimizer", "schedule": "schedule", "augment": "augmentation",
          "metrics": "metric"}

_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
_BOUND_CTX = {"greater_than": "gt", "greater_than_equal": "ge", "less_than": "lt", "less_than_equal": "le"}
_TYPES = {
    "int_parsing": "an integer", "int_type": "an integer", "int_from_float": "a whole number",
    "float_parsing": "a number", "float_type": "a number", "bool_parsing": "true or false",
    "bool_type": "true or false", "string_type": "a string", "list_type": "a list", "tuple_type": "a list",
    "dict_type": "a mapping", "model_type": "a mapping", "model_attributes_type": "a mapping",
}


def validate_model(model: type[BaseModel], data: Any, doc: Document, prefix: Path_ = ()) -> Any:
    """Validate `data` (found at `prefix` in `doc`) or raise SpecErrors for every problem in it."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise _errors(e.errors(), doc, prefix) from None


def _errors(raw: Iterable[dict], doc: Document, prefix: Path_):
    from udlc.errors import SpecErrors

    out: list[SpecError] = []
    for err in _one_member_per_union(list(raw), doc, prefix):
        out.extend(translate(err, doc, prefix))
    return SpecErrors(out)


# pydantic's labels for union members in an error's loc: int, constrained-int, tuple[...], literal[...], Model
_MEMBER = re.compile(r"^(?:int|float|str|bool|list|dict|tuple|none|constrained-[\w-]+|[a-z-]+\[.*\]|[A-Z]\w*)$")


def _one_member_per_union(raw: list[dict], doc: Document, prefix: Path_) -> list[dict]:
    """A value that fits no member of a union gets an error from every member (`kernel_size: -1` is
    neither a positive int nor a pair). Keep the errors of the member meant for the value's kind."""
    plain: list[dict] = []
    unions: dict[tuple, dict[str, list[dict]]] = {}
    for err in raw:
        loc = tuple(err["loc"])
        at = next((i for i, part in enumerate(loc) if isinstance(part, str) and _MEMBER.match(part)), None)
        if at is None:
            plain.append(err)
            continue
        stripped = {**err, "loc": loc[:at] + loc[at + 1:]}
        unions.setdefault(loc[:at], {}).setdefault(loc[at], []).append(stripped)
    for key, members in unions.items():
        value = locate(doc, tuple(prefix) + key)[1]
        best = min(members, key=lambda label: 0 if _fits(label, value) else 1)
        plain.extend(members[best])
    return plain


def _fits(label: str, value: Any) -> bool:
    if isinstance(value, bool):
        return label == "bool"
    if isinstance(value, (int, float)):
        return label in ("int", "float") or label.startswith("constrained-")
    if isinstance(value, str):
        return label.startswith(("literal", "str"))
    if isinstance(value, list):
        return label.startswith(("list", "tuple"))
    if isinstance(value, dict):
        return label[0].isupper() or label.startswith("dict")
    return label == "none"


def locate(doc: Document, loc: Iterable[Any]) -> tuple[Path_, Any, list[Any]]:
    """Follow pydantic's `loc` through the data. Returns the path that exists, the value there, and
    the rest of `loc` that does not (a missing key, or a union member's tag, which is not in the data)."""
    path: list[Any] = []
    cur: Any = doc.data
    rest: list[Any] = []
    for part in loc:
        if isinstance(cur, dict) and isinstance(part, str) and part in cur:
            path.append(part)
            cur = cur[part]
        elif isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur):
            path.append(part)
            cur = cur[part]
        else:
            rest.append(part)
    return tuple(path), cur, rest


def _got(value: Any) -> str:
    return show(value.value if isinstance(value, YamlBool) else value)


def translate(err: dict, doc: Document, prefix: Path_ = ()) -> list[SpecError]:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    loc = tuple(prefix) + tuple(err["loc"])
    path, value, rest = locate(doc, loc)
    where = dotted(path)
    span = doc.span(path)
    # A value written in shorthand (`linear: -1`) has no key of its own: name the field in the message.
    field = f"{loc[-1]} " if rest and rest[-1] == loc[-1] and isinstance(loc[-1], str) and kind != "missing" else ""

    if kind == "unknown_keys":
        errors = []
        for key in ctx["keys"]:
            hint = did_you_mean(key, ctx["allowed"]) or one_of(ctx["allowed"])
            errors.append(SpecError(f"unknown key '{key}'", path=dotted(path + (key,)),
                                    span=doc.span(path + (key,), key=True), hint=hint))
        return errors
    if kind == "missing":
        name = rest[-1] if rest else "?"
        return [SpecError(f"missing required key '{name}'", path=where, span=span,
                          hint=f"add `{name}: ...`")]
    if kind in ("union_tag_invalid", "missing_type"):
        section = next((p for p in reversed(path) if isinstance(p, str)), "")
        what = _KINDS.get(section, "type")
        if kind == "missing_type":
            return [SpecError(f"{what} needs a `type`", path=where, span=span, hint=one_of(ctx["names"]))]
        tags = re.findall(r"'([^']*)'", str(ctx.get("expected_tags", "")))
        tag = ctx.get("tag")
        if isinstance(value, dict) and "type" in value:
            span = doc.span(path + ("type",))
        elif isinstance(value, dict) and value:
            span = doc.span(path + (next(iter(value)),), key=True)
        return [SpecError(f"unknown {what} '{tag}'", path=where, span=span,
                          hint=did_you_mean(tag, tags) or one_of(tags))]
    if kind == "unknown_source":
        source = ctx["source"]
        hint = did_you_mean(source, ctx["allowed"]) or f"{one_of(ctx['allowed'])}, {ctx['hint']}"
        if doc.file and not doc.file.startswith("<") and (Path(doc.file).parent / source).is_dir():
            hint = f"{source} is a folder beside the spec: write `source: {source}/` to read its pictures"
        return [SpecError(f"unknown data source '{source}'", path=where, span=span, hint=hint)]
    if kind in _BOUNDS:
        bound = ctx.get(_BOUND_CTX[kind])
        return [SpecError(f"{field}must be {_BOUNDS[kind]} {bound} (got {_got(err['input'])})", path=where, span=span)]
    if kind in _TYPES:
        hint = f"write a list: [{err['input']}]" if kind == "list_type" and isinstance(err["input"], str) else None
        return [SpecError(f"{field}must be {_TYPES[kind]} (got {_got(err['input'])})", path=where, span=span,
                          hint=hint)]
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'|(\d+)", str(ctx.get("expected", "")))
        names = [a or b for a, b in choices]
        got = err["input"]
        return [SpecError(f"{field}must be one of {', '.join(names)} (got {_got(got)})", path=where, span=span,
                          hint=did_you_mean(got, names))]
    if kind in ("too_short", "too_long"):
        n = ctx.get("min_length" if kind == "too_short" else "max_length")
        word = "at least" if kind == "too_short" else "at most"
        return [SpecError(f"{field}must have {word} {n} item{'s' if n != 1 else ''}", path=where, span=span)]
    if kind == "string_pattern_mismatch":
        return [SpecError(f"{_got(err['input'])} is not a valid name", path=where, span=span,
                          hint="use letters, digits and underscores, starting with a letter")]
    msg = err["msg"]
    for lead in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(lead)
    msg = msg[:1].lower() + msg[1:]
    return [SpecError(field + msg, path=where, span=span)]
