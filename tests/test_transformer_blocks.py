"""Blocks with several inputs, parameters that name a layer or block (`- $feed_forward: {...}`), and udlc's
Transformer blocks (udlc/compiler/library/transformer.yaml) against torch's own layers with the same weights."""

from __future__ import annotations

import pytest

from udlc.compiler.pipeline import resolve_text
from udlc.errors import SpecErrors

HEAD = "udlc: 1\nname: t\ndata: {source: digits}\nloss: mse\nmodel:\n"  # the model starts at line 6


def graph(model: str):
    return resolve_text(HEAD + model, "t.yaml").graph


def errors(model: str) -> list:
    with pytest.raises(SpecErrors) as info:
        graph(model)
    return info.value.errors


def built(g):
    import torch

    from udlc.compiler.lower import lower

    torch.manual_seed(0)
    return lower(g, seed=0).eval()


def modules(module, nodes, *ops: str) -> list:
    """The submodules of the nodes of these ops, in the order the graph holds them."""
    return [getattr(module, n.name) for n in nodes if n.op in ops]


# ---- blocks with several inputs ------------------------------------------------------------------


GATED = """\
  inputs: {a: [T, 8], b: [T, 8]}
  blocks:
    gated_sum:
      inputs: [x, gate]
      params: {width: 8}
      layers:
        - sigmoid: {from: gate, id: g}
        - multiply: {from: [x, g]}
        - linear: $width
"""


def test_a_block_reads_each_input_by_its_name() -> None:
    g = graph(GATED + "  layers:\n    - gated_sum: {from: [a, b]}\n")
    nodes = {n.op: n for n in g.nodes.values()}
    assert nodes["sigmoid"].inputs == ("b",)  # `gate` is the call's second node
    assert nodes["multiply"].inputs == ("a", nodes["sigmoid"].name)  # `x` is its first
    assert g.output_shapes == [("T", 8)]


def test_too_few_nodes_for_a_block_is_an_error_at_from_naming_the_inputs() -> None:
    (err,) = errors(GATED + "  layers:\n    - relu: {id: r}\n    - gated_sum: {from: [r]}\n")
    assert err.message == "`from` names 1 node, but block 'gated_sum' takes 2 inputs (x, gate)"
    assert (err.span.file, err.span.line, err.span.col) == ("t.yaml", 17, 25)  # the `[r]` after `from:`
    assert "from: [x, gate]" in err.hint


def test_a_block_of_several_inputs_without_from_is_an_error_at_the_call() -> None:
    (err,) = errors(GATED + "  layers:\n    - gated_sum\n")
    assert err.message == "block 'gated_sum' takes 2 inputs (x, gate)"
    assert (err.span.line, err.span.col) == (16, 7) and "gated_sum: {from: [x, gate], ...}" in err.hint


def test_block_inputs_must_have_distinct_names() -> None:
    (err,) = errors(GATED.replace("[x, gate]", "[x, x]") + "  layers:\n    - gated_sum: {from: [a, b]}\n")
    assert "input 'x' is named twice" in err.message and err.span.line == 9


def test_repeat_chains_the_first_input_and_keeps_the_others() -> None:
    g = graph(GATED + "  layers:\n    - gated_sum: {from: [a, b], repeat: 3}\n")
    gates = [n for n in g.nodes.values() if n.op == "sigmoid"]
    products = [n for n in g.nodes.values() if n.op == "multiply"]
    linears = [n.name for n in g.nodes.values() if n.op == "linear"]
    assert [n.inputs for n in gates] == [("b",)] * 3  # every repetition reads the same b
    assert [n.inputs[0] for n in products] == ["a", *linears[:2]]  # and the previous repetition's output
    assert g.outputs == [linears[2]]


def test_an_input_unknown_after_an_upstream_error_is_not_reported_again() -> None:
    # swiglu_feed_forward reads its input `x` by name a second time (`from: x`): x is unknown, not missing
    errs = errors("  input: [T, 8]\n  layers:\n    - linear: {out_features: -1}\n"
                  "    - swiglu_feed_forward: {d_model: 8, d_ff: 16}\n")
    assert [(e.span.file, e.span.line) for e in errs] == [("t.yaml", 8)]  # the bad linear only


# ---- parameters that name a layer or block -------------------------------------------------------


FF_SPEC = """\
  input: [T, 16]
  blocks:
    tiny_ff:                     # the feed-forward interface: d_model, d_ff, activation, dropout, bias
      params: {d_model: {type: int}, d_ff: {type: int}, activation: relu, dropout: 0.0, bias: true}
      layers:
        - linear: {out_features: $d_model, bias: $bias}
        - $activation
  layers:
    - transformer_encoder_block: {d_model: 16, num_heads: 2, d_ff: 32, feed_forward: %s, activation: %s}
"""


