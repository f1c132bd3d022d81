"""Modules of the recurrent layers (udlc.layers.recurrent): torch's RNN, LSTM and GRU made batch-first with
batch-first states, exported as ONNX's own recurrent operators; and sequence pooling."""

import torch
from torch import nn

# ONNX's recurrent operators order the gate blocks differently from torch: torch's blocks in ONNX's order.
# lstm: torch (i, f, g, o), ONNX (i, o, f, c); gru: torch (r, z, n), ONNX (z, r, h).
ONNX_GATES = {"rnn": (0,), "lstm": (0, 3, 1, 2), "gru": (1, 0, 2)}


class BatchFirst:
    """Mixed into torch's layer (built with batch_first=True): returns (out, h[, c]) with the states batch-first
    too, and under ONNX export runs as ONNX's operator of the same kind."""

    kind: str  # rnn, lstm or gru: the ONNX operator and its gate order

    def forward(self, x):
        if torch.onnx.is_in_onnx_export():
            return self.onnx_forward(x)
        out, state = super().forward(x)
        states = state if isinstance(state, tuple) else (state,)
        return (out, *(s.transpose(0, 1) for s in states))  # torch's states are (L*D, B, H)

    def onnx_forward(self, x):
        """The same computation as ONNX's own RNN/LSTM/GRU operators, one per stacked layer (in eval mode, as
        export runs: no dropout between layers). Exported as torch's ops, T is fixed at the traced length:
        torch.export traces their step loop (rnn: the whole graph; lstm and gru: their output shapes, and the
        graph when stacked); these operators take any length."""
        kind = self.kind
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
            return torch.stack([torch.cat([w[i * hidden:(i + 1) * hidden] for i in ONNX_GATES[kind]])
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


# Named as torch's own, so that a printed network reads as torch's layers; their parameters are torch's.
class RNN(BatchFirst, nn.RNN):
    """torch's RNN, batch-first: (out, h)."""

    kind = "rnn"


class LSTM(BatchFirst, nn.LSTM):
    """torch's LSTM, batch-first: (out, h, c)."""

    kind = "lstm"


class GRU(BatchFirst, nn.GRU):
    """torch's GRU, batch-first: (out, h)."""

    kind = "gru"


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
