"""T5's relative position bias and the attention types that add a bias to their scores: the buckets against a
direct numpy writing of T5's formula and against transformers' own, one attention layer against transformers'
T5Attention with the same weights (encoder and decoder), the bias against hand-written attention, and the spec
side: one table per stack, `embedding: {tie: ...}`, `scale`, and the errors a user meets. ONNX export of every
new type at two lengths is the registry samples' (tests/test_export.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from udlc.compiler.pipeline import resolve_text
from udlc.errors import SpecErrors
from udlc.layers import REGISTRY


def build(name: str, args: dict, *shapes: tuple):
    import torch

    torch.manual_seed(0)
    lt = REGISTRY[name]
    return lt.build(lt.config.model_validate(args), *shapes).eval()


def graph(model: str):
    return resolve_text(f"udlc: 1\nname: t\ndata: {{source: digits}}\nloss: mse\nmodel:\n{model}", "t.yaml").graph


def errors(model: str) -> list:
    with pytest.raises(SpecErrors) as info:
        graph(model)
    return info.value.errors


def t5_bucket(distance: int, bidirectional: bool, num_buckets: int, max_distance: int) -> int:
    """T5's bucket of one distance (key - query), written out from the paper's Mesh TensorFlow code in numpy."""
    bucket = 0
    if bidirectional:
        num_buckets //= 2
        bucket += num_buckets if distance > 0 else 0
        distance = abs(distance)
    else:
        distance = max(-distance, 0)
    exact = num_buckets // 2
    if distance < exact:
        return bucket + distance
    far = np.log(np.float32(distance) / np.float32(exact)) / np.float32(math.log(max_distance / exact))
    return bucket + min(exact + int(far * np.float32(num_buckets - exact)), num_buckets - 1)


CONFIGS = [(True, 32, 128), (False, 32, 128), (True, 8, 6), (False, 6, 5), (True, 16, 40)]


@pytest.mark.parametrize("bidirectional,num_buckets,max_distance", CONFIGS)
def test_buckets_are_t5s_formula_and_transformers(bidirectional: bool, num_buckets: int, max_distance: int) -> None:
    import torch
    from transformers.models.t5.modeling_t5 import T5Attention

    layer = build("relative_position_bias", {"num_heads": 2, "num_buckets": num_buckets,
                                             "max_distance": max_distance, "bidirectional": bidirectional}, (5,))
    distances = torch.arange(-3 * max_distance, 3 * max_distance + 1)
    ours = layer.bucket(distances)
    expected = [t5_bucket(int(d), bidirectional, num_buckets, max_distance) for d in distances]
    assert ours.tolist() == expected
    theirs = T5Attention._relative_position_bucket(distances, bidirectional=bidirectional, num_buckets=num_buckets,
                                                   max_distance=max_distance)
    assert torch.equal(ours, theirs)
    # Every bucket is reached but one: bidirectional, distance 0 takes bucket 0 and the first bucket of the later
    # side is never used (T5's formula, kept so that trained tables load).
    assert set(expected) == set(range(num_buckets)) - ({num_buckets // 2} if bidirectional else set())
    if not bidirectional:
        assert set(ours[distances > 0].tolist()) == {0}  # later keys: bucket 0 (causal attention hides them)


@pytest.mark.parametrize("bidirectional", [True, False])
def test_the_bias_is_each_heads_scalar_of_its_bucket(bidirectional: bool) -> None:
    import torch

    layer = build("relative_position_bias", {"num_heads": 3, "num_buckets": 8, "max_distance": 6,
                                             "bidirectional": bidirectional}, (9, 4))
    table = layer.weight.detach().numpy()  # (buckets, heads)
    with torch.no_grad():
        bias = layer(torch.randn(2, 9, 4)).numpy()
    assert bias.shape == (2, 3, 9, 9)
    expected = np.empty((3, 9, 9), np.float32)
    for i in range(9):  # query
        for j in range(9):  # key
            expected[:, i, j] = table[t5_bucket(j - i, bidirectional, 8, 6)]
    np.testing.assert_array_equal(bias[0], expected)
    np.testing.assert_array_equal(bias[1], expected)  # the same for every sample: it reads only the length
    assert len(np.unique(expected[0])) > 4


def t5_config(**kw):
    from transformers import T5Config

    return T5Config(d_model=16, d_kv=4, num_heads=4, relative_attention_num_buckets=8,
                    relative_attention_max_distance=10, attn_implementation="eager", dropout_rate=0.0, **kw)


def copy_t5_attention(ours, bias_layer, theirs) -> None:
    import torch

    with torch.no_grad():
        for name, their_name in (("q", "q"), ("k", "k"), ("v", "v"), ("out", "o")):
            getattr(ours, name).weight.copy_(getattr(theirs, their_name).weight)
        bias_layer.weight.copy_(theirs.relative_attention_bias.weight)


@pytest.mark.parametrize("decoder", [False, True])
def test_a_layer_equals_transformers_t5_attention(decoder: bool) -> None:
    """relative_position_bias + masked_biased_multihead_attention (scale 1, no biases) is T5Attention: the
    encoder's (bidirectional buckets, a key-padding mask) and the decoder's (causal, unidirectional buckets)."""
    import torch
    from transformers.models.t5.modeling_t5 import T5Attention

    torch.manual_seed(0)
    theirs = T5Attention(t5_config(is_decoder=decoder), has_relative_attention_bias=True, layer_idx=0,
                         is_causal=decoder).eval()
    t = 13  # past max_distance 10, so the logarithmic and the shared last buckets are used
    args = {"num_heads": 4, "bias": False, "scale": 1.0, "causal": decoder}
    ours = build("masked_biased_multihead_attention", args, (t, 16), (4, t, t), (t,))
    bias_layer = build("relative_position_bias", {"num_heads": 4, "num_buckets": 8, "max_distance": 10,
                                                  "bidirectional": not decoder}, (t, 16))
    copy_t5_attention(ours, bias_layer, theirs)
    with torch.no_grad():  # a bias like trained T5's, large beside the scores, so that a wrong bucket shows
        bias_layer.weight.mul_(20)
        theirs.relative_attention_bias.weight.mul_(20)

    x = torch.randn(2, t, 16)
    mask = torch.ones(2, t, dtype=torch.bool)
    mask[1, 9:] = False  # padding at the end of the second sample
    hide = ~mask[:, None, None, :]
    if decoder:
        hide = hide | torch.ones(t, t, dtype=torch.bool).triu(1)
    additive = torch.zeros(hide.shape).masked_fill(hide, torch.finfo(torch.float32).min)
    with torch.no_grad():
        bias = bias_layer(x)
        expected, their_bias, _ = theirs(x, mask=additive)
        got = ours(x, bias, mask)
    torch.testing.assert_close(bias[:1], their_bias, atol=0, rtol=0)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    with torch.no_grad():  # and the bias matters: without it the layer is another one
        assert not torch.allclose(ours(x, torch.zeros_like(bias), mask), expected, atol=1e-2)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_biased_attention_is_the_softmax_of_scaled_scores_plus_bias(causal: bool, masked: bool) -> None:
    """Both the SDPA types and their _with_weights twins: softmax(q·k * scale + bias) over the visible keys."""
    import torch

    name = "masked_biased_multihead_attention" if masked else "biased_multihead_attention"
    args = {"num_heads": 2, "causal": causal, "scale": 0.7}
    shapes = [(6, 8), (2, 6, 6)] + [(6,)] * masked
    fast, explicit = build(name, args, *shapes), build(f"{name}_with_weights", args, *shapes)
    explicit.load_state_dict(fast.state_dict())
    g = torch.Generator().manual_seed(1)
    x, bias = torch.randn(3, 6, 8, generator=g), torch.randn(3, 2, 6, 6, generator=g) * 3
    mask = torch.ones(3, 6, dtype=torch.bool)
    mask[0, 4:], mask[2, 1:3] = False, False
    extra = (mask,) if masked else ()
    with torch.no_grad():
        q, k, v = fast.project(x, x)
        scores = q @ k.transpose(-2, -1) * 0.7 + bias
        visible = torch.ones(3, 1, 6, 6, dtype=torch.bool)
        if masked:
            visible = visible & mask[:, None, None, :]
        if causal:
            visible = visible & torch.ones(6, 6, dtype=torch.bool).tril()
        weights = scores.masked_fill(~visible, float("-inf")).softmax(-1)
        expected = fast.out((weights @ v).transpose(1, 2).reshape(3, 6, 8))
        got, got_weights = explicit(x, bias, *extra)
        torch.testing.assert_close(fast(x, bias, *extra), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_weights, weights, atol=1e-6, rtol=1e-5)


def test_zero_bias_and_no_scale_is_plain_attention() -> None:
    import torch

    plain = build("multihead_attention", {"num_heads": 2, "causal": True}, (5, 8))
    biased = build("biased_multihead_attention", {"num_heads": 2, "causal": True}, (5, 8), (2, 5, 5))
    biased.load_state_dict(plain.state_dict())
    x = torch.randn(2, 5, 8)
    with torch.no_grad():
        torch.testing.assert_close(biased(x, torch.zeros(2, 2, 5, 5)), plain(x), atol=1e-6, rtol=1e-6)
        scaled = build("multihead_attention", {"num_heads": 2, "causal": True, "scale": 1.0}, (5, 8))
        scaled.load_state_dict(plain.state_dict())
        assert not torch.allclose(scaled(x), plain(x), atol=1e-3)  # scale: 1 is not the default 1/sqrt(4)


def test_a_sample_of_only_padding_stays_finite_with_a_bias() -> None:
    import torch

    layer = build("masked_biased_multihead_attention", {"num_heads": 2, "causal": True}, (4, 8), (2, 4, 4), (4,))
    layer.train()
    x, bias = torch.randn(2, 4, 8, requires_grad=True), torch.randn(2, 2, 4, 4, requires_grad=True)
    mask = torch.tensor([[False] * 4, [False, True, True, True]])
    out = layer(x, bias, mask)
    out.sum().backward()
    torch.testing.assert_close(out[0], layer.out.bias.expand(4, 8))
    assert torch.isfinite(x.grad).all() and torch.isfinite(bias.grad).all()


# ---- the spec side ------------------------------------------------------------------------------------------

STACK = """\
  inputs: {ids: {shape: [T], dtype: int64}}
  layers:
    - embedding: {embedding_dim: 16, num_embeddings: 50, from: ids, id: emb}
    - relative_position_bias: {num_heads: 4, num_buckets: 8, max_distance: 10, from: ids, id: pos}
    - t5_encoder_block: {from: [emb, pos], d_model: 16, num_heads: 4, d_ff: 32, repeat: 3}
