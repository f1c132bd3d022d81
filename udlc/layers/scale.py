"""scale: multiplies its input by a fixed number, elementwise (T5 scales its decoder's output by d_model^-0.5
before the LM head it shares with the token embedding); layer_scale: by a learned number per channel (CaiT,
ConvNeXt)."""

from typing import Literal

from pydantic import Field

from udlc.layers.registry import EACH, LayerConfig, Shape, ShapeError, fmt, numel, register


class Scale(LayerConfig):
    """x * factor, elementwise; no parameters."""

    type: Literal["scale"] = "scale"
    factor: float = Field(description="the number every value is multiplied by")


def build_scale(cfg: Scale, x: Shape):
    from udlc.layers.modules.scale import ScaleModule

    return ScaleModule(cfg.factor)


class LayerScale(LayerConfig):
    """x times a learned factor per channel, each starting at `value` (a residual branch that starts nearly
    shut: ConvNeXt's 1e-6). `axis`: the sample's axis that holds the channels — 0 for an image (C, H, W), -1 for
    a sequence's features (T, d)."""

    type: Literal["layer_scale"] = "layer_scale"
    value: float = 1e-6
    axis: int = 0


def gamma_shape(cfg: LayerScale, x: Shape) -> tuple[int, ...]:
    """The factors' shape, broadcast against the sample: (C, 1, 1) for axis 0 of (C, H, W), (d,) for axis -1."""
    if not -len(x) <= cfg.axis < len(x):
        raise ShapeError(f"axis {cfg.axis} is not an axis of the input {fmt(x)}")
    axis = cfg.axis % len(x)
    if not isinstance(x[axis], int):
        raise ShapeError(f"axis {cfg.axis} of the input {fmt(x)} has no fixed size to learn a factor for")
    return (x[axis],) + (1,) * (len(x) - axis - 1)


def layer_scale_shape(cfg: LayerScale, x: Shape) -> Shape:
    gamma_shape(cfg, x)
    return x


def build_layer_scale(cfg: LayerScale, x: Shape):
    from udlc.layers.modules.scale import LayerScaleModule

    return LayerScaleModule(cfg.value, gamma_shape(cfg, x))


register(Scale, shape=lambda cfg, x: x, build=build_scale, flops=lambda cfg, x: numel(x), main_arg="factor", reads=EACH,
         samples=[({"factor": 0.5}, (("T", 6),)), ({"factor": -3.0}, ((4,),))])
register(LayerScale, shape=layer_scale_shape, build=build_layer_scale, flops=lambda cfg, x: numel(x),
         params=lambda cfg, x: numel(gamma_shape(cfg, x)), main_arg="value", reads=EACH,
         tensors=lambda cfg, x: {"gamma": gamma_shape(cfg, x)},
         samples=[({}, ((4, 3, 3),)), ({"value": 0.5, "axis": -1}, (("T", 6),))])
