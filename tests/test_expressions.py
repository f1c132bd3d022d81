"""Arithmetic in block parameters: its values, its refusals (nothing but arithmetic is evaluated), and its use
in a spec, where a mistake is reported at the expression's line."""

from __future__ import annotations

import pytest

from udlc.compiler.expressions import ExpressionError, evaluate, is_expression, make_divisible
from udlc.errors import SpecErrors
from udlc.tasks import compile_text


def torchvision_make_divisible(v: float, divisor: int, min_value: int | None = None) -> int:
    """torchvision.models._utils._make_divisible, as published (the reference for MobileNet and EfficientNet)."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


@pytest.mark.parametrize("text, value", [
    ("$width * 4", 256), ("$ch // 2", 16), ("max(8, $ch // 4)", 8), ("min($ch, $width) - 1", 31),
    ("round($ch * 1.5)", 48), ("-$ch + 2 ** 3", -24), ("($ch + $width) % 10", 6), ("ceil($ch / 5)", 7),
    ("make_divisible($width * 0.75)", 48), ("make_divisible($ch * 1.1, 8)", 32), ("int($width / 3)", 21),
])
def test_arithmetic_over_the_parameters(text: str, value: float) -> None:
    assert is_expression(text)
    assert evaluate(text, {"ch": 32, "width": 64}) == value


def test_make_divisible_is_torchvisions_rounding() -> None:
    for v in [3, 12, 22.4, 24, 36.0, 72, 90.5, 120, 333.3, 960, 1280 * 1.1]:
        for divisor in (4, 8):
            assert make_divisible(v, divisor) == torchvision_make_divisible(v, divisor), (v, divisor)
    assert make_divisible(10, 8, 16) == torchvision_make_divisible(10, 8, 16) == 16


@pytest.mark.parametrize("text, words", [
    ("__import__('os').system($ch)", "is not a function expressions may call"),
    ("$ch.real", "is not arithmetic"),
    ("width * 4", None),  # no `$`: not an expression at all, a plain string
    ("$width * ch", "'ch' in '$width * ch' is no parameter: write `$ch`"),
    ("$ch ** 1000", "out of range"),
    ("$ch / 0", "divides by zero"),
    ("max($ch, default=3)", "without names"),
    ("$chh * 2", "unknown parameter '$chh'"),
    ("$name * 2", "arithmetic needs a number"),
    ("$ch *", "is not an arithmetic expression"),
    ("[$ch][0]", "is not arithmetic"),
])
def test_anything_but_arithmetic_is_refused(text: str, words: str | None) -> None:
    if words is None:
        assert not is_expression(text)
        return
    with pytest.raises(ExpressionError, match=words.replace("(", r"\(").replace("$", r"\$").replace("*", r"\*")):
        evaluate(text, {"ch": 32, "width": 64, "name": "relu"})


SPEC = """\
udlc: 1
name: arithmetic
data: {source: digits}
model:
  input: [1, 8, 8]
  blocks:
    squeeze:
      params: {ch: 32, ratio: 4}
      layers:
        - conv2d: {out_channels: $ch * 2, kernel_size: 3, padding: 1}
        - global_avgpool
        - linear: max(8, $ch // $ratio)
        - linear: EXPR
  layers:
    - squeeze: {ch: 16}
    - linear: 10
loss: cross_entropy
"""


def test_a_block_computes_its_sizes_from_its_parameters() -> None:
    graph = compile_text(SPEC.replace("EXPR", "make_divisible($ch * 3)")).graph
    shapes = {name: node.shape for name, node in graph.nodes.items()}
    assert shapes["squeeze_conv2d"] == (32, 8, 8)  # 16 * 2
    assert shapes["squeeze_linear"] == (8,)  # max(8, 16 // 4)
    assert shapes["squeeze_linear_1"] == (48,)


def test_a_bad_expression_is_reported_at_its_line_naming_the_use() -> None:
    with pytest.raises(SpecErrors) as info:
        compile_text(SPEC.replace("EXPR", "$ch // $ratios"), file="spec.yaml")
    (err,) = info.value.errors
    assert err.span.line == 13 and "unknown parameter '$ratios'" in err.message, err
    assert "used at line 15" in err.message


def test_an_unquoted_comma_in_a_flow_mapping_gets_a_hint_to_quote() -> None:
    spec = SPEC.replace("- linear: max(8, $ch // $ratio)", "- linear: {out_features: max(8, $ch // $ratio)}")
    with pytest.raises(SpecErrors) as info:
        compile_text(spec.replace("EXPR", "8"), file="spec.yaml")
    assert any("quote an expression that holds a comma" in (e.hint or "") for e in info.value.errors)
