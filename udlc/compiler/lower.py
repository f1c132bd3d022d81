"""lower: Graph → torch.fx.GraphModule. The first place torch is imported.

Each node becomes one submodule named after the node and one `call_module`, so the generated
`forward` (`module.code`) reads like hand-written PyTorch:

    def forward(self, input):
        conv_bn_conv2d = self.conv_bn_conv2d(input);  input = None
        ...
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Callable

import operator

import torch
from torch import fx, nn

from udlc.compiler.graph import Graph
from udlc.compiler.infer import bind, bindings, within
from udlc.layers import REGISTRY
from udlc.layers.registry import random_input
from udlc.spec.inits import INITS


def lower(graph: Graph, *, seed: int | None = None) -> fx.GraphModule:
    """Build the network. With `seed`, initialization is reproducible regardless of global RNG state."""
    with torch.random.fork_rng(devices=[]) if seed is not None else nullcontext():
        if seed is not None:
            torch.manual_seed(seed)
        root = nn.Module()
        fx_graph = fx.Graph()
        values: dict[str, fx.Node] = {name: fx_graph.placeholder(name) for name in graph.inputs}
        binding = bindings(graph.symbols)[0]
        for node in graph.nodes.values():
            # Builders see sizes; a symbolic axis never shapes a weight (resolve checked), so any size serves.
            shapes = [bind(graph.shape_of(i), binding) for i in node.inputs]
            module = REGISTRY[node.op].build(node.config, *shapes)
            apply_init(module, node.init or "default")
            if getattr(node.config, "tie", None):  # one tensor for both layers (resolve checked the shapes)
                module.weight = getattr(root, node.config.tie).weight
            root.add_module(node.name, module)
            values[node.name] = fx_graph.call_module(node.name, tuple(values[i] for i in node.inputs))
            for i, out in enumerate(node.out_names):  # several outputs: `node.out` is one item of the tuple
                values[f"{node.name}.{out}"] = fx_graph.call_function(operator.getitem, (values[node.name], i))
        outputs = [values[o] for o in graph.outputs]
        fx_graph.output(outputs[0] if len(outputs) == 1 else tuple(outputs))
        return fx.GraphModule(root, fx_graph, class_name=_class_name(graph.name))


# The inits' implementations, by the names udlc.spec.inits registers: each fills a weight of rank >= 2 in place;
# None keeps PyTorch's own init.
FILL: dict[str, Callable[[torch.Tensor], object] | None] = {
    "default": None,
    "kaiming": lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"),
    "xavier": nn.init.xavier_uniform_,
    "normal": lambda w: nn.init.normal_(w, std=0.02),
    "zeros": nn.init.zeros_,
    "orthogonal": nn.init.orthogonal_,
    "uniform": lambda w: nn.init.uniform_(w, -fan_in(w) ** -0.5, fan_in(w) ** -0.5),
}
assert list(FILL) == list(INITS), f"init implementations {list(FILL)} do not match the registry's {list(INITS)}"


def fan_in(weight: torch.Tensor) -> int:
    """The inputs each output of a weight of rank >= 2 sums over: dim 1 times the kernel's size, as torch.nn.init
    counts them."""
    return weight.shape[1] * weight[0][0].numel()


def apply_init(module: nn.Module, init: str) -> None:
    """Re-initialize weight matrices and kernels (rank ≥ 2) with a registered init (udlc.spec.inits); biases
    start at zero. 'default' keeps PyTorch's."""
    fill = FILL[init]
    if fill is None:
        return
    for sub in module.modules():
        weight = getattr(sub, "weight", None)
        if not isinstance(weight, nn.Parameter) or weight.dim() < 2:
            continue
        with torch.no_grad():
            fill(weight)
            if getattr(sub, "padding_idx", None) is not None:  # an embedding's padding row stays zero
                weight[sub.padding_idx].zero_()
            bias = getattr(sub, "bias", None)
            if isinstance(bias, nn.Parameter):
                nn.init.zeros_(bias)


def example_inputs(graph: Graph, batch: int, binding: dict[str, int], generator: torch.Generator | None = None
                   ) -> list[torch.Tensor]:
    """Random inputs of the graph's types (udlc.layers.registry.random_input), symbols at the binding's sizes."""
    return [random_input((batch, *bind(shape, binding)), graph.dtype_of(name) or "float32", generator)
            for name, shape in graph.inputs.items()]


def cross_check(graph: Graph) -> str:
    """Run real forward passes, at two sizes of every symbolic dimension, and compare every node's output
    shapes and dtypes with the static ones."""
    module = lower(graph, seed=0).eval()
    wrong = []
    for binding in (within(b, graph.bounds) for b in bindings(graph.symbols)):
        seen: dict[str, list] = {}
        hooks = [getattr(module, name).register_forward_hook(
            lambda m, i, o, name=name: seen.__setitem__(name, list(o) if isinstance(o, tuple) else [o]))
            for name in graph.nodes]
        with torch.no_grad():
            module(*example_inputs(graph, 2, binding))
        for h in hooks:
            h.remove()
        for n, node in graph.nodes.items():
            static = [(bind(s, binding), d) for s, d in zip(node.shapes, node.dtypes)]
            real = [(tuple(t.shape[1:]), str(t.dtype).removeprefix("torch.")) for t in seen.get(n, [])]
            if static != real:
                wrong.append(f"  {n}: static {static}, torch {real}")
    params = sum(p.numel() for p in module.parameters())
    if wrong or params != graph.total_params:
        return "MISMATCH between static shapes and torch:\n" + "\n".join(
            wrong + [f"  parameters: static {graph.total_params}, torch {params}"])
    return f"torch agrees: {len(graph.nodes)} output shapes and {params:,} parameters match"


def _class_name(name: str) -> str:
    return "".join(p.title() for p in name.replace("-", "_").split("_") if p) or "Model"

