"""Attention: multi-head scaled dot-product attention over sequences (T, d), with grouped-query heads, a
causal mask, rotary positions (RoPE) and a key-padding mask.

A layer type has a fixed number of inputs (the registry's arity), so each type's name says its inputs' roles:

    multihead_attention          x (T, d)                          self-attention
    masked_multihead_attention   x (T, d), mask (T,)               self-attention over x's real positions
    cross_attention              x (T, d), memory (S, e)           x's positions attend to memory's
    masked_cross_attention       x (T, d), memory (S, e), mask (S,)  ... to memory's real positions
    biased_multihead_attention   x (T, d), bias (heads, T, T)      self-attention, bias added to the scores
    masked_biased_multihead_attention  x (T, d), bias (heads, T, T), mask (T,)

A bias is a float tensor added to each head's scores before the softmax, as T5's relative positions are
(`relative_position_bias`, udlc.layers.relative_position): one node computes it and every layer that names it in
`from` adds the same tensor, so a stack of layers shares one table. It travels through SDPA as a float attn_mask
(with -inf where a mask or causality hides a key), which exports at opset 18.

A mask is bool, True at real positions (as batching builds `<input>_mask`, udlc.data.collate); a position
whose keys are all padding attends to nothing and gets a zero before the output projection (as torch's own
SDPA gives on CPU). Each type has a `_with_weights` twin that computes the attention explicitly, not through
SDPA, and has two named outputs: `out` (T, d) and `weights` (num_heads, T, S) — a layer's outputs are fixed
per type, so they cannot follow a flag.

The twelve types are one config, AttentionConfig, and one module (udlc.layers.modules.attention.Attention):
each name above is a registered alias whose flags (cross, masked, biased, with weights) its name says.
"""

from typing import Literal, NamedTuple

from pydantic import Field, PositiveFloat, PositiveInt, create_model, model_validator

from udlc.layers.registry import ALL, EACH, EARLIER, LayerConfig, Shape, ShapeError, floats, fmt, register


class Kind(NamedTuple):
    cross: bool  # a second input, memory, gives the keys and values
    masked: bool  # a last input, the keys' mask
    biased: bool  # an input before the mask, a bias (heads, T, S) added to the scores
    weights: bool  # explicit attention, with the weights as a second output


def kind(name: str) -> Kind:
    """What a type's name says: `masked_biased_multihead_attention_with_weights` is masked, biased and with weights."""
    return Kind("cross" in name, name.startswith("masked_"), "biased" in name, name.endswith("_with_weights"))


class AttentionConfig(LayerConfig):
    """The arguments of every attention type. Registered only through its aliases (`alias`), which pin `type`;
    the flags follow from it."""

    num_heads: PositiveInt
    num_kv_heads: PositiveInt | None = Field(None, description="heads of keys and values (default num_heads); "
                                             "fewer is grouped-query attention, and they must divide num_heads")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the attention weights, in training only")
    bias: bool = Field(True, description="biases in the query, key, value and output projections")
    rope: bool = Field(False, description="rotary position embedding of queries and keys: feature i and i + "
                       "head_dim/2 rotate together (LLaMA's rotate_half)")
    rope_base: PositiveFloat | None = Field(None, description="with rope: the base (theta) of the rotation's "
                                            "frequencies (default 10000; LLaMA 3 and Qwen2 take larger ones)")
    out_bias: bool | None = Field(None, description="a bias in the output projection (default: `bias`; Qwen2 has "
                                  "biases in the query, key and value projections only)")
    scale: PositiveFloat | None = Field(None, description="the factor on the scores q·k before the softmax "
                                        "(default 1/sqrt(width per head); T5 takes 1, its initialization folds it in)")

    @model_validator(mode="after")
    def _kv_heads_divide(self) -> "AttentionConfig":
        if self.num_kv_heads is not None and self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_kv_heads {self.num_kv_heads} must divide num_heads {self.num_heads}")
        if self.rope_base is not None and not self.rope:
            raise ValueError("rope_base is the base of rotary positions: it applies only with rope: true")
        return self

    @property
    def kv_heads(self) -> int:
        return self.num_kv_heads or self.num_heads

    @property
    def flags(self) -> Kind:
        """Cross, masked, biased, with weights: from the alias's `type`."""
        return kind(self.type)


