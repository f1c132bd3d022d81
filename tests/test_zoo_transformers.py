"""The zoo (examples/zoo): GPT-2, BERT-base, ViT-B/16 and T5-small written with udlc's Transformer blocks have the reference
models' parameter counts, and with the reference weights copied in (the name mappings below), their outputs.
The outputs are compared at a depth of DEPTH blocks on both sides (every block is the same code; building all
twelve costs most of the suite's time for no more coverage); the counts hold the full depth.

The references are Hugging Face `transformers` models (a test-only dependency). torchvision cannot be installed
here, so ViT-B/16 is held to torchvision's published count and compared by value with transformers' ViT, which
has the same architecture (given torchvision's layer-norm epsilon, 1e-6)."""

from __future__ import annotations

from pathlib import Path

import pytest

from udlc.compiler.pipeline import resolve_spec

ZOO = Path(__file__).resolve().parent.parent / "examples" / "zoo"
# BERT and T5 wait in tests/specs/zoo for a task that feeds their inputs: a shipped spec passes `check`.
WAITING = Path(__file__).resolve().parent / "specs" / "zoo"
SEED = 0


DEPTH = 2


def zoo_graph(name: str, depth: int | None = None):
    """The zoo spec's network; with `depth`, every repeated block repeated that many times instead."""
    import yaml

    path = (WAITING if (WAITING / f"{name}.yaml").is_file() else ZOO) / f"{name}.yaml"
    layers = yaml.safe_load(path.read_text())["model"]["layers"]
    args = [next(iter(layer.items())) if isinstance(layer, dict) else (layer, None) for layer in layers]
    shallow = [f"model.layers[{i}].{op}.repeat={depth}" for i, (op, arg) in enumerate(args)
               if depth is not None and isinstance(arg, dict) and "repeat" in arg]
    return resolve_spec(path, shallow).graph  # the model only: bert_base has no task to check yet


@pytest.mark.parametrize("name,params", [("gpt2", 124_439_808), ("bert_base", 109_482_240),
                                         ("vit_b_16", 86_567_656), ("t5_small", 60_506_624)])
def test_zoo_parameter_counts(name: str, params: int) -> None:
    assert zoo_graph(name).total_params == params


