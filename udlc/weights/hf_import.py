"""`udlc import HF_FOLDER`: a Hugging Face model folder's config.json as a udlc spec, and its tensor names as a
weight map (the format of udlc.weights' maps), so that `init: {from: HF_FOLDER, map: ...}` starts the spec from the
folder's weights. Only config.json and the weight files' headers are read (json and the standard library: no torch,
no transformers, nothing downloaded).

Each architecture is one writer (GPT-2 and the LLaMA family below, BERT, T5 and ViT in hf_encoders): it reads the config keys it understands, refuses with the key's name every
value udlc cannot express (a rope scaling, a sliding window shorter than the context, an activation it lacks), and
writes the spec out whole, in the zoo specs' words (gpt_block, llama_block, transformer_encoder_block, the t5
blocks), so that a user reads one file to see the network."""

from __future__ import annotations

import json
import os
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from udlc.errors import UdlcError
from udlc.weights.hf_config import (GELU_TANH, Config, ImportRefused, activation, language_data, lm_head, present,
                                    rule, tied)
from udlc.weights.hf_encoders import bert, t5, vit


@dataclass(frozen=True)
class Imported:
    spec: str  # the spec's text
    map: str  # the weight map's text (udlc_map: 1)
    architecture: str  # what config.json names
    notes: tuple[str, ...] = ()  # what the user should know (a stand-in tokenizer, heads left out)


def import_folder(folder: str | Path, spec_path: str | Path) -> Imported:
    """The spec and weight map for the model in `folder`, written to sit at `spec_path` (init's path to the folder
    is relative to it). Raises ImportRefused for an architecture or a config value udlc cannot express."""
    folder, spec_path = Path(folder), Path(spec_path)
    cfg = Config(folder)
    model_type = cfg.get("model_type")
    if model_type not in WRITERS:
        raise ImportRefused(f"{cfg.path}: `model_type` is {model_type!r}: udlc imports "
                            f"{', '.join(sorted(WRITERS))} — write the spec by hand (examples/zoo) and a weight map")
    names = tensor_names(folder)
    source = os.path.relpath(folder.resolve(), spec_path.resolve().parent)
    cfg.tokenizer_file = os.path.join(source, "tokenizer.json")  # read where the folder has one (language_data)
    body, rules, notes = WRITERS[model_type](cfg, names)
    map_name = map_path(spec_path).name
    arch = (cfg.get("architectures") or [model_type])[0]
    head = (f"# {arch} imported by `udlc import` from {folder}/config.json: the network written in udlc's blocks, and\n"
            f"# {map_name} beside this file mapping the folder's tensor names onto it. `udlc export` this file for the\n"
            f"# model as published; `udlc train` it to fine-tune.\n")
    for note in notes:  # said on the command line too
        head += "".join(f"# {line}\n" for line in textwrap.wrap("Note: " + note, 114))
    name = "".join(c if c.isalnum() or c in "-_." else "-" for c in (folder.resolve().name or model_type))
    # quoted: a folder named 1.5 or true is still a name and a path
    spec = (head + f"udlc: 1\nname: {json.dumps(name)}\nseed: 0\n"
            f"init: {{from: {json.dumps(source)}, map: {json.dumps(map_name)}}}\n" + body)
    mapping = (f"# {arch}'s tensor names (Hugging Face) onto the nodes of {spec_path.name}; written by `udlc import`.\n"
               "udlc_map: 1\nrules:\n" + "".join(f"  - {r}\n" for r in rules))
    return Imported(spec, mapping, arch, tuple(notes))


def map_path(spec_path: Path) -> Path:
    """spec.yaml's map: spec.map.yaml beside it."""
    return spec_path.with_name(spec_path.stem + ".map.yaml")


def tensor_names(folder: Path) -> set[str] | None:
    """The names the folder's weight files hold, from headers or the index; None where only torch can tell (a
    pickled pytorch_model.bin), and the map then names what the architecture's files usually hold."""
    from udlc.weights.files import read_names

    try:
        names = read_names(folder)
    except UdlcError:
        return None
    return set(names) if names is not None else None


# ---- GPT-2 ---------------------------------------------------------------------------------------------------


