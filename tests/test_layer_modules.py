"""The layers' torch modules are named classes (udlc.layers.modules): a built network pickles, deep-copies and
computes the same after either; and no registered layer builds a class defined inside a function."""

from __future__ import annotations

import copy
import io
import pickle
import sys
from pathlib import Path

import pytest

import udlc
from udlc.compiler.infer import bind, bindings, within
from udlc.compiler.pipeline import resolve_spec
from udlc.errors import SpecErrors
from udlc.layers import REGISTRY
from udlc.spec.model import tree_model

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted(p for p in (ROOT / "examples").rglob("*.yaml") if not p.name.endswith(".map.yaml"))  # not weight maps
ZOO = ROOT / "examples" / "zoo"


def named(cls: type) -> bool:
    """Whether pickle finds the class by its module and name (not a class made inside a function)."""
    return "<locals>" not in cls.__qualname__ and getattr(sys.modules[cls.__module__], cls.__qualname__, None) is cls


def round_trips(module):
    """(torch.load of torch.save of the module, its deep copy)."""
    import torch

    buffer = io.BytesIO()
    torch.save(module, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False), copy.deepcopy(module)


# EfficientNet-B1 to B7 are B0's classes, wider and deeper: `make test` pickles B0, the longer tier every size.
SIZES = {f"efficientnet_b{i}.yaml" for i in range(1, 8)}


@pytest.mark.parametrize("path", [pytest.param(p, marks=pytest.mark.long) if p.parent == ZOO and p.name in SIZES
                                  else p for p in SPECS], ids=[str(p.relative_to(ROOT / "examples")) for p in SPECS])
def test_every_example_network_pickles_and_copies(path: Path) -> None:
    import torch

    from udlc.compiler.lower import example_inputs

    try:
        compiled = udlc.load_spec(path)
    except SpecErrors:
        # The task check refuses a few (a zoo model no task trains yet, a data folder not shipped); their networks
        # still resolve as the model alone, and it is the networks that are pickled here.
        try:
            compiled = resolve_spec(path, check_files=False)
        except SpecErrors as e:
            pytest.skip(f"{path.name} does not compile: {e.errors[0].message}")
    if tree_model(compiled.spec) is not None:
        pytest.skip(f"{path.name}: no network (model: gradient_boosting)")
    zoo = path.is_relative_to(ZOO)
    # The zoo's networks are large (vgg16: 138M parameters): built without memory, for their classes alone.
    with torch.device("meta") if zoo else torch.device("cpu"):
        built = udlc.build(compiled)
    networks = built if isinstance(built, dict) else {next(iter(compiled.graphs)): built}
    for name, network in networks.items():
        loaded, copied = round_trips(network)
        for other in (loaded, copied):  # the same layers (fx makes a class per network; the layers' are named)
            layers = [(n, type(m)) for n, m in other.named_children()]
            assert layers == [(n, type(m)) for n, m in network.named_children()]
            assert list(other.state_dict()) == list(network.state_dict())
        if zoo:
            continue
        graph = compiled.graphs[name]
        binding = within(bindings(graph.symbols)[0], graph.bounds)
        inputs = example_inputs(graph, 2, binding, torch.Generator().manual_seed(0))
        outputs = []
        for module in (network, loaded, copied):
            with torch.no_grad():
                out = module.eval()(*inputs)
            outputs.append(out if isinstance(out, tuple) else (out,))
        for other in outputs[1:]:
            assert all(torch.equal(a, b) for a, b in zip(outputs[0], other)), f"{path.name}: {name} differs"


CASES = [(name, i) for name, lt in REGISTRY.items() for i in range(len(lt.samples))]


@pytest.mark.parametrize("name,index", CASES, ids=[f"{n}-{i}" for n, i in CASES])
def test_every_layer_builds_named_module_classes(name: str, index: int) -> None:
    lt = REGISTRY[name]
    args, shapes = lt.samples[index]
    cfg = lt.config.model_validate(args)
    symbols = list(dict.fromkeys(d for s in shapes for d in s if isinstance(d, str)))
    module = lt.build(cfg, *[bind(s, bindings(symbols)[0]) for s in shapes])
    local = [type(m).__qualname__ for m in module.modules() if not named(type(m))]
    assert not local, f"{name} builds classes pickle cannot find by name: {local}"
    assert named(lt.config)
    assert pickle.loads(pickle.dumps(cfg)) == cfg


def test_the_attention_types_are_one_config_and_one_module() -> None:
    from udlc.layers.attention import AttentionConfig, kind

    names = [n for n in REGISTRY if issubclass(REGISTRY[n].config, AttentionConfig)]
    assert len(names) == 12
    assert {kind(n) for n in names} == {(c, m, b, w) for c in (False, True) for m in (False, True)
                                        for b in (False, True) for w in (False, True) if not (c and b)}
    modules = {type(REGISTRY[n].build(REGISTRY[n].config.model_validate(args), *[bind(s, {"T": 4, "S": 5})
                                                                                for s in shapes]))
               for n in names for args, shapes in REGISTRY[n].samples}
    assert len(modules) == 1
