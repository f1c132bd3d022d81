"""Safe YAML → plain data, with the source position of every key and value.

The file is guarded before anything walks its tree: a size cap, then an event scan (iterative, so a
deeply nested file cannot blow the stack) that caps nesting depth and counts nodes, both with aliases
expanded — an alias bomb of a few hundred bytes otherwise costs minutes and gigabytes later — and
refuses an alias inside its own anchor, the one way YAML can make a cycle. Only then is it composed and
converted into a plain tree (each alias a copy); no YAML tag builds an object, duplicate keys are rejected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from udlc.errors import SpecError, SpecErrors, Span

MAX_BYTES = 1 << 20  # 1 MiB: a spec is a page or two of YAML
MAX_DEPTH = 64
MAX_NODES = 100_000  # counted with aliases expanded

Key = str | int
Path_ = tuple[Key, ...]

_STR, _INT, _FLOAT, _BOOL, _NULL = (f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null"))
_MAP, _SEQ = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"

# The C parser when PyYAML has it (about ten times faster); the Python one otherwise.
_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[misc, valid-type]
    """Plain scalars resolved by YAML 1.2's core schema, as editors read them: `3e-3` is a float,
    `012` is twelve, and only true/false are booleans (`no`, `on`, `yes` stay strings)."""

    yaml_implicit_resolvers: dict = {}


for _tag, _pattern, _first in (
    (_BOOL, r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    (_INT, r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    (_FLOAT, r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
     "-+0123456789."),
    (_NULL, r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:merge", r"^<<$", "<"),  # recognised only to be refused with a clear message
):
    _Loader.add_implicit_resolver(_tag, re.compile(_pattern), list(_first))


@dataclass
class Document:
    """A loaded spec: plain data plus where each part came from."""

    file: str
    data: dict
    lines: list[str]
    value_spans: dict[Path_, Span] = field(default_factory=dict)
    key_spans: dict[Path_, Span] = field(default_factory=dict)

    def span(self, path: Path_, *, key: bool = False) -> Span | None:
        """The span of the value (or key) at `path`, else of its nearest ancestor present."""
        path = tuple(path)
        while True:
            spans = self.key_spans if key else self.value_spans
            if path in spans:
                return spans[path]
            if not path:
                return None
            path, key = path[:-1], False

    def span_at(self, line: int, col: int) -> Span:
        text = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        return Span(self.file, line, col, text)


def dotted(path: Path_) -> str:
    """('model', 'layers', 3, 'conv2d') -> 'model.layers[3].conv2d'"""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# A top-level `udlc:` key: at the start of a line, maybe quoted, maybe opening a flow mapping `{udlc: 1, ...}`.
_UDLC_KEY = re.compile(r"""^(?:\{[ \t]*)?(["']?)udlc\1[ \t]*:(?:\s|$)""", re.MULTILINE)


def is_udlc_spec(path: str | Path) -> bool:
    """Whether a file declares itself a udlc spec with a top-level `udlc:` key — what `udlc check
    --only-udlc` uses to skip the other YAML files a pre-commit hook hands it (workflows, configs).

    A text search, not a YAML parse: a spec with a syntax error is still a spec, and must reach
    `udlc check` to be reported. Indented `udlc:` keys (inside another mapping or a block scalar) do not
    count. A file that cannot be read counts as a spec, so that `udlc check` says what is wrong with it.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(MAX_BYTES + 1)  # a larger file is refused by `udlc check` anyway
    except OSError:
        return True
    return _UDLC_KEY.search(head.decode("utf-8-sig", errors="replace")) is not None


def load_file(path: str | Path) -> Document:
    p = Path(path)
    try:
        raw = p.read_bytes() if p.stat().st_size <= MAX_BYTES else None
    except FileNotFoundError:
        raise SpecError(f"file not found: {path}", hint="check the path") from None
    except IsADirectoryError:
        raise SpecError(f"{path} is a folder, not a spec file") from None
    except OSError as e:
        raise SpecError(f"cannot read {path}: {e.strerror}") from None
    if raw is None:
        raise SpecError(f"{path}: file is larger than {MAX_BYTES // 1024} KiB — a spec is a small YAML file")
    return load_bytes(raw, str(path))


def load_bytes(raw: bytes, file: str = "<spec>") -> Document:
    if len(raw) > MAX_BYTES:
        raise SpecError(f"{file}: file is larger than {MAX_BYTES // 1024} KiB — a spec is a small YAML file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise SpecError(
            f"byte 0x{raw[e.start]:02x} is not valid UTF-8", span=Span(file, line, col), hint="save the file as UTF-8"
        ) from None
    return load_text(text, file)


def load_text(text: str, file: str = "<spec>") -> Document:
    lines = text.splitlines()
    doc = Document(file, {}, lines)
    if not text.strip() or all(ln.strip().startswith("#") or not ln.strip() for ln in lines):
        raise SpecError("file is empty", span=doc.span_at(1, 1), hint="a spec starts with `udlc: 1`")
    try:
        _guard(text, doc)
        node = _Loader(text).get_single_node()
    except yaml.MarkedYAMLError as e:
        raise _yaml_error(e, doc) from None
    except yaml.YAMLError as e:  # pragma: no cover - every PyYAML error we know of is marked
        raise SpecError(f"invalid YAML: {e}", span=doc.span_at(1, 1)) from None
    if node is None or (isinstance(node, yaml.ScalarNode) and node.tag == _NULL and not node.value):
        raise SpecError("file is empty", span=doc.span_at(1, 1), hint="a spec starts with `udlc: 1`")
    if not isinstance(node, yaml.MappingNode):
        raise SpecError(
            "a spec must be a mapping of sections (udlc, name, data, model, …)",
            span=_span(doc, node),
            hint="start the file with `udlc: 1`",
        )
    errors: list[SpecError] = []
    doc.data = _convert(node, (), doc, errors)
    if errors:
        raise SpecErrors(errors)
    return doc


def _span(doc: Document, node: yaml.Node) -> Span:
    return doc.span_at(node.start_mark.line + 1, node.start_mark.column + 1)


def _guard(text: str, doc: Document) -> None:
    """Cap depth and the alias-expanded node count from the event stream, before composing; refuse an
    alias inside the node it names (the composer would build a cycle, and converting it never ends)."""
    total = 0  # nodes so far, each alias counted as the whole subtree it names
    # Per open collection: [anchor, total when it opened, its depth, the deepest level reached inside it].
    stack: list[list] = []
    defined: dict[str, int] = {}  # every anchor seen so far -> its line
    closed: dict[str, tuple[int, int]] = {}  # anchors whose node is complete -> (nodes, levels it nests)
    for event in yaml.parse(text, Loader=_Loader):  # events only: no tree is built yet
        mark = event.start_mark
        anchor = event.anchor if isinstance(event, yaml.NodeEvent) else None
        if anchor is not None and not isinstance(event, yaml.AliasEvent):
            if anchor in defined:  # checked here so that both parsers say it the same way
                raise SpecError(f"anchor '&{anchor}' is defined twice (first at line {defined[anchor]})",
                                span=_at(doc, mark), hint="give each anchor its own name")
            defined[anchor] = mark.line + 1
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth = len(stack) + 1
            if depth > MAX_DEPTH:
                raise SpecError(f"nesting is deeper than {MAX_DEPTH} levels", span=_at(doc, mark))
            stack.append([anchor, total, depth, depth])
            total += 1
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            anchor, start, depth, deepest = stack.pop()
            if anchor:
                closed[anchor] = (total - start, deepest - depth + 1)
            if stack:
                stack[-1][3] = max(stack[-1][3], deepest)
        elif isinstance(event, yaml.ScalarEvent):
            total += 1
            if anchor:
                closed[anchor] = (1, 0)
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor in defined and event.anchor not in closed:
                raise SpecError(
                    f"a YAML alias refers to the node that contains it: '*{event.anchor}' is inside "
                    f"'&{event.anchor}' (line {defined[event.anchor]}), so the value would contain itself",
                    span=_at(doc, mark), hint="write the value out instead of the alias")
            size, levels = closed.get(event.anchor, (1, 0))  # an unknown anchor: the composer says so
            total += size
            if stack:  # the alias nests its whole subtree here: `b: [[*a]]` is as deep as `a` plus two
                if len(stack) + levels > MAX_DEPTH:
                    raise SpecError(f"nesting is deeper than {MAX_DEPTH} levels (aliases counted in full)",
                                    span=_at(doc, mark), hint="write the nested value out")
                stack[-1][3] = max(stack[-1][3], len(stack) + levels)
        if total > MAX_NODES:
            raise SpecError(
                f"the spec expands to more than {MAX_NODES} values (aliases counted in full)",
                span=_at(doc, mark),
                hint="a spec is a small file; remove repeated aliases",
            )


def _at(doc: Document, mark: yaml.Mark) -> Span:
    return doc.span_at(mark.line + 1, mark.column + 1)


def _convert(node: yaml.Node, path: Path_, doc: Document, errors: list[SpecError]) -> Any:
    doc.value_spans.setdefault(path, _span(doc, node))
    if isinstance(node, yaml.MappingNode):
        if node.tag != _MAP:
            errors.append(_tag_error(node, path, doc))
            return None
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                errors.append(
                    SpecError("merge keys (`<<`) are not supported", path=dotted(path), span=_span(doc, key_node))
                )
                continue
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR:
                shown = key_node.value if isinstance(key_node, yaml.ScalarNode) else "a collection"
                errors.append(
                    SpecError(
                        f"keys must be names, got {shown!r}",
                        path=dotted(path),
                        span=_span(doc, key_node),
                        hint="quote the key if it is meant as a name",
                    )
                )
                continue
            key = key_node.value
            if key in out:
                first = doc.key_spans[path + (key,)]
                errors.append(
                    SpecError(
                        f"duplicate key '{key}' (first at line {first.line})",
                        path=dotted(path + (key,)),
                        span=_span(doc, key_node),
                        hint="remove one of them",
                    )
                )
                continue
            doc.key_spans[path + (key,)] = _span(doc, key_node)
            out[key] = _convert(value_node, path + (key,), doc, errors)
        return out
    if isinstance(node, yaml.SequenceNode):
        if node.tag != _SEQ:
            errors.append(_tag_error(node, path, doc))
            return None
        return [_convert(item, path + (i,), doc, errors) for i, item in enumerate(node.value)]
    if node.tag not in _SCALARS:
        errors.append(_tag_error(node, path, doc))
        return None
    return _scalar(node, path, doc, errors)


def _int(text: str) -> int:
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-")
    if digits.startswith(("0x", "0o")):
        return sign * int(digits[2:], 16 if digits[1] == "x" else 8)
    return sign * int(digits, 10)


def _float(text: str) -> float:
    low = text.lower()
    if low.endswith(".inf"):
        return float("-inf") if low.startswith("-") else float("inf")
    return float("nan") if low == ".nan" else float(text)


_SCALARS = {
    _STR: str,
    _INT: _int,
    _FLOAT: _float,
    _BOOL: lambda text: text.lower() == "true",
    _NULL: lambda text: None,
}


def _scalar(node: yaml.ScalarNode, path: Path_, doc: Document, errors: list[SpecError]) -> Any:
    if node.style or node.tag == _STR:  # quoted (a style of '"' or "'"): always a string
        return node.value
    try:
        return _SCALARS[node.tag](node.value)
    except ValueError:
        errors.append(SpecError(f"number {node.value[:20]}… is too long to read", path=dotted(path),
                                span=_span(doc, node), hint="use a number of a sensible size"))
        return None


def _yaml_error(e: yaml.MarkedYAMLError, doc: Document) -> SpecError:
    mark = e.problem_mark or e.context_mark
    problem = (e.problem or e.context or "invalid YAML").strip()
    line = min(mark.line + 1, max(len(doc.lines), 1)) if mark else 1
    col = mark.column + 1 if mark and mark.line < len(doc.lines) else max(len(doc.lines[-1]) if doc.lines else 0, 1)
    if e.context and e.context_mark and e.problem_mark and e.context_mark.line != e.problem_mark.line:
        problem += f" ({e.context} at line {e.context_mark.line + 1})"
    hint = None
    if "another document" in problem:
        problem, hint = "a spec is one YAML document", "remove the second `---` and what follows it"
    elif "\t" in doc.span_at(line, col).text:
        hint = "indent with spaces, not tabs"
    elif "mapping values are not allowed" in problem:
        hint = "quote a value that contains ': '"
    return SpecError(f"invalid YAML: {problem}", span=doc.span_at(line, col), hint=hint)


def _tag_error(node: yaml.Node, path: Path_, doc: Document) -> SpecError:
    tag = node.tag.replace("tag:yaml.org,2002:", "!!")
    return SpecError(
        f"YAML tag '{tag}' is not allowed",
        path=dotted(path),
        span=_span(doc, node),
        hint="a spec is plain data: mappings, lists, strings, numbers and booleans",
    )
