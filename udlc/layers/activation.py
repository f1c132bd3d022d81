"""Activations: elementwise functions, plus softmax and log_softmax over one axis of the sample."""

from typing import Literal

from udlc.layers.registry import LayerConfig, Shape, ShapeError, fmt, numel, register


def same_shape(cfg: LayerConfig, x: Shape) -> Shape:
    return x


def elementwise_flops(cfg: LayerConfig, x: Shape) -> int:
    return numel(x)


class ReLU(LayerConfig):
    type: Literal["relu"] = "relu"


class Sigmoid(LayerConfig):
    type: Literal["sigmoid"] = "sigmoid"


class Tanh(LayerConfig):
    type: Literal["tanh"] = "tanh"


class SiLU(LayerConfig):
    type: Literal["silu"] = "silu"


class LeakyReLU(LayerConfig):
    type: Literal["leaky_relu"] = "leaky_relu"
    negative_slope: float = 0.01


class ELU(LayerConfig):
    type: Literal["elu"] = "elu"
    alpha: float = 1.0


class GELU(LayerConfig):
    type: Literal["gelu"] = "gelu"
    approximate: Literal["none", "tanh"] = "none"


def build_activation(cfg: LayerConfig, x: Shape):
    from torch import nn

    # One entry per type: the torch module for its config.
    modules = {
        "relu": lambda c: nn.ReLU(),
        "sigmoid": lambda c: nn.Sigmoid(),
        "tanh": lambda c: nn.Tanh(),
        "silu": lambda c: nn.SiLU(),
        "leaky_relu": lambda c: nn.LeakyReLU(c.negative_slope),
        "elu": lambda c: nn.ELU(c.alpha),
        "gelu": lambda c: nn.GELU(approximate=c.approximate),
    }
    return modules[cfg.type](cfg)


PLAIN_SAMPLES = [({}, ((6,),)), ({}, ((2, 3, 4),))]
for _config, _main, _samples in [
    (ReLU, None, PLAIN_SAMPLES),
    (Sigmoid, None, PLAIN_SAMPLES),
    (Tanh, None, PLAIN_SAMPLES),
    (SiLU, None, PLAIN_SAMPLES),
    (LeakyReLU, "negative_slope", [({}, ((6,),)), ({"negative_slope": 0.2}, ((2, 3, 4),))]),
    (ELU, "alpha", [({}, ((6,),)), ({"alpha": 0.5}, ((2, 3, 4),))]),
    (GELU, "approximate", [({}, ((6,),)), ({"approximate": "tanh"}, ((2, 3, 4),))]),
]:
    register(_config, shape=same_shape, build=build_activation, flops=elementwise_flops, main_arg=_main, samples=_samples)


class Softmax(LayerConfig):
    """`dim` counts the sample's axes: 0 is the first axis after the batch axis; negative counts from the end."""

    type: Literal["softmax"] = "softmax"
    dim: int = -1


class LogSoftmax(LayerConfig):
    type: Literal["log_softmax"] = "log_softmax"
    dim: int = -1


def softmax_shape(cfg: Softmax | LogSoftmax, x: Shape) -> Shape:
    if not -len(x) <= cfg.dim < len(x):
        raise ShapeError(f"dim {cfg.dim} is out of range for the input {fmt(x)}",
                         f"use a dim from {-len(x)} to {len(x) - 1}; 0 is the first axis after the batch axis"
                         if x else "add 'reshape' before it")
    return x


def softmax_flops(cfg: Softmax | LogSoftmax, x: Shape) -> int:
    return 3 * numel(x)  # exponent, sum, divide


def build_softmax(cfg: Softmax | LogSoftmax, x: Shape):
    from torch import nn

    dim = cfg.dim + 1 if cfg.dim >= 0 else cfg.dim  # skip the batch axis; negative dims are unaffected
    return nn.Softmax(dim) if cfg.type == "softmax" else nn.LogSoftmax(dim)


for _config in (Softmax, LogSoftmax):
    register(_config, shape=softmax_shape, build=build_softmax, flops=softmax_flops, main_arg="dim",
             samples=[({}, ((10,),)), ({"dim": 0}, ((4, 5),)), ({"dim": -2}, ((2, 3, 4),))])
