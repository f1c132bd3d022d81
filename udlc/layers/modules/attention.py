"""The one module of the twelve attention types (udlc.layers.attention): multi-head scaled dot-product attention
with grouped-query heads, a causal mask, rotary positions, a key-padding mask and an additive bias."""

import torch
import torch.nn.functional as F
from torch import nn

from udlc.layers.sdpa_flops import count_cpu_sdpa

ROPE_BASE = 10000.0

count_cpu_sdpa()  # on the first build of an attention layer, as FLOP counts of it are first wanted then


def rotary(t, inv_freq, start: int = 0):
    """RoPE on (B, heads, T, head_dim): feature i and i + head_dim/2 of position p rotate by the angle
    p * inv_freq[i], so q·k of positions m and n depends only on m - n. `start` shifts every position."""
    positions = torch.arange(start, start + t.shape[2], device=t.device, dtype=t.dtype)
    angles = positions[:, None] * inv_freq[None, :]
    cos, sin = torch.cat((angles.cos(), angles.cos()), -1), torch.cat((angles.sin(), angles.sin()), -1)
    first, second = t.chunk(2, dim=-1)
    return t * cos + torch.cat((-second, first), -1) * sin


class Attention(nn.Module):
    """x (B, T, d), then the type's other inputs in order: memory (B, S, e) for cross-attention (self-attention
    reads x), a bias (B, heads, T, S) for a biased type, the keys' mask (B, S) for a masked one. Gives (B, T, d),
    and for a type with weights the weights (B, heads, T, S) too. `cfg` is the layer's AttentionConfig."""

    def __init__(self, d: int, e: int, cfg):
        super().__init__()
        self.cross, self.masked, self.biased = cfg.flags.cross, cfg.flags.masked, cfg.flags.biased
        self.heads, self.kv_heads, self.head_dim = cfg.num_heads, cfg.kv_heads, d // cfg.num_heads
        self.causal, self.dropout, self.need_weights = getattr(cfg, "causal", False), cfg.dropout, cfg.flags.weights
        self.scale = cfg.scale  # None: SDPA's own, 1/sqrt(head_dim)
        kv = self.head_dim * self.kv_heads
        self.q, self.k, self.v = nn.Linear(d, d, cfg.bias), nn.Linear(e, kv, cfg.bias), nn.Linear(e, kv, cfg.bias)
        self.out = nn.Linear(d, d, cfg.bias if cfg.out_bias is None else cfg.out_bias)
        base = ROPE_BASE if cfg.rope_base is None else cfg.rope_base
        # As LLaMA's: 1 / base^(2i / head_dim), computed in float32 from an int64 range.
        inv_freq = 1.0 / base ** (torch.arange(0, self.head_dim, 2, dtype=torch.int64).float() / self.head_dim)
        # Not persistent: computed from the config, so checkpoints need not carry it.
        self.register_buffer("inv_freq", inv_freq if cfg.rope else None, persistent=False)

    def forward(self, x, *inputs):
        memory = inputs[0] if self.cross else x
        bias = inputs[int(self.cross)] if self.biased else None
        mask = inputs[-1] if self.masked else None
        return self.attend(x, memory, mask, bias)

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
