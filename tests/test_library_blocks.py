"""udlc's own blocks (udlc/compiler/library/*.yaml): usable by name in any spec, checked like the spec's own."""

from __future__ import annotations

import pytest

from udlc.compiler.library import LIBRARY, library_blocks
from udlc.compiler.pipeline import resolve_text
from udlc.errors import SpecErrors


def compile_model(model: str):
    return resolve_text(f"udlc: 1\nname: t\ndata: {{source: digits}}\nloss: cross_entropy\nmodel:\n{model}", "t.yaml")


def test_every_library_block_is_read_and_documented() -> None:
    blocks = library_blocks()
    assert {"squeeze_excitation", "resnet_basic_block"} <= set(blocks)
    for name, block in blocks.items():
        assert block.doc.file.endswith(".yaml") and LIBRARY in __import__("pathlib").Path(block.doc.file).parents
        text = block.doc.span(block.base, key=True).text
        assert name in text and "#" in text, f"{name}: say what the block is on its own line"


def test_a_resnet_with_squeeze_excitation_from_the_library() -> None:
    graph = compile_model("""
  input: [1, 8, 8]
  layers:
    - conv2d: {out_channels: 16, kernel_size: 3, padding: 1}
    - resnet_basic_block: {channels: 16}
    - squeeze_excitation: {channels: 16, reduced: 4}
    - resnet_basic_block: {channels: 32, stride: 2}
    - global_avgpool
    - linear: 10
""").graph
    ops = [n.op for n in graph.nodes.values()]
    assert ops.count("conv2d") == 1 + 2 + 2 + 1  # the stem, two per block, the second block's projection
    assert "multiply" in ops and graph.output_shapes == [(10,)]
    shapes = {n.name: n.shape for n in graph.nodes.values()}
    assert shapes["squeeze_excitation_multiply"] == (16, 8, 8) and shapes["resnet_basic_block_1_add"] == (32, 4, 4)


def test_a_spec_block_of_the_same_name_takes_precedence() -> None:
    graph = compile_model("""
  input: [4]
  blocks:
    squeeze_excitation: {layers: [{linear: 3}]}
  layers: [squeeze_excitation]
""").graph
    assert [n.op for n in graph.nodes.values()] == ["linear"]


def test_mistakes_in_a_library_block_call_are_reported_at_the_call() -> None:
    with pytest.raises(SpecErrors) as info:
        compile_model("  input: [16, 8, 8]\n  layers:\n    - squeeze_excitation: {channels: 16, reduce: 4}\n")
    errs = info.value.errors
    assert all(e.span.file == "t.yaml" and e.span.line == 8 for e in errs)
    (err,) = [e for e in errs if "has no parameter 'reduce'" in e.message]
    assert "did you mean 'reduced'?" in err.hint
    with pytest.raises(SpecErrors) as info:
        compile_model("  input: [16, 8, 8]\n  layers:\n    - squeeze_excitaton: {channels: 16, reduced: 4}\n")
    assert "did you mean 'squeeze_excitation'?" in info.value.errors[0].hint


def test_a_shape_error_inside_a_library_block_names_its_line_there_and_the_use() -> None:
    with pytest.raises(SpecErrors) as info:  # 16 channels gated by a gate of 8: the multiply cannot broadcast
        compile_model("  input: [16, 8, 8]\n  layers:\n    - squeeze_excitation: {channels: 8, reduced: 4}\n")
    errs = info.value.errors
    assert errs and all(e.span.file.endswith("blocks.yaml") for e in errs)
    assert any("in block 'squeeze_excitation' used at line 8" in e.message for e in errs)
