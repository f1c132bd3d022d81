"""Dropout: elementwise and whole-channel."""

from typing import Literal

from pydantic import Field

from udlc.layers.registry import LayerConfig, Shape, expect_rank, register


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


def build_dropout(cfg: Dropout | Dropout2d, x: Shape):
    from torch import nn

    return nn.Dropout(cfg.p) if cfg.type == "dropout" else nn.Dropout2d(cfg.p)


# No FLOPs: dropout is the identity at inference.
register(Dropout, shape=lambda cfg, x: x, build=build_dropout, main_arg="p",
         samples=[({}, ((10,),)), ({"p": 0.2}, ((3, 4, 5),))])
register(Dropout2d, shape=dropout2d_shape, build=build_dropout, main_arg="p",
         samples=[({}, ((4, 5, 5),)), ({"p": 0.1}, ((2, 3, 6),))])
