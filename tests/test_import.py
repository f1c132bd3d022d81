"""`udlc import` (udlc.weights.hf_import) and `udlc export SPEC` (udlc.exporter.initialized), against transformers.

For each architecture a tiny random transformers model (2 layers, width 32) has every weight perturbed, is saved
with save_pretrained, imported, exported as initialized, and onnxruntime's logits are held to transformers' within
1e-4 (those exports are `long`). The rest — rotary positions against LLaMA's own, the specs `check` accepts, the
configs refused with their key, the imported network in torch — is quick. transformers is a test-only dependency."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from udlc.cli import main

TOL = 1e-4
SEED = 0


def perturbed(model):
    """Every weight moved off its initial value (norms off one, biases off zero, matrices off their draw), so that a
    tensor copied to the wrong place, transposed wrongly or not at all changes the outputs."""
    import torch

    torch.manual_seed(SEED)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def tiny(name: str):
    """A tiny random transformers model of each architecture udlc imports."""
    import transformers as T

    common = dict(vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  max_position_embeddings=64)
    if name == "llama":  # grouped-query attention, untied head, biases everywhere, a larger rotary base
        return T.LlamaForCausalLM(T.LlamaConfig(**common, num_key_value_heads=2, attention_bias=True, mlp_bias=True,
                                                rope_parameters={"rope_type": "default", "rope_theta": 5e5}))
    if name == "llama_tied":
        return T.LlamaForCausalLM(T.LlamaConfig(**common, num_key_value_heads=1, tie_word_embeddings=True))
    if name == "mistral":
        return T.MistralForCausalLM(T.MistralConfig(**common, num_key_value_heads=2, sliding_window=None))
    if name == "qwen2":  # q/k/v biases but none on the output projection, rope_theta 1e6
        return T.Qwen2ForCausalLM(T.Qwen2Config(**common, num_key_value_heads=2,
                                                rope_parameters={"rope_type": "default", "rope_theta": 1e6}))
    if name == "gpt2":
        return T.GPT2LMHeadModel(T.GPT2Config(vocab_size=256, n_embd=32, n_layer=2, n_head=4, n_positions=64))
    # The text tasks' vocabularies: bytes and their specials (udlc.data.specials), so the stand-in data is bytes
    if name == "bert":  # the encoder and pooler alone
        return T.BertModel(T.BertConfig(**{**common, "vocab_size": 100}))
    if name == "bert_mlm":
        return T.BertForMaskedLM(T.BertConfig(**{**common, "vocab_size": 259}))
    if name == "t5":
        return T.T5ForConditionalGeneration(T.T5Config(vocab_size=358, d_model=32, d_kv=8, d_ff=64, num_layers=2,
                                                       num_heads=4))
    if name == "t5_gated":  # T5 v1.1 / Flan-T5: gated GELU, no scaling before the head
        return T.T5ForConditionalGeneration(T.T5Config(vocab_size=358, d_model=32, d_kv=8, d_ff=64, num_layers=2,
                                                       num_decoder_layers=1, num_heads=4,
                                                       feed_forward_proj="gated-gelu", tie_word_embeddings=False))
    if name == "vit":
        return T.ViTForImageClassification(T.ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                                       intermediate_size=64, image_size=32, patch_size=8, num_labels=5))
    raise ValueError(name)


def saved(tmp_path: Path, name: str):
    """The perturbed model and the folder it is saved in."""
    model = perturbed(tiny(name))
    model.save_pretrained(tmp_path / name)
    return model, tmp_path / name


def udlc(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def imported(tmp_path: Path, name: str):
    model, folder = saved(tmp_path, name)
    spec = tmp_path / "specs" / f"{name}.yaml"
    udlc("import", str(folder), "-o", str(spec))
    return model, spec


def network(spec: Path):
    """The imported spec's network in torch, with the folder's weights loaded through the map."""
    from udlc.compiler.lower import lower
    from udlc.compiler.pipeline import resolve_spec
    from udlc.weights.load import load_init

    compiled = resolve_spec(spec, check_files=False)  # the model only: BERT and T5 have no task that checks here
    ours = lower(compiled.graph, seed=SEED).eval()
    report = load_init({"model": ours}, compiled.spec.init, compiled.base_dir, compiled.doc)
    assert not report.new and not report.unused, report.text  # every tensor mapped, both ways
    return ours


# ---- quick: the pieces ----------------------------------------------------------------------------------------


def test_rotary_positions_are_llamas_rotate_half_with_its_theta() -> None:
    import torch
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

    from udlc.layers.attention import MultiheadAttention
    from udlc.layers.modules.attention import Attention, rotary

    cfg = LlamaConfig(hidden_size=32, num_attention_heads=2, rope_parameters={"rope_type": "default", "rope_theta": 1e6})
    ours = Attention(32, 32, MultiheadAttention(num_heads=2, rope=True, rope_base=1e6, causal=True))
    q, k = torch.randn(2, 2, 7, 16, generator=torch.Generator().manual_seed(SEED)).unbind(0)
    q, k = q[None], k[None]
    position_ids = torch.arange(3, 10)[None]  # from an offset, as the key/value cache runs them
    cos, sin = LlamaRotaryEmbedding(cfg)(q, position_ids)
    expected = apply_rotary_pos_emb(q, k, cos, sin)
    torch.testing.assert_close(rotary(q, ours.inv_freq, 3), expected[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(rotary(k, ours.inv_freq, 3), expected[1], atol=1e-5, rtol=0)


def test_rope_base_without_rope_and_out_bias_are_checked() -> None:
    from pydantic import ValidationError

    from udlc.layers.attention import MultiheadAttention, attention_params

    with pytest.raises(ValidationError, match="rope_base .* applies only with rope: true"):
        MultiheadAttention(num_heads=2, rope_base=1e6)
    qwen = MultiheadAttention(num_heads=4, num_kv_heads=2, out_bias=False)
    assert attention_params(qwen, (5, 16)) == 2 * 16 * 16 + 2 * 16 * 8 + 16 + 2 * 8  # no output bias


@pytest.mark.parametrize("name", ["llama", "qwen2", "gpt2", "bert", "bert_mlm", "t5_gated", "vit"])
def test_imported_network_equals_transformers_in_torch(tmp_path: Path, name: str) -> None:
    import torch

    model, spec = imported(tmp_path, name)
    ours = network(spec)
    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        if name == "vit":
            x = torch.randn(2, 3, 32, 32, generator=g)
            got, expected = ours(x), model(pixel_values=x).logits
        elif name == "bert":
            tokens, types = torch.randint(0, 100, (2, 9), generator=g), torch.randint(0, 2, (2, 9), generator=g)
            encoded, pooled = ours(tokens, types)
            out = model(input_ids=tokens, token_type_ids=types)
            torch.testing.assert_close(pooled, out.pooler_output, atol=TOL, rtol=0)
            got, expected = encoded, out.last_hidden_state
        elif name == "bert_mlm":
            tokens, types = torch.randint(0, 259, (2, 9), generator=g), torch.randint(0, 2, (2, 9), generator=g)
            got, expected = ours(tokens, types), model(input_ids=tokens, token_type_ids=types).logits
        elif name.startswith("t5"):
            source, decoder = torch.randint(0, 358, (2, 9), generator=g), torch.randint(0, 358, (2, 6), generator=g)
            mask = torch.ones(2, 9, dtype=torch.bool)
            mask[1, 5:] = False
            got = ours(source, mask, decoder)
            expected = model(input_ids=source, attention_mask=mask.long(), decoder_input_ids=decoder).logits
        else:
            tokens = torch.randint(0, 256, (2, 11), generator=g)
            got, expected = ours(tokens), model(tokens).logits
    torch.testing.assert_close(got, expected, atol=TOL, rtol=0)


def test_imported_text_models_pass_check(tmp_path: Path) -> None:
    for name in ("llama", "qwen2", "gpt2", "bert_mlm", "t5"):
        _, spec = imported(tmp_path, name)
        assert "OK" in udlc("check", str(spec))


def test_the_shipped_llama_passes_check() -> None:
    assert "OK" in udlc("check", str(Path(__file__).resolve().parent.parent / "examples" / "zoo" / "llama.yaml"))


def write_config(tmp_path: Path, **config) -> Path:
    import json

    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    base = dict(model_type="llama", vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, max_position_embeddings=64)
    (folder / "config.json").write_text(json.dumps({**base, **config}))
    return folder


@pytest.mark.parametrize("config,key", [
    ({"model_type": "falcon"}, "model_type"),
    ({"rope_scaling": {"rope_type": "llama3", "factor": 8.0}}, "rope_scaling"),
    ({"rope_parameters": {"rope_type": "yarn", "rope_theta": 1e4}}, "rope_parameters"),
    ({"model_type": "mistral", "sliding_window": 16}, "sliding_window"),
    ({"model_type": "qwen2", "use_sliding_window": True, "sliding_window": 32}, "sliding_window"),
    ({"head_dim": 16}, "head_dim"),
    ({"hidden_act": "gelu_fast"}, "hidden_act"),
    ({"model_type": "gpt2", "n_embd": 32, "n_head": 4, "n_layer": 2, "scale_attn_by_inverse_layer_idx": True},
     "scale_attn_by_inverse_layer_idx"),
    ({"model_type": "t5", "d_model": 32, "num_heads": 4, "num_layers": 2, "d_ff": 64, "d_kv": 16}, "d_kv"),
    ({"model_type": "vit", "architectures": ["ViTModel"]}, "architectures"),
])
def test_what_udlc_cannot_express_is_refused_naming_the_key(tmp_path: Path, config: dict, key: str) -> None:
    folder = write_config(tmp_path, **config)
    result = CliRunner().invoke(main, ["import", str(folder), "-o", str(tmp_path / "spec.yaml")])
    assert result.exit_code == 1 and "internal error" not in result.output, result.output
    assert f"config.json: `{key}`" in result.output
    assert not (tmp_path / "spec.yaml").exists()


def test_import_reads_json_alone(tmp_path: Path) -> None:
    """`udlc import` imports no torch, numpy, transformers or pydantic: it reads JSON headers and writes text."""
    import subprocess
    import sys

    folder = write_config(tmp_path, architectures=["LlamaForCausalLM"])
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "udlc", "import", str(folder), "-o",
                          str(tmp_path / "spec.yaml")], capture_output=True, text=True, check=True)
    loaded = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in out.stderr.splitlines() if "|" in line}
    assert not loaded & {"torch", "numpy", "transformers", "pydantic"}
    assert "llama_block: {d_model: 32, num_heads: 4, d_ff: 64" in (tmp_path / "spec.yaml").read_text()


def test_import_refuses_a_folder_without_config_and_keeps_existing_specs(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["import", str(tmp_path), "-o", str(tmp_path / "s.yaml")])
    assert result.exit_code == 1 and "has no config.json" in result.output
    folder = write_config(tmp_path)
    (tmp_path / "s.yaml").write_text("mine")
    result = CliRunner().invoke(main, ["import", str(folder), "-o", str(tmp_path / "s.yaml")])
    assert result.exit_code == 1 and "--overwrite" in result.output
    assert (tmp_path / "s.yaml").read_text() == "mine"


def test_export_of_a_spec_without_init_is_refused(tmp_path: Path) -> None:
    spec = tmp_path / "lm.yaml"
    spec.write_text("udlc: 1\nname: lm\ntask: {language_model: {context: 8}}\ndata: {source: stdlib, max_chars: 2000}\n"
                    "model:\n  input: {shape: [T], dtype: int64}\n  layers: [{embedding: {num_embeddings: 256, "
                    "embedding_dim: 8}}, {linear: 256}]\nloss: cross_entropy\n")
    result = CliRunner().invoke(main, ["export", str(spec)])
    assert result.exit_code == 1 and "has no `init:`" in result.output, result.output


# ---- long: exported, against transformers in onnxruntime ------------------------------------------------------


def exported(tmp_path: Path, name: str, *extra: str):
    model, spec = imported(tmp_path, name)
    onnx = tmp_path / f"{name}.onnx"
    udlc("export", str(spec), "-o", str(onnx), *extra)
    return model, onnx


def language_logits(onnx: Path, tokens: np.ndarray) -> np.ndarray:
    """The exported file's logits for `tokens` with nothing cached, as `udlc generate` feeds a prompt."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: tokens}
    for past in session.get_inputs()[1:]:  # (batch, kv_heads, P, head_dim) at P = 0
        feed[past.name] = np.zeros((len(tokens), past.shape[1], 0, past.shape[3]), np.float32)
    return session.run(None, feed)[0]