"""


def test_a_stack_shares_one_bias_table() -> None:
    """One relative_position_bias node, read by all three blocks' attention: its 8 x 4 scalars counted once."""
    import torch

    from udlc.compiler.lower import lower

    g = graph(STACK)
    attention = [n for n in g.nodes.values() if n.op == "biased_multihead_attention"]
    assert len(attention) == 3 and all(n.inputs[1] == "pos" for n in attention)
    assert [n.op for n in g.nodes.values()].count("relative_position_bias") == 1
    per_block = 4 * 16 * 16 + 2 * 16 * 32 + 2 * 16  # attention and feed-forward without biases, two RMSNorms
    assert g.total_params == 50 * 16 + 8 * 4 + 3 * per_block
    module = lower(g, seed=0)
    module(torch.randint(0, 50, (2, 7))).sum().backward()
    assert module.pos.weight.grad.abs().sum() > 0  # every block's attention trains the one table


def test_embedding_tie_shares_the_table() -> None:
    import torch

    from udlc.compiler.lower import lower

    g = graph("  inputs: {a: {shape: [T], dtype: int64}, b: {shape: [S], dtype: int64}}\n  layers:\n"
              "    - embedding: {embedding_dim: 8, num_embeddings: 20, padding_idx: 0, from: a, id: shared}\n"
              "    - embedding: {tie: shared, from: b, id: again}\n"
              "    - linear: {tie: shared, bias: false}\n")
    again = g.nodes["again"]
    assert (again.config.num_embeddings, again.config.embedding_dim, again.config.padding_idx) == (20, 8, 0)
    assert g.total_params == 20 * 8 and g.output_shapes == [("S", 20)]
    module = lower(g, seed=0)
    assert module.again.weight is module.shared.weight is module.linear.weight
    ids = torch.randint(0, 20, (2, 5))
    torch.testing.assert_close(module.again(ids), module.shared(ids))


