"""Recurrent layers and sequence pooling, compiled from specs: the same parameters and outputs as torch's own
LSTM and GRU, masked pooling that ignores padding, named outputs, clear errors, and exports with any length."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from udlc.compiler.pipeline import resolve_text
from udlc.errors import SpecErrors
from udlc.layers import REGISTRY


def graph(model: str):
    return resolve_text(f"udlc: 1\nname: t\ndata: {{source: digits}}\nloss: mse\nmodel:\n{model}", "t.yaml").graph


def errors(model: str) -> list:
    with pytest.raises(SpecErrors) as info:
        graph(model)
    return info.value.errors


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_spec_layer_equals_torch_with_the_same_weights(kind: str) -> None:
    import torch

    from udlc.compiler.lower import lower

    g = graph(f"""
  input: [T, 6]
  layers: [{{{kind}: {{hidden_size: 8, num_layers: 2, bidirectional: true, id: enc}}}}]
  outputs: [{', '.join(f'enc.{n}' for n in ('out', 'h', 'c')[:3 if kind == 'lstm' else 2])}]
""")
    torch.manual_seed(0)
    reference = getattr(torch.nn, kind.upper())(6, 8, num_layers=2, bidirectional=True, batch_first=True).eval()
    assert g.total_params == sum(p.numel() for p in reference.parameters())
    module = lower(g, seed=1).eval()
    module.enc.load_state_dict(reference.state_dict())  # torch's own parameter names
    x = torch.randn(3, 11, 6)
    with torch.no_grad():
        got = module(x)
        out, state = reference(x)
    states = state if isinstance(state, tuple) else (state,)
    expected = (out, *(s.transpose(0, 1) for s in states))  # torch's states are (L*D, B, H)
    assert [tuple(t.shape) for t in got] == [(3, 11, 16)] + [(3, 4, 8)] * len(states)
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


@pytest.mark.filterwarnings("ignore:TF32 acceleration on top of oneDNN")  # switching oneDNN off says this
def test_lstm_flops_are_the_gate_matmuls_torch_counts() -> None:
    """On CPU torch runs an LSTM as one oneDNN op that FlopCounterMode does not count (the registry's FLOP test
    sees 0); with oneDNN off the same LSTM runs as matmuls, and those are exactly udlc's count."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    lt = REGISTRY["lstm"]
    cfg = lt.config.model_validate({"hidden_size": 5, "num_layers": 2, "bidirectional": True})
    module = lt.build(cfg, (9, 3)).eval()
    with torch.backends.mkldnn.flags(enabled=False), FlopCounterMode(display=False) as counter, torch.no_grad():
        module(torch.randn(2, 9, 3))
    assert counter.get_total_flops() == 2 * lt.flops(cfg, (9, 3)) > 0


def padded_batch():
    """Two sequences of 4 and 2 steps, padded by collate with a value that would show if pooling used it."""
    from udlc.data.collate import collate

    rng = np.random.default_rng(0)
    seqs = [rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=(2, 3)).astype(np.float32)]
    batch = collate([{"seq": s} for s in seqs], pad_values={"seq": 1000.0})
    return seqs, batch["seq"], batch["seq_mask"]


@pytest.mark.parametrize("mode,hand", [("last", lambda s: s[-1]), ("mean", lambda s: s.mean(0)),
                                       ("max", lambda s: s.max(0))])
def test_masked_pooling_ignores_padding(mode: str, hand) -> None:
    import torch

    from udlc.compiler.lower import lower

    g = graph(f"""
  inputs: {{seq: [T, 3], seq_mask: {{shape: [T], dtype: bool}}}}
  layers: [{{masked_seq_pool: {{mode: {mode}, from: [seq, seq_mask]}}}}]
""")
    assert g.output_shapes == [(3,)]
    seqs, x, mask = padded_batch()
    assert mask.tolist() == [[True] * 4, [True, True, False, False]]
    with torch.no_grad():
        got = lower(g)(torch.from_numpy(x), torch.from_numpy(mask)).numpy()
    np.testing.assert_allclose(got, np.stack([hand(s) for s in seqs]), rtol=1e-6)


def test_the_final_state_is_picked_by_name_and_shaped_per_layer_and_direction() -> None:
    g = graph("""
  input: [T, 6]
  layers:
    - lstm: {hidden_size: 8, num_layers: 3, bidirectional: true, id: enc}
    - linear: {out_features: 2, from: enc.h, id: from_h}
    - seq_pool: {mode: last, from: enc.out}
    - linear: 5
""")
    assert g.nodes["enc"].out_names == ("out", "h", "c")
    assert g.nodes["enc"].shapes == [("T", 16), (6, 8), (6, 8)]
    assert g.nodes["from_h"].shape == (6, 2) and g.output_shapes == [(5,)]


def test_a_recurrent_layer_refuses_what_is_not_a_sequence_at_its_line() -> None:
    (err,) = errors("  input: [T, 4, 4]\n  layers: [relu, {gru: 8}]\n")
    assert err.message == "expects input (length, features) but gets (T, 4, 4)"
    assert err.span.line == 7 and "reshape" in err.hint


def test_a_masked_pool_needs_a_bool_mask_as_long_as_the_sequence() -> None:
    (err,) = errors("""
  inputs: {seq: [T, 3], weights: [T]}
  layers: [{masked_seq_pool: {from: [seq, weights]}}]
""")
    assert err.message == "expects a bool mask as its second input but gets float32" and err.span.line == 8
    (err,) = errors("""
  inputs: {seq: [T, 3], other_mask: {shape: [5], dtype: bool}}
  layers: [{masked_seq_pool: {from: [seq, other_mask]}}]
""")
    assert err.message == "expects a mask (length,) as long as the sequence (T, 3) but gets (5,)"


def test_dropout_without_a_second_layer_is_refused() -> None:
    (err,) = errors("  input: [T, 4]\n  layers: [{lstm: {hidden_size: 8, dropout: 0.2}}]\n")
    assert "with num_layers 1 it does nothing" in err.message


def test_a_sequence_network_exports_for_any_length(tmp_path: Path) -> None:
    """The whole lowered graph, recurrent layers feeding others: the parity gate runs it at lengths other
    than the traced one, which fails where the exporter fixed T."""
    from udlc.compiler.lower import lower
    from udlc.exporter.onnx import export_module, smallest_sizes
    from udlc.spec.training import OnnxExport

    g = graph("""
  inputs: {seq: [T, 3], seq_mask: {shape: [T], dtype: bool}}
  layers:
    - rnn: {hidden_size: 4, nonlinearity: relu, from: seq, id: r}
    - gru: {hidden_size: 5, num_layers: 2, bidirectional: true, from: r.out, id: g}
    - masked_seq_pool: {mode: last, from: [g.out, seq_mask]}
    - linear: {out_features: 2, id: head}
  outputs: [head, g.out, g.h]
""")
    inputs = [(name, shape, g.dtype_of(name)) for name, shape in g.inputs.items()]
    path = export_module(lower(g, seed=0), inputs, tmp_path / "m.onnx", OnnxExport(opset=18),
                         symbols=smallest_sizes(g.symbols, [s for n in g.nodes.values() for s in n.shapes]))
    assert path.is_file()
