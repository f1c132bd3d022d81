"""Sequences: recurrent layers (rnn, lstm, gru) and sequence pooling (seq_pool, masked_seq_pool).

A sequence is (T, features) per sample, batch-first. A recurrent layer has named outputs: `out`, the whole
sequence (T, hidden_size x directions), and `h`, the final hidden state (num_layers x directions,
hidden_size), plus `c`, the final cell state, for lstm. A spec picks one with `from: lstm.out`.
"""

import functools
from typing import Literal

from pydantic import Field, PositiveInt, model_validator

from udlc.layers.registry import LayerConfig, Shape, ShapeError, expect_rank, floats, fmt, numel, register

SEQUENCE_HINT = "give each step one axis of features: a (T,) series is `reshape: [-1, 1]`"


class _Recurrent(LayerConfig):
    hidden_size: PositiveInt
    num_layers: PositiveInt = 1
    bidirectional: bool = False
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout between stacked layers, as torch applies it")
    bias: bool = True

    @model_validator(mode="after")
    def _dropout_between_layers(self):
        # torch only warns and then does nothing: there is no layer after the last one to drop out into.
        if self.dropout and self.num_layers == 1:
            raise ValueError("dropout applies between stacked layers; with num_layers 1 it does nothing "
                             "(add a `dropout` layer after this one instead)")
        return self


class Rnn(_Recurrent):
    """An Elman RNN: h_t = nonlinearity(W x_t + U h_(t-1) + b)."""

    type: Literal["rnn"] = "rnn"
    nonlinearity: Literal["tanh", "relu"] = "tanh"


class Lstm(_Recurrent):
    type: Literal["lstm"] = "lstm"


class Gru(_Recurrent):
    type: Literal["gru"] = "gru"


GATES = {"rnn": 1, "lstm": 4, "gru": 3}  # weight blocks per layer and direction: torch's W_ih is (gates x H, in)


def directions(cfg: _Recurrent) -> int:
    return 2 if cfg.bidirectional else 1


def recurrent_names(cfg: _Recurrent) -> tuple[str, ...]:
    return ("out", "h", "c") if cfg.type == "lstm" else ("out", "h")


def recurrent_shape(cfg: _Recurrent, x: Shape) -> tuple[Shape, ...]:
    expect_rank(cfg.type, x, (2,), "(length, features)", SEQUENCE_HINT)
    state = (cfg.num_layers * directions(cfg), cfg.hidden_size)
    return ((x[0], cfg.hidden_size * directions(cfg)),) + (state,) * (len(recurrent_names(cfg)) - 1)


def layer_inputs(cfg: _Recurrent, x: Shape) -> list[int]:
    """Each stacked layer's input width: the sequence's features, then the previous layer's output."""
    return [x[-1]] + [cfg.hidden_size * directions(cfg)] * (cfg.num_layers - 1)


def recurrent_params(cfg: _Recurrent, x: Shape) -> int:
    gates, hidden = GATES[cfg.type], cfg.hidden_size
    # torch keeps two biases per gate (b_ih and b_hh), as cuDNN does
    per_direction = [gates * hidden * (width + hidden) + (2 * gates * hidden if cfg.bias else 0)
                     for width in layer_inputs(cfg, x)]
    return directions(cfg) * sum(per_direction)


def recurrent_flops(cfg: _Recurrent, x: Shape) -> int:
    """The gate matmuls, W x_t and U h_(t-1), at every step of every layer and direction; the gates'
    elementwise work is not counted, as torch's FlopCounterMode counts only the matmuls (exactly these)."""
    gates, hidden = GATES[cfg.type], cfg.hidden_size
    return directions(cfg) * sum(2 * gates * hidden * (width + hidden) * x[0] for width in layer_inputs(cfg, x))


