"""Sequences: recurrent layers (rnn, lstm, gru; lstm_cell, gru_cell) and sequence pooling (seq_pool,
masked_seq_pool).

A sequence is (T, features) per sample, batch-first. A recurrent layer has named outputs: `out`, the whole
sequence (T, hidden_size x directions), and `h`, the final hidden state (num_layers x directions,
hidden_size), plus `c`, the final cell state, for lstm. A spec picks one with `from: lstm.out`.
"""

from typing import Literal

from pydantic import Field, PositiveInt, model_validator

from udlc.layers.registry import (ALL, EARLIER, LayerConfig, Shape, ShapeError, expect_rank, floats, fmt, numel,
                                  register)

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


def recurrent_tensors(cfg: _Recurrent, x: Shape) -> dict[str, tuple[int, ...]]:
    rows, hidden = GATES[cfg.type] * cfg.hidden_size, cfg.hidden_size
    tensors = {}
    for layer, width in enumerate(layer_inputs(cfg, x)):
        for suffix in ("", "_reverse")[: directions(cfg)]:
            tensors |= {f"weight_ih_l{layer}{suffix}": (rows, width), f"weight_hh_l{layer}{suffix}": (rows, hidden)}
            if cfg.bias:
                tensors |= {f"bias_ih_l{layer}{suffix}": (rows,), f"bias_hh_l{layer}{suffix}": (rows,)}
    return tensors


def build_recurrent(cfg: _Recurrent, x: Shape):
    from udlc.layers.modules.recurrent import GRU, LSTM, RNN

    extra = {"nonlinearity": cfg.nonlinearity} if cfg.type == "rnn" else {}
    module = {"rnn": RNN, "lstm": LSTM, "gru": GRU}[cfg.type]
    return module(x[-1], cfg.hidden_size, num_layers=cfg.num_layers, bias=cfg.bias,
                  batch_first=True, dropout=cfg.dropout, bidirectional=cfg.bidirectional, **extra)


def recurrent_samples(**extra) -> list:
    return [({"hidden_size": 5}, (("T", 6),)),
            ({"hidden_size": 4, "num_layers": 2, "bidirectional": True, "dropout": 0.1, **extra}, (("T", 3),)),
            ({"hidden_size": 3, "bias": False}, ((7, 2),))]


for _config, _extra in ((Rnn, {"nonlinearity": "relu"}), (Lstm, {}), (Gru, {})):
    # left to right, `out` at t has read the steps up to t; a bidirectional layer's backward half reads them all
    register(_config, shape=recurrent_shape, build=build_recurrent, params=recurrent_params, flops=recurrent_flops,
             main_arg="hidden_size", outputs=recurrent_names, samples=recurrent_samples(**_extra),
             tensors=recurrent_tensors,
             reads=lambda cfg: ALL if cfg.bidirectional else EARLIER)


class _Cell(LayerConfig):
    """One cell (torch's LSTMCell or GRUCell) stepped over the sequence from zero states: (T, F) -> `out`
    (T, hidden_size), every step's h, and the final `h` (hidden_size,) [and `c`]. The same numbers as lstm or
    gru with one layer, but the parameters are the cell's (weight_ih, not weight_ih_l0), so a torch model
    written with cells (PyTorch's time_sequence_prediction: two LSTMCells and a linear) maps name for name;
    stack cells with `from: <id>.out`. Each step's h is its output, so a cell network predicts at every step,
    and task forecasting's `feedback` feeds its last prediction back as the next step's input."""

    hidden_size: PositiveInt
    bias: bool = True


class LstmCell(_Cell):
    type: Literal["lstm_cell"] = "lstm_cell"


class GruCell(_Cell):
    type: Literal["gru_cell"] = "gru_cell"


def cell_kind(cfg: _Cell) -> str:
    return cfg.type.removesuffix("_cell")


def cell_names(cfg: _Cell) -> tuple[str, ...]:
    return ("out", "h", "c") if cell_kind(cfg) == "lstm" else ("out", "h")


def cell_shape(cfg: _Cell, x: Shape) -> tuple[Shape, ...]:
    expect_rank(cfg.type, x, (2,), "(length, features)", SEQUENCE_HINT)
    return ((x[0], cfg.hidden_size),) + ((cfg.hidden_size,),) * (len(cell_names(cfg)) - 1)


def cell_params(cfg: _Cell, x: Shape) -> int:
    gates, hidden = GATES[cell_kind(cfg)], cfg.hidden_size
    return gates * hidden * (x[-1] + hidden) + (2 * gates * hidden if cfg.bias else 0)


def cell_flops(cfg: _Cell, x: Shape) -> int:
    """As recurrent_flops: the gate matmuls at every step."""
    gates, hidden = GATES[cell_kind(cfg)], cfg.hidden_size
    return 2 * gates * hidden * (x[-1] + hidden) * x[0]


def cell_tensors(cfg: _Cell, x: Shape) -> dict[str, tuple[int, ...]]:
    rows = GATES[cell_kind(cfg)] * cfg.hidden_size
    biases = {"bias_ih": (rows,), "bias_hh": (rows,)} if cfg.bias else {}
    return {"weight_ih": (rows, x[-1]), "weight_hh": (rows, cfg.hidden_size), **biases}


def build_cell(cfg: _Cell, x: Shape):
    from udlc.layers.modules.recurrent import GRUCell, LSTMCell

    return {"lstm": LSTMCell, "gru": GRUCell}[cell_kind(cfg)](x[-1], cfg.hidden_size, bias=cfg.bias)


for _config in (LstmCell, GruCell):
    register(_config, shape=cell_shape, build=build_cell, params=cell_params, flops=cell_flops,
             main_arg="hidden_size", outputs=cell_names, reads=EARLIER, tensors=cell_tensors,
             samples=[({"hidden_size": 5}, (("T", 3),)), ({"hidden_size": 4, "bias": False}, ((6, 2),))])


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
    from udlc.layers.modules.recurrent import SeqPool as SeqPoolModule  # the config is SeqPool here

    return SeqPoolModule(cfg.mode)


register(SeqPool, shape=seq_pool_shape, build=build_seq_pool, flops=seq_pool_flops, main_arg="mode",
         samples=[({"mode": mode}, (("T", 4),)) for mode in ("last", "mean", "max")])
register(MaskedSeqPool, shape=seq_pool_shape, build=build_seq_pool, flops=masked_seq_pool_flops, main_arg="mode",
         arity=2, dtype=masked_dtype, sample_dtypes=("float32", "bool"),
         samples=[({"mode": mode}, (("T", 4), ("T",))) for mode in ("last", "mean", "max")])
