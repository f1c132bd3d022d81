"""A network's tensors without torch (udlc.compiler.tensors): every registered layer type's every sample lists exactly
the state dict of the module torch builds, the example specs' and the zoo's networks list exactly what lower(graph)
holds, and `udlc check` refuses a weight map's target that is no tensor of the network, or of another shape, at the
rule's line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import DIGITS_MLP, write_spec
from udlc.compiler.infer import bind, bindings
from udlc.compiler.tensors import network_tensors
from udlc.layers import REGISTRY

ROOT = Path(__file__).resolve().parent.parent
CASES = [(name, i) for name, lt in REGISTRY.items() for i in range(len(lt.samples))]


@pytest.mark.parametrize("name,index", CASES, ids=[f"{n}-{i}" for n, i in CASES])
def test_tensors_rule_lists_the_built_modules_state_dict(name: str, index: int, one_torch_thread) -> None:
    """At both sizes of each symbol: the rule's names and shapes are the state dict's, and the same at both (a symbol
    such as T that reached a tensor's shape would make them differ)."""
    lt = REGISTRY[name]
    args, shapes = lt.samples[index]
    cfg = lt.config.model_validate(args)
    symbols = sorted({d for s in shapes for d in s if isinstance(d, str)})
    listed = []
    for binding in bindings(symbols):
        bound = [bind(s, binding) for s in shapes]
        state = {k: tuple(v.shape) for k, v in lt.build(cfg, *bound).state_dict().items()}
        if lt.tensors is None:
            assert not state, f"{name}'s module holds {state}: register it with a `tensors` rule"
            return
        listed.append(lt.tensors(cfg, *bound))
        assert listed[-1] == state, f"{name} at {binding}"
    assert all(t == listed[0] for t in listed), f"{name}: a symbol of {shapes} reaches a tensor's shape: {listed}"


def assert_lists_the_state_dict(graph, where: str, device: str = "cpu") -> None:
    import torch

    from udlc.compiler.lower import lower

    with torch.device(device):
        state = {k: tuple(v.shape) for k, v in lower(graph).state_dict().items()}
    listed = network_tensors(graph)
    assert listed is not None, where
    assert list(listed.items()) == list(state.items()), where


def test_every_example_networks_tensors_are_lowers(one_torch_thread) -> None:
    from udlc.tasks import compile_spec

    for path in sorted((ROOT / "examples").glob("*.yaml")):
        for name, graph in compile_spec(path).graphs.items():
            assert_lists_the_state_dict(graph, f"{path.name}: {name}")


@pytest.mark.long
def test_every_zoo_networks_tensors_are_lowers(one_torch_thread) -> None:
    """On the meta device (no memory for the weights), each repeated block built twice: the names of block 1 are
    block 0's with another index."""
    import yaml

    from tests.test_zoo_transformers import zoo_graph
    from udlc.compiler.pipeline import resolve_spec

    for path in sorted((ROOT / "examples" / "zoo").glob("*.yaml")):
        if path.name.endswith(".map.yaml"):
            continue
        if "layers" in yaml.safe_load(path.read_text())["model"]:
            graphs = {"model": zoo_graph(path.stem, 2)}
        else:  # a network of blocks: built at its full size
            graphs = resolve_spec(path).graphs
        for name, graph in graphs.items():
            assert_lists_the_state_dict(graph, f"{path.name}: {name}", "meta")


def test_a_tied_linear_lists_the_embeddings_weight_under_both_names(one_torch_thread) -> None:
    from udlc.compiler.pipeline import resolve_text

    graph = resolve_text("""
udlc: 1
name: tied
data: {source: digits}
model:
  input: {shape: [T], dtype: int64}
  layers:
    - embedding: {num_embeddings: 11, embedding_dim: 6, id: embed}
    - linear: {tie: embed, bias: false}
""").graph
    tensors = network_tensors(graph)
    assert tensors == {"embed.weight": (11, 6), "linear.weight": (11, 6)}
    assert_lists_the_state_dict(graph, "tied")


# ---- udlc check: a map's targets against the network's tensors -----------------------------------------------

def spec_with_map(tmp_path: Path, rules: str) -> Path:
    """DIGITS_MLP (64 -> linear 32 -> relu -> linear_1 10) from a file of torch.nn.Sequential's names."""
    import torch
    from safetensors.torch import save_file

    net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    save_file({f"net.{k}": v for k, v in net.state_dict().items()}, tmp_path / "w.safetensors")
    (tmp_path / "w.map.yaml").write_text("udlc_map: 1\nrules:\n" + rules)
    return write_spec(tmp_path / "s.yaml", DIGITS_MLP, init={"from": "w.safetensors", "map": "w.map.yaml"})


@pytest.mark.parametrize("rule,words", [
    ('  - {from: "net.0.weight", to: "linear_1.weight"}',
     "linear_1.weight is (10, 32) in network model, and net.0.weight gives (32, 64)"),
    ('  - {from: "net.2.weight", to: "linear_1.weight", transpose: true}',
     "linear_1.weight is (10, 32) in network model, and net.2.weight gives (32, 10)"),
    ('  - {from: "net.0.weight", to: "linear.weihgt"}',
     "linear.weihgt (from net.0.weight) is not a tensor of network model — did you mean 'linear.weight'?"),
])
def test_udlc_check_refuses_a_target_of_another_shape_or_name_at_its_line(tmp_path: Path, rule: str, words: str,
                                                                          invoke) -> None:
    spec = spec_with_map(tmp_path, rule + "\n")
    result = invoke("check", spec)
    assert result.returncode == 2, result.stdout
    assert f"{tmp_path / 'w.map.yaml'}:3:5: rules[0]: " in result.stderr, result.stderr
    assert words in " ".join(result.stderr.split()), result.stderr


def test_check_finds_the_shape_without_torch_and_loading_agrees(tmp_path: Path, one_torch_thread) -> None:
    """The same error, the same line, from the registry's rules (no torch in the process) as from the built module."""
    import subprocess
    import sys

    from udlc.compiler.lower import lower
    from udlc.compiler.pipeline import resolve_spec
    from udlc.errors import SpecErrors
    from udlc.trainer.starting import start_weights

    spec = spec_with_map(tmp_path, '  - {from: "net.0.{param}", to: "linear_1.{param}"}\n')
    code = ("import sys; from udlc.compiler.pipeline import resolve_spec; from udlc.weights import check_init; "
            f"print([(e.span.line, e.message) for e in check_init(resolve_spec({str(spec)!r}))]); "
            "print(sorted(m for m in ('torch', 'numpy', 'safetensors') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    checked, imported = out.stdout.strip().splitlines()
    assert imported == "[]"
    compiled = resolve_spec(spec)
    with pytest.raises(SpecErrors) as info:
        start_weights({"model": lower(compiled.graph, seed=0)}, compiled, None)
    assert checked == str([(e.span.line, e.message) for e in info.value.errors])
    assert "linear_1.bias is (10,) in network model, and net.0.bias gives (32,)" in checked


def test_a_layer_type_without_the_rule_leaves_the_shapes_to_loading(tmp_path: Path, monkeypatch) -> None:
    """A type registered without `tensors` (a plugin's): the network's tensors are unknown, so check says nothing of
    shapes and loading refuses them, as before the rules existed."""
    import dataclasses

    from udlc.compiler.pipeline import resolve_spec
    from udlc.compiler.tensors import missing_rules
    from udlc.weights import check_init

    spec = spec_with_map(tmp_path, '  - {from: "net.0.weight", to: "linear_1.weight"}\n')
    compiled = resolve_spec(spec)
    assert [e.span.line for e in check_init(compiled)] == [3]
    monkeypatch.setitem(REGISTRY._types, "linear", dataclasses.replace(REGISTRY["linear"], tensors=None))
    assert missing_rules(compiled.graph) == ["linear"] and network_tensors(compiled.graph) is None
    assert check_init(compiled) == []
