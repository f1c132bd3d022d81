"""Combinators: entries that wrap other layers rather than being one (residual, parallel, repeat).

Each is registered once, with what it takes (the list its mapping form holds, its options and their
defaults, the JSON Schema of both) and how it expands into plain nodes while the resolver walks the spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable

from udlc.compiler.blocks import Scope
from udlc.compiler.infer import is_symbolic
from udlc.errors import did_you_mean, show
from udlc.layers import REGISTRY
from udlc.layers.registry import fmt
from udlc.spec.loader import Path_

if TYPE_CHECKING:
    from udlc.compiler.resolve import Resolver

# (resolver, the list of layers or branches, its path, the options, node keys, entry path, previous, scope)
Expand = Callable[["Resolver", Any, Path_, dict, dict, Path_, "str | None", Scope], "str | None"]


@dataclass(frozen=True)
class Combinator:
    name: str
    key: str  # what the mapping form's list is called: `residual: {layers: [...], projection: true}`
    options: dict[str, Any]  # option -> default
    expand: Expand
    description: str
    options_schema: dict[str, Any] = field(default_factory=dict)  # option -> JSON Schema
    bare_list: bool = True  # `residual: [...]` is the mapping form with default options


COMBINATORS: dict[str, Combinator] = {}


def register(c: Combinator) -> None:
    if c.name in COMBINATORS or c.name in REGISTRY:
        raise ValueError(f"combinator {c.name!r} registered twice or named like a layer")
    COMBINATORS[c.name] = c


def residual(r: Resolver, layers: Any, body_path: Path_, opts: dict, meta: dict, path: Path_, prev: str | None,
             scope: Scope) -> str | None:
    if not layers:
        r.error("a residual needs at least one layer", path, scope=scope, key=True)
        return None
    x = r.single_input(meta, prev, path, scope)
    out = None
    for _ in range(meta.get("repeat", 1)):
        y = r.sequence(layers, body_path, x, scope)
        if x is None or y is None:
            return None
        skip = x
        xs, ys = r.graph.shape_of(x), r.graph.shape_of(y)
        if xs is not None and ys is not None and xs != ys:
            if opts["shortcut"] == "none":  # no skip where the shapes differ (MobileNet's inverted residuals)
                out = x = y
                continue
            if opts["shortcut"] is not None:  # the spec's own way to match shapes (ResNet: conv 1x1 + batch norm)
                skip = r.sequence(opts["shortcut"], path + ("shortcut",), x, scope)
                ss = r.graph.shape_of(skip) if skip is not None else None
                if ss is not None and ss != ys:
                    r.error(f"the shortcut turns {fmt(xs)} into {fmt(ss)}, but the body into {fmt(ys)}",
                            path + ("shortcut",), scope=scope, key=True,
                            hint="give the shortcut the body's output channels and stride")
                    return None
            elif opts["projection"] is not True:
                r.error(f"the residual body turns {fmt(xs)} into {fmt(ys)}; x + f(x) needs them equal", path,
                        scope=scope, key=True, hint="add `projection: true` to project x with a 1x1 convolution, "
                        "or give a `shortcut:` of layers that does")
                return None
            else:
                skip = projection(r, x, xs, ys, path, scope)
            if skip is None:
                return None
        out = x = r.add_node("add", REGISTRY["add"].config(), [skip, y], path, scope)
    return r.named(out, meta, scope)


def projection(r: Resolver, x: str, xs: tuple, ys: tuple, path: Path_, scope: Scope) -> str | None:
    """1x1 convolution (or linear layer) that maps shape xs to ys, striding over shrunk spatial axes."""
    if len(xs) != len(ys) or not 1 <= len(xs) <= 3:
        r.error(f"cannot project {fmt(xs)} to {fmt(ys)}", path, scope=scope, key=True)
        return None
    if len(xs) == 1 or (is_symbolic(xs) and xs[:-1] == ys[:-1]):  # features, or (T, features)
        return r.add_node("linear", REGISTRY["linear"].config(out_features=ys[-1]), [x], path, scope)
    strides = [1 if a == b else a // b if isinstance(a, int) and isinstance(b, int) and a % b == 0 else 0
               for a, b in zip(xs[1:], ys[1:])]
    if 0 in strides or len(set(strides)) != 1:
        r.error(f"cannot project {fmt(xs)} to {fmt(ys)} with a strided 1x1 convolution", path, scope=scope, key=True)
        return None
    op = "conv1d" if len(xs) == 2 else "conv2d"
    cfg = REGISTRY[op].config(out_channels=ys[0], kernel_size=1, stride=strides[0])
    return r.add_node(op, cfg, [x], path, scope)


def parallel(r: Resolver, branches: Any, branches_path: Path_, opts: dict, meta: dict, path: Path_,
             prev: str | None, scope: Scope) -> str | None:
    if not isinstance(branches, list) or len(branches) < 2:
        r.error("a parallel needs two or more branches (lists of layers)", path, scope=scope, key=True)
        return None
    if opts["merge"] not in ("concat", "add"):
        r.error(f"unknown merge '{opts['merge']}'", path + ("merge",), scope=scope, hint="expected concat or add")
        return None
    x = r.single_input(meta, prev, path, scope)
    # The branches are checked even when x is unknown (an error upstream): they may hold mistakes of their own.
    outs = [r.sequence(b, branches_path + (i,), x, scope) if b else x for i, b in enumerate(branches)]
    if None in outs:
        return None
    if opts["merge"] == "add":
        cfg = REGISTRY["add"].config()
    else:
        cfg = r.config(REGISTRY["concat"].config, {"dim": opts["dim"]}, path, scope)
        if cfg is None:
            return None
    return r.named(r.add_node(opts["merge"], cfg, outs, path, scope), meta, scope)


def valid_times(r: Resolver, times: Any, path: Path_, scope: Scope) -> bool:
    """`times` of a stage or a repeat: a whole number from 1 to 1000 (else an error at it)."""
    if type(times) is not int or not 1 <= times <= 1000:
        r.error(f"times must be a whole number from 1 to 1000 (got {show(times)})", path + ("times",), scope=scope)
        return False
    return True


def stage(r: Resolver, block: Any, block_path: Path_, opts: dict, meta: dict, path: Path_, prev: str | None,
          scope: Scope) -> str | None:
    """A block `times` times in sequence, with `args`, the first copy's overridden by `first` (a ResNet stage:
    `stage: {block: basic, times: 2, args: {ch: 128}, first: {stride: 2}}`). The copies' nodes are named
    `<id>_<i>_…` (`layer2_0_conv1`), as the papers' figures number them."""
    from udlc.compiler.blocks import call_block
    from udlc.compiler.library import library_blocks

    times = opts["times"]
    if not valid_times(r, times, path, scope):
        return None
    if not isinstance(block, str) or (block not in r.model.blocks and block not in library_blocks()):
        known = [*r.model.blocks, *library_blocks()]
        r.error(f"no block named {show(block)}", block_path, scope=scope,
                hint=did_you_mean(str(block), known) or "define it under `blocks:`")
        return None
    for key in ("args", "first"):
        if not isinstance(opts[key], dict):
            r.error(f"`{key}` must be a mapping of the block's parameters (got {show(opts[key])})", path + (key,),
                    scope=scope)
            return None
    x = r.single_input(meta, prev, path, scope)
    label = meta["id"] if "id" in meta else r.fresh("stage", scope)
    inside = replace(scope, groups=scope.groups + (label,))  # the same names dict: ids made here stay visible
    for i in range(times * meta.get("repeat", 1)):
        args = {**opts["args"], **(opts["first"] if i == 0 else {})}
        where = path + ("first" if i == 0 and opts["first"] else "args",)
        x = call_block(r, block, args, {}, where, x, inside, instance=f"{label}_{i}")
        if x is None:
            return None
    return r.named(x, meta, scope)


