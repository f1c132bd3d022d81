"""The resolve pass: blocks, combinators and named nodes become a flat graph with shapes (no torch)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from udlc.compiler.pipeline import resolve_text
from udlc.errors import SpecErrors


def graph_of(model: str, **sections: str):
    text = "udlc: 1\nname: t\ndata: {source: digits}\nloss: cross_entropy\nmodel:\n" + textwrap.indent(
        textwrap.dedent(model), "  ")
    return resolve_text(text, "t.yaml").graph


def errors_of(model: str) -> list[str]:
    with pytest.raises(SpecErrors) as e:
        graph_of(model)
    return [err.headline() for err in e.value.errors]


def test_sequence_shapes_params_and_names() -> None:
    g = graph_of("""
        input: [64]
        layers: [{linear: 32}, relu, {linear: 32}, relu, {linear: 10}]
    """)
    assert list(g.nodes) == ["linear", "relu", "linear_1", "relu_1", "linear_2"]
    assert [n.shape for n in g.nodes.values()] == [(32,), (32,), (32,), (32,), (10,)]
    assert g.total_params == 64 * 32 + 32 + 32 * 32 + 32 + 32 * 10 + 10
    assert g.outputs == ["linear_2"] and g.nodes["linear_1"].inputs == ("relu",)


def test_block_params_defaults_and_repeat() -> None:
    g = graph_of("""
        input: [3, 16, 16]
        blocks:
          conv_bn:
            params: {ch: 8, stride: 1}
            layers:
              - conv2d: {out_channels: $ch, kernel_size: 3, stride: $stride, padding: 1}
              - batchnorm2d
        layers:
          - conv_bn
          - conv_bn: {ch: 16, stride: 2, repeat: 2}
    """)
    convs = [n for n in g.nodes.values() if n.op == "conv2d"]
    assert [c.name for c in convs] == ["conv_bn_conv2d", "conv_bn_1_conv2d", "conv_bn_2_conv2d"]
    assert [c.shape for c in convs] == [(8, 16, 16), (16, 8, 8), (16, 4, 4)]


def test_residual_identity_and_projection() -> None:
    g = graph_of("""
        input: [8, 8, 8]
        layers:
          - residual: [{conv2d: {out_channels: 8, kernel_size: 3, padding: 1}}]
          - residual:
              projection: true
              layers: [{conv2d: {out_channels: 16, kernel_size: 3, stride: 2, padding: 1}}]
    """)
    add, add_1 = g.nodes["add"], g.nodes["add_1"]
    assert add.inputs == ("x", "conv2d") and add.shape == (8, 8, 8)
    projection = g.nodes[add_1.inputs[0]]
    assert projection.op == "conv2d" and projection.inputs == ("add",)
    assert projection.config.kernel_size in (1, (1, 1)) and projection.shape == (16, 4, 4)
    assert add_1.shape == (16, 4, 4)


def test_residual_without_projection_names_both_shapes() -> None:
    [msg] = errors_of("""
        input: [8, 8, 8]
        layers:
          - residual: [{conv2d: {out_channels: 16, kernel_size: 1}}]
    """)
    assert "(8, 8, 8)" in msg and "(16, 8, 8)" in msg and "projection: true" in msg


def test_parallel_concat_and_add() -> None:
    g = graph_of("""
        input: [4, 8, 8]
        layers:
          - parallel:
              - [{conv2d: {out_channels: 2, kernel_size: 1}}]
              - [{conv2d: {out_channels: 3, kernel_size: 3, padding: 1}}]
              - []
          - parallel: {merge: add, branches: [[relu], [tanh]]}
    """)
    assert g.nodes["concat"].shape == (9, 8, 8) and g.nodes["concat"].inputs == ("conv2d", "conv2d_1", "x")
    assert g.nodes["add"].inputs == ("relu", "tanh") and g.nodes["add"].shape == (9, 8, 8)


def test_named_nodes_make_a_dag() -> None:
    g = graph_of("""
        input: [1, 8, 8]
        layers:
          - conv2d: {out_channels: 4, kernel_size: 3, padding: 1, id: enc}
          - maxpool2d: 2
          - upsample: 2
          - concat: {from: enc}
          - conv2d: {out_channels: 2, kernel_size: 1}
    """)
    assert g.nodes["concat"].inputs == ("upsample", "enc") and g.nodes["concat"].shape == (8, 8, 8)


def test_several_inputs_and_outputs() -> None:
    g = graph_of("""
        inputs: {a: [5], b: [3]}
        layers:
          - linear: {out_features: 4, from: a, id: ha}
          - linear: {out_features: 4, from: b, id: hb}
          - add: {from: [ha, hb], id: both}
          - linear: 2
        outputs: [both, ha]
    """)
    assert g.inputs == {"a": (5,), "b": (3,)} and g.outputs == ["both", "ha"]
    assert g.output_shapes == [(4,), (4,)]


def test_repeat_combinator() -> None:
    g = graph_of("""
        input: [6]
        layers:
          - repeat: {times: 3, layers: [{linear: 6}, relu]}
    """)
    assert [n.op for n in g.nodes.values()] == ["linear", "relu"] * 3


def test_errors_inside_a_block_say_where_it_was_used() -> None:
    [msg] = errors_of("""
        input: [64]
        blocks:
          dense: {params: {n: 8}, layers: [{linear: $n}, {flatten: $n}]}
        layers: [dense]
    """)
    assert msg.startswith("t.yaml:9:53: model.blocks.dense.layers[1].flatten: start_dim 8 is past the last axis of (8,)")
    assert msg.endswith("(in block 'dense' used at line 10)")


def test_a_mistake_in_a_block_used_many_times_is_reported_once_with_every_use() -> None:
    # GoogLeNet-style: the block is used at the top level (twice, once repeated), inside a parallel branch,
    # and inside another block that is itself used twice: expanded six times, one mistake.
    msgs = errors_of("""
        input: [4, 8, 8]
        blocks:
          inception:
            params: {ch: 4}
            layers:
              - parallel:
                  - [{conv2d: {out_channels: $ch, kernel_size: 1}}]
                  - [{conv2d: {out_channels: $ch, kernel_size: 3, padding: 1, dilaton: 2}}]
          stem:
            layers:
              - inception: {ch: 2}
        layers:
          - inception
          - inception: {repeat: 2}
          - parallel:
              - [inception]
              - [stem]
          - stem
    """)
    # lines 19 and 20 at the top level, 22 in the parallel, 17 in `stem` (used at 23 and 24)
    assert msgs == ["t.yaml:14:73: model.blocks.inception.layers[0].parallel[1][0].conv2d.dilaton: unknown key "
                    "'dilaton' (in block 'inception' used at lines 17, 19, 20, 22) — did you mean 'dilation'?"]


def test_a_block_mistake_that_differs_by_use_is_reported_per_use() -> None:
    # The same layer breaks differently for different inputs: each message stands, with its own uses.
    msgs = errors_of("""
        input: [4, 8, 8]
        blocks:
          dense: {layers: [{linear: 3}]}
        layers:
          - parallel:
              - [dense]
              - [{maxpool2d: 2}, dense]
              - [dense]
    """)
    assert [m.split(": ", 2)[2] for m in msgs] == [
        "expects input (..., features) but gets (4, 8, 8) (in block 'dense' used at lines 12, 14)"
        " — add 'flatten' before it",
        "expects input (..., features) but gets (4, 4, 4) (in block 'dense' used at line 13) — add 'flatten' before it",
    ]


def test_parallel_branches_are_checked_after_an_error_upstream() -> None:
    msgs = errors_of("""
        input: [64]
        layers:
          - linear: 0
          - parallel: [[{linear: {out_features: 4, bais: false}}], [relu]]
    """)
    assert [m.split(": ", 2)[1] for m in msgs] == ["model.layers[0].linear", "model.layers[1].parallel[0][0].linear.bais"]


def test_an_error_does_not_cascade() -> None:
    # the first layer is broken; the flatten after it must not report a consequence of that
    msgs = errors_of("""
        input: [64]
        layers: [{linear: -1}, flatten, {conv2d: {out_channels: 0, kernel_size: 3}}]
    """)
    assert len(msgs) == 2
    assert "model.layers[0].linear: out_features must be > 0 (got -1)" in msgs[0]
    assert "model.layers[2].conv2d.out_channels: must be > 0 (got 0)" in msgs[1]


def test_resolve_never_imports_torch() -> None:
    code = ("import sys, tests.test_resolve as t; t.graph_of('input: [4]\\nlayers: [{linear: 2}]\\n'); "
            "assert 'torch' not in sys.modules")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.returncode == 0, out.stderr
