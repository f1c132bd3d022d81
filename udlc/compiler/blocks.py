"""Blocks: reusable, parameterized sequences of layers, expanded where they are used.

`$name` in a block's layers stands for a parameter, and an expression over parameters (`$ch * 4`,
`max(8, $ch // 4)`: udlc.compiler.expressions) for its value; each use gets its own scope, so the names of its
nodes are prefixed with the use's name (`conv_bn_1_conv2d`) and its ids do not leak out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from udlc.compiler.expressions import ExpressionError, evaluate, is_expression
from udlc.compiler.library import library_blocks
from udlc.errors import SpecError, did_you_mean, one_of, show
from udlc.spec.loader import Path_
from udlc.spec.model import BlockParam

if TYPE_CHECKING:
    from udlc.compiler.resolve import Resolver


@dataclass
class Scope:
    """What names mean where an entry is resolved: the top level, or inside one block call."""

    prefix: str  # prepended to node names made here: "" or "conv_bn_1_"
    names: dict[str, str | None]  # ids visible here -> node names (None: unknown after an upstream error)
    params: dict[str, Any]  # block parameter values, for `$name`
    stack: tuple[str, ...] = ()  # block names being expanded, to catch recursion
    use: tuple[str, int] | None = None  # (block, line of the call) inside a block; named in its errors
    doc: Any = None  # the document these entries are written in: a library block's file, or None (the spec)
    groups: tuple[str, ...] = ()  # the block and stage calls around these entries, outermost first (Node.groups)


def call_block(r: Resolver, name: str, args: Any, meta: dict, path: Path_, prev: str | None,
               scope: Scope, instance: str | None = None) -> str | None:
    """Expand a use of the spec's block `name`, or else of udlc's own library block of that name. Its nodes are
    named `<instance>_…`: by default the block's name, numbered from its second use."""
    if name in r.model.blocks:  # written in the spec, even when a library block calls it by a parameter
        block, doc, body_path = r.model.blocks[name], None, r.base + ("blocks", name, "layers")
    else:
        entry = library_blocks()[name]
        block, doc, body_path = entry.spec, entry.doc, entry.base + ("layers",)
    if name in scope.stack:
        chain = " → ".join(scope.stack + (name,))
        r.error(f"block '{name}' uses itself ({chain})", path, key=True, scope=scope,
               hint="a block may not call itself, directly or through another block")
        return None
    values = block_args(r, name, block.params, args, path, scope)
    if values is None:
        return None
    span = r.doc_of(scope).span(path, key=True)
    # The use named in messages: this call, unless it is written in a library block, which users do not read:
    # then the spec's call that led here (a mistake in feed_forward inside gpt_block names gpt_block's line).
    use = scope.use if scope.doc is not None and scope.use else (name, span.line if span else 0)
    inputs = block_inputs(r, name, block.inputs, meta, prev, path, scope)
    if inputs is None:
        return None
    x, rest = inputs[0], inputs[1:]
    for _ in range(meta.get("repeat", 1)):
        prefix = r.fresh(instance or name, scope) + "_"
        # An input left unknown by an upstream error is still a name here (mapped to None), so the body's
        # `from: memory` is not reported as unknown: the nodes that read it are skipped instead.
        names = dict(zip(block.inputs, [x, *rest]))
        inner = Scope(prefix, names, values, scope.stack + (name,), use, doc, scope.groups + (prefix[:-1],))
        before = len(r.errors)
        layers = substitute(r, block.layers, body_path, inner)
        if len(r.errors) > before:
            return None  # an unknown `$param`: checking the body would only repeat it
        x = r.sequence(layers, body_path, x, inner)  # the first input chains from one repetition to the next
    return r.named(x, meta, scope)


def block_inputs(r: Resolver, name: str, wanted: list[str], meta: dict, prev: str | None, path: Path_,
                 scope: Scope) -> list[str | None] | None:
    """The nodes a call feeds to the block's inputs: `from` names one per input, in order; without `from`, a
    one-input block takes the previous layer."""
    given = r.inputs(meta, prev, scope)
    if len(given) == len(wanted):
        return given
    ids = ", ".join(wanted)
    if "from" in meta:
        r.error(f"`from` names {len(given)} node{'s' * (len(given) != 1)}, but block '{name}' takes "
                f"{len(wanted)} input{'s' * (len(wanted) != 1)} ({ids})", path + ("from",), scope=scope,
                hint=f"write `from: [{ids}]` with the ids of the nodes to feed" if len(wanted) > 1 else
                "merge them first with `add` or `concat`")
    else:
        r.error(f"block '{name}' takes {len(wanted)} inputs ({ids})", path, key=True, scope=scope,
                hint=f"name them in order: `{name}: {{from: [{ids}], ...}}` with the ids of the nodes to feed")
    return None


