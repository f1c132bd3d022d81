"""Arithmetic over a block's parameters: `$width * 4`, `$ch // 2`, `max(8, $ch // 4)`, `make_divisible($ch * 0.75)`.

A small, safe grammar: numbers, `$parameters`, + - * / // % **, unary minus, parentheses, and calls of a fixed
list of functions. It is parsed by Python's own parser and evaluated by walking the tree here — never `eval` —
so anything else (names, attributes, subscripts, other calls, keyword arguments) is refused with a message.
"""

from __future__ import annotations

import ast
import functools
import math
import operator
import re
from typing import Any

PARAMETER = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_PREFIX = "_udlc_param_"  # `$ch` is parsed as this name; a name without it was written without `$`


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """The nearest multiple of `divisor` to `value`, at least `min_value` (default `divisor`) and never more than
    10 % below `value`: MobileNet's and EfficientNet's channel rounding, as torchvision writes it."""
    floor = divisor if min_value is None else min_value
    rounded = max(floor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


FUNCTIONS = {"max": max, "min": min, "round": round, "int": int, "float": float, "abs": abs, "ceil": math.ceil,
             "floor": math.floor, "make_divisible": make_divisible}
_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}


class ExpressionError(ValueError):
    def __init__(self, message: str, unknown: str | None = None):
        super().__init__(message)
        self.unknown = unknown  # the parameter it names that the scope does not have


def is_expression(text: Any) -> bool:
    """A string that uses a parameter inside more than the parameter itself (`$ch * 2`, not `$ch`)."""
    return isinstance(text, str) and "$" in text and PARAMETER.fullmatch(text.strip()) is None


def evaluate(text: str, params: dict[str, Any]) -> int | float:
    """The value of `text` with the block's parameter values; ExpressionError says what is wrong."""
    return _value(_parse(text), params, text)


@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> ast.AST:
    """The tree of `text`, parsed once: a block called many times evaluates the same expressions again."""
    source = PARAMETER.sub(lambda m: _PREFIX + m.group(1), text)
    try:
        return ast.parse(source.strip(), mode="eval").body
    except SyntaxError:
        raise ExpressionError(f"'{text}' is not an arithmetic expression") from None


def _value(node: ast.AST, params: dict[str, Any], text: str) -> Any:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.Name):
        if not node.id.startswith(_PREFIX):
            raise ExpressionError(f"'{node.id}' in '{text}' is no parameter: write `${node.id}` for one")
        name = node.id[len(_PREFIX):]
        if name not in params:
            raise ExpressionError(f"unknown parameter '${name}' in '{text}'", unknown=name)
        value = params[name]
        if type(value) not in (int, float):
            raise ExpressionError(f"'${name}' is {value!r} in '{text}': arithmetic needs a number")
        return value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _value(node.left, params, text), _value(node.right, params, text)
        if isinstance(node.op, ast.Pow) and abs(right) > 64:
            raise ExpressionError(f"an exponent of {right} in '{text}' is out of range")
        try:
            return _BINARY[type(node.op)](left, right)
        except ZeroDivisionError:
            raise ExpressionError(f"'{text}' divides by zero") from None
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_value(node.operand, params, text))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS:
        if node.keywords:
            raise ExpressionError(f"'{text}': give {node.func.id}'s arguments in order, without names")
        args = [_value(arg, params, text) for arg in node.args]
        try:
            return FUNCTIONS[node.func.id](*args)
        except (TypeError, ValueError) as e:
            raise ExpressionError(f"'{text}': {node.func.id}{tuple(args)} fails: {e}") from None
    if isinstance(node, ast.Call):
        called = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
        raise ExpressionError(f"'{called}' in '{text}' is not a function expressions may call "
                              f"(they may call {', '.join(FUNCTIONS)})")
    raise ExpressionError(f"'{ast.unparse(node).replace(_PREFIX, '$')}' in '{text}' is not arithmetic: use numbers, "
                          "$parameters, + - * / // % **, parentheses and " + ", ".join(FUNCTIONS))
