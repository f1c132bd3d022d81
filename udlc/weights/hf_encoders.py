"""`udlc import`'s writers for BERT, T5 and ViT (udlc.weights.hf_import has the decoders, hf_config the common parts): each
reads config.json's keys, refuses what udlc's blocks cannot express, and writes the spec as the zoo writes these
networks (examples/zoo/bert_base.yaml, t5_small.yaml, vit_b_16.yaml) with the file's sizes."""

from __future__ import annotations

from typing import Any

from udlc.data.specials import BERT_SPECIALS, SPAN_SPECIALS  # the ids a task adds after the tokenizer's own
from udlc.weights.hf_config import Config, activation, language_data, lm_head, present, rule, tied

MODEL_TAIL = "\nloss: cross_entropy\noptimizer: {type: adamw, lr: 3.0e-5, weight_decay: 0.01}\n"


# ---- BERT -----------------------------------------------------------------------------------------------------


def bert(cfg: Config, names: set[str] | None) -> tuple[str, list[str], list[str]]:
    """BertForMaskedLM and BertForPreTraining as examples/zoo/bert_base.yaml (task masked_language_model, the MLM
    head); BertModel and the other heads as the encoder and its pooler, the outputs of transformers' BertModel."""
    cfg.only("position_embedding_type", ("absolute",), "udlc's BERT adds learned absolute positions")
    if cfg.get("is_decoder") or cfg.get("add_cross_attention"):
        raise cfg.refuse("is_decoder" if cfg.get("is_decoder") else "add_cross_attention",
                         "udlc imports BERT as an encoder")
    vocab, d, heads, layers, d_ff = (cfg.int(k) for k in ("vocab_size", "hidden_size", "num_attention_heads",
                                                          "num_hidden_layers", "intermediate_size"))
    positions, types = cfg.int("max_position_embeddings", 512), cfg.int("type_vocab_size", 2)
    act = activation(cfg, "hidden_act", "gelu")
    eps, p = cfg.float("layer_norm_eps", 1e-12), cfg.get("hidden_dropout_prob", 0.1)
    arch = (cfg.get("architectures") or ["BertModel"])[0]
    mlm = arch in ("BertForMaskedLM", "BertForPreTraining") if names is None else "cls.predictions.bias" in names
    base = "bert." if mlm or present(names, "bert.embeddings.word_embeddings.weight") else ""
    pooled = not mlm and (names is None or present(names, base + "pooler.dense.weight"))
    block = (f"    - transformer_encoder_block: {{d_model: {d}, num_heads: {heads}, d_ff: {d_ff}, dropout: {p}, "
             f"activation: {act}, norm_eps: {eps}, repeat: {layers}, id: encoded}}\n")
    notes = []
    if mlm:
        data, notes = language_data(vocab, len(BERT_SPECIALS))
        task = f"task: {{masked_language_model: {{context: {min(positions, 128)}, mask_rate: 0.15}}}}\n" + data
        tail = ("    # the masked-language-model head (transformers' cls.predictions)\n"
                f"    - linear: {{out_features: {d}, id: transform}}\n    - {act}\n"
                f"    - layernorm: {{eps: {eps}, id: transform_norm}}\n"
                "    - linear: {tie: embedding, id: decoder}  # logits, with the word embedding's weights\n")
    else:
        notes = [f"{arch}: udlc's tasks train no network of BERT's two outputs, so `udlc check` refuses this spec at "
                 "its task; the network loads and runs through the Python API (a BertForMaskedLM folder imports "
                 "whole, with task masked_language_model)"]
        task = f"data: {{source: stdlib, tokenizer: bpe, vocab_size: {vocab}}}\n"
        tail = ("    - select: 0                              # the [CLS] position\n"
                f"    - linear: {d}\n    - tanh: {{id: pooled}}\n  outputs: [encoded, pooled]\n") if pooled else ""
    body = ("\n" + task + "\nmodel:\n  inputs:\n    tokens: {shape: [T], dtype: int64}\n"
            "    token_types: {shape: [T], dtype: int64}\n"
            + ("  blocks:\n    gelu_tanh: {layers: [{gelu: tanh}]}\n" if act == "gelu_tanh" else "") +
            "  layers:\n"
            f"    - embedding: {{embedding_dim: {d}, num_embeddings: {vocab}, from: tokens, id: embedding}}\n"
            f"    - learned_positions: {{max_len: {positions}, id: words}}\n"
            f"    - embedding: {{embedding_dim: {d}, num_embeddings: {types}, from: token_types, id: types}}\n"
            "    - add: {from: [words, types]}\n"
            f"    - layernorm: {{eps: {eps}}}\n    - dropout: {p}\n" + block + tail + MODEL_TAIL)
    e, h, b = base + "embeddings.", base + "encoder.layer.{i}.", "transformer_encoder_block{_i}_"
    rules = [rule(e + "word_embeddings.weight", "embedding.weight"),
             rule(e + "position_embeddings.weight", "words.weight"),
             rule(e + "token_type_embeddings.weight", "types.weight"),
             rule(e + "LayerNorm.{rest}", "layernorm.{rest}"),
             *(rule(h + f"attention.self.{theirs}.{{rest}}", b + f"multihead_attention.{ours}.{{rest}}")
               for theirs, ours in (("query", "q"), ("key", "k"), ("value", "v"))),
             rule(h + "attention.output.dense.{rest}", b + "multihead_attention.out.{rest}"),
             rule(h + "attention.output.LayerNorm.{rest}", b + "layernorm.{rest}"),
             rule(h + "intermediate.dense.{rest}", b + "feed_forward_linear.{rest}"),
             rule(h + "output.dense.{rest}", b + "feed_forward_linear_1.{rest}"),
             rule(h + "output.LayerNorm.{rest}", b + "layernorm_1.{rest}")]
    if mlm:
        rules += [rule("cls.predictions.transform.dense.{rest}", "transform.{rest}"),
                  rule("cls.predictions.transform.LayerNorm.{rest}", "transform_norm.{rest}"),
                  rule("cls.predictions.bias", "decoder.bias"),
                  rule("cls.predictions.decoder.{rest}", None),  # the word embedding (tied) and the bias again
                  rule("cls.seq_relationship.{rest}", None)]  # BertForPreTraining's next-sentence head
    rules.append(rule(base + "pooler.dense.{rest}", "linear.{rest}") if pooled else rule(base + "pooler.{rest}", None))
    rules.append(rule(e + "position_ids", None))  # older files keep a buffer of 0..P-1
    if not mlm and names is not None:  # another task's head (a classifier): named, and dropped
        heads = sorted({n.split(".")[0] for n in names if base and not n.startswith(base)})
        rules += [rule(root + ".{rest}", None) for root in heads]
        if heads:
            notes.append(f"the file's head ({', '.join(heads)}) is left out: the spec gives BERT's encoded sequence"
                         + (" and pooled vector" if pooled else ""))
    return body, rules, notes