@pytest.mark.long
@pytest.mark.parametrize("name", ["llama", "llama_tied", "mistral", "qwen2", "gpt2"])
def test_exported_language_model_logits_equal_transformers(tmp_path: Path, name: str) -> None:
    import torch

    model, onnx = exported(tmp_path, name)
    tokens = torch.randint(0, 256, (2, 13), generator=torch.Generator().manual_seed(SEED))
    with torch.no_grad():
        expected = model(tokens).logits.numpy()
    got = language_logits(onnx, tokens.numpy())
    diff = float(np.abs(got - expected).max())
    print(f"{name}: max |logit difference| {diff:.2e}")
    assert diff <= TOL


@pytest.mark.long
@pytest.mark.parametrize("name", ["llama", "qwen2"])
def test_generate_on_an_imported_model_gives_transformers_greedy_tokens(tmp_path: Path, name: str) -> None:
    import torch

    from udlc.runtime.generate import Asked, LanguageModelFile

    model, onnx = exported(tmp_path, name)
    prompt = "def f(x):"
    ids = list(prompt.encode())  # the byte tokenizer: ids are the UTF-8 bytes
    with torch.no_grad():
        expected = model.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False,
                                  pad_token_id=0)[0, len(ids):].tolist()
    reader = LanguageModelFile(onnx)
    assert reader.cached  # the key/value cache is in the file
    for use_cache in (True, False):
        assert list(reader.tokens(ids, Asked(max_new_tokens=8, temperature=0, use_cache=use_cache))) == expected
    out = udlc("generate", str(onnx), "--prompt", prompt, "--max-new-tokens", "8", "--temperature", "0")
    assert out.startswith(prompt)


