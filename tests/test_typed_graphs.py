"""Typed graphs: dtypes, symbolic dimensions (T, N), nodes with several named outputs, broadcasting merges."""

from __future__ import annotations

import pytest

from udlc.compiler.infer import REPORT_SIZE
from udlc.compiler.pipeline import resolve_text
from udlc.errors import SpecErrors


def graph(model: str):
    return resolve_text(f"udlc: 1\nname: t\ndata: {{source: digits}}\nloss: mse\nmodel:\n{model}", "t.yaml").graph


def errors(model: str) -> list:
    with pytest.raises(SpecErrors) as info:
        graph(model)
    return info.value.errors


def test_symbolic_dimensions_flow_through_layers_that_keep_them() -> None:
    g = graph("""
  input: {shape: [T, 8]}
  layers: [{linear: 16}, layernorm, gelu, {dropout: 0.1}, {linear: {out_features: 4, id: out}}]
""")
    assert g.inputs == {"x": ("T", 8)} and g.symbols == ["T"]
    assert [n.shape for n in g.nodes.values()] == [("T", 16)] * 4 + [("T", 4)]
    assert g.nodes["linear"].params == 8 * 16 + 16  # the weights never depend on T
    assert g.nodes["linear"].flops == 2 * REPORT_SIZE * 8 * 16  # FLOPs are counted at T = REPORT_SIZE


def test_a_convolution_without_padding_names_the_shorter_length() -> None:
    g = graph("""
  input: [4, T]
  layers: [{conv1d: {out_channels: 8, kernel_size: 3}}, {conv1d: {out_channels: 8, kernel_size: 3, padding: same}},
           {conv1d: {out_channels: 8, kernel_size: 5, padding: 1}}, global_avgpool, {linear: 2}]
""")
    assert [n.shape for n in g.nodes.values()] == [(8, "T-2"), (8, "T-2"), (8, "T-4"), (8,), (2,)]


@pytest.mark.parametrize("layers,words", [
    ("[flatten]", "depends on T"),
    ("[{linear: 3}]", "parameter count depends on T"),  # a linear over (8, T) shapes its weights by T
])
def test_what_a_symbol_cannot_pass_through_is_refused_naming_the_symbol(layers: str, words: str) -> None:
    (err,) = errors(f"  input: [8, T]\n  layers: {layers}\n")
    assert words in err.message and err.span.line == 7


def test_halvings_and_multiples_are_named_and_make_the_symbol_a_multiple() -> None:
    from udlc.compiler.infer import bind, steps

    g = graph("""
  input: [4, T]
  layers: [{conv1d: {out_channels: 8, kernel_size: 3, stride: 2}}, {maxpool1d: 2}, {upsample: 4}, global_avgpool,
           {linear: 2}]
""")
    shapes = [n.shape for n in g.nodes.values()]
    assert shapes[:3] == [(8, "T/2-1"), (8, "T/4-1"), (8, "T-4")]
    assert steps(shapes[:3]) == {"T": 4}
    assert bind((8, "T/4-1"), {"T": 36}) == (8, 8)
    with pytest.raises(Exception, match="T must be a multiple of 4"):
        bind((8, "T/4-1"), {"T": 34})


def test_shape_errors_speak_of_symbols_not_of_the_sizes_they_were_checked_at() -> None:
    (err,) = errors("  input: [T, 8, 8, 8, 8]\n  layers: [relu]\n")  # five axes: too many for a spec input
    assert "at most 4" in err.message or "4 items" in err.message
    (err,) = errors("  input: [T, 5]\n  layers: [{batchnorm2d: {}}]\n")
    assert "(T, 5)" in err.message and str(REPORT_SIZE) not in err.message


def test_token_ids_are_refused_by_a_float_layer_with_a_hint() -> None:
    (err,) = errors("  input: {shape: [T], dtype: int64}\n  layers: [{linear: 4}]\n")
    assert "expects float32 input but gets int64" in err.message and "embedding" in err.hint


def test_a_node_with_several_outputs_is_picked_by_name() -> None:
    g = graph("""
  input: [8]
  layers:
    - split: {sizes: [3, 5], names: [mu, logvar], id: head}
    - linear: {out_features: 3, from: head.logvar, id: proj}
    - add: {from: [head.mu, proj], id: total}
  outputs: [total, head.mu]
""")
    assert g.nodes["head"].shapes == [(3,), (5,)] and g.nodes["head"].out_names == ("mu", "logvar")
    assert g.nodes["proj"].inputs == ("head.logvar",)
    assert g.outputs == ["total", "head.mu"] and g.output_shapes == [(3,), (3,)]