def repeat(r: Resolver, layers: Any, layers_path: Path_, opts: dict, meta: dict, path: Path_, prev: str | None,
           scope: Scope) -> str | None:
    times = opts["times"]
    if not valid_times(r, times, path, scope):
        return None
    x = r.single_input(meta, prev, path, scope)
    for _ in range(times * meta.get("repeat", 1)):
        x = r.sequence(layers, layers_path, x, scope)
    return r.named(x, meta, scope)


register(Combinator("residual", "layers", {"projection": False, "shortcut": None}, residual,
                    "x + f(x); when the shapes differ, `shortcut:` layers (or `projection: true`, a 1x1 "
                    "convolution) map x to the body's shape, and `shortcut: none` leaves f(x) alone",
                    {"projection": {"type": "boolean"},
                     "shortcut": {"anyOf": [{"type": "array", "items": {"$ref": "#/$defs/LayerEntry"}},
                                            {"const": "none"}]}}))
register(Combinator("parallel", "branches", {"merge": "concat", "dim": 0}, parallel,
                    "branches on the same input, merged by concat (default) or add",
                    {"merge": {"enum": ["concat", "add"]}, "dim": {"type": "integer"}}))
register(Combinator("stage", "block", {"times": 1, "args": {}, "first": {}}, stage,
                    "a block `times` times in sequence with `args`, the first copy's changed by `first`",
                    {"times": {"type": "integer", "minimum": 1, "maximum": 1000}, "args": {"type": "object"},
                     "first": {"type": "object"}}, bare_list=False))
register(Combinator("repeat", "layers", {"times": 1}, repeat, "the layers, `times` times in sequence",
                    {"times": {"type": "integer", "minimum": 1, "maximum": 1000}}, bare_list=False))
