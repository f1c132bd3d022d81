"""A weight mapping: YAML rules that rename a file's tensors to a network's (format: `udlc_map: 1`, `network:`,
`rules:`), read with udlc's own YAML loader so every mistake is reported at its line. Applying it to a file's
names (and shapes, from the header) gives a `Plan`: which file tensor, transposed, split or reshaped how, becomes
which of the network's tensors. Standard library only: `udlc check` applies mappings without torch.

Placeholders in `from`: `{i}` (one lower-case letter) matches a non-negative integer, `{rest}` (a word of two or
more letters) any run of characters, the shortest that lets the rest match; the rest of the text is literal.
In `to`: `{i}`, `{_i}` (`_<i>` when i > 0, nothing when 0: udlc's names for a repeated block), `{i+1}`, `{i-1}`,
`{rest}`."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from udlc.errors import SpecError, SpecErrors, Span, did_you_mean
from udlc.spec.loader import Document, load_file

MAP_VERSION = 1
RULE_KEYS = ("from", "to", "drop", "transpose", "reshape")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_INT_NAME = re.compile(r"[a-z]")
_WORD_NAME = re.compile(r"[A-Za-z][A-Za-z]+")
_TO_INT = re.compile(r"(_?)([a-z])([+-]1)?")  # {i}, {_i}, {i+1}, {i-1}

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Rule:
    index: int
    pattern: re.Pattern[str] | None  # None: the identity rule of a mapping-less load
    source: str
    to: tuple[str, ...]
    drop: bool
    transpose: bool
    reshape: tuple[int, ...] | None
    span: Span | None

    def targets(self, match: re.Match[str]) -> list[str]:
        values = match.groupdict()
        return [_PLACEHOLDER.sub(lambda m: _write(m.group(1), values), t) for t in self.to]


def _write(name: str, values: dict[str, str]) -> str:
    m = _TO_INT.fullmatch(name)
    if m and m.group(2) in values:
        n = int(values[m.group(2)]) + int(m.group(3) or 0)
        return (f"_{n}" if n else "") if m.group(1) else str(n)
    return values[name]


@dataclass
class Mapping:
    """The rules of one mapping file, in order; `strict` False for the mapping-less load, where a name the network
    lacks is unused and a shape that differs keeps the fresh init (a replaced head), instead of an error."""

    rules: list[Rule]
    network: str | None = None
    file: str | None = None
    strict: bool = True
    network_span: Span | None = None

    @classmethod
    def identity(cls) -> Mapping:
        return cls([Rule(0, None, "{rest}", ("{rest}",), False, False, None, None)], strict=False)

    @classmethod
    def load(cls, path: str | Path) -> Mapping:
        """Read and validate a mapping file; SpecErrors at the file's lines for every mistake."""
        doc = load_file(path)
        errors: list[SpecError] = []
        data = doc.data
        for key in data:
            if key not in ("udlc_map", "network", "rules"):
                errors.append(SpecError(f"unknown key {key!r}", path=str(key), span=doc.span((key,), key=True),
                                        hint="a mapping has udlc_map, network and rules"))
        if data.get("udlc_map") != MAP_VERSION:
            errors.append(SpecError("a mapping file starts with `udlc_map: 1`", path="udlc_map",
                                    span=doc.span(("udlc_map",)), hint="add `udlc_map: 1` as its first line"))
        network = data.get("network")
        if network is not None and not isinstance(network, str):
            errors.append(SpecError("network must be a network's name", path="network", span=doc.span(("network",))))
        raw_rules = data.get("rules")
        rules: list[Rule] = []
        if not isinstance(raw_rules, list) or not raw_rules:
            errors.append(SpecError("a mapping needs `rules:`, a list of {from: ..., to: ...}", path="rules",
                                    span=doc.span(("rules",)), hint="e.g. rules: [{from: 'h.{i}.weight', to: "
                                    "'block{_i}.weight'}]"))
        else:
            for i, raw in enumerate(raw_rules):
                rule = _rule(doc, i, raw, errors)
                if rule is not None:
                    rules.append(rule)
        if errors:
            raise SpecErrors(errors)
        return cls(rules, network if isinstance(network, str) else None, doc.file,
                   network_span=doc.span(("network",)) if network is not None else None)


