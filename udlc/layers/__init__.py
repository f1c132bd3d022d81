"""Layer families, one file each. A family's file registers its layer types when one of its names is first looked
up in REGISTRY (the index is udlc.layers.registry.FAMILIES), so a spec pays only for the families it uses."""

from udlc.layers.registry import REGISTRY, LayerConfig, LayerType, Shape, ShapeError, register

__all__ = ["REGISTRY", "LayerConfig", "LayerType", "Shape", "ShapeError", "register"]