def gpt2(cfg: Config, names: set[str] | None) -> tuple[str, list[str], list[str]]:
    if cfg.get("add_cross_attention"):
        raise cfg.refuse("add_cross_attention", "udlc's gpt_block has no cross-attention to an encoder")
    if cfg.get("scale_attn_by_inverse_layer_idx"):
        raise cfg.refuse("scale_attn_by_inverse_layer_idx", "udlc's attention scales every layer alike")
    cfg.only("scale_attn_weights", (True,), "udlc's gpt_block divides the scores by sqrt(head width)")
    vocab, d, heads, layers = (cfg.int(k) for k in ("vocab_size", "n_embd", "n_head", "n_layer"))
    positions = cfg.int("n_positions", 1024)
    d_ff = cfg.get("n_inner") or 4 * d
    act = activation(cfg, "activation_function", "gelu_new")
    eps = cfg.float("layer_norm_epsilon", 1e-5)
    data, notes = language_data(vocab, cfg=cfg)
    tie = tied(cfg, True)
    head = "linear: {tie: wte, bias: false}      # the LM head shares the token embedding" if tie else \
        f"linear: {{out_features: {vocab}, bias: false}}"
    body = (f"\ntask: {{language_model: {{context: {positions}}}}}\n{data}\n"
            "model:\n  input: {shape: [T], dtype: int64}\n" + (GELU_TANH if act == "gelu_tanh" else "") +
            "  layers:\n"
            f"    - embedding: {{num_embeddings: {vocab}, embedding_dim: {d}, id: wte}}\n"
            f"    - learned_positions: {positions}\n"
            f"    - dropout: {cfg.get('embd_pdrop', 0.1)}\n"
            f"    - gpt_block: {{d_model: {d}, num_heads: {heads}, d_ff: {d_ff}, dropout: {cfg.get('resid_pdrop', 0.1)}, "
            f"activation: {act}, norm_eps: {eps}, repeat: {layers}}}\n"
            f"    - layernorm: {{eps: {eps}}}\n"
            f"    - {head}\n\n"
            "loss: cross_entropy\noptimizer: {type: adamw, lr: 1.0e-4, weight_decay: 0.01}\n")
    # GPT2LMHeadModel's names begin `transformer.`; GPT2Model's (the Hub's gpt2 file) have no prefix
    pre = "" if present(names, "wte.weight") else "transformer."
    h, b = pre + "h.{i}.", "gpt_block{_i}_"
    rules = [rule(pre + "wte.weight", "wte.weight"), rule(pre + "wpe.weight", "learned_positions.weight"),
             rule(h + "ln_1.{rest}", b + "layernorm.{rest}"), rule(h + "ln_2.{rest}", b + "layernorm_1.{rest}"),
             # GPT-2's Conv1D holds (in, out); c_attn is q, k and v side by side
             rule(h + "attn.c_attn.weight", [b + f"multihead_attention.{p}.weight" for p in "qkv"], transpose=True),
             rule(h + "attn.c_attn.bias", [b + f"multihead_attention.{p}.bias" for p in "qkv"]),
             rule(h + "attn.c_proj.weight", b + "multihead_attention.out.weight", transpose=True),
             rule(h + "attn.c_proj.bias", b + "multihead_attention.out.bias"),
             rule(h + "mlp.c_fc.weight", b + "feed_forward_linear.weight", transpose=True),
             rule(h + "mlp.c_fc.bias", b + "feed_forward_linear.bias"),
             rule(h + "mlp.c_proj.weight", b + "feed_forward_linear_1.weight", transpose=True),
             rule(h + "mlp.c_proj.bias", b + "feed_forward_linear_1.bias"),
             rule(pre + "ln_f.{rest}", "layernorm.{rest}")]
    rules += lm_head(tie, "lm_head.weight", "linear.weight")
    rules += [rule(h + f"attn.{n}", None) for n in ("bias", "masked_bias")]  # older files' causal mask buffers
    return body, rules, notes


# ---- the LLaMA family: LLaMA, Mistral, Qwen2 ------------------------------------------------------------------


def rope_theta(cfg: Config) -> float:
    """The rotary base: rope_theta (transformers 4) or rope_parameters.rope_theta (5); scaled ropes are refused."""
    scaling = cfg.get("rope_scaling")
    if scaling and (not isinstance(scaling, dict) or scaling.get("rope_type", scaling.get("type")) != "default"):
        raise cfg.refuse("rope_scaling", "udlc's rotary positions are not scaled (linear, dynamic, YaRN, llama3)")
    params = cfg.get("rope_parameters")
    if isinstance(params, dict):
        if params.get("rope_type", "default") != "default":
            raise cfg.refuse("rope_parameters", f"rope_type {params.get('rope_type')!r}: udlc's rotary positions "
                             "are not scaled (linear, dynamic, YaRN, llama3)")
        theta = params.get("rope_theta", 10000.0)
    else:
        theta = cfg.get("rope_theta", 10000.0)
    if isinstance(theta, bool) or not isinstance(theta, (int, float)) or theta <= 1:
        raise cfg.refuse("rope_theta", "the rotary base must be a number above 1")
    return float(theta)


