"""Property tests: whatever a user feeds `udlc check`, what comes out is a compiled spec or SpecErrors with a
place and a message — never another exception, and never torch."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from udlc.compiler.pipeline import resolve_doc
from udlc.errors import SpecError, SpecErrors
from udlc.layers import REGISTRY
from udlc.spec.loader import load_bytes, load_file, load_text

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
LIBRARY = ROOT / "udlc" / "compiler" / "library"  # udlc's own blocks: an error inside one is located there
TREES = [load_file(path).data for path in EXAMPLES]  # parsed once; each mutant starts from a deep copy
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_errors(exc: SpecError | SpecErrors, lines: int) -> None:
    """Each error has a place (1-based, inside the file) and a message."""
    errors = exc.errors if isinstance(exc, SpecErrors) else [exc]
    assert errors
    for err in errors:
        assert err.message.strip(), err
        assert err.span is not None and err.span.line >= 1 and err.span.col >= 1, err
        if Path(err.span.file).parent == LIBRARY:  # inside udlc's own block, named with the spec line that uses it
            assert err.span.line <= len(Path(err.span.file).read_text().splitlines()) and "used at line" in \
                err.message, err
        else:
            assert err.span.line <= max(lines, 1), err


def compile_or_errors(load, source: str | bytes, file: str) -> None:
    """Whatever `source` holds, loading and compiling it gives a compiled spec or located errors.
    (The fuzz tests share a process with tests that import torch, so they cannot tell whether it is
    imported: the subprocess tests at the end of this file do.)"""
    text = source.decode("utf-8", errors="replace") if isinstance(source, bytes) else source
    try:
        resolve_doc(load(source, file))
    except (SpecError, SpecErrors) as exc:
        check_errors(exc, len(text.splitlines()))


# ---- (a) arbitrary input ------------------------------------------------------------------------

YAMLISH = st.text(st.sampled_from(list("udlc:namedtsorifp-[]{},&*!%|>?#'\"\n\t 0123456789.e_$<")), max_size=200)


@settings(FUZZ, max_examples=1000)
@given(st.binary(max_size=300))
def test_arbitrary_bytes(raw: bytes) -> None:
    compile_or_errors(load_bytes, raw, "fuzz.yaml")


@settings(FUZZ, max_examples=1000)
@given(YAMLISH)
# Regression cases: an alias inside its own anchor (a cycle, which crashed), aliases nesting past the depth
# cap (which, deep enough, crashed too).
@example("model: &m {input: [4], layers: [*m]}")
@example("a: &a [[[[[[[[[[1]]]]]]]]]]\n"
         + "".join(f"{b}: &{b} [[[[[[[[[[*{a}]]]]]]]]]]\n" for a, b in zip("abcdefg", "bcdefgh")))
def test_yaml_like_text(text: str) -> None:
    compile_or_errors(load_bytes, text.encode(), "fuzz.yaml")


@settings(FUZZ, max_examples=300)
@given(st.sampled_from(EXAMPLES), st.data())
def test_truncated_and_spliced_examples(path: Path, data: st.DataObject) -> None:
    raw = path.read_bytes()
    start = data.draw(st.integers(0, len(raw)))
    end = data.draw(st.integers(start, len(raw)))
    junk = data.draw(st.binary(max_size=8))
    compile_or_errors(load_bytes, raw[:start] + junk + raw[end:], "fuzz.yaml")


# ---- (b) mutated example specs ------------------------------------------------------------------

SCALARS = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
           | st.sampled_from(["", "$ch", "$nope", "3e-3", "same", "relu", "x", "input", "-1", "0"]))
JSONISH = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=10)
NAMES = st.sampled_from(sorted(REGISTRY) + ["lienar", "conv_bn", ""])
ARG_NAMES = st.sampled_from(sorted({f for lt in REGISTRY.values() for f in lt.config.model_fields}))
SHAPES = st.lists(st.integers(-3, 70) | st.sampled_from(["8", "a", "", "$ch", None, 2.5]), max_size=5)
REFS = st.sampled_from(["x", "input", "hidden", "nope", "", 3])
# The keys every node takes, with values near the valid ones.
NODE_KEYS = {
    "id": REFS,
    "from": REFS | st.lists(REFS, max_size=3),
    "repeat": st.integers(-1, 3) | SCALARS,
    "init": st.sampled_from(["kaiming", "kaimin"]) | SCALARS,
}
BODY = st.lists(NAMES | st.fixed_dictionaries({"linear": st.integers(-1, 8)}), max_size=3)


def node(name: str, required: dict, **options: st.SearchStrategy) -> st.SearchStrategy:
    return st.fixed_dictionaries({name: st.fixed_dictionaries(required, optional={**NODE_KEYS, **options})})


def layer_entries() -> st.SearchStrategy:
    args = st.builds(lambda own, keys: {**own, **keys}, st.dictionaries(ARG_NAMES, SCALARS | SHAPES, max_size=3),
                     st.fixed_dictionaries({}, optional=NODE_KEYS))
    return st.one_of(
        NAMES,
        st.builds(lambda name, value: {name: value}, NAMES, SCALARS | SHAPES | args),
        node("residual", {"layers": BODY}, projection=st.booleans() | SCALARS),
        node("parallel", {"branches": st.lists(BODY, max_size=3)}, merge=st.sampled_from(["add", "concat", "mul"]),
             dim=st.integers(-3, 3) | SCALARS),
        node("repeat", {"layers": BODY}, times=st.integers(-1, 3) | SCALARS),
        node("conv_bn", {}, ch=st.integers(-1, 64) | SCALARS, stride=st.integers(0, 3) | SCALARS),
    )


def places(value: Any, path: tuple = ()) -> list[tuple]:
    """Every path in a plain-data tree, the root included."""
    out = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            out += places(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += places(v, path + (i,))
    return out


def at(tree: Any, path: tuple) -> Any:
    for part in path:
        tree = tree[part]
    return tree


@st.composite
def mutated_specs(draw: st.DrawFn) -> str:
    tree = copy.deepcopy(draw(st.sampled_from(TREES)))
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(places(tree)))
        op = draw(st.sampled_from(["delete", "replace", "layer", "shape", "insert"]))
        parent, last = (at(tree, path[:-1]), path[-1]) if path else (None, None)
        if op == "delete" and parent is not None:
            del parent[last]
        elif op == "replace" and parent is not None:
            parent[last] = draw(JSONISH)
        elif op == "layer":
            layers = tree.get("model", {}).get("layers") if isinstance(tree.get("model"), dict) else None
            if isinstance(layers, list) and layers:
                layers[draw(st.integers(0, len(layers) - 1))] = draw(layer_entries())
        elif op == "shape" and isinstance(tree.get("model"), dict):
            if draw(st.booleans()):
                tree["model"]["input"] = draw(SHAPES)
            else:
                tree["model"].pop("input", None)
                names = REFS.filter(lambda r: isinstance(r, str))
                tree["model"]["inputs"] = draw(st.dictionaries(names, SHAPES, max_size=2))
        elif op == "insert":
            target = at(tree, path)
            if isinstance(target, dict):
                target[draw(ARG_NAMES | st.text(max_size=8))] = draw(JSONISH | layer_entries())
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(tree, Dumper=dumper, sort_keys=False, allow_unicode=True)


@settings(FUZZ, max_examples=350)
@given(mutated_specs())
# Crashes the fuzzer found, kept as regression cases.
@example("udlc: 1\nname: t\ndata: {source: digits}\nloss: mse\nmodel: {inputs: {}, layers: [relu]}\n")
@example("udlc: 1\nname: t\ndata: {source: digits}\nloss: mse\nmodel:\n  input: [4]\n"
         "  layers: [{residual: {layers: [relu], from: []}}]\n")
def test_mutated_examples(text: str) -> None:
    compile_or_errors(load_text, text, "mutant.yaml")


def test_check_errors_rejects_an_error_without_a_place() -> None:
    # The helper every fuzz test relies on must be able to fail.
    with pytest.raises(AssertionError):
        check_errors(SpecError("no place"), 3)
    with pytest.raises(AssertionError):
        check_errors(SpecError("past the end", span=load_text("a: 1\n").span_at(5, 1)), 3)
    with pytest.raises(ZeroDivisionError):  # any other exception is not swallowed
        compile_or_errors(lambda source, file: 1 / 0, "a: 1\n", "t.yaml")


# ---- torch stays out ------------------------------------------------------------------------------
# Checked in fresh interpreters: in this one, another test may already have imported torch.

# What `pip install udlc[train]` adds: a core install (what the pre-commit hook gets) has none of these.
TRAIN_ONLY = {"torch", "sklearn", "scipy", "safetensors", "onnx", "onnxscript", "onnxruntime"}

NO_TORCH = """
import pathlib, sys
from udlc.tasks import compile_spec
from udlc.errors import UdlcError
for path in [*pathlib.Path("tests/specs").rglob("*.yaml"), *pathlib.Path("examples").glob("*.yaml")]:
    try:
        compile_spec(path)
    except UdlcError:
        pass