@pytest.mark.parametrize("layer,message", [
    ("embedding: {tie: shared, from: b, num_embeddings: 21}", "num_embeddings 21 differs from the tied embedding"),
    ("embedding: {tie: shared, from: b, padding_idx: 1}", "padding_idx 1 differs from the tied embedding"),
    ("embedding: {tie: nowhere, from: b}", "tie names 'nowhere', which is not the id of an embedding layer"),
    ("embedding: {from: b}", "give embedding_dim and num_embeddings, or `tie: <embedding id>`"),
    ("biased_multihead_attention: {num_heads: 2, from: [shared, b]}", "expects float32 input but gets int64"),
    ("relative_position_bias: {num_heads: 2, num_buckets: 3}", "num_buckets 3 is too few: give at least 4"),
    ("relative_position_bias: {num_heads: 2, num_buckets: 32, max_distance: 8}",
     "max_distance 8 must be more than the 8 distances"),
])
def test_spec_mistakes_are_reported(layer: str, message: str) -> None:
    errs = errors("  inputs: {a: {shape: [T], dtype: int64}, b: {shape: [T], dtype: int64}}\n  layers:\n"
                  "    - embedding: {embedding_dim: 8, num_embeddings: 20, from: a, id: shared}\n"
                  f"    - {layer}\n")
    assert any(message in e.message for e in errs), [e.message for e in errs]
    assert all(e.span.line == 9 for e in errs)