def alias(name: str, doc: str) -> type[AttentionConfig]:
    """The registered config of one attention type: AttentionConfig with `type` pinned to `name`, named as a
    written class would be (MaskedCrossAttention), so that it pickles when bound to that name in this file."""
    # Only self-attention has an order between queries and keys; cross-attention has no `causal` key at all.
    # Declared before `type`, as the fields have always been ordered (the order the unknown-key hints list them).
    fields: dict = {} if kind(name).cross else {
        "causal": (bool, Field(False, description="each position attends only to itself and earlier positions"))}
    fields["type"] = (Literal[name], name)
    return create_model("".join(part.title() for part in name.split("_")), __base__=AttentionConfig, __doc__=doc,
                        __module__=__name__, **fields)


MultiheadAttention = alias("multihead_attention", "Self-attention over a sequence (T, d) -> (T, d).")
MaskedMultiheadAttention = alias(
    "masked_multihead_attention",
    "Self-attention over the real positions of a padded sequence: `from: [x, tokens_mask]`.")
CrossAttention = alias("cross_attention",
                       "x (T, d) attends to memory (S, e): `from: [x, memory]`; the output is (T, d).")
MaskedCrossAttention = alias(
    "masked_cross_attention",
    "x (T, d) attends to the real positions of memory (S, e): `from: [x, memory, memory_mask]`.")
BiasedMultiheadAttention = alias(
    "biased_multihead_attention",
    "Self-attention whose scores get an additive bias (num_heads, T, T): `from: [x, position_bias]`.")
MaskedBiasedMultiheadAttention = alias(
    "masked_biased_multihead_attention",
    "biased_multihead_attention over the real positions: `from: [x, position_bias, tokens_mask]`.")
MultiheadAttentionWithWeights = alias(
    "multihead_attention_with_weights",
    "multihead_attention with outputs `out` (T, d) and `weights` (num_heads, T, T).")
MaskedMultiheadAttentionWithWeights = alias(
    "masked_multihead_attention_with_weights",
    "masked_multihead_attention with outputs `out` (T, d) and `weights` (num_heads, T, T).")
CrossAttentionWithWeights = alias(
    "cross_attention_with_weights", "cross_attention with outputs `out` (T, d) and `weights` (num_heads, T, S).")
MaskedCrossAttentionWithWeights = alias(
    "masked_cross_attention_with_weights",
    "masked_cross_attention with outputs `out` (T, d) and `weights` (num_heads, T, S).")
BiasedMultiheadAttentionWithWeights = alias(
    "biased_multihead_attention_with_weights",
    "biased_multihead_attention with outputs `out` (T, d) and `weights` (num_heads, T, T).")
MaskedBiasedMultiheadAttentionWithWeights = alias(
    "masked_biased_multihead_attention_with_weights",
    "masked_biased_multihead_attention with outputs `out` (T, d) and `weights` (num_heads, T, T).")


def roles(cfg: AttentionConfig, inputs: tuple) -> tuple:
    """(x, memory, mask) from a node's inputs in order; memory is x for self-attention, mask None unmasked.
    A biased type's bias, between them, is `bias_of`'s."""
    memory = inputs[1] if cfg.flags.cross else inputs[0]
    return inputs[0], memory, inputs[1 + cfg.flags.cross + cfg.flags.biased] if cfg.flags.masked else None


def bias_of(cfg: AttentionConfig, inputs: tuple):
    return inputs[1 + cfg.flags.cross] if cfg.flags.biased else None