print(" ".join(sorted(sys.modules)))
"""


def test_checking_specs_does_not_import_torch() -> None:
    result = subprocess.run([sys.executable, "-c", NO_TORCH], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    modules = set(result.stdout.split())
    assert "udlc.compiler.resolve" in modules  # it ran
    assert not {m.split(".")[0] for m in modules} & TRAIN_ONLY


def udlc_imports(*args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run the `udlc` command as a user would, and the modules it imported (from `python -X importtime`)."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "udlc", *args], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    modules = {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines()
               if line.startswith("import time:") and "imported package" not in line}
    return result, modules


@pytest.mark.parametrize(
    "args,code,ran",
    [
        (("--help",), 0, "udlc.cli"),
        (("check", *(f"examples/{p.name}" for p in EXAMPLES)), 0, "udlc.compiler.resolve"),
        (("check", "--format", "json", *(f"tests/specs/bad/{p.name}" for p in sorted((ROOT / "tests/specs/bad").glob("*.yaml")))),
         2, "udlc.compiler.resolve"),
    ],
    ids=["help", "check-examples", "check-bad-specs"],
)
def test_the_cli_does_not_import_torch(args: tuple[str, ...], code: int, ran: str) -> None:
    result, modules = udlc_imports(*args)
    assert result.returncode == code, result.stderr[-2000:]
    assert ran in modules  # the import log was read, and the command did its work
    assert not {m.split(".")[0] for m in modules} & TRAIN_ONLY, sorted(m for m in modules if m.split(".")[0] in TRAIN_ONLY)


def test_checking_a_spec_of_samples_or_text_imports_no_numpy() -> None:
    """`udlc check` runs on every save: a spec whose data is a built-in set, a CSV or a text needs neither numpy
    nor torch (graph sets are generated with numpy and pictures listed with it: not yet)."""
    specs = [f"examples/{p.name}" for p in EXAMPLES if not any(w in p.name for w in ("gcn", "gat", "gin", "links"))]
    result, modules = udlc_imports("check", *specs, "tests/specs/good/csv-labels.yaml")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "udlc.data.peek" in modules and "udlc.data.text" in modules  # the data was read
    assert "numpy" not in modules
