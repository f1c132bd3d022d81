"""Type inference for one node: its output dtype(s) and shape(s), parameters and FLOPs.

Shapes may hold named symbols (`T`, `N`, and offsets of them such as `T-2`). Layer shape rules only
know sizes, so a node whose inputs hold symbols is evaluated twice, at two bindings of every symbol,
and each output dimension is named from the two results: the same size both times is a size; the
symbol's size plus a constant both times is that symbol plus the constant; anything else (a strided
convolution over T, a flatten of (T, 64)) is an error that says which symbol it depends on. The same
two bindings check that the layer's parameter count does not depend on a symbol.
"""

from __future__ import annotations

import math
import re
from typing import Any

from udlc.layers.registry import LayerType, Shape, ShapeError, fmt

_DIM = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)([+-]\d+)?$")
# Every symbol is evaluated at REPORT_SIZE (FLOPs are reported there) and at its own prime from PROBES,
# distinct per symbol, so an offset names exactly one symbol.
REPORT_SIZE = 32
PROBES = (61, 67, 71, 73, 79, 83, 89, 97, 101, 103, 107, 109, 113, 127, 131, 137)


def is_symbolic(shape: Shape) -> bool:
    return any(isinstance(d, str) for d in shape)


def symbols(shape: Shape) -> list[str]:
    """The base symbols a shape mentions, in order: ('T', 'T-2', 8) -> ['T']."""
    found = []
    for d in shape:
        if isinstance(d, str):
            base = _DIM.match(d).group(1)  # type: ignore[union-attr]
            if base not in found:
                found.append(base)
    return found


def bind(shape: Shape, binding: dict[str, int]) -> tuple[int, ...]:
    """The shape with every symbol replaced by its size."""
    out = []
    for d in shape:
        if isinstance(d, str):
            base, offset = _DIM.match(d).groups()  # type: ignore[union-attr]
            d = binding[base] + int(offset or 0)
        out.append(d)
    return tuple(out)


def bindings(names: list[str]) -> tuple[dict[str, int], dict[str, int]]:
    if len(names) > len(PROBES):
        raise ShapeError(f"more than {len(PROBES)} symbolic dimensions")
    return {n: REPORT_SIZE for n in names}, dict(zip(names, PROBES))


def within(binding: dict[str, int], bounds: dict[str, int]) -> dict[str, int]:
    """The binding with every symbol held to its bound (Graph.bounds)."""
    return {s: min(size, bounds.get(s, size)) for s, size in binding.items()}


def name_dims(a: tuple[int, ...], b: tuple[int, ...], bind_a: dict[str, int], bind_b: dict[str, int]) -> Shape:
    """The symbolic shape whose sizes are `a` under bind_a and `b` under bind_b."""
    out: list[int | str] = []
    for i, (da, db) in enumerate(zip(a, b)):
        if da == db:
            out.append(da)
            continue
        named = next((s for s in bind_a if da - bind_a[s] == db - bind_b[s]), None)
        if named is None:
            raise ShapeError(f"axis {i} of the output depends on {' or '.join(bind_a)} in a way that has no name "
                             f"(a stride or a flatten over a variable size)",
                             "give that axis a fixed size in the input, or keep it out of strides and flattens")
        offset = da - bind_a[named]
        out.append(named if offset == 0 else f"{named}{offset:+d}")
    return tuple(out)


def infer(lt: LayerType, cfg: Any, shapes: list[Shape], dtypes: list[str]) -> tuple[list[Shape], list[str], int, int]:
    """(output shapes, output dtypes, parameters, FLOPs per sample) of a node; ShapeError when it does not fit.
    A node with one output gets lists of one. FLOPs of a symbolic shape are counted at REPORT_SIZE."""
    out_dtypes = lt.dtype(cfg, *dtypes)
    out_dtypes = list(out_dtypes) if isinstance(out_dtypes, tuple) else [out_dtypes]
    names = [n for s in shapes for n in symbols(s)]
    names = list(dict.fromkeys(names))
    if not names:
        outs = _shapes(lt, cfg, shapes)
        return outs, _fit(out_dtypes, outs), lt.params(cfg, *shapes), lt.flops(cfg, *shapes)
    bind_a, bind_b = bindings(names)
    at_a, at_b = [bind(s, bind_a) for s in shapes], [bind(s, bind_b) for s in shapes]
    try:
        outs_a, outs_b = _shapes(lt, cfg, at_a), _shapes(lt, cfg, at_b)
        params_a, params_b = lt.params(cfg, *at_a), lt.params(cfg, *at_b)
        flops = lt.flops(cfg, *at_a)
    except ShapeError as e:  # say it in the user's symbols, not the sizes they were evaluated at
        message, hint = e.message, e.hint
        for concrete in (at_a, at_b):
            message, hint = _symbolic(message, concrete, shapes), _symbolic(hint, concrete, shapes)
        raise ShapeError(message, hint) from None
    if params_a != params_b:
        raise ShapeError(f"its parameter count depends on {' or '.join(names)}: the input {fmt(shapes[0])} must have "
                         "a fixed size where this layer's weights are shaped", "give that axis a fixed size")
    outs = [name_dims(a, b, bind_a, bind_b) for a, b in zip(outs_a, outs_b)]
    return outs, _fit(out_dtypes, outs), params_a, flops


def fit_sample(shape: Shape, natural: tuple[int, ...] | None, size: int) -> tuple[int, ...] | None:
    """The sizes a data sample of `size` values (natural shape `natural`, when known) takes as an input of
    `shape`; None when it cannot. Symbols bind to the data: [T, 8] takes digits' 64 values as (8, 8)."""
    if not is_symbolic(shape):
        return tuple(shape) if math.prod(shape) == size else None  # type: ignore[arg-type]
    if natural is not None and len(natural) == len(shape):
        binding: dict[str, int] = {}
        for d, n in zip(shape, natural):
            if isinstance(d, int) and d != n or isinstance(d, str) and binding.setdefault(d, n) != n:
                break
        else:
            return tuple(natural)
    (name,) = symbols(shape) if len(symbols(shape)) == 1 else (None,)
    if name is None or any(isinstance(d, str) and d != name for d in shape):
        return None  # several symbols, or an offset: a flat sample cannot say how to cut
    fixed = math.prod(d for d in shape if isinstance(d, int))
    count = sum(d == name for d in shape)
    value = round((size / fixed) ** (1 / count)) if size % fixed == 0 else 0
    if value < 1 or fixed * value**count != size:
        return None
    return bind(shape, {name: value})


def _shapes(lt: LayerType, cfg: Any, shapes: list[Any]) -> list[Shape]:
    out = lt.shape(cfg, *shapes)
    return [tuple(s) for s in out] if lt.outputs is not None else [tuple(out)]


def _fit(dtypes: list[str], outs: list[Shape]) -> list[str]:
    return dtypes * len(outs) if len(dtypes) == 1 else dtypes


def _symbolic(text: str | None, concrete: list[tuple[int, ...]], shapes: list[Shape]) -> str | None:
    if text is None:
        return None
    for c, s in zip(concrete, shapes):
        text = text.replace(fmt(c), fmt(s))
    return text