# ---- T5 -------------------------------------------------------------------------------------------------------


def t5(cfg: Config, names: set[str] | None) -> tuple[str, list[str], list[str]]:
    vocab, d, heads, layers, d_ff = (cfg.int(k) for k in ("vocab_size", "d_model", "num_heads", "num_layers", "d_ff"))
    dec_layers = cfg.int("num_decoder_layers", layers)
    if d % heads or cfg.get("d_kv", d // heads) != d // heads:
        raise cfg.refuse("d_kv", f"udlc's attention has d_model / num_heads = {d // heads} features per head "
                         f"(inner width = d_model)")
    proj = cfg.get("feed_forward_proj", "relu")
    gated = isinstance(proj, str) and proj.startswith("gated-")
    act = cfg.get("dense_act_fn") or (proj[len("gated-"):] if gated else proj)
    if act not in ("relu", "gelu", "gelu_new", "gelu_pytorch_tanh", "silu"):
        raise cfg.refuse("feed_forward_proj", "udlc's T5 blocks take relu, gelu or silu feed-forwards, gated or not")
    act = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh"}.get(act, act)
    buckets, distance = cfg.int("relative_attention_num_buckets", 32), cfg.int("relative_attention_max_distance", 128)
    eps, p = cfg.float("layer_norm_epsilon", 1e-6), cfg.get("dropout_rate", 0.1)
    # T5 v1.1 and Flan-T5 have a head of their own, and no scaling before it: transformers 4 said both with
    # tie_word_embeddings: false, 5 ties the head always and says the scaling with scale_decoder_outputs.
    tie = tied(cfg, True) if names is None else "lm_head.weight" not in names
    scale = cfg.get("scale_decoder_outputs", cfg.get("tie_word_embeddings", True) is not False)
    ff = f", activation: {act}" + (", feed_forward: swiglu_feed_forward" if gated else "")
    ff = "" if ff == ", activation: relu" else ff
    blocks = "  blocks:\n    gelu_tanh: {layers: [{gelu: tanh}]}\n" if act == "gelu_tanh" else ""
    head = (f"    - scale: {d ** -0.5!r}           # d_model ** -0.5: T5 scales what enters its LM head\n"
            if scale else "") + ("    - linear: {tie: shared, bias: false}\n" if tie else
                                 f"    - linear: {{out_features: {vocab}, bias: false}}\n")
    data, notes = language_data(vocab, len(SPAN_SPECIALS))
    body = ("\n# The inputs are a seq2seq batch's fields: the source ids, their mask (True at real positions) and the\n"
            "# decoder's ids (<bos> + target), as transformers' T5ForConditionalGeneration takes them. It trains as T5\n"
            "# pretrains (span corruption); for text to text from a CSV, use task seq2seq.\n"
            "task: {span_corruption: {context: 568, noise_density: 0.15, mean_span_length: 3}}\n" + data + "\n"
            "model:\n  inputs:\n    source: {shape: [S], dtype: int64}\n    source_mask: {shape: [S], dtype: bool}\n"
            "    decoder: {shape: [T], dtype: int64}\n" + blocks + "  layers:\n"
            f"    - embedding: {{embedding_dim: {d}, num_embeddings: {vocab}, from: source, id: shared}}\n"
            f"    - dropout: {{p: {p}, id: source_in}}\n"
            f"    - relative_position_bias: {{num_heads: {heads}, num_buckets: {buckets}, max_distance: {distance}, "
            "from: source, id: source_bias}\n"
            f"    - masked_t5_encoder_block: {{from: [source_in, source_bias, source_mask], d_model: {d}, "
            f"num_heads: {heads}, d_ff: {d_ff}, dropout: {p}, norm_eps: {eps}{ff}, repeat: {layers}}}\n"
            f"    - rmsnorm: {{eps: {eps}}}\n    - dropout: {{p: {p}, id: memory}}\n"
            "    - embedding: {tie: shared, from: decoder}\n"
            f"    - dropout: {{p: {p}, id: decoder_in}}\n"
            f"    - relative_position_bias: {{num_heads: {heads}, num_buckets: {buckets}, max_distance: {distance}, "
            "bidirectional: false, from: decoder, id: decoder_bias}\n"
            f"    - masked_t5_decoder_block: {{from: [decoder_in, decoder_bias, memory, source_mask], d_model: {d}, "
            f"num_heads: {heads}, d_ff: {d_ff}, dropout: {p}, norm_eps: {eps}{ff}, repeat: {dec_layers}}}\n"
            f"    - rmsnorm: {{eps: {eps}}}\n    - dropout: {p}\n" + head + MODEL_TAIL)
    ff_names = (("wi_0", "swiglu_feed_forward_linear"), ("wi_1", "swiglu_feed_forward_linear_1"),
                ("wo", "swiglu_feed_forward_linear_2")) if gated else \
        (("wi", "feed_forward_linear"), ("wo", "feed_forward_linear_1"))
    rules = [rule("shared.weight", "shared.weight"),
             rule("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", "source_bias.weight"),
             rule("decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", "decoder_bias.weight")]
    stacks = (("encoder", "masked_t5_encoder_block{_i}_", [("SelfAttention", "masked_biased_multihead_attention")]),
              ("decoder", "masked_t5_decoder_block{_i}_", [("SelfAttention", "biased_multihead_attention"),
                                                          ("EncDecAttention", "masked_cross_attention")]))
    for stack, b, attentions in stacks:
        h = stack + ".block.{i}.layer."
        for j, (theirs, ours) in enumerate(attentions):
            rules.append(rule(h + f"{j}.layer_norm.weight", b + ("h", "h2")[j] + ".weight"))
            rules += [rule(h + f"{j}.{theirs}.{t}.weight", b + f"{ours}.{o}.weight")
                      for t, o in (("q", "q"), ("k", "k"), ("v", "v"), ("o", "out"))]
        last = h + f"{len(attentions)}."
        rules.append(rule(last + "layer_norm.weight", b + "rmsnorm.weight"))
        rules += [rule(last + f"DenseReluDense.{t}.weight", b + f"{o}.weight") for t, o in ff_names]
    rules += [rule("encoder.final_layer_norm.weight", "rmsnorm.weight"),
              rule("decoder.final_layer_norm.weight", "rmsnorm_1.weight")]
    rules += lm_head(tie, "lm_head.weight", "linear.weight")
    rules += [rule(f"{s}.embed_tokens.weight", None) for s in ("encoder", "decoder")]  # copies of shared.weight
    return body, rules, notes


# ---- ViT ------------------------------------------------------------------------------------------------------


def vit(cfg: Config, names: set[str] | None) -> tuple[str, list[str], list[str]]:
    arch = (cfg.get("architectures") or ["ViTModel"])[0]
    if arch != "ViTForImageClassification":
        raise cfg.refuse("architectures", "udlc imports ViT as ViTForImageClassification (a classifier on the class "
                         "token)", "save the model with its classification head")
    cfg.only("qkv_bias", (True,), "udlc's transformer blocks have biases in every projection or none")
    d, heads, layers, d_ff = (cfg.int(k) for k in ("hidden_size", "num_attention_heads", "num_hidden_layers",
                                                   "intermediate_size"))
    size, patch, channels = cfg.int("image_size", 224), cfg.int("patch_size", 16), cfg.int("num_channels", 3)
    if size % patch:
        raise cfg.refuse("patch_size", f"it does not divide image_size {size}")
    labels: Any = cfg.get("id2label") or {}
    classes = len(labels) if isinstance(labels, dict) and labels else cfg.int("num_labels", 2)
    tokens = (size // patch) ** 2 + 1
    act = activation(cfg, "hidden_act", "gelu")
    eps = cfg.float("layer_norm_eps", 1e-12)
    body = ("\n# The data: an .npz of pictures `x` (N, " f"{channels}, {size}, {size}) — pixel values as the model's image "
            "processor makes them —\n# and class ids `y`; not standardized again (normalize: none), so the network "
            "sees what it was trained on.\n"
            "data: {source: images.npz, normalize: none}\n\n"
            f"model:\n  input: [{channels}, {size}, {size}]\n"
            + ("  blocks:\n    gelu_tanh: {layers: [{gelu: tanh}]}\n" if act == "gelu_tanh" else "") +
            "  layers:\n"
            f"    - patch_embed: {{embed_dim: {d}, patch_size: {patch}}}\n"
            "    - cls_token\n"
            f"    - learned_positions: {tokens}\n"
            f"    - transformer_encoder_block_pre_norm: {{d_model: {d}, num_heads: {heads}, d_ff: {d_ff}, "
            f"activation: {act}, norm_eps: {eps}, dropout: {cfg.get('hidden_dropout_prob', 0.0)}, repeat: {layers}}}\n"
            f"    - layernorm: {{eps: {eps}}}\n"
            "    - select: 0                                        # the class token\n"
            f"    - linear: {classes}\n\n"
            "loss: cross_entropy\nmetrics: [accuracy]\noptimizer: {type: adamw, lr: 3.0e-5, weight_decay: 0.05}\n")
    e, h, b = "vit.embeddings.", "vit.encoder.layer.{i}.", "transformer_encoder_block_pre_norm{_i}_"
    rules = [rule(e + "cls_token", "cls_token.token", reshape=[d]),
             rule(e + "position_embeddings", "learned_positions.weight", reshape=[tokens, d]),
             rule(e + "patch_embeddings.projection.{rest}", "patch_embed.proj.{rest}"),
             *(rule(h + f"attention.attention.{theirs}.{{rest}}", b + f"multihead_attention.{ours}.{{rest}}")
               for theirs, ours in (("query", "q"), ("key", "k"), ("value", "v"))),
             rule(h + "attention.output.dense.{rest}", b + "multihead_attention.out.{rest}"),
             rule(h + "layernorm_before.{rest}", b + "layernorm.{rest}"),
             rule(h + "layernorm_after.{rest}", b + "layernorm_1.{rest}"),
             rule(h + "intermediate.dense.{rest}", b + "feed_forward_linear.{rest}"),
             rule(h + "output.dense.{rest}", b + "feed_forward_linear_1.{rest}"),
             rule("vit.layernorm.{rest}", "layernorm.{rest}"),
             rule("classifier.{rest}", "linear.{rest}")]
    rules.append(rule("vit.pooler.{rest}", None))  # ViT's pooler: the classifier reads the class token
    return body, rules, []