def test_a_node_with_several_outputs_must_be_picked_and_its_outputs_exist() -> None:
    errs = errors("""
  input: [8]
  layers:
    - split: {sizes: [4, 4], id: head}
    - relu
    - linear: {out_features: 2, from: head.mean}
""")
    assert [e.message for e in errs] == ["'head' has 2 outputs (part0, part1); pick one", "'head' has no output 'mean'"]
    assert "from: head.part0" in errs[0].hint and "part0, part1" in errs[1].hint


def test_add_and_multiply_broadcast_as_numpy_does() -> None:
    g = graph("""
  input: [4, 6, 6]
  layers:
    - conv2d: {out_channels: 4, kernel_size: 1, id: features}
    - global_avgpool
    - reshape: [4, 1, 1]
    - sigmoid: {id: gate}
    - multiply: {from: [features, gate]}
""")
    assert g.nodes["multiply"].shape == (4, 6, 6)
    (err,) = errors("  input: [4, 6]\n  layers: [{linear: {out_features: 5, id: a}}, {add: {from: [x, a]}}]\n")
    assert "broadcast" in err.message and "(4, 6) and (4, 5)" in err.message


def test_torch_agrees_with_the_static_types_at_two_lengths() -> None:
    from udlc.compiler.lower import cross_check

    g = graph("""
  input: [3, T]
  layers:
    - conv1d: {out_channels: 8, kernel_size: 3, id: c}
    - split: {sizes: [4, 4], dim: 0, names: [a, b], id: s}
    - multiply: {from: [s.a, s.b]}
    - global_maxpool
    - linear: 2
""")
    assert cross_check(g).startswith("torch agrees"), cross_check(g)


def test_summary_prints_symbols_dtypes_and_named_outputs(tmp_path, run_cli) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("""udlc: 1
name: t
data: {source: digits}
loss: cross_entropy
model:
  input: {shape: [8, T]}
  layers:
    - conv1d: {out_channels: 6, kernel_size: 3, padding: same}
    - split: {sizes: [3, 3], dim: 0, names: [value, gate], id: glu}
    - sigmoid: {from: glu.gate, id: gate}
    - multiply: {from: [glu.value, gate]}
    - global_avgpool
    - linear: 10
""")
    result = run_cli("summary", spec)
    out = result.stdout
    assert result.returncode == 0, result.stderr
    assert "(8, T)" in out and "value: (3, T), gate: (3, T)" in out and f"T = {REPORT_SIZE}" in out


def test_a_model_with_a_symbolic_length_trains_exports_and_serves_any_length(tmp_path, one_torch_thread) -> None:
    """digits as 8 rows of T pixels: T binds to 8 in training; the ONNX file keeps T dynamic (checked at
    another length than traced), and predict takes samples of another length."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    from tests.conftest import DIGITS_MLP, train_here, write_spec
    from udlc.exporter.onnx import export_run
    from udlc.runtime.predict import Model

    model = {"input": {"shape": [8, "T"]}, "layers": [
        {"conv1d": {"out_channels": 16, "kernel_size": 3, "padding": "same"}}, "relu",
        {"conv1d": {"out_channels": 16, "kernel_size": 3}}, "global_avgpool", {"linear": 10}]}
    spec = write_spec(tmp_path / "s.yaml", {**DIGITS_MLP, "model": model, "export": {}},
                      train={"epochs": 2, "batch_size": 128})
    run = train_here(spec, tmp_path / "runs")
    info = __import__("json").loads((run / "run.json").read_text())
    assert info["input_shapes"] == [[8, "T"]] and info["sample_shapes"] == [[8, 8]]
    path = export_run(run)
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert dims[2].dim_param == "T" and dims[1].dim_value == 8  # T stays a name in the file
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for length in (8, 13):
        (probs,) = session.run(["probabilities"], {"x": rng.uniform(0, 16, (2, 8, length)).astype(np.float32)})
        assert probs.shape == (2, 10) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    served = Model(path)
    assert served.predict(rng.uniform(0, 16, (3, 8, 11))).probabilities.shape == (3, 10)
    assert served.predict(rng.uniform(0, 16, (3, 64))).probabilities.shape == (3, 10)  # flat rows: T as trained