def test_a_parameter_names_the_block_a_key_calls() -> None:
    g = graph(FF_SPEC % ("tiny_ff", "tanh"))
    ops = [n.op for n in g.nodes.values()]
    assert ops.count("linear") == 1 and "tanh" in ops  # tiny_ff's one linear, and the activation passed on
    (tanh,) = [n for n in g.nodes.values() if n.op == "tanh"]
    assert tanh.name == "transformer_encoder_block_tiny_ff_tanh"


def test_an_unknown_name_in_a_parameter_is_the_usual_unknown_layer_error() -> None:
    (err,) = errors(FF_SPEC % ("tiny_f", "tanh"))
    assert err.message == "unknown layer 'tiny_f' (in block 'transformer_encoder_block' used at line 14)"
    assert "did you mean 'tiny_ff'?" in err.hint
    assert err.span.file.endswith("transformer.yaml") and "$feed_forward" in err.span.text
    (err,) = errors(FF_SPEC % ("tiny_ff", "gelux"))  # passed through the block into tiny_ff
    assert err.message == "unknown layer 'gelux' (in block 'transformer_encoder_block' used at line 14)"
    assert "did you mean 'gelu'?" in err.hint and (err.span.line, err.span.col) == (12, 11)


def test_a_mistake_in_an_entry_called_by_a_parameter_is_shown_at_its_argument() -> None:
    (err,) = errors("""\
  input: [8]
  blocks:
    wrap:
      params: {layer: linear}
      layers:
        - $layer:
            out_features: -3
  layers: [wrap]
""")
    assert err.path == "model.blocks.wrap.layers[0].$layer.out_features" and (err.span.line, err.span.col) == (12, 27)


@pytest.mark.parametrize("entry,message,col", [
    ("- $layr: {out_features: 4}", "unknown parameter '$layr'", 11),
    ("- $width: {out_features: 4}", "parameter 'width' is used as a name here, so it must be a string (got 4)", 11),
])
def test_a_key_parameter_that_names_nothing_is_an_error_at_the_key(entry: str, message: str, col: int) -> None:
    (err,) = errors(f"  input: [8]\n  blocks:\n    wrap:\n      params: {{layer: linear, width: 4}}\n"
                    f"      layers:\n        {entry}\n  layers: [wrap]\n")
    assert err.message.startswith(message) and (err.span.line, err.span.col) == (11, col)


# ---- Transformer blocks against torch ------------------------------------------------------------


def copy_attention(ours, mha) -> None:
    """torch's MultiheadAttention holds q, k, v in one in_proj; ours holds three projections."""
    for name, w, b in zip("qkv", mha.in_proj_weight.chunk(3), mha.in_proj_bias.chunk(3)):
        getattr(ours, name).weight.copy_(w)
        getattr(ours, name).bias.copy_(b)
    ours.out.weight.copy_(mha.out_proj.weight)
    ours.out.bias.copy_(mha.out_proj.bias)


def copy_layer(module, nodes, layer, decoder: bool) -> None:
    """Weights of one torch Transformer{Encoder,Decoder}Layer into the block made of `nodes`."""
    import torch

    attentions = modules(module, nodes, "multihead_attention", "cross_attention", "masked_multihead_attention",
                         "masked_cross_attention")
    linears, norms = modules(module, nodes, "linear"), modules(module, nodes, "layernorm")
    theirs = [layer.self_attn] + ([layer.multihead_attn] if decoder else [])
    torch_norms = [layer.norm1, layer.norm2] + ([layer.norm3] if decoder else [])
    assert len(attentions) == len(theirs) and len(norms) == len(torch_norms) and len(linears) == 2
    with torch.no_grad():
        for ours, mha in zip(attentions, theirs):
            copy_attention(ours, mha)
        for ours, t in zip(linears + norms, [layer.linear1, layer.linear2, *torch_norms]):
            ours.load_state_dict(t.state_dict())


CASES = [  # block, torch's norm_first, activation, masked
    ("transformer_encoder_block", False, "relu", False),
    ("transformer_encoder_block_pre_norm", True, "gelu", False),
    ("masked_transformer_encoder_block", False, "gelu", True),
    ("masked_transformer_encoder_block_pre_norm", True, "relu", True),
    ("transformer_decoder_block", False, "relu", False),
    ("transformer_decoder_block_pre_norm", True, "gelu", False),
    ("masked_transformer_decoder_block", False, "relu", True),
    ("masked_transformer_decoder_block_pre_norm", True, "gelu", True),
]


