"""What makes `udlc check` fast, held to what it must not change: a spec's sections are validated through their
registries (only the configs it names are built), layer families and tasks load from indexes when first named,
and layer configs and types are kept per distinct arguments. Each answers exactly as the eager way did."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from udlc.compiler.pipeline import resolve_text
from udlc.errors import SpecErrors
from udlc.layers.registry import FAMILIES, REGISTRY
from udlc.spec.augments import AUGMENTS
from udlc.spec.base import YamlBool
from udlc.spec.losses import LOSSES
from udlc.spec.metrics import METRICS
from udlc.spec.optimizers import OPTIMIZERS
from udlc.spec.schedules import SCHEDULES
from udlc.tasks import TASK_FILES, compile_text

ROOT = Path(__file__).resolve().parents[1]
REGISTRIES = [LOSSES, METRICS, OPTIMIZERS, SCHEDULES, AUGMENTS]


def fresh(code: str) -> dict:
    """What `code` (which leaves its answer in `out`) finds in a new interpreter."""
    script = f"import json, sys\nout = {{}}\n{code}\nprint(json.dumps(out))"
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---- registry-driven validation -----------------------------------------------------------------

BAD = [3, 2.5, None, [1], "nope", {"type": "nope"}, {"type": 3}, {"nope": 1}, {"nope": {"a": 1}},
       {"a": 1, "b": 2}, {"type": [1]}, YamlBool(True)]


def errors(adapter: TypeAdapter, value) -> list[dict]:
    try:
        return [{"ok": adapter.validate_python(value)}]
    except ValidationError as e:
        return [{k: v for k, v in err.items() if k not in ("url", "input", "ctx")} | {"ctx": str(err.get("ctx"))}
                for err in e.errors()]


@pytest.mark.parametrize("registry", REGISTRIES, ids=lambda r: r.kind)
def test_validating_by_type_answers_as_the_union_of_every_config(registry) -> None:
    by_type, union = TypeAdapter(registry.union()), TypeAdapter(registry.tagged())
    values = [v for e in registry for v in registry.examples(e)] + BAD
    values += [{e.name: {"no_such_field": 1}} for e in registry] + [{e.name: -1} for e in registry if e.main_arg]
    for value in values:
        got, want = errors(by_type, value), errors(union, value)
        if isinstance(value, YamlBool):  # the union could not find a tag in it; it is a value, not a mapping
            assert want[0]["type"] == "union_tag_not_found" and got[0]["type"] == "model_attributes_type"
            continue
        assert got == want, value


def test_a_spec_builds_only_the_configs_it_names() -> None:
    found = fresh(
        "from udlc.tasks import compile_spec\n"
        "compile_spec('examples/digits-mlp.yaml')\n"
        "import udlc.spec.losses as L, udlc.spec.schedules as S, udlc.spec.augments as A\n"
        "out['built'] = [c.__name__ for c in (L.CrossEntropy, L.Huber, S.Cosine, S.OneCycle, A.Rotate)\n"
        "                if c.__pydantic_complete__]\n"
        "out['modules'] = sorted(m for m in sys.modules if m.startswith(('udlc.layers.', 'udlc.tasks.')))\n"
        "out['heavy'] = [m for m in ('torch', 'numpy') if m in sys.modules]\n"
        "out['rare'] = [m for m in ('udlc.spec.tuning', 'udlc.spec.init', 'udlc.weights') if m in sys.modules]\n")
    assert found["built"] == ["CrossEntropy", "Cosine"]
    assert found["rare"] == []  # tune:, init: (and the weights readers) only for a spec that writes them
    layers = {m.rpartition(".")[2] for m in found["modules"] if m.startswith("udlc.layers.")}
    assert layers == {"registry", "dense", "activation", "dropout"}  # linear, relu, dropout
    assert "udlc.tasks.diffusion" not in found["modules"] and "udlc.tasks.supervised" in found["modules"]
    assert found["heavy"] == []


# ---- the layer and task indexes -----------------------------------------------------------------


def test_the_layer_index_is_what_each_family_registers() -> None:
    found = fresh(
        "import importlib\n"
        "from udlc.layers.registry import FAMILIES, REGISTRY\n"
        "for family in FAMILIES:\n"
        "    before = set(REGISTRY.loaded())\n"
        "    importlib.import_module(f'udlc.layers.{family}')\n"
        "    out[family] = sorted(set(REGISTRY.loaded()) - before)\n")
    assert found == {family: sorted(names) for family, names in FAMILIES.items()}
    families = {p.stem for p in (ROOT / "udlc" / "layers").glob("*.py")} - {"__init__", "registry", "sdpa_flops"}
    assert families == set(FAMILIES), "a family file that registers layer types belongs in FAMILIES"


def test_a_layer_lookup_imports_its_family_alone() -> None:
    found = fresh(
        "from udlc.layers import REGISTRY\n"
        "out['in'] = ['conv2d' in REGISTRY, 'conv2e' in REGISTRY]\n"
        "out['before'] = sorted(m for m in sys.modules if m.startswith('udlc.layers.'))\n"
        "REGISTRY['conv2d']\n"
        "out['after'] = sorted(m for m in sys.modules if m.startswith('udlc.layers.'))\n")
    assert found["in"] == [True, False]
    assert found["before"] == ["udlc.layers.registry"]
    assert found["after"] == ["udlc.layers.conv", "udlc.layers.registry"]


def test_going_through_the_layer_registry_loads_every_family() -> None:
    assert list(REGISTRY) == [name for names in FAMILIES.values() for name in names]
    assert len(REGISTRY) == sum(map(len, FAMILIES.values()))


def test_the_task_index_is_what_each_file_registers() -> None:
    found = fresh(
        "import importlib\n"
        "from udlc.tasks import TASK_FILES, registry\n"
        "for file in dict.fromkeys(TASK_FILES.values()):\n"
        "    before = set(registry.TASKS)\n"
        "    importlib.import_module(f'udlc.tasks.{file}')\n"
        "    out[file] = sorted(set(registry.TASKS) - before)\n")
    want: dict[str, list[str]] = {}
    for name, file in TASK_FILES.items():
        want.setdefault(file, []).append(name)
    assert found == {file: sorted(names) for file, names in want.items()}


def test_an_unknown_task_is_told_apart_from_every_task() -> None:
    text = (ROOT / "examples" / "digits-mlp.yaml").read_text() + "task: diffusio\n"
    with pytest.raises(SpecErrors, match="unknown task 'diffusio' — did you mean 'diffusion'"):
        compile_text(text, "t.yaml")


# ---- layer configs and types kept per arguments --------------------------------------------------

SPEC = """udlc: 1
name: t
data: {source: digits}
loss: cross_entropy
model:
  input: [64]
  layers:
