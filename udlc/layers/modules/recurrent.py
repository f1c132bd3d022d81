"""Modules of the recurrent layers (udlc.layers.recurrent): torch's RNN, LSTM and GRU made batch-first with
batch-first states, and torch's LSTMCell and GRUCell stepped over a sequence, all exported as ONNX's own
recurrent operators; and sequence pooling."""

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
        d = 2 if self.bidirectional else 1
        seq, finals = x.transpose(0, 1), []  # ONNX's operators are time-major: (T, B, features)
        for layer in range(self.num_layers):
            weights = [[getattr(self, f"{name}_l{layer}{s}") if self.bias or name.startswith("weight") else None
                        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
                       for s in ("", "_reverse")[:d]]
            seq, states = onnx_recurrent(self.kind, seq, weights, self.hidden_size,
                                         getattr(self, "nonlinearity", "tanh"))
            finals.append(states)
        # each state over the layers: (L*D, B, H), batch-first as forward gives it
        return (seq.transpose(0, 1), *(torch.cat(f).transpose(0, 1) for f in zip(*finals)))


def onnx_recurrent(kind: str, seq, weights: list, hidden: int, nonlinearity: str = "tanh"):
    """One layer as ONNX's own RNN/LSTM/GRU operator: `seq` time-major (T, B, features), `weights` one
    [weight_ih, weight_hh, bias_ih, bias_hh] per direction (biases None without them). Returns the output
    (T, B, D*H), forward first, and the final states, each (D, B, H)."""
    d = len(weights)
    attrs: dict = {"hidden_size": hidden, "direction": "bidirectional" if d == 2 else "forward"}
    if kind == "rnn":
        attrs["activations"] = [nonlinearity.title()] * d
    if kind == "gru":
        attrs["linear_before_reset"] = 1  # torch's GRU: the reset gate scales (U h + b), not h

    def stacked(at: int):
        # slices, not chunk(): the exporter folds them into constant weights (not a Split's outputs)
        return torch.stack([torch.cat([w[at][i * hidden:(i + 1) * hidden] for i in ONNX_GATES[kind]])
                            for w in weights])

    length, batch = seq.shape[0], seq.shape[1]
    n_states = 2 if kind == "lstm" else 1
    bias = torch.cat([stacked(2), stacked(3)], dim=1) if weights[0][2] is not None else None
    outs = torch.onnx.ops.symbolic_multi_out(
        kind.upper(), [seq, stacked(0), stacked(1), bias], attrs, dtypes=[seq.dtype] * (1 + n_states),
        shapes=[(length, d, batch, hidden)] + [(d, batch, hidden)] * n_states)
    return outs[0].permute(0, 2, 1, 3).flatten(2), list(outs[1:])  # (T, D, B, H) -> (T, B, D*H)


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


class CellSteps:
    """Mixed into torch's cell: the cell applied step by step over a batch-first sequence (B, T, F) from zero
    states (tests/test_cells_feedback.py holds it to torch's cell called step by step), returning (out, h[, c]): every step's h (B, T, H) and the final states (B, H). Its parameters are the
    cell's own (weight_ih, weight_hh, bias_ih, bias_hh), so a torch LSTMCell's or GRUCell's weights load as
    they are. Under ONNX export it runs as ONNX's LSTM/GRU operator over the whole sequence: the same
    computation, for any length (a traced step loop would fix T at the traced length)."""

    kind: str  # lstm or gru

    def forward(self, x):
        if torch.onnx.is_in_onnx_export():
            weights = [[self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh] if self.bias
                       else [self.weight_ih, self.weight_hh, None, None]]
            seq, states = onnx_recurrent(self.kind, x.transpose(0, 1), weights, self.hidden_size)
            return (seq.transpose(0, 1), *(s[0] for s in states))
        # torch's fused one-layer kernel with the cell's weights: the cell's arithmetic at every step, without a
        # Python call per step (the feedback loop runs the sequence `horizon` times per batch)
        params = [self.weight_ih, self.weight_hh] + ([self.bias_ih, self.bias_hh] if self.bias else [])
        h = x.new_zeros(1, x.shape[0], self.hidden_size)
        if self.kind == "lstm":
            out, h, c = torch.lstm(x, [h, h], params, self.bias, 1, 0.0, self.training, False, True)
            return out, h[0], c[0]
        out, h = torch.gru(x, h, params, self.bias, 1, 0.0, self.training, False, True)
        return out, h[0]


class LSTMCell(CellSteps, nn.LSTMCell):
    """torch's LSTMCell stepped over a sequence: (out, h, c)."""

    kind = "lstm"


class GRUCell(CellSteps, nn.GRUCell):
    """torch's GRUCell stepped over a sequence: (out, h)."""

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