def merge_uses(errors: list[tuple[SpecError, tuple[str, int] | None]]) -> list[SpecError]:
    """One error per mistake. A mistake inside a block is found once per use of the block (a block used
    in three places, or inside a block used three times, is expanded three times); it is reported once,
    naming the block and the lines that use it: "... (in block 'inception' used at lines 30, 31, 35)".
    The same mistake with different details (a shape that depends on the use) stays separate."""
    lines: dict[tuple, list[int]] = {}
    first: dict[tuple, SpecError] = {}
    for err, use in errors:
        key = (err.span, err.path, err.message, err.hint, use[0] if use else None)
        first.setdefault(key, err)
        if use and use[1] and use[1] not in lines.setdefault(key, []):
            lines[key].append(use[1])
    out = []
    for key, err in first.items():
        if lines.get(key):
            at = sorted(lines[key])
            where = f"line {at[0]}" if len(at) == 1 else f"lines {', '.join(map(str, at))}"
            err = SpecError(f"{err.message} (in block '{key[-1]}' used at {where})", path=err.path, span=err.span,
                            hint=err.hint)
        out.append(err)
    return out


def block_args(r: Resolver, name: str, params: dict, args: Any, path: Path_, scope: Scope) -> dict | None:
    if args is None:
        args = {}
    elif not isinstance(args, dict):
        if len(params) != 1:
            r.error(f"block '{name}' takes named arguments", path, scope=scope,
                   hint=f"write `{name}: {{{', '.join(f'{p}: ...' for p in params)}}}`")
            return None
        args = {next(iter(params)): args}
    values, ok = {}, True
    for key, value in args.items():
        if key not in params:
            r.error(f"block '{name}' has no parameter '{key}'", path + (key,), key=True, scope=scope,
                   hint=did_you_mean(key, params) or (one_of(params) if params else "it takes none"))
            ok = False
            continue
        kind = params[key].type if isinstance(params[key], BlockParam) else _kind_of(params[key])
        if not _is_kind(value, kind) and not (value is None and _optional(params[key])):
            r.error(f"parameter '{key}' must be {_KIND_WORDS[kind]} (got {show(value)})", path + (key,),
                   scope=scope)
            ok = False
        values[key] = value
    for key, spec in params.items():
        if key in values:
            continue
        if isinstance(spec, BlockParam):
            if spec.default is None and not _optional(spec):
                r.error(f"block '{name}' needs parameter '{key}'", path, scope=scope, hint=f"add `{key}: ...`")
                ok = False
            values[key] = spec.default
        else:
            values[key] = spec
    return values if ok else None

def substitute(r: Resolver, value: Any, path: Path_, scope: Scope) -> Any:
    """Replace each `$name` value with the block parameter's value, and each `$name` key with its value, a
    name: `- $feed_forward: {d_model: $d_model}` calls the layer or block that the parameter names."""
    if is_expression(value):  # `$ch * 2`, `max(8, $ch // 4)`
        try:
            return evaluate(value, scope.params)
        except ExpressionError as e:
            r.error(str(e), path, scope=scope, hint=None if e.unknown is None else missing_hint(e.unknown, scope))
            return value
    if isinstance(value, str) and value.startswith("$"):
        return parameter(r, value, path, scope, key=False)
    if isinstance(value, list):
        return [substitute(r, v, path + (i,), scope) for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = Substituted()
        for k, v in value.items():
            name = k
            if isinstance(k, str) and k.startswith("$"):
                name = parameter(r, k, path + (k,), scope, key=True)
                if not isinstance(name, str):
                    r.error(f"parameter '{k[1:]}' is used as a name here, so it must be a string (got {show(name)})",
                            path + (k,), key=True, scope=scope)
                    name = k
                out.written[name] = k
            out[name] = substitute(r, v, path + (k,), scope)
        return out
    return value


class Substituted(dict):
    """A mapping after substitution that remembers the keys as written (`feed_forward` was `$feed_forward`), so
    that the resolver's paths, and so its messages, point at the entry where it is in the file."""

    def __init__(self) -> None:
        super().__init__()
        self.written: dict[str, str] = {}


def written_key(mapping: Any, key: str) -> str:
    """`key` as the file has it: `$feed_forward` for a key substituted to `feed_forward`."""
    return mapping.written.get(key, key) if isinstance(mapping, Substituted) else key


def parameter(r: Resolver, ref: str, path: Path_, scope: Scope, key: bool) -> Any:
    """The value of the parameter `ref` (`$name`) names; an error, and `ref` itself, when it names none."""
    if ref[1:] in scope.params:
        return scope.params[ref[1:]]
    hint = missing_hint(ref[1:], scope)
    if not ref[1:].isidentifier():  # `{reduced: max(1, $inp // 4)}`: YAML split the flow mapping at the comma
        hint = "inside `{...}`, quote an expression that holds a comma: \"max(1, $inp // 4)\""
    r.error(f"unknown parameter '{ref}'", path, scope=scope, key=key, hint=hint)
    return ref


def missing_hint(name: str, scope: Scope) -> str:
    """What to say of a parameter the scope does not have: the closest it has, or where to declare one."""
    if scope.params:
        return did_you_mean(name, scope.params) or one_of(scope.params)
    return "declare it under the block's `params`" if scope.stack else "declare it under `model.params`"


def _optional(spec: Any) -> bool:
    """`{type: int, default: null}`: the parameter may be left out, and is then null (the layer's own default)."""
    return isinstance(spec, BlockParam) and spec.default is None and "default" in spec.model_fields_set


_KIND_WORDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string", "list": "a list"}


def _kind_of(default: Any) -> str:
    for kind, t in (("bool", bool), ("int", int), ("float", float), ("str", str), ("list", list)):
        if isinstance(default, t):
            return kind
    return "str"


def _is_kind(value: Any, kind: str) -> bool:
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, {"bool": bool, "str": str, "list": list}[kind])