LAYERS"""


def graph_of(layers: str):
    return resolve_text(SPEC.replace("LAYERS", layers), "t.yaml").graph


def test_equal_layers_share_one_config_and_get_their_own_types() -> None:
    nodes = list(graph_of("    - linear: 64\n    - relu\n    - linear: 64\n    - linear: 10\n").nodes.values())
    assert nodes[0].config is nodes[2].config and nodes[0].config is not nodes[3].config
    assert nodes[0].shapes == nodes[2].shapes == [(64,)] and nodes[0].shapes is not nodes[2].shapes
    assert [n.params for n in nodes] == [64 * 64 + 64, 0, 64 * 64 + 64, 64 * 10 + 10]


def test_a_repeated_mistake_is_reported_at_each_line() -> None:
    with pytest.raises(SpecErrors) as caught:
        graph_of("    - linear: -1\n    - linear: -1\n    - linear: 10\n")
    assert [e.span.line for e in caught.value.errors] == [8, 9]


def test_kept_configs_tell_a_boolean_from_a_number() -> None:
    assert next(iter(graph_of("    - linear: 1\n").nodes.values())).config.out_features == 1
    with pytest.raises(SpecErrors, match=r"out_features must be an integer \(got true\)"):
        graph_of("    - linear: true\n")  # equal to 1 in Python, and refused all the same


def test_udlc_check_imports_no_torch_and_no_numpy() -> None:
    """`udlc check` over every shipped spec imports neither torch nor numpy."""
    specs = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "examples").rglob("*.yaml"))
    env = {k: v for k, v in __import__("os").environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "udlc", "check", *specs], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    imported = {line.rpartition("|")[2].strip() for line in done.stderr.splitlines() if line.startswith("import time")}
    assert "udlc.cli" in imported and done.returncode == 0, done.stderr[-2000:]
    assert not imported & {"torch", "numpy"}


def test_udlc_train_tells_a_spec_mistake_before_importing_torch(tmp_path) -> None:
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "udlc", "train", str(tmp_path / "missing.yaml")],
                          cwd=ROOT, capture_output=True, text=True)
    imported = {line.rpartition("|")[2].strip() for line in done.stderr.splitlines() if line.startswith("import time")}
    assert done.returncode != 0 and "missing.yaml" in done.stderr, done.stderr[-2000:]
    assert "udlc.cli" in imported and "torch" not in imported
