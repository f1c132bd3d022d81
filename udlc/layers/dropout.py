"""Dropout: elementwise, whole-channel, and whole-sample (drop_path: stochastic depth)."""

from typing import Literal

from pydantic import Field

from udlc.layers.registry import EACH, LayerConfig, Shape, expect_rank, register


class Dropout(LayerConfig):
    type: Literal["dropout"] = "dropout"
    p: float = Field(0.5, ge=0, lt=1)


class Dropout2d(LayerConfig):
    """Zeroes whole channels of a (channels, height, width) sample."""

    type: Literal["dropout2d"] = "dropout2d"
    p: float = Field(0.5, ge=0, lt=1)


def dropout2d_shape(cfg: Dropout2d, x: Shape) -> Shape:
    expect_rank("", x, (3,), "(channels, height, width)", "use 'dropout' for other shapes")
    return x


class DropPath(LayerConfig):
    """Stochastic depth (Huang et al. 2016): while training, each sample's whole value is zeroed with
    probability p (the rest scaled by 1 / (1 - p)); the identity in evaluation. Put last in a residual's body, it
    skips that block for some samples, as torchvision's StochasticDepth(p, "row"). `model.drop_path: linear`
    makes the k-th of K such layers drop p · k / K (EfficientNet, ConvNeXt)."""

    type: Literal["drop_path"] = "drop_path"
    p: float = Field(0.1, ge=0, lt=1)


def build_dropout(cfg: Dropout | Dropout2d | DropPath, x: Shape):
    from torch import nn

    if cfg.type == "drop_path":
        from udlc.layers.modules.dropout import DropPathModule

        return DropPathModule(cfg.p)
    return nn.Dropout(cfg.p) if cfg.type == "dropout" else nn.Dropout2d(cfg.p)


# No FLOPs: dropout is the identity at inference.
register(Dropout, shape=lambda cfg, x: x, build=build_dropout, main_arg="p", reads=EACH,
         samples=[({}, ((10,),)), ({"p": 0.2}, ((3, 4, 5),))])
# Each drops values at random, never moving one: a position's output is its own input or zero.
register(Dropout2d, shape=dropout2d_shape, build=build_dropout, main_arg="p", reads=EACH,
         samples=[({}, ((4, 5, 5),)), ({"p": 0.1}, ((2, 3, 6),))])
register(DropPath, shape=lambda cfg, x: x, build=build_dropout, main_arg="p", reads=EACH,
         samples=[({}, ((10,),)), ({"p": 0.3}, ((3, 4, 5),))])
