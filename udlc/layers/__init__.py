"""Layer families. Importing this package registers every layer type (one import line per family)."""

from udlc.layers import dense  # noqa: F401
from udlc.layers import conv  # noqa: F401
from udlc.layers import pooling  # noqa: F401
from udlc.layers import norm  # noqa: F401
from udlc.layers import dropout  # noqa: F401
from udlc.layers import activation  # noqa: F401
from udlc.layers import resample  # noqa: F401
from udlc.layers import merge  # noqa: F401
from udlc.layers import attention  # noqa: F401
from udlc.layers import positions  # noqa: F401
from udlc.layers import relative_position  # noqa: F401
from udlc.layers import scale  # noqa: F401
from udlc.layers import recurrent  # noqa: F401
from udlc.layers import embedding  # noqa: F401
from udlc.layers import sequence  # noqa: F401
from udlc.layers import generative  # noqa: F401
from udlc.layers import message_passing  # noqa: F401
from udlc.layers.registry import REGISTRY, LayerConfig, LayerType, Shape, ShapeError, register

__all__ = ["REGISTRY", "LayerConfig", "LayerType", "Shape", "ShapeError", "register"]