def llama(cfg: Config, names: set[str] | None) -> tuple[str, list[str], list[str]]:
    kind = cfg.get("model_type")
    vocab, d, heads, layers, d_ff = (cfg.int(k) for k in ("vocab_size", "hidden_size", "num_attention_heads",
                                                          "num_hidden_layers", "intermediate_size"))
    kv = cfg.int("num_key_value_heads", heads)
    if d % heads or heads % kv:
        raise cfg.refuse("num_key_value_heads", f"{heads} query heads over a width of {d} and {kv} key/value heads "
                         "do not divide evenly")
    head_dim = cfg.get("head_dim")
    if head_dim is not None and head_dim != d // heads:
        raise cfg.refuse("head_dim", f"udlc's attention has hidden_size / num_attention_heads = {d // heads} "
                         "features per head")
    context = cfg.int("max_position_embeddings", 2048)
    window = cfg.get("sliding_window")
    if cfg.get("use_sliding_window", kind == "mistral") and window is not None and window < context:
        raise cfg.refuse("sliding_window", f"udlc's attention sees every earlier position, not the last {window} "
                         f"of the {context} (max_position_embeddings)", "a model with a sliding window shorter than "
                         "its context is not imported")
    act = activation(cfg, "hidden_act", "silu")
    # pretraining_tp only splits the projections' matmuls in slices: the same function, so it is not read.
    eps = cfg.float("rms_norm_eps", 1e-6)
    theta = rope_theta(cfg)
    qkv_bias = kind == "qwen2" or bool(cfg.get("attention_bias"))
    out_bias = kind != "qwen2" and bool(cfg.get("attention_bias"))
    mlp_bias = bool(cfg.get("mlp_bias"))
    tie = tied(cfg, False)
    data, notes = language_data(vocab, cfg=cfg)
    extra = "".join(f", {k}: {v}" for k, v in (("num_kv_heads", kv if kv != heads else None),
                                               ("attention_bias", "true" if qkv_bias else None),
                                               ("output_bias", "true" if out_bias else None),
                                               ("mlp_bias", "true" if mlp_bias else None),
                                               ("activation", act if act != "silu" else None),
                                               ("dropout", cfg.get("attention_dropout") or None)) if v)
    head = "linear: {tie: embed_tokens, bias: false}   # the LM head shares the token embedding" if tie else \
        f"linear: {{out_features: {vocab}, bias: false}}   # the LM head"
    body = (f"\ntask: {{language_model: {{context: {context}}}}}\n{data}\n"
            "model:\n  input: {shape: [T], dtype: int64}\n" + (GELU_TANH if act == "gelu_tanh" else "") +
            "  layers:\n"
            f"    - embedding: {{num_embeddings: {vocab}, embedding_dim: {d}, id: embed_tokens}}\n"
            f"    - llama_block: {{d_model: {d}, num_heads: {heads}, d_ff: {d_ff}, norm_eps: {eps}, "
            f"rope_base: {theta}{extra}, repeat: {layers}}}\n"
            f"    - rmsnorm: {{eps: {eps}}}\n"
            f"    - {head}\n\n"
            "loss: cross_entropy\noptimizer: {type: adamw, lr: 3.0e-5, weight_decay: 0.0}\n")
    h, b = "model.layers.{i}.", "llama_block{_i}_"
    rules = [rule("model.embed_tokens.weight", "embed_tokens.weight"),
             rule(h + "input_layernorm.weight", b + "rmsnorm.weight"),
             *(rule(h + f"self_attn.{p}_proj.{{rest}}", b + f"multihead_attention.{q}.{{rest}}")
               for p, q in (("q", "q"), ("k", "k"), ("v", "v"), ("o", "out"))),
             rule(h + "post_attention_layernorm.weight", b + "rmsnorm_1.weight"),
             # swiglu_feed_forward's linears in order: W1 the gate, W3 the value, W2 back to the width
             rule(h + "mlp.gate_proj.{rest}", b + "swiglu_feed_forward_linear.{rest}"),
             rule(h + "mlp.up_proj.{rest}", b + "swiglu_feed_forward_linear_1.{rest}"),
             rule(h + "mlp.down_proj.{rest}", b + "swiglu_feed_forward_linear_2.{rest}"),
             rule("model.norm.weight", "rmsnorm.weight")]
    rules += lm_head(tie, "lm_head.weight", "linear.weight")
    rules.append(rule(h + "self_attn.rotary_emb.inv_freq", None))  # older files': udlc computes it from rope_base
    return body, rules, notes


WRITERS: dict[str, Callable[[Config, set[str] | None], tuple[str, list[str], list[str]]]] = {
    "gpt2": gpt2, "llama": llama, "mistral": llama, "qwen2": llama, "bert": bert, "t5": t5, "vit": vit}
