"""Weights from files (udlc.weights): safetensors headers read by hand equal safetensors' own reading; every source
kind (safetensors, a torch state dict, a Hugging Face folder whole or sharded, a udlc run) loads through a mapping
into a network whose outputs then equal the reference torch module's; a pickle that is not a plain state dict is
refused; every mistake in a mapping is an error at its line; the report names what is new and what went unused;
a spec with `init:` trains."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.conftest import DIGITS_MLP, line_of, train_here, write_spec
from udlc.errors import SpecError, SpecErrors, UdlcError
from udlc.tasks import compile_spec
from udlc.weights import Mapping, apply, check_init, load_into, load_tensors, open_source, read_names

# The reference: torch's own layers in a Sequential, whose names (net.0.weight, …) are not udlc's
# (linear.weight, …) — the mapping below renames them.
MAP = """udlc_map: 1
rules:
  - {from: "net.0.{param}", to: "linear.{param}"}
  - {from: "net.2.{param}", to: "linear_1.{param}"}
"""


def reference():
    import torch

    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    return net, {f"net.{k}": v for k, v in net.state_dict().items()}


def ours(tmp_path: Path, **sections):
    from udlc.compiler.lower import lower

    return lower(compile_spec(write_spec(tmp_path / "s.yaml", DIGITS_MLP, **sections)).graph, seed=0)


def assert_same_outputs(net, model) -> None:
    import torch

    x = torch.randn(5, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(model(x), net(x), atol=0, rtol=0)


def map_file(tmp_path: Path, text: str = MAP) -> Path:
    path = tmp_path / "w.map.yaml"
    path.write_text(text)
    return path


def test_safetensors_header_equals_safe_open(tmp_path: Path) -> None:
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    tensors = {"a.weight": torch.zeros(3, 4), "b": torch.zeros(2, dtype=torch.float16), "c.ids": torch.zeros(
        5, 1, 2, dtype=torch.int64), "scalar": torch.tensor(1.0, dtype=torch.bfloat16), "flag": torch.zeros(0, 7)}
    save_file(tensors, tmp_path / "t.safetensors", metadata={"format": "pt"})
    names = read_names(tmp_path / "t.safetensors")
    with safe_open(tmp_path / "t.safetensors", framework="pt") as f:
        theirs = {k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in f.keys()}
    assert names == theirs and len(names) == 5


@pytest.mark.parametrize("bad,words", [(b"\x01\x00", "shorter than"), (b"\xff" * 8 + b"{}", "does not fit"),
                                       (b"\x02" + b"\x00" * 7 + b"[]", "not a JSON object")])
def test_a_damaged_safetensors_file_is_refused(tmp_path: Path, bad: bytes, words: str) -> None:
    (tmp_path / "x.safetensors").write_bytes(bad)
    with pytest.raises(UdlcError, match=words):
        read_names(tmp_path / "x.safetensors")


def write_source(tmp_path: Path, kind: str, state: dict) -> Path:
    """The reference's weights as each kind of source a user brings."""
    import torch
    from safetensors.torch import save_file

    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    if kind == "safetensors":
        save_file(state, tmp_path / "w.safetensors")
        return tmp_path / "w.safetensors"
    if kind == "pt":
        torch.save(state, tmp_path / "w.pt")
        return tmp_path / "w.pt"
    if kind == "hf":
        save_file(state, folder / "model.safetensors")
    elif kind == "hf-bin":
        torch.save(state, folder / "pytorch_model.bin")
    elif kind == "hf-sharded":  # as transformers shards: an index of name → file, each shard a safetensors file
        shards = {"model-00001-of-00002.safetensors": ["net.0.weight", "net.0.bias"],
                  "model-00002-of-00002.safetensors": ["net.2.weight", "net.2.bias"]}
        for file, keys in shards.items():
            save_file({k: state[k] for k in keys}, folder / file)
        index = {"metadata": {}, "weight_map": {k: file for file, keys in shards.items() for k in keys}}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return folder