@functools.cache
def torch_modules():
    """Modules defined on first use, so that importing this file never imports torch."""
    import torch
    from torch import nn

    # ONNX's recurrent operators order the gate blocks differently from torch: torch's blocks in ONNX's order.
    # lstm: torch (i, f, g, o), ONNX (i, o, f, c); gru: torch (r, z, n), ONNX (z, r, h).
    onnx_gates = {"rnn": (0,), "lstm": (0, 3, 1, 2), "gru": (1, 0, 2)}

    def batch_first(base: type, kind: str) -> type:
        class Recurrent(base):
            """torch's layer, batch-first, returning (out, h[, c]) with the states batch-first too."""

            def forward(self, x):
                if torch.onnx.is_in_onnx_export():
                    return self.onnx_forward(x)
                out, state = super().forward(x)
                states = state if isinstance(state, tuple) else (state,)
                return (out, *(s.transpose(0, 1) for s in states))  # torch's states are (L*D, B, H)

            def onnx_forward(self, x):
                """The same computation as ONNX's own RNN/LSTM/GRU operators, one per stacked layer (in eval
                mode, as export runs: no dropout between layers). Exported as torch's ops, T is fixed at the
                traced length: torch.export traces their step loop (rnn: the whole graph; lstm and gru: their
                output shapes, and the graph when stacked); these operators take any length."""
                d, hidden = 2 if self.bidirectional else 1, self.hidden_size
                suffixes = ("", "_reverse")[:d]
                attrs: dict = {"hidden_size": hidden, "direction": "bidirectional" if d == 2 else "forward"}
                if kind == "rnn":
                    attrs["activations"] = [self.nonlinearity.title()] * d
                if kind == "gru":
                    attrs["linear_before_reset"] = 1  # torch's GRU: the reset gate scales (U h + b), not h

                def stacked(name: str, layer: int):
                    # slices, not chunk(): the exporter folds them into constant weights (not a Split's outputs)
                    weights = [getattr(self, f"{name}_l{layer}{s}") for s in suffixes]
                    return torch.stack([torch.cat([w[i * hidden:(i + 1) * hidden] for i in onnx_gates[kind]])
                                        for w in weights])

                seq = x.transpose(0, 1)  # ONNX's operators are time-major: (T, B, features)
                length, batch = seq.shape[0], seq.shape[1]
                n_states = 2 if kind == "lstm" else 1
                finals: list[list] = [[] for _ in range(n_states)]
                for layer in range(self.num_layers):
                    bias = (torch.cat([stacked("bias_ih", layer), stacked("bias_hh", layer)], dim=1)
                            if self.bias else None)
                    outs = torch.onnx.ops.symbolic_multi_out(
                        kind.upper(), [seq, stacked("weight_ih", layer), stacked("weight_hh", layer), bias], attrs,
                        dtypes=[x.dtype] * (1 + n_states),
                        shapes=[(length, d, batch, hidden)] + [(d, batch, hidden)] * n_states)
                    seq = outs[0].permute(0, 2, 1, 3).flatten(2)  # (T, D, B, H) -> (T, B, D*H), forward first
                    for final, state in zip(finals, outs[1:]):
                        final.append(state)
                return (seq.transpose(0, 1), *(torch.cat(f).transpose(0, 1) for f in finals))

        Recurrent.__name__ = base.__name__
        return Recurrent

    class SeqPool(nn.Module):
        """(B, T, F) -> (B, F); with a mask (B, T), True at real positions, padding takes no part."""

        def __init__(self, mode: str):
            super().__init__()
            self.mode = mode

        def forward(self, x, mask=None):
            if mask is None:
                return x[:, -1] if self.mode == "last" else x.mean(1) if self.mode == "mean" else x.amax(1)
            if self.mode == "last":  # the last True position, wherever the padding lies; 0 for none
                last = (mask * torch.arange(x.shape[1], device=x.device)).amax(1)
                return x.gather(1, last[:, None, None].expand(-1, 1, x.shape[2])).squeeze(1)
            keep = mask.unsqueeze(-1)
            if self.mode == "mean":  # an all-padding sample gives 0, not 0/0
                return (x * keep).sum(1) / keep.sum(1).clamp(min=1)
            return torch.where(keep.any(1), x.masked_fill(~keep, float("-inf")).amax(1), 0.0)

        def extra_repr(self) -> str:
            return f"mode={self.mode!r}"

    return {"rnn": batch_first(nn.RNN, "rnn"), "lstm": batch_first(nn.LSTM, "lstm"),
            "gru": batch_first(nn.GRU, "gru"), "seq_pool": SeqPool}