def test_vit_b_16_count_is_torchvisions_architecture_term_by_term() -> None:
    d, ff, layers, patches = 768, 3072, 12, (224 // 16) ** 2
    block = 2 * 2 * d + (4 * d * d + 4 * d) + (d * ff + ff + ff * d + d)  # two norms, attention, MLP
    stem = d * 3 * 16 * 16 + d + d + (patches + 1) * d  # conv_proj, class token, positions
    assert stem + layers * block + 2 * d + d * 1000 + 1000 == 86_567_656 == zoo_graph("vit_b_16").total_params


def test_gpt2_and_vit_pass_udlc_check_with_their_task() -> None:
    from udlc.tasks import compile_spec as check

    assert check(ZOO / "gpt2.yaml").graph.output_shapes == [("T", 50257)]
    assert check(ZOO / "vit_b_16.yaml").graph.output_shapes == [(1000,)]


# ---- outputs, with the reference weights copied in ------------------------------------------------


def build(name: str):
    from udlc.compiler.lower import lower

    return lower(zoo_graph(name, DEPTH), seed=SEED).eval()


def perturbed(model):
    """The reference with its norms and biases moved off their initial ones and zeros (its weight matrices start
    random), so that a parameter copied to the wrong place, or not at all, changes the outputs."""
    import torch

    torch.manual_seed(SEED)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def load(ours, state: dict) -> None:
    assert set(state) == set(ours.state_dict()), set(state) ^ set(ours.state_dict())  # every tensor mapped
    ours.load_state_dict(state)


def prefix(block: str, i: int) -> str:
    """Node names of the i-th repetition of a block: gpt_block_layernorm, gpt_block_1_layernorm, ..."""
    return f"{block}_{i}_" if i else f"{block}_"


def attention(ours: str, q, k, v, out) -> dict:
    """Our attention's q, k, v, out projections from (weight, bias) pairs."""
    return {f"{ours}.{n}.{kind}": t for n, pair in zip(("q", "k", "v", "out"), (q, k, v, out))
            for kind, t in zip(("weight", "bias"), pair)}


def linear(ours: str, weight, bias) -> dict:
    return {f"{ours}.weight": weight, f"{ours}.bias": bias}


@pytest.mark.slow
def test_gpt2_logits_equal_transformers_gpt2() -> None:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    reference = perturbed(GPT2LMHeadModel(GPT2Config(n_layer=DEPTH)))
    sd = reference.state_dict()
    state = {"wte.weight": sd["transformer.wte.weight"], "linear.weight": sd["lm_head.weight"],
             "learned_positions.weight": sd["transformer.wpe.weight"],
             **linear("layernorm", sd["transformer.ln_f.weight"], sd["transformer.ln_f.bias"])}
    for i in range(DEPTH):
        p, h = prefix("gpt_block", i), f"transformer.h.{i}."
        # GPT-2's Conv1D holds weights as (in, out), nn.Linear as (out, in); c_attn is q, k, v side by side.
        qkv = zip(sd[h + "attn.c_attn.weight"].T.chunk(3), sd[h + "attn.c_attn.bias"].chunk(3))
        out = (sd[h + "attn.c_proj.weight"].T, sd[h + "attn.c_proj.bias"])
        state |= attention(p + "multihead_attention", *qkv, out)
        state |= linear(p + "layernorm", sd[h + "ln_1.weight"], sd[h + "ln_1.bias"])
        state |= linear(p + "layernorm_1", sd[h + "ln_2.weight"], sd[h + "ln_2.bias"])
        state |= linear(p + "feed_forward_linear", sd[h + "mlp.c_fc.weight"].T, sd[h + "mlp.c_fc.bias"])
        state |= linear(p + "feed_forward_linear_1", sd[h + "mlp.c_proj.weight"].T, sd[h + "mlp.c_proj.bias"])
    ours = build("gpt2")
    assert sum(t.numel() for t in ours.parameters()) == sum(t.numel() for t in reference.parameters())
    load(ours, state)
    assert ours.linear.weight is ours.wte.weight  # still tied after loading

    tokens = torch.randint(0, 50257, (2, 8), generator=torch.Generator().manual_seed(SEED))
    with torch.no_grad():
        expected, got = reference(tokens).logits, ours(tokens)
    assert got.shape == (2, 8, 50257)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


@pytest.mark.slow
def test_bert_base_outputs_equal_transformers_bert() -> None:
    import torch
    from transformers import BertConfig, BertModel

    reference = perturbed(BertModel(BertConfig(num_hidden_layers=DEPTH)))
    sd = reference.state_dict()
    e = "embeddings."
    state = {"embedding.weight": sd[e + "word_embeddings.weight"], "words.weight": sd[e + "position_embeddings.weight"],
             "types.weight": sd[e + "token_type_embeddings.weight"],
             **linear("layernorm", sd[e + "LayerNorm.weight"], sd[e + "LayerNorm.bias"]),
             **linear("linear", sd["pooler.dense.weight"], sd["pooler.dense.bias"])}
    for i in range(DEPTH):
        p, h = prefix("transformer_encoder_block", i), f"encoder.layer.{i}."
        pair = lambda name: (sd[h + name + ".weight"], sd[h + name + ".bias"])  # noqa: E731
        state |= attention(p + "multihead_attention", pair("attention.self.query"), pair("attention.self.key"),
                           pair("attention.self.value"), pair("attention.output.dense"))
        state |= linear(p + "layernorm", *pair("attention.output.LayerNorm"))
        state |= linear(p + "feed_forward_linear", *pair("intermediate.dense"))
        state |= linear(p + "feed_forward_linear_1", *pair("output.dense"))
        state |= linear(p + "layernorm_1", *pair("output.LayerNorm"))
    ours = build("bert_base")
    load(ours, state)

    g = torch.Generator().manual_seed(SEED)
    tokens, types = torch.randint(0, 30522, (2, 8), generator=g), torch.randint(0, 2, (2, 8), generator=g)
    with torch.no_grad():
        expected = reference(input_ids=tokens, token_type_ids=types)
        encoded, pooled = ours(tokens, types)
    torch.testing.assert_close(encoded, expected.last_hidden_state, atol=1e-4, rtol=0)
    torch.testing.assert_close(pooled, expected.pooler_output, atol=1e-4, rtol=0)


@pytest.mark.slow
def test_vit_b_16_logits_equal_transformers_vit() -> None:
    import torch
    from transformers import ViTConfig, ViTForImageClassification

    reference = perturbed(ViTForImageClassification(ViTConfig(layer_norm_eps=1e-6, num_labels=1000,
                                                                  num_hidden_layers=DEPTH)))
    sd = reference.state_dict()
    e = "vit.embeddings."
    state = {"patch_embed.proj.weight": sd[e + "patch_embeddings.projection.weight"],
             "patch_embed.proj.bias": sd[e + "patch_embeddings.projection.bias"],
             "cls_token.token": sd[e + "cls_token"].reshape(768),
             "learned_positions.weight": sd[e + "position_embeddings"].reshape(197, 768),
             **linear("layernorm", sd["vit.layernorm.weight"], sd["vit.layernorm.bias"]),
             **linear("linear", sd["classifier.weight"], sd["classifier.bias"])}
    for i in range(DEPTH):
        p, h = prefix("transformer_encoder_block_pre_norm", i), f"vit.layers.{i}."
        pair = lambda name: (sd[h + name + ".weight"], sd[h + name + ".bias"])  # noqa: E731
        state |= attention(p + "multihead_attention", *(pair(f"attention.{n}_proj") for n in "qkvo"))
        state |= linear(p + "layernorm", *pair("layernorm_before"))
        state |= linear(p + "layernorm_1", *pair("layernorm_after"))
        state |= linear(p + "feed_forward_linear", *pair("mlp.fc1"))
        state |= linear(p + "feed_forward_linear_1", *pair("mlp.fc2"))
    ours = build("vit_b_16")
    load(ours, state)

    images = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(SEED))
    with torch.no_grad():
        expected, got = reference(pixel_values=images).logits, ours(images)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