@pytest.mark.parametrize("kind", ["safetensors", "pt", "hf", "hf-bin", "hf-sharded"])
def test_each_source_kind_loads_through_a_mapping(tmp_path: Path, kind: str, one_torch_thread) -> None:
    net, state = reference()
    path = write_source(tmp_path, kind, state)
    model = ours(tmp_path)
    report = load_into({"model": model}, path, Mapping.load(map_file(tmp_path)))
    assert_same_outputs(net, model)
    assert report.loaded == ["linear.weight", "linear.bias", "linear_1.weight", "linear_1.bias"]
    assert not report.new and not report.unused
    assert (read_names(path) is None) == (kind in ("pt", "hf-bin"))  # only torch lists a pickle's tensors
    if kind == "hf-sharded":
        assert set(load_tensors(path, {"net.2.bias"})) == {"net.2.bias"}  # one shard read


def test_a_pickle_that_is_not_a_plain_state_dict_is_refused(tmp_path: Path, one_torch_thread) -> None:
    import torch

    net, _ = reference()
    torch.save(net, tmp_path / "module.pt")  # a whole module: unpickling it would run its class's code
    with pytest.raises(UdlcError, match="not a plain torch state dict that loads with weights_only=True"):
        load_tensors(tmp_path / "module.pt")
    torch.save({"weights": net.state_dict(), "steps": [1, 2]}, tmp_path / "mixed.pt")
    with pytest.raises(UdlcError, match="steps is a list, not a tensor"):
        load_tensors(tmp_path / "mixed.pt")


def test_the_report_names_what_is_new_and_what_went_unused(tmp_path: Path, one_torch_thread) -> None:
    import torch
    from safetensors.torch import save_file

    net, state = reference()
    state = {k: v for k, v in state.items() if k.startswith("net.0.")} | {"extra.weight": torch.zeros(2),
                                                                        "pooler.weight": torch.zeros(2)}
    save_file(state, tmp_path / "w.safetensors")
    mapping = Mapping.load(map_file(tmp_path, MAP.replace('  - {from: "net.2.{param}", to: "linear_1.{param}"}',
                                                          '  - {from: "pooler.{rest}", drop: true}')))
    model = ours(tmp_path)
    report = load_into({"model": model}, tmp_path / "w.safetensors", mapping)
    assert torch.equal(model.linear.weight, net[0].weight)
    assert report.new == ["linear_1.weight", "linear_1.bias"] and report.unused == ["extra.weight"]
    assert report.dropped == ["pooler.weight"]
    assert report.text == (f"initialized from {tmp_path / 'w.safetensors'} (safetensors): loaded 2 of 4 tensors, "
                           "new (fresh init): linear_1.weight, linear_1.bias, unused in the file: extra.weight, "
                           "dropped by the mapping: 1")


def test_without_a_mapping_names_are_taken_as_they_are(tmp_path: Path, one_torch_thread) -> None:
    """A file of udlc's own names (a network's state dict saved as safetensors) loads with no mapping; a tensor of
    another shape (a replaced head) keeps its fresh init and is named."""
    import torch
    from safetensors.torch import save_file

    source = ours(tmp_path)
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, tmp_path / "own.safetensors")
    deeper = ours(tmp_path, model={"input": [64], "layers": [{"linear": 32}, "relu", {"linear": 32}, "relu",
                                                             {"linear": 10}]})
    report = load_into({"model": deeper}, tmp_path / "own.safetensors")
    assert torch.equal(deeper.linear.weight, source.linear.weight)
    assert report.text.endswith("loaded 2 of 6 tensors, kept the fresh init for linear_1.weight (10, 32)→(32, 32), "
                                "linear_1.bias (10,)→(32,), new (fresh init): linear_2.weight, linear_2.bias")


