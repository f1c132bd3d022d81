"""Attention and positions against references: torch's own MultiheadAttention with the same weights (self and
cross, with a padding mask), a hand-written causal softmax, grouped-query heads against repeated kv heads, RoPE's
relative-position property, the Vaswani table; and the spec errors a user meets."""

from __future__ import annotations

import math

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


def torch_mha(layer, d: int, e: int, heads: int):
    """torch.nn.MultiheadAttention holding `layer`'s projections."""
    import torch

    mha = torch.nn.MultiheadAttention(d, heads, batch_first=True, kdim=e, vdim=e).eval()
    with torch.no_grad():
        if e == d:
            mha.in_proj_weight.copy_(torch.cat([layer.q.weight, layer.k.weight, layer.v.weight]))
        else:
            for name in "qkv":
                getattr(mha, f"{name}_proj_weight").copy_(getattr(layer, name).weight)
        mha.in_proj_bias.copy_(torch.cat([layer.q.bias, layer.k.bias, layer.v.bias]))
        mha.out_proj.weight.copy_(layer.out.weight)
        mha.out_proj.bias.copy_(layer.out.bias)
    return mha


def test_self_attention_and_its_weights_equal_torch() -> None:
    import torch

    x = torch.randn(3, 7, 16)
    layer = build("multihead_attention_with_weights", {"num_heads": 4}, (7, 16))
    fast = build("multihead_attention", {"num_heads": 4}, (7, 16))
    fast.load_state_dict(layer.state_dict())  # the two types hold the same parameters
    mha = torch_mha(layer, 16, 16, 4)
    with torch.no_grad():
        out, weights = layer(x)
        expected, expected_weights = mha(x, x, x, need_weights=True, average_attn_weights=False)
        torch.testing.assert_close(fast(x), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(weights, expected_weights, atol=1e-6, rtol=1e-5)
    assert sum(p.numel() for p in layer.parameters()) == sum(p.numel() for p in mha.parameters())


@pytest.mark.parametrize("name", ["masked_cross_attention", "masked_cross_attention_with_weights"])
def test_masked_cross_attention_equals_torch_with_its_key_padding_mask(name: str) -> None:
    """Memory of another width (12) and length (5); torch's key_padding_mask is True where udlc's is False."""
    import torch

    x, memory = torch.randn(2, 4, 8), torch.randn(2, 5, 12)
    mask = torch.tensor([[True, True, True, False, False], [True, False, True, True, False]])
    layer = build(name, {"num_heads": 2}, (4, 8), (5, 12), (5,))
    mha = torch_mha(layer, 8, 12, 2)
    with torch.no_grad():
        got = layer(x, memory, mask)
        expected, expected_weights = mha(x, memory, memory, key_padding_mask=~mask, average_attn_weights=False)
    out = got[0] if isinstance(got, tuple) else got
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    if isinstance(got, tuple):
        torch.testing.assert_close(got[1], expected_weights, atol=1e-6, rtol=1e-5)
        assert (got[1][~mask[:, None, None, :].expand_as(got[1])] == 0).all()
    with torch.no_grad():  # what padding holds does not matter
        padded = torch.where(mask[..., None], memory, torch.full_like(memory, 1e3))
        again = layer(x, padded, mask)
    torch.testing.assert_close(again[0] if isinstance(again, tuple) else again, out)


def test_masked_self_attention_equals_torch() -> None:
    import torch

    x = torch.randn(2, 6, 8)
    mask = torch.arange(6)[None, :] < torch.tensor([[6], [3]])  # lengths 6 and 3, as collate pads
    layer = build("masked_multihead_attention", {"num_heads": 2}, (6, 8), (6,))
    with torch.no_grad():
        expected, _ = torch_mha(layer, 8, 8, 2)(x, x, x, key_padding_mask=~mask)
        torch.testing.assert_close(layer(x, mask), expected, atol=1e-5, rtol=1e-5)


def hand_attention(layer, x, keep):
    """softmax(q k^T / sqrt(head_dim), masked to `keep`) v, then the output projection, from the layer's q, k, v."""
    q, k, v = layer.project(x, x)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    weights = scores.masked_fill(~keep, float("-inf")).softmax(-1)
    return layer.out((weights @ v).transpose(1, 2).reshape(x.shape))


@pytest.mark.parametrize("name", ["multihead_attention", "multihead_attention_with_weights"])
def test_causal_attention_is_the_masked_softmax_and_ignores_the_future(name: str) -> None:
    import torch

    x = torch.randn(2, 6, 8)
    layer = build(name, {"num_heads": 2, "causal": True, "rope": True}, (6, 8))
    causal = torch.ones(6, 6, dtype=torch.bool).tril()
    with torch.no_grad():
        out = layer(x)
        out = out[0] if isinstance(out, tuple) else out
        torch.testing.assert_close(out, hand_attention(layer, x, causal), atol=1e-5, rtol=1e-5)
        changed = x.clone()
        changed[:, 4:] = torch.randn(2, 2, 8)
        again = layer(changed)
    again = again[0] if isinstance(again, tuple) else again
    torch.testing.assert_close(again[:, :4], out[:, :4])
    assert not torch.allclose(again[:, 4:], out[:, 4:])


def test_grouped_query_attention_equals_repeating_kv_heads_by_hand() -> None:
    """4 query heads sharing 2 kv heads (head i uses kv head i // 2) equal full attention whose key and
    value projections repeat each kv head's rows twice."""
    import torch

    gqa = build("multihead_attention", {"num_heads": 4, "num_kv_heads": 2, "causal": True}, (5, 16))
    full = build("multihead_attention", {"num_heads": 4, "causal": True}, (5, 16))
    with torch.no_grad():
        full.q.load_state_dict(gqa.q.state_dict())
        full.out.load_state_dict(gqa.out.state_dict())
        for name in "kv":
            small, big = getattr(gqa, name), getattr(full, name)
            big.weight.copy_(small.weight.reshape(2, 4, 16).repeat_interleave(2, dim=0).reshape(16, 16))
            big.bias.copy_(small.bias.reshape(2, 4).repeat_interleave(2, dim=0).reshape(16))
        x = torch.randn(3, 5, 16)
        torch.testing.assert_close(gqa(x), full(x), atol=1e-5, rtol=1e-5)
    assert gqa.k.weight.shape == (8, 16)  # the kv projections are d * num_kv_heads / num_heads wide


def test_rope_scores_depend_only_on_the_offset() -> None:
    import torch

    from udlc.layers.modules.attention import rotary

    layer = build("multihead_attention", {"num_heads": 2, "rope": True}, (7, 8))
    q, k = torch.randn(1, 2, 7, 4), torch.randn(1, 2, 7, 4)
    scores = rotary(q, layer.inv_freq) @ rotary(k, layer.inv_freq).transpose(-2, -1)
    for shift in (1, 5, 1000):  # every position moved by `shift`: the same scores
        moved = rotary(q, layer.inv_freq, shift) @ rotary(k, layer.inv_freq, shift).transpose(-2, -1)
        torch.testing.assert_close(moved, scores, atol=1e-3, rtol=1e-4)
    assert not torch.allclose(q @ k.transpose(-2, -1), scores, atol=1e-2)  # the rotation does change them
    torch.testing.assert_close(rotary(q, layer.inv_freq).norm(dim=-1), q.norm(dim=-1))  # a rotation

    # In the layer: one token repeated everywhere scores by offset alone — constant along each diagonal.
    with torch.no_grad():
        q, k, _ = layer.project(*(torch.randn(1, 1, 8).expand(1, 7, 8),) * 2)
    s = (q @ k.transpose(-2, -1))[0, 0]
    for offset in range(-6, 7):
        diagonal = s.diagonal(offset)
        torch.testing.assert_close(diagonal, diagonal[:1].expand_as(diagonal), atol=1e-4, rtol=1e-4)
    assert s.std() > 1e-3


@pytest.mark.parametrize("name", ["masked_multihead_attention", "masked_multihead_attention_with_weights"])
def test_a_sample_of_only_padding_gives_the_bias_and_finite_gradients(name: str) -> None:
    import torch

    layer = build(name, {"num_heads": 2, "causal": True}, (4, 8), (4,)).train()
    x = torch.randn(2, 4, 8, requires_grad=True)
    mask = torch.tensor([[False] * 4, [False, True, True, True]])  # the second one's first query sees nothing
    out = layer(x, mask)
    out = out[0] if isinstance(out, tuple) else out
    out.sum().backward()
    torch.testing.assert_close(out[0], layer.out.bias.expand(4, 8))
    torch.testing.assert_close(out[1, 0], layer.out.bias)
    assert torch.isfinite(x.grad).all() and torch.isfinite(layer.q.weight.grad).all()


@pytest.mark.parametrize("name,args,shapes", [
    ("multihead_attention", {"num_heads": 4, "num_kv_heads": 2, "causal": True, "rope": True}, [(6, 16)]),
    ("masked_multihead_attention", {"num_heads": 2, "causal": True}, [(6, 8), (6,)]),
    ("cross_attention", {"num_heads": 4, "num_kv_heads": 1, "rope": True}, [(6, 8), (9, 12)]),
    ("masked_cross_attention", {"num_heads": 2, "rope": True}, [(6, 8), (9, 8), (9,)]),
])
def test_sdpa_and_explicit_attention_agree(name: str, args: dict, shapes: list) -> None:
    import torch

    from udlc.layers.registry import random_input

    fast, explicit = build(name, args, *shapes), build(f"{name}_with_weights", args, *shapes)
    explicit.load_state_dict(fast.state_dict())
    dtypes = ["float32"] * (len(shapes) - name.startswith("masked")) + ["bool"] * name.startswith("masked")
    xs = [random_input((3, *s), d, torch.Generator().manual_seed(1)) for s, d in zip(shapes, dtypes)]
    with torch.no_grad():
        out, weights = explicit(*xs)
        torch.testing.assert_close(fast(*xs), out, atol=1e-5, rtol=1e-5)
    assert weights.shape == (3, args["num_heads"], shapes[0][0], shapes[-1][0])


def test_dropout_drops_attention_weights_in_training_only() -> None:
    import torch

    layer = build("multihead_attention_with_weights", {"num_heads": 2, "dropout": 0.5}, (6, 8))
    x = torch.randn(2, 6, 8)
    with torch.no_grad():
        first, weights = layer(x)
        torch.testing.assert_close(layer(x)[0], first)
        layer.train()
        dropped, same_weights = layer(x)
    assert not torch.allclose(dropped, first)
    torch.testing.assert_close(same_weights, weights)  # the weights returned are the softmax, before dropout


@pytest.mark.parametrize("d", [8, 7])
def test_sinusoidal_table_is_the_vaswani_formula(d: int) -> None:
    import torch

    layer = build("sinusoidal_positions", {"max_len": 50}, (10, d))
    x = torch.randn(2, 10, d)
    with torch.no_grad():
        table = layer(x) - x
    for pos in (0, 1, 9):
        for i in range(d):
            angle = pos / 10000 ** (2 * (i // 2) / d)
            expected = math.sin(angle) if i % 2 == 0 else math.cos(angle)
            assert abs(table[0, pos, i].item() - expected) < 1e-6
    assert list(layer.parameters()) == [] and layer.state_dict() == {}  # fixed: nothing to learn or save
    with pytest.raises(RuntimeError, match="more than max_len 50"):
        layer(torch.randn(1, 51, d))


def test_learned_positions_add_a_trained_table() -> None:
    import torch

    layer = build("learned_positions", {"max_len": 20}, (6, 4))
    assert [tuple(p.shape) for p in layer.parameters()] == [(20, 4)]
    x = torch.randn(2, 6, 4)
    out = layer(x)
    torch.testing.assert_close(out - x, layer.weight[:6].expand(2, 6, 4))
    out.sum().backward()
    assert (layer.weight.grad[:6] == 2).all() and (layer.weight.grad[6:] == 0).all()  # one per sample
    with pytest.raises(RuntimeError, match="21 positions, more than max_len 20"):
        layer(torch.randn(1, 21, 4))


def test_an_encoder_decoder_spec_compiles_lowers_and_runs() -> None:
    """Multi-input attention in a spec: inputs by `from`, named weights picked, parameters as torch counts."""
    import torch

    from udlc.compiler.lower import lower

    g = graph("""
  inputs: {x: [T, 8], memory: [S, 12], memory_mask: {shape: [S], dtype: bool}}
  layers:
    - sinusoidal_positions
    - {multihead_attention: {num_heads: 2, causal: true, rope: true, id: sa}}
    - {masked_cross_attention_with_weights: {num_heads: 2, num_kv_heads: 1, from: [sa, memory, memory_mask], id: cross}}
    - {learned_positions: {max_len: 64, from: cross.out, id: out}}
  outputs: [out, cross.weights]
""")
    assert g.output_shapes == [("T", 8), (2, "T", "S")]
    module = lower(g, seed=0).eval()
    assert g.total_params == sum(p.numel() for p in module.parameters())
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    with torch.no_grad():
        out, weights = module(torch.randn(2, 3, 8), torch.randn(2, 5, 12), mask)
    assert out.shape == (2, 3, 8) and weights.shape == (2, 2, 3, 5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 2, 3))
    assert (weights[1, :, :, 2:] == 0).all()


def test_a_width_that_num_heads_does_not_divide_is_an_error_at_its_line() -> None:
    (err,) = errors("  input: [T, 10]\n  layers:\n    - linear: 10\n    - multihead_attention: 4\n")
    assert err.message == "num_heads 4 does not divide the model width 10" and err.span.line == 9
    assert "divides 10" in err.hint


@pytest.mark.parametrize("model,message", [
    ("  input: [T, 8]\n  layers: [{multihead_attention: {num_heads: 4, num_kv_heads: 3}}]\n",
     "num_kv_heads 3 must divide num_heads 4"),
    ("  input: [T, 12]\n  layers: [{multihead_attention: {num_heads: 4, rope: true}}]\n",
     "rope rotates pairs of features, but each head has 3 (12 / 4 heads)"),
    ("  inputs: {x: [T, 8], m: [S, 8]}\n  layers: [{cross_attention: {num_heads: 2, causal: true, from: [x, m]}}]\n",
     "unknown key 'causal'"),
    ("  inputs: {x: [T, 8], w: [T]}\n  layers: [{masked_multihead_attention: {num_heads: 2, from: [x, w]}}]\n",
     "expects a bool mask as its last input but gets float32"),
    ("  inputs: {x: [T, 8], m: [S, 8], m_mask: {shape: [T], dtype: bool}}\n"
     "  layers: [{masked_cross_attention: {num_heads: 2, from: [x, m, m_mask]}}]\n",
     # infer evaluates every symbol at 32 first, where T = S and the mask fits; the second binding finds the
     # mismatch, and infer names symbols only in messages from the first, so the sizes here are numbers.
     "expects a mask (length,) as long as the memory ("),
    ("  input: [4, 4, 8]\n  layers: [{multihead_attention: 2}]\n",
     "expects input (length, features) but gets (4, 4, 8)"),
    ("  inputs: {x: [T, 8], m: [S, 8]}\n  layers: [{cross_attention: {num_heads: 2, from: m}}]\n",
     "'cross_attention' takes 2 inputs, `from` names 1"),
    ("  input: [T, 3, 4]\n  layers: [learned_positions]\n", "expects input (length, features) but gets (T, 3, 4)"),
])
def test_spec_mistakes_are_reported(model: str, message: str) -> None:
    assert any(message in e.message for e in errors(model)), [e.message for e in errors(model)]
