"""The graph IR between the spec and torch: named nodes in topological order, typed outputs attached.

Everything here is plain data (no torch). Combinators and blocks are already expanded: every node is
one registered layer type applied to outputs of earlier nodes or to the graph's inputs. A reference to
a value is a node's name, a graph input's name, or `node.output` for one of a node's named outputs.
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
    inputs: tuple[str, ...]  # references to earlier values; one per input of the op
    path: str  # the dotted spec path it came from, for messages
    span: Span | None
    init: str | None = None
    # The block and the spec's line of the call that made this node, when a block did (Scope.use): where a
    # message about a node of udlc's own blocks points, since users do not read those files.
    use: tuple[str, int] | None = None
    # The block and stage calls that made it, outermost first (`layer1`, `layer1_0`): `udlc draw` frames them.
    groups: tuple[str, ...] = ()
    # Filled in as the graph is built; empty when an upstream error left them unknown.
    shapes: list[Shape] = field(default_factory=list)  # one per output
    dtypes: list[str] = field(default_factory=list)
    out_names: tuple[str, ...] = ()  # the names of several outputs (`from: node.name`); () for one
    params: int = 0
    flops: int = 0

    @property
    def shape(self) -> Shape | None:
        """The output shape of a node with one output."""
        return self.shapes[0] if len(self.shapes) == 1 and not self.out_names else None


@dataclass
class Graph:
    """One network: its typed inputs, its nodes, and the references it outputs."""

    name: str
    inputs: dict[str, Shape]
    input_dtypes: dict[str, str] = field(default_factory=dict)  # float32 unless declared
    nodes: dict[str, Node] = field(default_factory=dict)  # insertion order is topological
    outputs: list[str] = field(default_factory=list)

    def _lookup(self, ref: str) -> tuple[Node, int | None]:
        """The node a reference names and the index of its output; None for a node with several outputs
        named without one (which is no single value)."""
        name, dot, out = ref.partition(".")
        node = self.nodes[name]
        if dot:
            return node, node.out_names.index(out)
        return node, None if node.out_names else 0

    def shape_of(self, ref: str) -> Shape | None:
        if ref in self.inputs:
            return self.inputs[ref]
        node, i = self._lookup(ref)
        return node.shapes[i] if i is not None and node.shapes else None

    def dtype_of(self, ref: str) -> str | None:
        if ref in self.inputs:
            return self.input_dtypes.get(ref, "float32")
        node, i = self._lookup(ref)
        return node.dtypes[i] if i is not None and node.dtypes else None

    @property
    def output_shapes(self) -> list[Shape | None]:
        return [self.shape_of(o) for o in self.outputs]

    @property
    def symbols(self) -> list[str]:
        """The symbolic dimensions the inputs declare, in order."""
        return list(dict.fromkeys(d for s in self.inputs.values() for d in s if isinstance(d, str)))

    @property
    def bounds(self) -> dict[str, int]:
        """The largest size each symbol may take (a positions table's rows bound T); a symbol not here is
        unbounded. Shape inference never needs them; the sizes that runs and exports pick do."""
        from udlc.layers.registry import REGISTRY

        out: dict[str, int] = {}
        for node in self.nodes.values():
            rule = REGISTRY[node.op].bounds
            if rule is not None and node.shapes:
                for symbol, most in rule(node.config, *(self.shape_of(i) for i in node.inputs)).items():
                    out[symbol] = min(most, out.get(symbol, most))
        return out

    @property
    def total_params(self) -> int:
        return sum(n.params for n in self.nodes.values())

    @property
    def total_flops(self) -> int:
        return sum(n.flops for n in self.nodes.values())