@pytest.mark.long
def test_exported_vit_logits_equal_transformers(tmp_path: Path) -> None:
    import torch

    model, spec = imported(tmp_path, "vit")
    g = torch.Generator().manual_seed(SEED)
    images = torch.randn(20, 3, 32, 32, generator=g)
    np.savez(spec.parent / "images.npz", x=images.numpy(), y=np.arange(20) % 5)
    onnx = tmp_path / "vit.onnx"
    udlc("export", str(spec), "-o", str(onnx))
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 3, 32, 32, generator=g)
    got = session.run(["logits"], {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        expected = model(pixel_values=x).logits.numpy()
    diff = float(np.abs(got - expected).max())
    print(f"vit: max |logit difference| {diff:.2e}")
    assert diff <= TOL


@pytest.mark.long
def test_exported_bert_logits_equal_transformers(tmp_path: Path) -> None:
    import onnxruntime as ort
    import torch

    model, onnx = exported(tmp_path, "bert_mlm")
    g = torch.Generator().manual_seed(SEED)
    tokens, types = torch.randint(0, 259, (2, 11), generator=g), torch.randint(0, 2, (2, 11), generator=g)
    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    got = session.run(["logits"], dict(zip([i.name for i in session.get_inputs()], (tokens.numpy(), types.numpy()))))[0]
    with torch.no_grad():
        expected = model(input_ids=tokens, token_type_ids=types).logits.numpy()
    diff = float(np.abs(got - expected).max())
    print(f"bert: max |logit difference| {diff:.2e}")
    assert diff <= TOL


@pytest.mark.long
@pytest.mark.parametrize("name", ["t5", "t5_gated"])
def test_exported_t5_logits_equal_transformers(tmp_path: Path, name: str) -> None:
    import onnxruntime as ort
    import torch

    model, onnx = exported(tmp_path, name)
    g = torch.Generator().manual_seed(SEED)
    source, decoder = torch.randint(0, 358, (2, 9), generator=g), torch.randint(0, 358, (2, 6), generator=g)
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[1, 5:] = False  # a padded source: neither stack may read past its end
    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    feed = dict(zip([i.name for i in session.get_inputs()], (source.numpy(), mask.numpy(), decoder.numpy())))
    got = session.run(["logits"], feed)[0]
    with torch.no_grad():
        expected = model(input_ids=source, attention_mask=mask.long(), decoder_input_ids=decoder).logits.numpy()
    diff = float(np.abs(got - expected).max())
    print(f"{name}: max |logit difference| {diff:.2e}")
    assert diff <= TOL


@pytest.mark.long  # builds transformers' 1.1B-parameter config on the meta device: seconds
def test_the_shipped_llama_has_tinyllamas_parameter_count() -> None:
    """examples/zoo/llama.yaml against transformers' LlamaForCausalLM of TinyLlama-1.1B's config, built on the meta
    device (shapes only, no memory)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from udlc.tasks import compile_spec

    config = LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                         num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=2048)
    with torch.device("meta"):
        reference = sum(p.numel() for p in LlamaForCausalLM(config).parameters())
    graph = compile_spec(Path(__file__).resolve().parent.parent / "examples" / "zoo" / "llama.yaml").graph
    assert graph.total_params == reference == 1_100_048_384
