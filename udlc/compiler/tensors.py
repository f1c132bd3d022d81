"""A network's tensors without torch: every state-dict name and shape the built module will have (udlc.compiler.lower),
from each node's layer type's `tensors` rule. `udlc check` holds a weight map's targets to them (udlc.weights.check),
so a target that is no tensor of the network, or one of another shape, is refused at its rule's line before training.

lower names each node's module after the node, so a node's tensor `weight` is `<node>.weight`; a tied linear
(`tie: embed`) holds the embedding's weight under its own name too, as torch's state_dict lists it under both."""

from __future__ import annotations

from udlc.compiler.graph import Graph
from udlc.compiler.infer import bind, bindings
from udlc.layers import REGISTRY


def missing_rules(graph: Graph) -> list[str]:
    """The layer types of the graph's nodes whose built module holds tensors that no `tensors` rule lists: for
    those the names and shapes are known only once torch builds the network."""
    return sorted({node.op for node in graph.nodes.values() if node.params and REGISTRY[node.op].tensors is None})


def network_tensors(graph: Graph) -> dict[str, tuple[int, ...]] | None:
    """{state-dict name: shape} of the network lower builds, in its order; None when a node's type has no rule
    (missing_rules says which)."""
    if missing_rules(graph):
        return None
    # lower builds at the first binding of the symbols; a symbol never shapes a weight (resolve checked it)
    binding = bindings(graph.symbols)[0]
    tensors: dict[str, tuple[int, ...]] = {}
    for node in graph.nodes.values():
        rule = REGISTRY[node.op].tensors
        if rule is None:
            continue
        shapes = [bind(graph.shape_of(i), binding) for i in node.inputs]
        own = rule(node.config, *shapes)
        tie = getattr(node.config, "tie", None)
        if tie and "weight" in own:  # one tensor for both layers, the tied layer's, as lower makes it
            own = {**own, "weight": tensors[f"{tie}.weight"]}
        tensors |= {f"{node.name}.{name}": tuple(shape) for name, shape in own.items()}
    return tensors