def test_mapping_placeholders_and_shapes(tmp_path: Path) -> None:
    """{_i}, {i+1}, {i-1}, words matching the shortest text, possibly none; transpose, split, reshape."""
    import torch

    mapping = Mapping.load(map_file(tmp_path, """udlc_map: 1
rules:
  - {from: "{pre}h.{i}.qkv.weight", transpose: true, to: ["b{_i}.q.weight", "b{_i}.k.weight", "b{_i}.v.weight"]}
  - {from: "layers.{i}.{module}.{param}", to: "block_{i-1}_{module}_{i+1}.{param}"}
  - {from: cls, to: token, reshape: [-1]}
"""))
    plan = apply(mapping, {"transformer.h.0.qkv.weight": (8, 24), "h.2.qkv.weight": (8, 24),
                           "layers.1.attn.out.weight": (3, 3), "cls": (1, 1, 8)})
    a = plan.assignments
    assert set(a) == {"b.q.weight", "b.k.weight", "b.v.weight", "b_2.q.weight", "b_2.k.weight", "b_2.v.weight",
                      "block_0_attn_2.out.weight", "token"}
    assert a["b_2.k.weight"].shape == (8, 8) and a["b_2.k.weight"].chunk == (1, 3)
    assert a["token"].shape == (8,)
    fused = torch.arange(8 * 24.0).reshape(8, 24)
    torch.testing.assert_close(a["b.v.weight"].convert(fused), fused.t()[16:24])


def check_errors(spec: Path) -> list[SpecError]:
    """`udlc check`'s errors for a spec, with init: checked (udlc.weights.check_init is the task check's step)."""
    try:
        compiled = compile_spec(spec)
    except SpecErrors as e:
        return e.errors
    return check_init(compiled)


def spec_with_map(tmp_path: Path, rules: str) -> Path:
    from safetensors.torch import save_file

    _, state = reference()
    save_file(state, tmp_path / "w.safetensors")
    map_file(tmp_path, "udlc_map: 1\nrules:\n" + rules)
    return write_spec(tmp_path / "s.yaml", DIGITS_MLP, init={"from": "w.safetensors", "map": "w.map.yaml"})


@pytest.mark.parametrize("rule,words", [
    ('  - {from: "net.9.{param}", to: "linear.{param}"}', "rule matches no tensor of the file: 'net.9.{param}'"),
    ('  - {from: "net.{i}.{I}", to: "linear.{I}"}', "{I} is not a placeholder"),
    ('  - {from: "net.{i}.{param}", to: "linear{_j}.{param}"}', "`to` writes {_j}, which `from` does not define"),
    ('  - {from: "net.0.{param}", to: "lienar.{param}"}', "no node 'lienar' — did you mean 'linear'?"),
    ('  - {from: "net.{i}.{param}", to: "linear.{param}"}', "writes linear.bias, which net.0.bias already wrote"),
    ('  - {from: "net.0.bias", to: ["linear.bias", "linear_1.bias", "x.bias"]}', "cannot split into 3 equal parts"),
    ('  - {from: "net.0.bias", transpose: true, to: "linear.bias"}', "transpose takes a matrix"),
    ('  - {from: "net.0.weight", to: "linear.weight", reshape: [5, -1]}', "does not fit 2048 elements"),
    ('  - {from: "net.0.weight", too: "linear.weight"}', "unknown key 'too' — did you mean 'to'?"),
])
def test_every_mistake_in_a_mapping_is_refused_by_check_at_its_line(tmp_path: Path, rule: str, words: str) -> None:
    spec = spec_with_map(tmp_path, rule + "\n")
    errors = check_errors(spec)
    assert errors, "check accepted the mapping"
    e = errors[0]
    assert e.span.file.endswith("w.map.yaml") and e.span.line == 3, e.headline()
    assert words in e.message + " — " + (e.hint or ""), e.headline()


@pytest.mark.parametrize("init,key,words", [({"from": "missing.safetensors"}, "from", "no weights at"),
                                            ({"from": "w.safetensors", "map": "nope"}, "map",
                                             "no mapping named 'nope'"),
                                            ({"from": "w.safetensors", "network": "modle"}, "network",
                                             "did you mean 'model'?")])
def test_a_wrong_init_is_refused_at_its_line(tmp_path: Path, init: dict, key: str, words: str) -> None:
    spec_with_map(tmp_path, '  - {from: "net.0.{param}", to: "linear.{param}"}\n')
    spec = write_spec(tmp_path / "s.yaml", DIGITS_MLP, init=init)
    (e,) = check_errors(spec)
    assert e.span.line == line_of(spec, f"{key}:") and words in e.message, e.headline()