def build_recurrent(cfg: _Recurrent, x: Shape):
    extra = {"nonlinearity": cfg.nonlinearity} if cfg.type == "rnn" else {}
    return torch_modules()[cfg.type](x[-1], cfg.hidden_size, num_layers=cfg.num_layers, bias=cfg.bias,
                                     batch_first=True, dropout=cfg.dropout, bidirectional=cfg.bidirectional, **extra)


def recurrent_samples(**extra) -> list:
    return [({"hidden_size": 5}, (("T", 6),)),
            ({"hidden_size": 4, "num_layers": 2, "bidirectional": True, "dropout": 0.1, **extra}, (("T", 3),)),
            ({"hidden_size": 3, "bias": False}, ((7, 2),))]


for _config, _extra in ((Rnn, {"nonlinearity": "relu"}), (Lstm, {}), (Gru, {})):
    register(_config, shape=recurrent_shape, build=build_recurrent, params=recurrent_params, flops=recurrent_flops,
             main_arg="hidden_size", outputs=recurrent_names, samples=recurrent_samples(**_extra))


class SeqPool(LayerConfig):
    """One vector per sequence: (T, F) -> (F,), the last step's features, or their mean or max over T."""

    type: Literal["seq_pool"] = "seq_pool"
    mode: Literal["last", "mean", "max"] = "mean"


class MaskedSeqPool(LayerConfig):
    """seq_pool over the real positions of a padded sequence: `from: [seq, tokens_mask]`, the mask (T,) True at
    real positions (as batching builds `<input>_mask`); `last` is each sample's last real position."""

    type: Literal["masked_seq_pool"] = "masked_seq_pool"
    mode: Literal["last", "mean", "max"] = "mean"


def seq_pool_shape(cfg: SeqPool | MaskedSeqPool, x: Shape, mask: Shape | None = None) -> Shape:
    expect_rank(cfg.type, x, (2,), "(length, features)", SEQUENCE_HINT)
    if mask is not None and mask != x[:1]:
        raise ShapeError(f"expects a mask (length,) as long as the sequence {fmt(x)} but gets {fmt(mask)}",
                         "the mask is the `_mask` of the input this sequence was computed from")
    return x[1:]


def seq_pool_flops(cfg: SeqPool, x: Shape) -> int:
    return 0 if cfg.mode == "last" else numel(x)  # one add or comparison per element; `last` only selects


def masked_seq_pool_flops(cfg: MaskedSeqPool, x: Shape, mask: Shape) -> int:
    # last: one comparison per position to find it; mean and max: mask each element, then add or compare
    return x[0] if cfg.mode == "last" else 2 * numel(x)


def masked_dtype(cfg: MaskedSeqPool, x: str, mask: str) -> str:
    if mask != "bool":
        raise ShapeError(f"expects a bool mask as its second input but gets {mask}",
                         "give the sequence first and its mask second: `from: [seq, tokens_mask]`")
    return floats(cfg, x)


def build_seq_pool(cfg: SeqPool | MaskedSeqPool, *shapes: Shape):
    return torch_modules()["seq_pool"](cfg.mode)


register(SeqPool, shape=seq_pool_shape, build=build_seq_pool, flops=seq_pool_flops, main_arg="mode",
         samples=[({"mode": mode}, (("T", 4),)) for mode in ("last", "mean", "max")])
register(MaskedSeqPool, shape=seq_pool_shape, build=build_seq_pool, flops=masked_seq_pool_flops, main_arg="mode",
         arity=2, dtype=masked_dtype, sample_dtypes=("float32", "bool"),
         samples=[({"mode": mode}, (("T", 4), ("T",))) for mode in ("last", "mean", "max")])