def test_a_bias_of_other_heads_or_length_is_an_error_at_its_line() -> None:
    errs = errors("  inputs: {x: [T, 8], y: [S, 8]}\n  layers:\n"
                  "    - relative_position_bias: {num_heads: 4, from: y, id: pos}\n"
                  "    - biased_multihead_attention: {num_heads: 2, from: [x, pos]}\n")
    (err,) = errs
    assert err.span.line == 9 and err.message == ("expects a bias of 2 heads over the positions of the input (T, 8), "
                                           "but gets (4, S, S)")


def test_scale_multiplies() -> None:
    import torch

    layer = build("scale", {"factor": -0.25}, (3, 4))
    x = torch.randn(2, 3, 4)
    torch.testing.assert_close(layer(x), x * -0.25)
    assert graph("  input: [T, 4]\n  layers:\n    - scale: 0.5\n").total_params == 0


def test_the_t5_library_is_valid_against_the_published_schema() -> None:
    import json
    from pathlib import Path

    import jsonschema
    import yaml

    root = Path(__file__).resolve().parent.parent
    schema = json.loads((root / "spec" / "udlc.schema.json").read_text())
    blocks = yaml.safe_load((root / "udlc" / "compiler" / "library" / "t5.yaml").read_text())["blocks"]
    validator = jsonschema.Draft202012Validator({"$ref": "#/$defs/BlockSpec", "$defs": schema["$defs"]})
    assert len(blocks) == 4
    for block in blocks.values():
        validator.validate(block)


@pytest.mark.slow
@pytest.mark.long  # a whole small T5 exported; `make test` exports relative_position_bias's samples (test_layer_export)
def test_a_small_t5_exports_to_onnx_and_matches_torch_at_other_lengths(tmp_path) -> None:
    """The registry's samples export a bias given as an input; here it is computed from a trained table (so it
    requires grad, which changes how torch exports SDPA), shared by the encoder's blocks, and the decoder's."""
    from udlc.compiler.lower import lower
    from udlc.exporter.onnx import export_module
    from udlc.spec.training import OnnxExport

    g = graph("""\
  inputs:
    source: {shape: [S], dtype: int64}
    source_mask: {shape: [S], dtype: bool}
    decoder: {shape: [T], dtype: int64}
  layers:
    - embedding: {embedding_dim: 16, num_embeddings: 2, from: source, id: shared}
    - relative_position_bias: {num_heads: 4, num_buckets: 8, max_distance: 6, from: source, id: source_bias}
    - masked_t5_encoder_block: {from: [shared, source_bias, source_mask], d_model: 16, num_heads: 4, d_ff: 32}
    - rmsnorm: {id: memory}
    - embedding: {tie: shared, from: decoder, id: decoder_in}
    - relative_position_bias: {num_heads: 4, num_buckets: 8, max_distance: 6, bidirectional: false, from: decoder,
                               id: decoder_bias}
    - masked_t5_decoder_block: {from: [decoder_in, decoder_bias, memory, source_mask], d_model: 16, num_heads: 4,
                                d_ff: 32}
    - rmsnorm
    - scale: 0.25
    - linear: {tie: shared, bias: false}
""")
    inputs = [(name, g.inputs[name], g.dtype_of(name)) for name in ("source", "source_mask", "decoder")]
    # Parity (raised on a mismatch) past max_distance on both sides, and with the decoder longer than the source.
    path = export_module(lower(g, seed=0), inputs, tmp_path / "t5.onnx", OnnxExport(opset=18),
                         symbols={"S": 2, "T": 2}, checks=[{"S": 13, "T": 3}, {"S": 4, "T": 15}])
    assert path.is_file()
