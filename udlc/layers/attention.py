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
"""

import functools
from typing import ClassVar, Literal

from pydantic import Field, PositiveFloat, PositiveInt, model_validator

from udlc.layers.registry import LayerConfig, Shape, ShapeError, floats, fmt, register

ROPE_BASE = 10000.0


class AttentionConfig(LayerConfig):
    cross: ClassVar[bool] = False  # a second input, memory, gives the keys and values
    masked: ClassVar[bool] = False  # a last input, the keys' mask
    biased: ClassVar[bool] = False  # an input before the mask, a bias (heads, T, S) added to the scores
    weights: ClassVar[bool] = False  # explicit attention, with the weights as a second output

    num_heads: PositiveInt
    num_kv_heads: PositiveInt | None = Field(None, description="heads of keys and values (default num_heads); "
                                             "fewer is grouped-query attention, and they must divide num_heads")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the attention weights, in training only")
    bias: bool = Field(True, description="biases in the query, key, value and output projections")
    rope: bool = Field(False, description="rotary position embedding of queries and keys (base 10000)")
    scale: PositiveFloat | None = Field(None, description="the factor on the scores q·k before the softmax "
                                        "(default 1/sqrt(width per head); T5 takes 1, its initialization folds it in)")

    @model_validator(mode="after")
    def _kv_heads_divide(self) -> "AttentionConfig":
        if self.num_kv_heads is not None and self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_kv_heads {self.num_kv_heads} must divide num_heads {self.num_heads}")
        return self

    @property
    def kv_heads(self) -> int:
        return self.num_kv_heads or self.num_heads


class SelfAttentionConfig(AttentionConfig):
    # Only self-attention has an order between queries and keys; cross-attention has no `causal` key at all.
    causal: bool = Field(False, description="each position attends only to itself and earlier positions")


class MultiheadAttention(SelfAttentionConfig):
    """Self-attention over a sequence (T, d) -> (T, d)."""

    type: Literal["multihead_attention"] = "multihead_attention"


class MaskedMultiheadAttention(SelfAttentionConfig):
    """Self-attention over the real positions of a padded sequence: `from: [x, tokens_mask]`."""

    type: Literal["masked_multihead_attention"] = "masked_multihead_attention"
    masked: ClassVar[bool] = True


class CrossAttention(AttentionConfig):
    """x (T, d) attends to memory (S, e): `from: [x, memory]`; the output is (T, d)."""

    type: Literal["cross_attention"] = "cross_attention"
    cross: ClassVar[bool] = True


class MaskedCrossAttention(AttentionConfig):
    """x (T, d) attends to the real positions of memory (S, e): `from: [x, memory, memory_mask]`."""

    type: Literal["masked_cross_attention"] = "masked_cross_attention"
    cross: ClassVar[bool] = True
    masked: ClassVar[bool] = True


class BiasedMultiheadAttention(SelfAttentionConfig):
    """Self-attention whose scores get an additive bias (num_heads, T, T): `from: [x, position_bias]`."""

    type: Literal["biased_multihead_attention"] = "biased_multihead_attention"
    biased: ClassVar[bool] = True


class MaskedBiasedMultiheadAttention(SelfAttentionConfig):
    """biased_multihead_attention over the real positions: `from: [x, position_bias, tokens_mask]`."""

    type: Literal["masked_biased_multihead_attention"] = "masked_biased_multihead_attention"
    biased: ClassVar[bool] = True
    masked: ClassVar[bool] = True


class MultiheadAttentionWithWeights(MultiheadAttention):
    """multihead_attention with outputs `out` (T, d) and `weights` (num_heads, T, T)."""

    type: Literal["multihead_attention_with_weights"] = "multihead_attention_with_weights"  # type: ignore[assignment]
    weights: ClassVar[bool] = True


class MaskedMultiheadAttentionWithWeights(MaskedMultiheadAttention):
    """masked_multihead_attention with outputs `out` (T, d) and `weights` (num_heads, T, T)."""

    type: Literal["masked_multihead_attention_with_weights"] = (  # type: ignore[assignment]
        "masked_multihead_attention_with_weights")
    weights: ClassVar[bool] = True


class CrossAttentionWithWeights(CrossAttention):
    """cross_attention with outputs `out` (T, d) and `weights` (num_heads, T, S)."""

    type: Literal["cross_attention_with_weights"] = "cross_attention_with_weights"  # type: ignore[assignment]
    weights: ClassVar[bool] = True


class MaskedCrossAttentionWithWeights(MaskedCrossAttention):
    """masked_cross_attention with outputs `out` (T, d) and `weights` (num_heads, T, S)."""

    type: Literal["masked_cross_attention_with_weights"] = (  # type: ignore[assignment]
        "masked_cross_attention_with_weights")
    weights: ClassVar[bool] = True


class BiasedMultiheadAttentionWithWeights(BiasedMultiheadAttention):
    """biased_multihead_attention with outputs `out` (T, d) and `weights` (num_heads, T, T)."""

    type: Literal["biased_multihead_attention_with_weights"] = (  # type: ignore[assignment]
        "biased_multihead_attention_with_weights")
    weights: ClassVar[bool] = True


class MaskedBiasedMultiheadAttentionWithWeights(MaskedBiasedMultiheadAttention):
    """masked_biased_multihead_attention with outputs `out` (T, d) and `weights` (num_heads, T, T)."""

    type: Literal["masked_biased_multihead_attention_with_weights"] = (  # type: ignore[assignment]
        "masked_biased_multihead_attention_with_weights")
    weights: ClassVar[bool] = True


def roles(cfg: AttentionConfig, inputs: tuple) -> tuple:
    """(x, memory, mask) from a node's inputs in order; memory is x for self-attention, mask None unmasked.
    A biased type's bias, between them, is `bias_of`'s."""
    memory = inputs[1] if cfg.cross else inputs[0]
    return inputs[0], memory, inputs[1 + cfg.cross + cfg.biased] if cfg.masked else None


def bias_of(cfg: AttentionConfig, inputs: tuple):
    return inputs[1 + cfg.cross] if cfg.biased else None


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
        keys = "memory" if cfg.cross else "sequence"
        raise ShapeError(f"expects a mask (length,) as long as the {keys} {fmt(memory)} but gets {fmt(mask)}",
                         f"the mask is the `_mask` of the input the {keys} was computed from")
    bias = bias_of(cfg, inputs)
    if bias is not None and tuple(bias) != (heads, x[0], memory[0]):
        # Said in the inputs' shapes: the compiler writes those back in the user's symbols (T), not a new one.
        over = f"the input {fmt(x)}" + (f" by the memory {fmt(memory)}" if cfg.cross else "")
        raise ShapeError(f"expects a bias of {heads} heads over the positions of {over}, but gets {fmt(bias)}",
                         f"a bias is (num_heads, T, T): compute it from the same sequence, e.g. "
                         f"`relative_position_bias: {heads}`")
    return (x, (heads, x[0], memory[0])) if cfg.weights else x


def kv_width(cfg: AttentionConfig, d: int) -> int:
    return d // cfg.num_heads * cfg.kv_heads


def attention_params(cfg: AttentionConfig, *inputs: Shape) -> int:
    x, memory, _ = roles(cfg, inputs)
    d, kv = x[-1], kv_width(cfg, x[-1])
    weights = 2 * d * d + 2 * memory[-1] * kv  # query and output projections; key and value ones
    return weights + (2 * d + 2 * kv if cfg.bias else 0)


def attention_flops(cfg: AttentionConfig, *inputs: Shape) -> int:
    # The four projections (linear: 2 per multiply-add), then scores q·k and weights·v: each T x S x d
    # multiply-adds over all heads — what FlopCounterMode counts for SDPA (torch counts causal attention in
    # full too) and for the explicit matmuls. Softmax, masking and rotation are not counted.
    x, memory, _ = roles(cfg, inputs)
    (t, d), (s, e) = x, memory
    return 4 * t * d * d + 4 * s * e * kv_width(cfg, d) + 4 * t * s * d


def attention_dtype(cfg: AttentionConfig, *dtypes: str) -> str:
    *values, mask = dtypes if cfg.masked else (*dtypes, None)
    if mask is not None and mask != "bool":
        raise ShapeError(f"expects a bool mask as its last input but gets {mask}",
                         "give the mask last, e.g. `from: [x, tokens_mask]`")
    return floats(cfg, *values)


def weights_outputs(cfg: AttentionConfig) -> tuple[str, ...]:
    return "out", "weights"


@functools.cache
def torch_modules():
    """Modules defined on first use, so that importing this file never imports torch."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from udlc.layers.sdpa_flops import count_cpu_sdpa

    count_cpu_sdpa()

    def rotary(t, inv_freq, start: int = 0):
        """RoPE on (B, heads, T, head_dim): feature i and i + head_dim/2 of position p rotate by the angle
        p * inv_freq[i], so q·k of positions m and n depends only on m - n. `start` shifts every position."""
        positions = torch.arange(start, start + t.shape[2], device=t.device, dtype=t.dtype)
        angles = positions[:, None] * inv_freq[None, :]
        cos, sin = torch.cat((angles.cos(), angles.cos()), -1), torch.cat((angles.sin(), angles.sin()), -1)
        first, second = t.chunk(2, dim=-1)
        return t * cos + torch.cat((-second, first), -1) * sin

    class Attention(nn.Module):
        def __init__(self, d: int, e: int, cfg: AttentionConfig):
            super().__init__()
            self.heads, self.kv_heads, self.head_dim = cfg.num_heads, cfg.kv_heads, d // cfg.num_heads
            self.causal, self.dropout, self.need_weights = getattr(cfg, "causal", False), cfg.dropout, cfg.weights
            self.scale = cfg.scale  # None: SDPA's own, 1/sqrt(head_dim)
            kv = kv_width(cfg, d)
            self.q, self.k, self.v = nn.Linear(d, d, cfg.bias), nn.Linear(e, kv, cfg.bias), nn.Linear(e, kv, cfg.bias)
            self.out = nn.Linear(d, d, cfg.bias)
            inv_freq = ROPE_BASE ** (-torch.arange(0, self.head_dim, 2, dtype=torch.float32) / self.head_dim)
            # Not persistent: computed from the config, so checkpoints need not carry it.
            self.register_buffer("inv_freq", inv_freq if cfg.rope else None, persistent=False)

        def split(self, t, heads: int):
            return t.reshape(t.shape[0], t.shape[1], heads, self.head_dim).transpose(1, 2)

        def project(self, x, memory):
            """Queries (B, heads, T, hd), and keys and values repeated from kv_heads to heads (head i uses
            kv head i // groups, as SDPA's enable_gqa): plain ops that every exporter and backend takes."""
            q = self.split(self.q(x), self.heads)
            k, v = self.split(self.k(memory), self.kv_heads), self.split(self.v(memory), self.kv_heads)
            if self.inv_freq is not None:
                q, k = rotary(q, self.inv_freq), rotary(k, self.inv_freq)
            groups = self.heads // self.kv_heads
            if groups > 1:
                k, v = (t.repeat_interleave(groups, dim=1) for t in (k, v))
            return q, k, v

        def keep(self, mask, t: int, s: int, device, biased: bool = False):
            """(which keys each query sees, or None for all; which queries see any key, or None for all)."""
            keep = None
            # Alone, SDPA's is_causal does it; but it takes no attn_mask beside it.
            if self.causal and (mask is not None or self.need_weights or biased):
                keep = torch.arange(t, device=device)[:, None] >= torch.arange(s, device=device)[None, :]
            if mask is None:
                return keep, None
            keys = mask[:, None, None, :]
            keep = keys if keep is None else keep & keys
            # A query with no key at all would softmax over nothing (NaN, and NaN gradients): let it see
            # every key, then zero its result.
            seen = keep.any(-1, keepdim=True)
            return keep | ~seen, seen

        def attend(self, x, memory, mask=None, bias=None):
            q, k, v = self.project(x, memory)
            keep, seen = self.keep(mask, x.shape[1], memory.shape[1], x.device, bias is not None)
            p = self.dropout if self.training else 0.0
            weights = None
            if self.need_weights:
                scale = self.head_dim**-0.5 if self.scale is None else self.scale
                scores = q @ k.transpose(-2, -1) * scale
                if bias is not None:
                    scores = scores + bias
                if keep is not None:
                    scores = scores.masked_fill(~keep, float("-inf"))
                weights = scores.softmax(-1)
                out = F.dropout(weights, p) @ v if p else weights @ v
            else:
                if bias is not None:  # a float attn_mask is added to the scores: the bias, -inf where hidden
                    keep = bias if keep is None else bias.masked_fill(~keep, float("-inf"))
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, dropout_p=p, scale=self.scale,
                                                     is_causal=self.causal and keep is None)
            if seen is not None:
                out = out * seen
                weights = weights * seen if weights is not None else None
            if bias is None:
                out = out.transpose(1, 2).reshape(x.shape)  # the heads side by side: (B, T, d)
            else:  # the same, but torch 2.13's ONNX export fails that reshape (as a view of other strides) after an
                out = torch.cat(out.unbind(1), -1)  # SDPA whose float mask requires grad, as a trained bias does
            out = self.out(out)
            return (out, weights) if self.need_weights else out

        def extra_repr(self) -> str:
            return (f"heads={self.heads}, kv_heads={self.kv_heads}, causal={self.causal}, "
                    f"rope={self.inv_freq is not None}, dropout={self.dropout}"
                    + (f", scale={self.scale}" if self.scale is not None else ""))

    # One forward per type, each naming its inputs (the generated forward and the exporter see them).
    class SelfAttention(Attention):
        def forward(self, x):
            return self.attend(x, x)

    class MaskedSelfAttention(Attention):
        def forward(self, x, mask):
            return self.attend(x, x, mask)

    class CrossAttentionModule(Attention):
        def forward(self, x, memory):
            return self.attend(x, memory)

    class MaskedCrossAttentionModule(Attention):
        def forward(self, x, memory, mask):
            return self.attend(x, memory, mask)

    class BiasedSelfAttention(Attention):
        def forward(self, x, bias):
            return self.attend(x, x, bias=bias)

    class MaskedBiasedSelfAttention(Attention):
        def forward(self, x, bias, mask):
            return self.attend(x, x, mask, bias)

    # Keyed (cross, masked), and (cross, masked, biased) for the biased types.
    return {(False, False): SelfAttention, (False, True): MaskedSelfAttention,
            (True, False): CrossAttentionModule, (True, True): MaskedCrossAttentionModule,
            (False, False, True): BiasedSelfAttention, (False, True, True): MaskedBiasedSelfAttention,
            "rotary": rotary}


def build_attention(cfg: AttentionConfig, *inputs: Shape):
    x, memory, _ = roles(cfg, inputs)
    key = (cfg.cross, cfg.masked) + ((True,) if cfg.biased else ())
    return torch_modules()[key](x[-1], memory[-1], cfg)


_SAMPLES = {
    MultiheadAttention: [
        ({"num_heads": 2}, (("T", 16),)),
        ({"num_heads": 4, "num_kv_heads": 2, "causal": True, "rope": True, "bias": False}, (("T", 16),)),
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

for _config, _samples in _SAMPLES.items():
    register(_config, shape=attention_shape, build=build_attention, params=attention_params, flops=attention_flops,
             main_arg="num_heads", arity=1 + _config.cross + _config.biased + _config.masked,
             dtype=attention_dtype, outputs=weights_outputs if _config.weights else None, samples=_samples,
             sample_dtypes=("float32",) * (1 + _config.cross + _config.biased) + ("bool",) if _config.masked else ())