def _rule(doc: Document, i: int, raw: Any, errors: list[SpecError]) -> Rule | None:
    where, span = f"rules[{i}]", doc.span(("rules", i))
    before = len(errors)

    def err(message: str, key: str | None = None, hint: str | None = None) -> None:
        errors.append(SpecError(message, path=f"{where}.{key}" if key else where,
                                span=doc.span(("rules", i, key)) if key else span, hint=hint))

    if not isinstance(raw, dict):
        err("a rule is a mapping {from: NAME, to: NAME} (or {from: NAME, drop: true})")
        return None
    unknown = [key for key in raw if key not in RULE_KEYS]
    for key in unknown:
        errors.append(SpecError(f"unknown key {key!r}", path=f"{where}.{key}",
                                span=doc.span(("rules", i, key), key=True),
                                hint=did_you_mean(key, RULE_KEYS) or f"a rule has {', '.join(RULE_KEYS)}"))
    if unknown:  # a misspelt key: what seems missing besides is most likely it
        return None
    source, to, drop = raw.get("from"), raw.get("to"), raw.get("drop", False)
    transpose, reshape = raw.get("transpose", False), raw.get("reshape")
    if not isinstance(source, str) or not source:
        err("`from` is the file's tensor name (placeholders like {i} allowed)", "from" if "from" in raw else None)
        return None
    ints: set[str] = set()
    words: set[str] = set()
    pattern = _compile(source, ints, words, lambda m: err(m, "from", "a placeholder is {i} (one lower-case letter: "
                                                                   "an integer) or {rest} (a word: any text)"))
    if not isinstance(drop, bool) or not isinstance(transpose, bool):
        err("drop and transpose are true or false", "drop" if not isinstance(drop, bool) else "transpose")
    targets: tuple[str, ...] = ()
    if drop is True:
        if to is not None or transpose or reshape is not None:
            err("a dropped tensor goes nowhere: give `drop: true` alone, or `to:` without it", "drop")
    elif isinstance(to, str) and to:
        targets = (to,)
    elif isinstance(to, list) and len(to) >= 2 and all(isinstance(t, str) and t for t in to):
        targets = tuple(to)
    else:
        err("`to` is the network's tensor name, or a list of two or more (a fused tensor split along dim 0)",
            "to" if "to" in raw else None, "or write `drop: true` for a tensor the network does not use")
    for t in targets:
        for m in _PLACEHOLDER.finditer(t):
            name, written = m.group(1), _TO_INT.fullmatch(m.group(1))
            if (written and written.group(2) in ints) or (name in words):
                continue
            defined = sorted(ints | words)
            err(f"`to` writes {{{name}}}, which `from` does not define", "to",
                f"`from` defines {', '.join('{' + d + '}' for d in defined)}" if defined
                else "`from` has no placeholders: write the name in full")
        if "{" in _PLACEHOLDER.sub("", t) or "}" in _PLACEHOLDER.sub("", t):
            err(f"unbalanced brace in {t!r}", "to")
    shape = None
    if reshape is not None:
        sizes = reshape if isinstance(reshape, list) else []
        if not sizes or not all(type(d) is int and (d > 0 or d == -1) for d in sizes) or sizes.count(-1) > 1:
            err("reshape is a list of positive sizes (one may be -1)", "reshape")
        else:
            shape = tuple(reshape)
    if len(errors) > before:
        return None
    return Rule(i, pattern, source, targets, drop, transpose, shape, span)