def attention_shape(cfg: AttentionConfig, *inputs: Shape) -> Shape | tuple[Shape, Shape]:
    x, memory, mask = roles(cfg, inputs)
    for name, s in (("input", x), ("memory", memory)):
        if len(s) != 2:
            raise ShapeError(f"expects {name} (length, features) but gets {fmt(s)}",
                             "attention reads sequences; reshape to (length, features) first")
    d, heads = x[-1], cfg.num_heads
    if d % heads:
        raise ShapeError(f"num_heads {heads} does not divide the model width {d}",
                         f"choose num_heads that divides {d}, or project to a width it divides")
    if cfg.rope and (d // heads) % 2:
        raise ShapeError(f"rope rotates pairs of features, but each head has {d // heads} ({d} / {heads} heads)",
                         "choose num_heads so that the width per head is even")
    if mask is not None and tuple(mask) != tuple(memory[:1]):
        keys = "memory" if cfg.flags.cross else "sequence"
        raise ShapeError(f"expects a mask (length,) as long as the {keys} {fmt(memory)} but gets {fmt(mask)}",
                         f"the mask is the `_mask` of the input the {keys} was computed from")
    bias = bias_of(cfg, inputs)
    if bias is not None and tuple(bias) != (heads, x[0], memory[0]):
        # Said in the inputs' shapes: the compiler writes those back in the user's symbols (T), not a new one.
        over = f"the input {fmt(x)}" + (f" by the memory {fmt(memory)}" if cfg.flags.cross else "")
        raise ShapeError(f"expects a bias of {heads} heads over the positions of {over}, but gets {fmt(bias)}",
                         f"a bias is (num_heads, T, T): compute it from the same sequence, e.g. "
                         f"`relative_position_bias: {heads}`")
    return (x, (heads, x[0], memory[0])) if cfg.flags.weights else x


def kv_width(cfg: AttentionConfig, d: int) -> int:
    return d // cfg.num_heads * cfg.kv_heads


def attention_params(cfg: AttentionConfig, *inputs: Shape) -> int:
    x, memory, _ = roles(cfg, inputs)
    d, kv = x[-1], kv_width(cfg, x[-1])
    weights = 2 * d * d + 2 * memory[-1] * kv  # query and output projections; key and value ones
    out_bias = cfg.bias if cfg.out_bias is None else cfg.out_bias
    return weights + (d + 2 * kv if cfg.bias else 0) + (d if out_bias else 0)


def attention_tensors(cfg: AttentionConfig, *inputs: Shape) -> dict[str, tuple[int, ...]]:
    x, memory, _ = roles(cfg, inputs)
    d, kv = x[-1], kv_width(cfg, x[-1])
    out_bias = cfg.bias if cfg.out_bias is None else cfg.out_bias
    rows = {"q": (d, d, cfg.bias), "k": (kv, memory[-1], cfg.bias), "v": (kv, memory[-1], cfg.bias),
            "out": (d, d, out_bias)}
    tensors = {}
    for name, (out, into, bias) in rows.items():
        tensors[f"{name}.weight"] = (out, into)
        if bias:
            tensors[f"{name}.bias"] = (out,)
    return tensors


def attention_flops(cfg: AttentionConfig, *inputs: Shape) -> int:
    # The four projections (linear: 2 per multiply-add), then scores q·k and weights·v: each T x S x d
    # multiply-adds over all heads — what FlopCounterMode counts for SDPA (torch counts causal attention in
    # full too) and for the explicit matmuls. Softmax, masking and rotation are not counted.
    x, memory, _ = roles(cfg, inputs)
    (t, d), (s, e) = x, memory
    return 4 * t * d * d + 4 * s * e * kv_width(cfg, d) + 4 * t * s * d


def attention_dtype(cfg: AttentionConfig, *dtypes: str) -> str:
    *values, mask = dtypes if cfg.flags.masked else (*dtypes, None)
    if mask is not None and mask != "bool":
        raise ShapeError(f"expects a bool mask as its last input but gets {mask}",
                         "give the mask last, e.g. `from: [x, tokens_mask]`")
    return floats(cfg, *values)


def weights_outputs(cfg: AttentionConfig) -> tuple[str, ...]:
    return "out", "weights"


def build_attention(cfg: AttentionConfig, *inputs: Shape):
    from udlc.layers.modules.attention import Attention

    x, memory, _ = roles(cfg, inputs)
    return Attention(x[-1], memory[-1], cfg)


_SAMPLES = {
    MultiheadAttention: [
        ({"num_heads": 2}, (("T", 16),)),
        ({"num_heads": 4, "num_kv_heads": 2, "causal": True, "rope": True, "bias": False}, (("T", 16),)),
        ({"num_heads": 4, "num_kv_heads": 2, "causal": True, "rope": True, "rope_base": 1e6, "out_bias": False},
         (("T", 16),)),
        ({"num_heads": 4, "num_kv_heads": 1, "dropout": 0.1}, ((5, 8),))],
    MaskedMultiheadAttention: [
        ({"num_heads": 2}, (("T", 8), ("T",))),
        ({"num_heads": 4, "num_kv_heads": 2, "causal": True, "rope": True}, (("T", 16), ("T",)))],
    CrossAttention: [({"num_heads": 2}, (("T", 16), ("S", 16))),
                     ({"num_heads": 4, "num_kv_heads": 2, "rope": True}, (("T", 8), ("S", 12)))],
    MaskedCrossAttention: [({"num_heads": 2}, (("T", 8), ("S", 12), ("S",))),
                           ({"num_heads": 2, "num_kv_heads": 1, "rope": True}, ((4, 8), ("S", 8), ("S",)))],
    BiasedMultiheadAttention: [
        ({"num_heads": 2, "scale": 1.0, "bias": False}, (("T", 8), (2, "T", "T"))),
        ({"num_heads": 4, "num_kv_heads": 2, "causal": True, "rope": True}, (("T", 16), (4, "T", "T")))],
    MaskedBiasedMultiheadAttention: [
        ({"num_heads": 2, "scale": 1.0}, (("T", 8), (2, "T", "T"), ("T",))),
        ({"num_heads": 4, "causal": True, "scale": 0.5}, (("T", 16), (4, "T", "T"), ("T",)))],
}
_SAMPLES[MultiheadAttentionWithWeights] = [({"num_heads": 2, "causal": True}, (("T", 8),)),
                                           ({"num_heads": 4, "num_kv_heads": 2, "rope": True}, ((6, 16),))]
_SAMPLES[MaskedMultiheadAttentionWithWeights] = _SAMPLES[MaskedMultiheadAttention]
_SAMPLES[CrossAttentionWithWeights] = _SAMPLES[CrossAttention]
_SAMPLES[MaskedCrossAttentionWithWeights] = _SAMPLES[MaskedCrossAttention]
_SAMPLES[BiasedMultiheadAttentionWithWeights] = _SAMPLES[BiasedMultiheadAttention]
_SAMPLES[MaskedBiasedMultiheadAttentionWithWeights] = _SAMPLES[MaskedBiasedMultiheadAttention]

def attention_reads(cfg: AttentionConfig) -> tuple[str, ...]:
    """Cross-attention: position t of x with the whole memory (and its mask); self-attention: every input up to
    position t where it is causal (a bias (heads, T, T) is no sequence of T positions: it must not depend on the
    tokens, as relative_position_bias does not), and all of them where it is not."""
    k = cfg.flags
    if k.cross:
        return (EACH,) + (ALL,) * (1 + k.biased + k.masked)
    return (EARLIER if cfg.causal else ALL,) * (1 + k.biased + k.masked)


for _config, _samples in _SAMPLES.items():
    _kind = kind(_config.model_fields["type"].default)
    register(_config, shape=attention_shape, build=build_attention, params=attention_params, flops=attention_flops,
             main_arg="num_heads", arity=1 + _kind.cross + _kind.biased + _kind.masked,
             dtype=attention_dtype, outputs=weights_outputs if _kind.weights else None, samples=_samples,
             reads=attention_reads, tensors=attention_tensors,
             sample_dtypes=("float32",) * (1 + _kind.cross + _kind.biased) + ("bool",) if _kind.masked else ())
