"""scale: multiplies its input by a fixed number, elementwise (T5 scales its decoder's output by d_model^-0.5
before the LM head it shares with the token embedding)."""

import functools
from typing import Literal

from pydantic import Field

from udlc.layers.registry import LayerConfig, Shape, numel, register


class Scale(LayerConfig):
    """x * factor, elementwise; no parameters."""

    type: Literal["scale"] = "scale"
    factor: float = Field(description="the number every value is multiplied by")


@functools.cache
def torch_modules():
    """Modules defined on first use, so that importing this file never imports torch."""
    from torch import nn

    class ScaleModule(nn.Module):
        def __init__(self, factor: float):
            super().__init__()
            self.factor = factor

        def forward(self, x):
            return x * self.factor

        def extra_repr(self) -> str:
            return f"factor={self.factor}"

    return {"scale": ScaleModule}


def build_scale(cfg: Scale, x: Shape):
    return torch_modules()["scale"](cfg.factor)


register(Scale, shape=lambda cfg, x: x, build=build_scale, flops=lambda cfg, x: numel(x), main_arg="factor",
         samples=[({"factor": 0.5}, (("T", 6),)), ({"factor": -3.0}, ((4,),))])