def test_a_shape_that_does_not_fit_is_refused_at_the_rules_line_by_check_and_when_training_starts(
        tmp_path: Path, one_torch_thread) -> None:
    """`udlc check` refuses it from the layer registry's `tensors` rules (tests/test_layer_tensors.py); loading checks
    it again against the built modules (before the run folder is made), at the same rule's line."""
    from udlc.compiler.lower import lower
    from udlc.compiler.pipeline import resolve_spec
    from udlc.trainer.starting import start_weights

    spec = spec_with_map(tmp_path, '  - {from: "net.0.weight", to: "linear_1.weight"}\n')
    (checked,) = check_errors(spec)
    assert checked.span.line == 3 and "linear_1.weight is (10, 32) in network model" in checked.message
    compiled = resolve_spec(spec)
    with pytest.raises(SpecErrors) as info:
        start_weights({"model": lower(compiled.graph, seed=0)}, compiled, None)
    (e,) = info.value.errors
    assert e.span.line == 3 and "linear_1.weight is (10, 32) in network model, and net.0.weight gives (32, 64)" \
        in e.message


def test_a_spec_with_init_trains_and_records_the_weights(tmp_path: Path, one_torch_thread) -> None:
    spec = spec_with_map(tmp_path, MAP.split("rules:\n")[1])
    # An lr of 1e-12 moves nothing: the run ends with the weights it started from.
    spec = write_spec(spec, {**DIGITS_MLP, "init": {"from": "w.safetensors", "map": "w.map.yaml"}},
                      train={"epochs": 1, "batch_size": 256}, export={}, optimizer={"type": "sgd", "lr": 1e-12})
    assert not check_errors(spec)
    run = train_here(spec, tmp_path / "runs")
    info = json.loads((run / "run.json").read_text())
    assert info["init_from"] == str((tmp_path / "w.safetensors").resolve())
    assert info["init_sha256"] == hashlib.sha256((tmp_path / "w.safetensors").read_bytes()).hexdigest()
    from safetensors.torch import load_file

    import torch

    final = load_file(run / "checkpoints" / "last.safetensors")
    torch.testing.assert_close(final["models.model.linear_1.weight"], reference()[1]["net.2.weight"])

    # That run folder is itself a source: `init: {from: RUN}` checks from its checkpoint's header and loads by name.
    from udlc.compiler.lower import lower
    from udlc.trainer.starting import start_weights

    again = write_spec(tmp_path / "again.yaml", DIGITS_MLP, init={"from": str(run)})
    assert not check_errors(again)
    compiled = compile_spec(again)
    model = lower(compiled.graph, seed=5)
    report = start_weights({"model": model}, compiled, None)
    assert report.source.kind == "run" and len(report.loaded) == 4
    assert torch.equal(model.state_dict()["linear_1.weight"], final["models.model.linear_1.weight"])


def test_train_init_from_a_file_with_map(tmp_path: Path, invoke) -> None:
    spec = spec_with_map(tmp_path, MAP.split("rules:\n")[1])
    spec = write_spec(spec, DIGITS_MLP, train={"epochs": 1, "batch_size": 256}, export={})
    result = invoke("train", spec, "--init-from", tmp_path / "w.safetensors", "--map", tmp_path / "w.map.yaml",
                    "--out", tmp_path / "runs")
    assert result.returncode == 0, result.stderr
    assert "initialized from" in result.stdout + result.stderr
    assert "loaded 4 of 4 tensors" in result.stdout + result.stderr


def test_open_source_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UdlcError, match="not a weights file udlc reads"):
        open_source(tmp_path / "notes.txt")
    with pytest.raises(UdlcError, match="holds no weights udlc reads"):
        open_source(tmp_path / "empty")