def test_t5_small_count_is_t5s_architecture_term_by_term() -> None:
    """One embedding (encoder ids, decoder ids and LM head), one bias table per stack, no biases anywhere."""
    d, ff, heads, vocab, layers = 512, 2048, 8, 32128, 6
    attention, feed_forward, table = 4 * d * d, 2 * d * ff, 32 * heads
    encoder = layers * (attention + feed_forward + 2 * d) + table + d
    decoder = layers * (2 * attention + feed_forward + 3 * d) + table + d
    graph = zoo_graph("t5_small")
    assert vocab * d + encoder + decoder == 60_506_624 == graph.total_params
    assert [n.op for n in graph.nodes.values()].count("relative_position_bias") == 2


@pytest.mark.slow
def test_t5_small_logits_equal_transformers_t5() -> None:
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    reference = perturbed(T5ForConditionalGeneration(T5Config(num_layers=DEPTH, num_decoder_layers=DEPTH)))
    sd = reference.state_dict()
    state = {name: sd["shared.weight"] for name in ("shared.weight", "embedding.weight", "linear.weight")}
    state |= {"source_bias.weight": sd["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"],
              "decoder_bias.weight": sd["decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"],
              "rmsnorm.weight": sd["encoder.final_layer_norm.weight"],
              "rmsnorm_1.weight": sd["decoder.final_layer_norm.weight"]}

    def t5_attention(ours: str, theirs: str) -> dict:  # T5 has no biases: weights only
        return {f"{ours}.{n}.weight": sd[f"{theirs}.{t}.weight"] for n, t in zip(("q", "k", "v", "out"), "qkvo")}

    def sublayers(ours: str, theirs: str, attention: list[tuple[str, str]]) -> dict:
        """Each attention sublayer's norm (h, h2) and projections, then the feed-forward's norm and linears."""
        state = {}
        for i, (node, module) in enumerate(attention):
            state[f"{ours}{('h', 'h2')[i]}.weight"] = sd[f"{theirs}layer.{i}.layer_norm.weight"]
            state |= t5_attention(ours + node, f"{theirs}layer.{i}.{module}")
        last = f"{theirs}layer.{len(attention)}."
        return state | {f"{ours}rmsnorm.weight": sd[last + "layer_norm.weight"],
                        f"{ours}feed_forward_linear.weight": sd[last + "DenseReluDense.wi.weight"],
                        f"{ours}feed_forward_linear_1.weight": sd[last + "DenseReluDense.wo.weight"]}

    for i in range(DEPTH):
        state |= sublayers(prefix("masked_t5_encoder_block", i), f"encoder.block.{i}.",
                           [("masked_biased_multihead_attention", "SelfAttention")])
        state |= sublayers(prefix("masked_t5_decoder_block", i), f"decoder.block.{i}.",
                           [("biased_multihead_attention", "SelfAttention"),
                            ("masked_cross_attention", "EncDecAttention")])
    ours = build("t5_small")
    assert sum(t.numel() for t in ours.parameters()) == sum(t.numel() for t in reference.parameters())
    load(ours, state)
    assert ours.embedding.weight is ours.shared.weight is ours.linear.weight  # still tied after loading

    g = torch.Generator().manual_seed(SEED)
    source, decoder = torch.randint(0, 32128, (2, 9), generator=g), torch.randint(0, 32128, (2, 7), generator=g)
    source_mask = torch.ones(2, 9, dtype=torch.bool)
    source_mask[1, 6:] = False  # the second source is padded: neither the encoder nor the decoder may read it
    with torch.no_grad():
        expected = reference(input_ids=source, attention_mask=source_mask.long(), decoder_input_ids=decoder).logits
        got = ours(source, source_mask, decoder)
        assert not torch.allclose(ours(source, torch.ones_like(source_mask), decoder)[1], got[1], atol=1e-3)
    assert got.shape == (2, 7, 32128)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)
