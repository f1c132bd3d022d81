"""The graph IR between the spec and torch: named nodes in topological order, shapes attached.

Everything here is plain data (no torch). Combinators and blocks are already expanded: every node is
one registered layer type applied to the outputs of earlier nodes or of the graph's inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from udlc.errors import Span
from udlc.layers.registry import LayerConfig, Shape


@dataclass
class Node:
    name: str  # unique in its graph; also the torch submodule's name
    op: str  # a registered layer type
    config: LayerConfig
    inputs: tuple[str, ...]  # names of earlier nodes or graph inputs; one per input of the op
    path: str  # the dotted spec path it came from, for messages
    span: Span | None
    init: str | None = None
    # Filled in as the graph is built; None when an upstream error left it unknown.
    shape: Shape | None = None
    params: int = 0
    flops: int = 0


@dataclass
class Graph:
    """One network. A spec holds one today (`model`); several named graphs (a GAN's generator and
    discriminator) are a dict of these, which is why a graph carries its own name, inputs and outputs."""

    name: str
    inputs: dict[str, Shape]
    nodes: dict[str, Node] = field(default_factory=dict)  # insertion order is topological
    outputs: list[str] = field(default_factory=list)

    def shape_of(self, name: str) -> Shape | None:
        return self.inputs[name] if name in self.inputs else self.nodes[name].shape

    @property
    def output_shapes(self) -> list[Shape | None]:
        return [self.shape_of(o) for o in self.outputs]

    @property
    def total_params(self) -> int:
        return sum(n.params for n in self.nodes.values())

    @property
    def total_flops(self) -> int:
        return sum(n.flops for n in self.nodes.values())