@pytest.mark.parametrize("block,norm_first,activation,masked", CASES, ids=[c[0] for c in CASES])
def test_transformer_blocks_equal_torch_layers(block: str, norm_first: bool, activation: str, masked: bool) -> None:
    import torch

    d, heads, d_ff, t, s = 16, 4, 40, 5, 7
    decoder = "decoder" in block
    args = f"{{d_model: {d}, num_heads: {heads}, d_ff: {d_ff}, activation: {activation}, %s}}"
    if decoder:
        inputs = f"{{x: [T, {d}], memory: [S, {d}]" + (", memory_mask: {shape: [S], dtype: bool}}" if masked else "}")
        sources = "[x, memory, memory_mask]" if masked else "[x, memory]"
    else:
        inputs = f"{{x: [T, {d}]" + (", mask: {shape: [T], dtype: bool}}" if masked else "}")
        sources = "[x, mask]" if masked else "x"
    g = graph(f"  inputs: {inputs}\n  layers:\n    - {block}: {args % f'from: {sources}'}\n")
    torch.manual_seed(1)
    cls = torch.nn.TransformerDecoderLayer if decoder else torch.nn.TransformerEncoderLayer
    layer = cls(d, heads, d_ff, dropout=0.0, activation=activation, batch_first=True, norm_first=norm_first).eval()
    assert g.total_params == sum(p.numel() for p in layer.parameters())
    module = built(g)
    copy_layer(module, g.nodes.values(), layer, decoder)

    x, memory = torch.randn(2, t, d), torch.randn(2, s, d)
    keep = torch.ones(2, s if decoder else t, dtype=torch.bool)
    keep[1, -2:] = False  # the second sample's last two positions are padding
    if decoder:
        causal = torch.nn.Transformer.generate_square_subsequent_mask(t)
        padding = {"memory_key_padding_mask": ~keep} if masked else {}
        expected = layer(x, memory, tgt_mask=causal, tgt_is_causal=True, **padding)
        got = module(x, memory, keep) if masked else module(x, memory)
    else:  # with gradients on, torch takes its plain path, which keeps padded positions' values
        expected = layer(x, src_key_padding_mask=~keep) if masked else layer(x)
        got = module(x, keep) if masked else module(x)
    if masked and not decoder:
        expected, got = expected[keep], got[keep]  # padded queries: what each computes there is not specified
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_a_repeated_decoder_block_equals_torch_decoder_stack_reading_one_memory() -> None:
    import torch

    g = graph("  inputs: {x: [T, 16], memory: [S, 16]}\n  layers:\n"
              "    - transformer_decoder_block: {d_model: 16, num_heads: 2, d_ff: 24, from: [x, memory], repeat: 3}\n")
    crosses = [n for n in g.nodes.values() if n.op == "cross_attention"]
    assert [n.inputs[1] for n in crosses] == ["memory"] * 3
    torch.manual_seed(2)
    layer = torch.nn.TransformerDecoderLayer(16, 2, 24, dropout=0.0, batch_first=True)
    stack = torch.nn.TransformerDecoder(layer, num_layers=3).eval()
    for theirs in stack.layers:
        with torch.no_grad():
            for p in theirs.parameters():
                p.normal_(0, 0.3)  # each layer its own weights, so a wrong order would show
    module = built(g)
    nodes = list(g.nodes.values())
    size = len(nodes) // 3  # the repetitions' nodes, one after another
    for i, theirs in enumerate(stack.layers):
        copy_layer(module, nodes[i * size:(i + 1) * size], theirs, decoder=True)
    x, memory = torch.randn(2, 6, 16), torch.randn(2, 4, 16)
    causal = torch.nn.Transformer.generate_square_subsequent_mask(6)
    expected = stack(x, memory, tgt_mask=causal, tgt_is_causal=True)
    torch.testing.assert_close(module(x, memory), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.slow  # imports transformers
def test_swiglu_feed_forward_equals_llamas_mlp() -> None:
    import torch

    transformers = pytest.importorskip("transformers")
    from transformers.models.llama.modeling_llama import LlamaMLP

    g = graph("  input: [T, 16]\n  layers:\n    - swiglu_feed_forward: {d_model: 16, d_ff: 44}\n")
    config = transformers.LlamaConfig(hidden_size=16, intermediate_size=44, hidden_act="silu", mlp_bias=False,
                                      num_attention_heads=2)
    torch.manual_seed(3)
    mlp = LlamaMLP(config).eval()
    assert g.total_params == sum(p.numel() for p in mlp.parameters()) == 3 * 16 * 44
    module = built(g)
    gate, up, down = modules(module, g.nodes.values(), "linear")
    with torch.no_grad():
        for ours, theirs in ((gate, mlp.gate_proj), (up, mlp.up_proj), (down, mlp.down_proj)):
            ours.weight.copy_(theirs.weight)
    x = torch.randn(2, 5, 16)
    torch.testing.assert_close(module(x), mlp(x), atol=1e-5, rtol=1e-5)


def test_gpt_block_with_rmsnorm_swiglu_rope_and_grouped_heads_compiles_as_llama_counts() -> None:
    g = graph("  input: [T, 64]\n  layers:\n"
              "    - gpt_block: {d_model: 64, num_heads: 8, num_kv_heads: 2, d_ff: 172, norm: rmsnorm, rope: true,"
              " feed_forward: swiglu_feed_forward, activation: silu, bias: false, repeat: 2}\n")
    kv = 64 // 8 * 2
    per_block = (2 * 64 * 64 + 2 * 64 * kv) + 3 * 64 * 172 + 2 * 64  # attention, SwiGLU, two RMSNorm scales
    assert g.total_params == 2 * per_block
    ops = [n.op for n in g.nodes.values()]
    assert ops.count("rmsnorm") == 4 and ops.count("silu") == 2 and "layernorm" not in ops
    attention = next(n for n in g.nodes.values() if n.op == "multihead_attention")
    assert attention.config.causal and attention.config.rope and attention.config.num_kv_heads == 2


def test_num_kv_heads_left_out_is_the_layers_own_default() -> None:
    g = graph("  input: [T, 16]\n  layers:\n    - gpt_block: {d_model: 16, num_heads: 4, d_ff: 32}\n")
    attention = next(n for n in g.nodes.values() if n.op == "multihead_attention")
    assert attention.config.num_kv_heads is None and attention.config.kv_heads == 4


def test_dropout_and_activation_dropout_go_where_torch_and_gpt2_put_them() -> None:
    def rates(args: str) -> list[float]:
        g = graph("  input: [T, 16]\n  layers:\n"
                  f"    - transformer_encoder_block: {{d_model: 16, num_heads: 2, d_ff: 32, {args}}}\n")
        attention = next(n for n in g.nodes.values() if n.op == "multihead_attention")
        return [attention.config.dropout] + [n.config.p for n in g.nodes.values() if n.op == "dropout"]

    # attention weights, then the attention's output, inside the feed-forward, the feed-forward's output
    assert rates("dropout: 0.1") == [0.1, 0.1, 0.0, 0.1]  # GPT-2, BERT: nothing after the activation
    assert rates("dropout: 0.1, activation_dropout: 0.1") == [0.1] * 4  # torch's layers


def test_the_transformer_library_is_valid_against_the_published_schema() -> None:
    """Written in the language users write, `$param` keys and bare `$param` names included."""
    import json
    from pathlib import Path

    import jsonschema
    import yaml

    root = Path(__file__).resolve().parent.parent
    schema = json.loads((root / "spec" / "udlc.schema.json").read_text())
    blocks = yaml.safe_load((root / "udlc" / "compiler" / "library" / "transformer.yaml").read_text())["blocks"]
    validator = jsonschema.Draft202012Validator({"$ref": "#/$defs/BlockSpec", "$defs": schema["$defs"]})
    for block in blocks.values():
        validator.validate(block)


def test_masked_gpt_block_ignores_left_padding_as_if_it_were_not_there() -> None:
    import torch

    plain = graph("  input: [T, 16]\n  layers:\n    - gpt_block: {d_model: 16, num_heads: 4, d_ff: 32}\n")
    masked = graph("  inputs: {x: [T, 16], mask: {shape: [T], dtype: bool}}\n  layers:\n"
                   "    - masked_gpt_block: {d_model: 16, num_heads: 4, d_ff: 32, from: [x, mask]}\n")
    a, b = built(plain), built(masked)
    b.load_state_dict(dict(zip(b.state_dict(), a.state_dict().values())))  # the same tensors, in the same order
    x = torch.randn(1, 7, 16)
    keep = torch.tensor([[False, False, True, True, True, True, True]])  # two padding positions first
    with torch.no_grad():
        torch.testing.assert_close(b(x, keep)[:, 2:], a(x[:, 2:]), atol=1e-5, rtol=1e-5)
        assert not torch.allclose(b(x, torch.ones_like(keep))[:, 2:], a(x[:, 2:]), atol=1e-3)  # padding seen
