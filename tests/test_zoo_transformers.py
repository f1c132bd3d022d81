"""The zoo (examples/zoo): GPT-2, BERT-base, ViT-B/16 and T5-small written with udlc's Transformer blocks have the reference
models' parameter counts, and with the reference weights loaded through the zoo's mapping files (gpt2.map.yaml …,
from the folder transformers' save_pretrained writes), their outputs.
The outputs are compared at a depth of DEPTH blocks on both sides (every block is the same code; building all
twelve costs most of the suite's time for no more coverage; a mapping's `{i}` rules hold at any depth); the counts
hold the full depth.

The references are Hugging Face `transformers` models (a test-only dependency). torchvision cannot be installed
here, so ViT-B/16 is held to torchvision's published count and compared by value with transformers' ViT, which
has the same architecture (given torchvision's layer-norm epsilon, 1e-6)."""

from __future__ import annotations

from pathlib import Path

import pytest

from udlc.compiler.pipeline import resolve_spec

ZOO = Path(__file__).resolve().parent.parent / "examples" / "zoo"
SEED = 0


DEPTH = 2


def zoo_graph(name: str, depth: int | None = None):
    """The zoo spec's network; with `depth`, every repeated block repeated that many times instead."""
    import yaml

    path = ZOO / f"{name}.yaml"
    layers = yaml.safe_load(path.read_text())["model"]["layers"]
    args = [next(iter(layer.items())) if isinstance(layer, dict) else (layer, None) for layer in layers]
    shallow = [f"model.layers[{i}].{op}.repeat={depth}" for i, (op, arg) in enumerate(args)
               if depth is not None and isinstance(arg, dict) and "repeat" in arg]
    return resolve_spec(path, shallow).graph  # the model only: the task check is test_text_objectives.py's


@pytest.mark.parametrize("name,params", [("gpt2", 124_439_808), ("bert_base", 109_514_298),
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


# ---- outputs, with the reference weights loaded through the zoo's mappings --------------------------


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


def loaded(name: str, reference, folder: Path):
    """Our network, with the reference's weights saved as transformers saves them and loaded through the zoo's
    mapping: every tensor of the network loaded, every tensor of the file used (or dropped by a rule)."""
    from udlc.weights import Mapping, find_map, load_into

    reference.save_pretrained(folder)
    ours = build(name)
    report = load_into({"model": ours}, folder, Mapping.load(find_map(name, ZOO)))
    assert not report.new and not report.unused, report.text
    return ours


@pytest.mark.long  # full-width reference models from transformers: seconds each (CI runs this tier)
def test_gpt2_logits_equal_transformers_gpt2(tmp_path: Path) -> None:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    reference = perturbed(GPT2LMHeadModel(GPT2Config(n_layer=DEPTH)))
    ours = loaded("gpt2", reference, tmp_path)
    assert sum(t.numel() for t in ours.parameters()) == sum(t.numel() for t in reference.parameters())
    assert ours.linear.weight is ours.wte.weight  # still tied after loading

    tokens = torch.randint(0, 50257, (2, 8), generator=torch.Generator().manual_seed(SEED))
    with torch.no_grad():
        expected, got = reference(tokens).logits, ours(tokens)
    assert got.shape == (2, 8, 50257)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


@pytest.mark.long  # full-width reference models from transformers: seconds each (CI runs this tier)
def test_bert_base_logits_equal_transformers_bert_for_masked_lm(tmp_path: Path) -> None:
    import torch
    from transformers import BertConfig, BertForMaskedLM

    reference = perturbed(BertForMaskedLM(BertConfig(num_hidden_layers=DEPTH)))
    ours = loaded("bert_base", reference, tmp_path)
    assert sum(t.numel() for t in ours.parameters()) == sum(t.numel() for t in reference.parameters())
    assert ours.decoder.weight is ours.embedding.weight  # still tied after loading

    g = torch.Generator().manual_seed(SEED)
    tokens, types = torch.randint(0, 30522, (2, 8), generator=g), torch.randint(0, 2, (2, 8), generator=g)
    with torch.no_grad():
        expected, got = reference(input_ids=tokens, token_type_ids=types).logits, ours(tokens, types)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


@pytest.mark.long  # full-width reference models from transformers: seconds each (CI runs this tier)
def test_vit_b_16_logits_equal_transformers_vit(tmp_path: Path) -> None:
    import torch
    from transformers import ViTConfig, ViTForImageClassification

    reference = perturbed(ViTForImageClassification(ViTConfig(layer_norm_eps=1e-6, num_labels=1000,
                                                                  num_hidden_layers=DEPTH)))
    ours = loaded("vit_b_16", reference, tmp_path)

    images = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(SEED))
    with torch.no_grad():
        expected, got = reference(pixel_values=images).logits, ours(images)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


@pytest.mark.long  # full-width reference models from transformers: seconds each (CI runs this tier)
def test_vit_b_16_loads_timm_names_through_its_timm_mapping(tmp_path: Path) -> None:
    """timm's names for the same ViT (timm is not installed here): transformers' weights renamed as timm's own
    conversion does (one `attn.qkv`: q, k, v stacked along dim 0), saved, loaded through vit_b_16.timm.map.yaml."""
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import ViTConfig, ViTForImageClassification

    from udlc.weights import Mapping, find_map, load_into

    reference = perturbed(ViTForImageClassification(ViTConfig(layer_norm_eps=1e-6, num_labels=1000,
                                                                  num_hidden_layers=DEPTH)))
    reference.save_pretrained(tmp_path / "hf")
    sd = load_file(tmp_path / "hf" / "model.safetensors")
    e = "vit.embeddings."
    timm = {"cls_token": sd[e + "cls_token"], "pos_embed": sd[e + "position_embeddings"],
            "norm.weight": sd["vit.layernorm.weight"], "norm.bias": sd["vit.layernorm.bias"],
            "head.weight": sd["classifier.weight"], "head.bias": sd["classifier.bias"]}
    timm |= {f"patch_embed.proj.{k}": sd[f"{e}patch_embeddings.projection.{k}"] for k in ("weight", "bias")}
    for i in range(DEPTH):
        h = f"vit.encoder.layer.{i}."
        for k in ("weight", "bias"):
            timm[f"blocks.{i}.attn.qkv.{k}"] = torch.cat([sd[f"{h}attention.attention.{n}.{k}"]
                                                        for n in ("query", "key", "value")])
            timm |= {f"blocks.{i}.{t}.{k}": sd[f"{h}{hf}.{k}"] for t, hf in (
                ("norm1", "layernorm_before"), ("attn.proj", "attention.output.dense"), ("norm2", "layernorm_after"),
                ("mlp.fc1", "intermediate.dense"), ("mlp.fc2", "output.dense"))}
    save_file(timm, tmp_path / "timm.safetensors")
    ours = build("vit_b_16")
    report = load_into({"model": ours}, tmp_path / "timm.safetensors", Mapping.load(find_map("vit_b_16.timm", ZOO)))
    assert not report.new and not report.unused, report.text

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


@pytest.mark.long  # full-width reference models from transformers: seconds each (CI runs this tier)
def test_t5_small_logits_equal_transformers_t5(tmp_path: Path) -> None:
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    reference = perturbed(T5ForConditionalGeneration(T5Config(num_layers=DEPTH, num_decoder_layers=DEPTH)))
    ours = loaded("t5_small", reference, tmp_path)
    assert sum(t.numel() for t in ours.parameters()) == sum(t.numel() for t in reference.parameters())
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