def _compile(source: str, ints: set[str], words: set[str], err: Any) -> re.Pattern[str]:
    """`from` as an anchored regex: literal text escaped, `{i}` → digits, `{rest}` → the shortest run."""
    parts, at = [], 0
    for m in _PLACEHOLDER.finditer(source):
        parts.append(_literal(source[at:m.start()], err))
        name = m.group(1)
        if name in ints or name in words:
            err(f"{{{name}}} appears twice in `from`; each placeholder matches once")
        elif _INT_NAME.fullmatch(name):
            ints.add(name)
            parts.append(f"(?P<{name}>[0-9]+)")
        elif _WORD_NAME.fullmatch(name):
            words.add(name)
            parts.append(f"(?P<{name}>.*?)")
        else:
            err(f"{{{name}}} is not a placeholder")
        at = m.end()
    parts.append(_literal(source[at:], err))
    return re.compile("".join(parts) + r"\Z")


def _literal(text: str, err: Any) -> str:
    if "{" in text or "}" in text:
        err(f"unbalanced brace in {text!r}")
    return re.escape(text)


@dataclass(frozen=True)
class Assignment:
    """One network tensor's origin: the file tensor, and what the rule does to it on the way."""

    target: str
    source: str
    source_shape: Shape
    shape: Shape  # after transpose, split and reshape
    rule: Rule
    chunk: tuple[int, int] | None = None  # (k, n): the k-th of n equal parts along dim 0

    def convert(self, tensor: Any) -> Any:
        """The torch tensor this assignment writes (the file's tensor, transposed/split/reshaped): a view where it
        can be, not copied — the caller's copy_ into the network reads the file's pages once."""
        if self.rule.transpose:
            tensor = tensor.t()
        if self.chunk is not None:
            k, n = self.chunk
            tensor = tensor.chunk(n, dim=0)[k]
        if self.rule.reshape is not None:
            tensor = tensor.reshape(self.shape)
        return tensor


@dataclass
class Plan:
    assignments: dict[str, Assignment] = field(default_factory=dict)
    unused: list[str] = field(default_factory=list)  # matched no rule
    dropped: list[str] = field(default_factory=list)  # matched a `drop` rule

    @property
    def sources(self) -> set[str]:
        return {a.source for a in self.assignments.values()}


def apply(mapping: Mapping, names: dict[str, tuple[Shape, str]] | dict[str, Shape]) -> Plan:
    """Where each of a file's tensors goes (names -> shape, or -> (shape, dtype)). SpecErrors at the rules' lines:
    a rule that matches no tensor, a transpose of what is not a matrix, a split or reshape that does not fit,
    two tensors written to one name. `drop` rules may match nothing: they list what some files carry."""
    plan, errors, used = Plan(), [], set()
    for name, info in names.items():
        shape = tuple(info[0]) if info and isinstance(info[0], (tuple, list)) else tuple(info)  # type: ignore[arg-type]
        for rule in mapping.rules:
            m = rule.pattern.fullmatch(name) if rule.pattern is not None else re.match(r"(?P<rest>.*)\Z", name)
            if m is None:
                continue
            used.add(rule.index)
            if rule.drop:
                plan.dropped.append(name)
            else:
                _assign(plan, rule, name, shape, rule.targets(m), errors, mapping)
            break
        else:
            plan.unused.append(name)
    for rule in mapping.rules:
        if rule.index not in used and not rule.drop and rule.pattern is not None:
            errors.append(SpecError(f"rule matches no tensor of the file: {rule.source!r}", path=f"rules[{rule.index}]",
                                    span=rule.span, hint=_closest(rule, plan, names)))
    if errors:
        raise SpecErrors(errors)
    return plan


