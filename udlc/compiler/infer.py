"""Type inference for one node: its output dtype(s) and shape(s), parameters and FLOPs.

Shapes may hold named symbols (`T`, `N`, `H`) and dimensions made from one of them: an offset (`T-2`, after an
unpadded convolution), a multiple or a fraction (`2*H` after a pixel shuffle, `H/2` after a pooling or a pixel
unshuffle, `3*H/2+1`). Layer shape rules only know sizes, so a node whose inputs hold symbols is evaluated twice,
at two bindings of every symbol, and each output dimension is named from the two results: the same size both times
is a size; a multiple of one symbol's size by a fraction whose denominator divides STEP_MAX, plus a whole number,
(up to MULTIPLE_MAX times) is that; anything else (a flatten of (T, 64)) is an error that says which symbol it depends on. Both bindings are
multiples of STEP_MAX, so a halving or a pixel unshuffle of any depth up to it stays exact. The same two bindings
check that the layer's parameter count does not depend on a symbol.
"""

from __future__ import annotations

import math
import re
from typing import Any, Iterable

from udlc.layers.registry import LayerType, Shape, ShapeError, fmt

# k*S/d+c: a symbol S times a fraction k/d, plus an offset c (each part optional: `T`, `T-2`, `2*H`, `H/2+1`).
_DIM = re.compile(r"^(?:(\d+)\*)?([A-Za-z_][A-Za-z0-9_]*)(?:/(\d+))?([+-]\d+)?$")
STEP_MAX = 16  # the largest denominator a dimension is named with: four halvings (a U-Net's depth)
MULTIPLE_MAX = 4  # the largest multiple: a pixel shuffle by 4; a flatten of (8, T) has no name
# Every symbol is evaluated at REPORT_SIZE (FLOPs are reported there) and at its own size from PROBES: multiples of
# STEP_MAX whose distances from REPORT_SIZE are STEP_MAX times distinct odd primes, so that a dimension whose sizes
# fit a small multiple of one symbol cannot fit another's too.
REPORT_SIZE = 32
PROBES = tuple(REPORT_SIZE + STEP_MAX * p for p in (3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59))


def parse_dim(d: str) -> tuple[int, str, int, int]:
    """A symbolic dimension's (multiplier, symbol, divisor, offset): `3*H/2+1` -> (3, 'H', 2, 1)."""
    k, base, div, offset = _DIM.match(d).groups()  # type: ignore[union-attr]
    return int(k or 1), base, int(div or 1), int(offset or 0)


def dim_text(k: int, base: str, div: int, offset: int) -> str:
    g = math.gcd(k, div)
    k, div = k // g, div // g
    return f"{f'{k}*' if k != 1 else ''}{base}{f'/{div}' if div != 1 else ''}{f'{offset:+d}' if offset else ''}"


def steps(shapes: Iterable[Shape]) -> dict[str, int]:
    """The multiple each symbol's size must be for every dimension of `shapes` to be whole (2 for `H/2`)."""
    out: dict[str, int] = {}
    for shape in shapes:
        for d in shape:
            if isinstance(d, str):
                _, base, div, _ = parse_dim(d)
                out[base] = math.lcm(out.get(base, 1), div)
    return out


def is_symbolic(shape: Shape) -> bool:
    return any(isinstance(d, str) for d in shape)


def symbols(shape: Shape) -> list[str]:
    """The base symbols a shape mentions, in order: ('T', 'T-2', 8) -> ['T']."""
    found = []
    for d in shape:
        if isinstance(d, str):
            base = parse_dim(d)[1]
            if base not in found:
                found.append(base)
    return found


def bind(shape: Shape, binding: dict[str, int]) -> tuple[int, ...]:
    """The shape with every symbol replaced by its size; ShapeError where a fraction of it is not whole (`H/2`
    at an odd H)."""
    out = []
    for d in shape:
        if isinstance(d, str):
            k, base, div, offset = parse_dim(d)
            if binding[base] * k % div:
                raise ShapeError(f"{base} = {binding[base]} makes {d} a fraction: {base} must be a multiple of "
                                 f"{div // math.gcd(k, div)}")
            d = binding[base] * k // div + offset
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
        named = []
        for s in bind_a:  # the sizes' slope against each symbol: k/d with d dividing STEP_MAX, and a whole offset
            k, rest = divmod((db - da) * STEP_MAX, bind_b[s] - bind_a[s])
            offset = da - bind_a[s] * k / STEP_MAX
            if not rest and 0 < k <= MULTIPLE_MAX * STEP_MAX and offset == int(offset):
                named.append((abs(offset), k, dim_text(k, s, STEP_MAX, int(offset))))
        if not named:
            raise ShapeError(f"axis {i} of the output depends on {' or '.join(bind_a)} in a way that has no name "
                             f"(a flatten over a variable size, or a stride that does not divide it)",
                             "give that axis a fixed size in the input, or keep it out of flattens")
        out.append(min(named)[2])  # the simplest reading: no offset before one, a small multiple before a large
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
