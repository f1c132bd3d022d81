"""Activations: elementwise functions, plus softmax and log_softmax over one axis of the sample."""

from typing import Literal

from udlc.layers.registry import ALL, EACH, LayerConfig, Shape, ShapeError, fmt, numel, register


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


class ReLU6(LayerConfig):
    """min(max(x, 0), 6): MobileNet's activation."""

    type: Literal["relu6"] = "relu6"


class Hardswish(LayerConfig):
    """x · relu6(x + 3) / 6: MobileNetV3's cheap swish."""

    type: Literal["hardswish"] = "hardswish"


class Hardsigmoid(LayerConfig):
    """relu6(x + 3) / 6: MobileNetV3's gate in squeeze-and-excitation."""

    type: Literal["hardsigmoid"] = "hardsigmoid"


class Mish(LayerConfig):
    """x · tanh(softplus(x))."""

    type: Literal["mish"] = "mish"


class PReLU(LayerConfig):
    """A leaky ReLU whose negative slope is learned: one for the layer, or one per channel (the sample's first
    axis), as torch.nn.PReLU."""

    type: Literal["prelu"] = "prelu"
    per_channel: bool = False
    slope: float = 0.25  # the slope it starts from


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
        "relu6": lambda c: nn.ReLU6(),
        "hardswish": lambda c: nn.Hardswish(),
        "hardsigmoid": lambda c: nn.Hardsigmoid(),
        "mish": lambda c: nn.Mish(),
        "prelu": lambda c: nn.PReLU(prelu_params(c, x), init=c.slope),
    }
    return modules[cfg.type](cfg)


def prelu_params(cfg: PReLU, x: Shape) -> int:
    if not cfg.per_channel:
        return 1
    if not x or not isinstance(x[0], int):
        raise ShapeError(f"per_channel slopes need a fixed first axis (channels), but the input is {fmt(x)}")
    return x[0]


PLAIN_SAMPLES = [({}, ((6,),)), ({}, ((2, 3, 4),))]
for _config, _main, _samples in [
    (ReLU, None, PLAIN_SAMPLES),
    (Sigmoid, None, PLAIN_SAMPLES),
    (Tanh, None, PLAIN_SAMPLES),
    (SiLU, None, PLAIN_SAMPLES),
    (LeakyReLU, "negative_slope", [({}, ((6,),)), ({"negative_slope": 0.2}, ((2, 3, 4),))]),
    (ELU, "alpha", [({}, ((6,),)), ({"alpha": 0.5}, ((2, 3, 4),))]),
    (GELU, "approximate", [({}, ((6,),)), ({"approximate": "tanh"}, ((2, 3, 4),))]),
    (ReLU6, None, PLAIN_SAMPLES),
    (Hardswish, None, PLAIN_SAMPLES),
    (Hardsigmoid, None, PLAIN_SAMPLES),
    (Mish, None, PLAIN_SAMPLES),
]:
    register(_config, shape=same_shape, build=build_activation, flops=elementwise_flops, main_arg=_main,
             reads=EACH, samples=_samples)


def prelu_shape(cfg: PReLU, x: Shape) -> Shape:
    prelu_params(cfg, x)  # a per-channel PReLU needs a fixed channel axis
    return x


register(PReLU, shape=prelu_shape, build=build_activation, flops=elementwise_flops, params=prelu_params,
         main_arg="slope", reads=EACH, tensors=lambda cfg, x: {"weight": (prelu_params(cfg, x),)},
         samples=[({}, ((6,),)), ({"per_channel": True, "slope": 0.1}, ((3, 4, 4),))])


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
    # Along a sample axis other than the first, each position alone; a negative dim may name the first, T.
    register(_config, shape=softmax_shape, build=build_softmax, flops=softmax_flops, main_arg="dim",
             reads=lambda cfg: EACH if cfg.dim >= 1 else ALL,
             samples=[({}, ((10,),)), ({"dim": 0}, ((4, 5),)), ({"dim": -2}, ((2, 3, 4),)), ({"dim": 1}, (("T", 5),))])