def _assign(plan: Plan, rule: Rule, name: str, shape: Shape, targets: list[str], errors: list[SpecError],
            mapping: Mapping) -> None:
    def err(message: str, hint: str | None = None) -> None:
        errors.append(SpecError(f"{name} {original}: {message}", path=f"rules[{rule.index}]", span=rule.span,
                                hint=hint))

    original = shape
    if rule.transpose:
        if len(shape) != 2:
            return err(f"transpose takes a matrix, and this tensor has {len(shape)} dimensions",
                       "drop `transpose`, or narrow `from` to the matrices")
        shape = (shape[1], shape[0])
    n = len(targets)
    if n > 1 and (not shape or shape[0] % n):
        return err(f"cannot split into {n} equal parts along dim 0 ({shape[0] if shape else 'a scalar'})",
                   "a list `to` splits a fused tensor in equal parts")
    part = ((shape[0] // n,) + shape[1:]) if n > 1 else shape
    if rule.reshape is not None:
        reshaped = _reshaped(part, rule.reshape)
        if reshaped is None:
            return err(f"reshape {list(rule.reshape)} does not fit {math.prod(part)} elements",
                       "the product of reshape's sizes is the tensor's element count")
        part = reshaped
    for k, target in enumerate(targets):
        if not mapping.strict and target in plan.assignments:
            continue
        if target in plan.assignments:
            other = plan.assignments[target]
            return err(f"writes {target}, which {other.source} already wrote"
                       + (f" (rule at line {other.rule.span.line})" if other.rule.span else ""),
                       "each network tensor comes from one file tensor: narrow one of the rules")
        plan.assignments[target] = Assignment(target, name, original, part, rule, (k, n) if n > 1 else None)


def _reshaped(shape: Shape, reshape: tuple[int, ...]) -> Shape | None:
    total = math.prod(shape)
    known = math.prod(d for d in reshape if d != -1)
    if -1 in reshape:
        if known == 0 or total % known:
            return None
        return tuple(total // known if d == -1 else d for d in reshape)
    return reshape if known == total else None


def _closest(rule: Rule, plan: Plan, names: Any) -> str:
    """A hint for a rule that matched nothing: the file's names that begin as it does."""
    stem = rule.source.split("{", 1)[0]
    while stem:
        near = [n for n in names if n.startswith(stem)]
        if near:
            return f"the file has e.g. {', '.join(near[:3])}"
        stem = stem[:-1]
    return f"the file has e.g. {', '.join(list(names)[:3])}" if names else "the file holds no tensors"


def check_targets(plan: Plan, mapping: Mapping, expected: dict[str, Shape], network: str) -> tuple[Plan, list[str]]:
    """The plan against the network's tensors (name -> shape). A strict mapping: a target the network lacks, or a
    shape that differs, is an error at its rule's line. The identity mapping: those are left out (a file tensor the
    network lacks is unused; a differing shape keeps the fresh init) and named in the second value."""
    errors, kept, mismatched = [], Plan(unused=list(plan.unused), dropped=list(plan.dropped)), []
    for target, a in plan.assignments.items():
        want = expected.get(target)
        if want is None:
            if not mapping.strict:
                kept.unused.append(a.source)
                continue
            hint = did_you_mean(target, expected) or f"network {network} has e.g. {', '.join(list(expected)[:3])}"
            errors.append(SpecError(f"{target} (from {a.source}) is not a tensor of network {network}",
                                    path=f"rules[{a.rule.index}]", span=a.rule.span, hint=hint))
        elif tuple(want) != a.shape:
            if not mapping.strict:
                mismatched.append(f"{target} {a.shape}→{tuple(want)}")  # said once, as kept fresh: not unused
                continue
            errors.append(SpecError(f"{target} is {tuple(want)} in network {network}, and {a.source} gives {a.shape}",
                                    path=f"rules[{a.rule.index}]", span=a.rule.span,
                                    hint="a transpose or reshape may fix it; a tensor the network does not take can "
                                         "be dropped (drop: true) and stays at its fresh init"))
        else:
            kept.assignments[target] = a
    if errors:
        raise SpecErrors(errors)
    return kept, mismatched