def torchvision_resnet18() -> dict[str, tuple[int, ...]]:
    """torchvision.models.resnet18().state_dict()'s names and shapes, written out from its definition (torchvision
    is not installable here); its parameters add up to torchvision's published 11,689,512."""
    out: dict[str, tuple[int, ...]] = {"conv1.weight": (64, 3, 7, 7)}

    def bn(prefix: str, c: int) -> None:
        out.update({f"{prefix}.{k}": (c,) for k in ("weight", "bias", "running_mean", "running_var")})
        out[f"{prefix}.num_batches_tracked"] = ()

    bn("bn1", 64)
    width = 64
    for stage, c in enumerate((64, 128, 256, 512), 1):
        for block in range(2):
            p = f"layer{stage}.{block}"
            out[f"{p}.conv1.weight"] = (c, width if block == 0 else c, 3, 3)
            bn(f"{p}.bn1", c)
            out[f"{p}.conv2.weight"] = (c, c, 3, 3)
            bn(f"{p}.bn2", c)
            if block == 0 and stage > 1:
                out[f"{p}.downsample.0.weight"] = (c, width, 1, 1)
                bn(f"{p}.downsample.1", c)
        width = c
    out |= {"fc.weight": (1000, 512), "fc.bias": (1000,)}
    return out


def test_resnet18_loads_a_torchvision_state_dict_through_its_mapping(tmp_path: Path, one_torch_thread) -> None:
    import math

    import torch

    from udlc.compiler.lower import lower
    from udlc.weights import find_map

    names = torchvision_resnet18()
    trainable = [k for k in names if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert sum(math.prod(names[k]) for k in trainable) == 11_689_512 and len(names) == 122
    g = torch.Generator().manual_seed(0)
    state = {k: torch.randint(0, 9, s) if k.endswith("tracked") else torch.randn(s, generator=g)
             for k, s in names.items()}
    torch.save(state, tmp_path / "resnet18.pth")
    zoo = Path(__file__).resolve().parent.parent / "examples" / "zoo"
    model = lower(compile_spec(zoo / "resnet18.yaml").graph, seed=0)
    report = load_into({"model": model}, tmp_path / "resnet18.pth", Mapping.load(find_map("resnet18", zoo)))
    assert len(report.loaded) == 122 and not report.new and not report.unused
    ours = model.state_dict()
    assert torch.equal(ours["layer2_0_downsample_1.running_var"], state["layer2.0.downsample.1.running_var"])
    assert torch.equal(ours["layer4_1_conv2.weight"], state["layer4.1.conv2.weight"])
    assert torch.equal(ours["fc.bias"], state["fc.bias"])


def test_check_reads_the_header_and_the_mapping_without_torch(tmp_path: Path) -> None:
    import subprocess
    import sys

    spec = spec_with_map(tmp_path, MAP.split("rules:\n")[1])
    code = ("import sys; from udlc.tasks import compile_spec; from udlc.weights import check_init; "
            f"assert check_init(compile_spec({str(spec)!r})) == []; "
            "print(sorted(m for m in ('torch', 'numpy', 'safetensors') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr


def test_udlc_check_refuses_a_bad_mapping_at_its_line_and_checks_map_files(tmp_path: Path, invoke) -> None:
    spec = spec_with_map(tmp_path, '  - {from: "net.9.{param}", to: "linear.{param}"}\n')
    result = invoke("check", spec)
    assert result.returncode == 2 and f"{tmp_path / 'w.map.yaml'}:3:5: rules[0]: rule matches no tensor" in result.stderr
    ok = invoke("check", Path(__file__).resolve().parent.parent / "examples" / "zoo" / "gpt2.map.yaml")
    assert ok.returncode == 0 and "weight mapping: 17 rules" in ok.stdout, ok.stderr


def test_a_runs_spec_keeps_where_its_weights_came_from(tmp_path: Path, one_torch_thread) -> None:
    """The run's spec.yaml lives in the run folder: init.from and init.map are written there absolute."""
    import yaml

    spec = spec_with_map(tmp_path, MAP.split("rules:\n")[1])
    spec = write_spec(spec, {**DIGITS_MLP, "init": {"from": "w.safetensors", "map": "w.map.yaml"}},
                      train={"epochs": 1, "batch_size": 256}, export={})
    run = train_here(spec, tmp_path / "runs")
    init = yaml.safe_load((run / "spec.yaml").read_text())["init"]
    assert init == {"from": str((tmp_path / "w.safetensors").resolve()), "map": str((tmp_path / "w.map.yaml").resolve())}
    assert not check_errors(run / "spec.yaml")
