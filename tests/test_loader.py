"""The guarded YAML loader: plain data with 1-based source spans, YAML 1.2 floats, and caps on size, depth and
alias expansion; and `--set` overrides applied to a loaded document."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from udlc.compiler.pipeline import apply_overrides, resolve_doc
from udlc.errors import SpecError, SpecErrors, UdlcError
from udlc.spec.loader import (
    MAX_BYTES,
    MAX_DEPTH,
    MAX_NODES,
    dotted,
    is_udlc_spec,
    load_bytes,
    load_file,
    load_text,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "digits-mlp.yaml"

SPANNED = """\
udlc: 1
model:
  input: [1, 8, 8]
  layers:
    - conv2d: {out_channels: 8, kernel_size: 3}
    - relu
"""


def errors_of(exc: UdlcError) -> list[SpecError]:
    return exc.errors if isinstance(exc, SpecErrors) else [exc]


def load_error(text: str) -> SpecError:
    """The one error loading `text` raises."""
    with pytest.raises((SpecError, SpecErrors)) as info:
        load_text(text, "t.yaml")
    (err,) = errors_of(info.value)
    return err


# ---- spans --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path,key,line,col",
    [
        (("udlc",), True, 1, 1),
        (("udlc",), False, 1, 7),
        (("model", "input"), True, 3, 3),
        (("model", "input"), False, 3, 10),
        (("model", "input", 2), False, 3, 17),
        (("model", "layers", 0), False, 5, 7),
        (("model", "layers", 0, "conv2d"), True, 5, 7),
        (("model", "layers", 0, "conv2d", "kernel_size"), True, 5, 33),
        (("model", "layers", 0, "conv2d", "kernel_size"), False, 5, 46),
        (("model", "layers", 1), False, 6, 7),
    ],
)
def test_spans_are_one_based(path: tuple, key: bool, line: int, col: int) -> None:
    doc = load_text(SPANNED, "t.yaml")
    span = doc.span(path, key=key)
    assert (span.file, span.line, span.col) == ("t.yaml", line, col)
    assert span.text == SPANNED.splitlines()[line - 1]


def test_a_missing_path_falls_back_to_its_nearest_ancestor() -> None:
    doc = load_text(SPANNED)
    assert doc.span(("model", "layers", 0, "conv2d", "stride")) == doc.span(("model", "layers", 0, "conv2d"))
    assert doc.span(("model", "blocks"), key=True) == doc.span(("model",))


def test_dotted_paths() -> None:
    assert dotted(("model", "layers", 3, "conv2d", "kernel_size")) == "model.layers[3].conv2d.kernel_size"
    assert dotted(()) == ""


def test_crlf_and_a_bom_do_not_shift_positions() -> None:
    doc = load_bytes(b"\xef\xbb\xbfudlc: 1\r\nname: crlf\r\n")
    assert doc.data == {"udlc": 1, "name": "crlf"}
    assert (doc.span(("name",)).line, doc.span(("name",)).col) == (2, 7)


# ---- scalars ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,value",
    [
        ("3e-3", 0.003),
        ("1e5", 1e5),
        ("1E+5", 1e5),
        ("-2.5e-1", -0.25),
        ("6.02e23", 6.02e23),
        ("1.5", 1.5),
        ("'3e-3'", "3e-3"),
        ('"1e5"', "1e5"),
        ("1e", "1e"),
        ("10", 10),
        ("true", True),
        ("false", False),
        ("True", True),
        ("'true'", "true"),
        ("~", None),
        ("", None),
    ],
)
def test_scalars(text: str, value: object) -> None:
    loaded = load_text(f"v: {text}").data["v"]
    assert loaded == value and type(loaded) is type(value)


def test_integers_too_long_to_read_are_errors() -> None:
    err = load_error("seed: " + "7" * 5000)
    assert "too long to read" in err.message and (err.span.line, err.span.col) == (1, 7)


# ---- guards -------------------------------------------------------------------------------------


def test_anchors_and_aliases_within_the_budget_are_expanded() -> None:
    doc = load_text("base: &b {epochs: 3, batch_size: 8}\ntrain: *b\nsizes: &s [1, 2]\nalso: [*s, *s]\n")
    assert doc.data["train"] == {"epochs": 3, "batch_size": 8}
    assert doc.data["also"] == [[1, 2], [1, 2]]


def aliased(copies: int) -> str:
    """A 1,000-value anchor and `copies` aliases of it: about 1,000 x (copies + 1) values once expanded."""
    return "a: &a [" + ", ".join(["0"] * 1000) + "]\nb: [" + ", ".join(["*a"] * copies) + "]\n"


def test_the_alias_budget_counts_expanded_values() -> None:
    assert len(load_text(aliased(MAX_NODES // 1000 - 10)).data["b"]) == MAX_NODES // 1000 - 10
    err = load_error(aliased(MAX_NODES // 1000 + 10))
    assert f"more than {MAX_NODES} values" in err.message and err.span.line == 2


def test_an_alias_bomb_of_a_few_hundred_bytes_is_refused() -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"{b}: &{b} [{', '.join([f'*{a}'] * 10)}]" for a, b in zip("abcdefgh", "bcdefghi")]
    text = "\n".join(lines)
    assert len(text) < 500
    assert "aliases counted in full" in load_error(text).message


def depth_of(value: object) -> int:
    """Levels of mappings and lists: {} is 1, {x: []} is 2."""
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    return 0


def test_nesting_depth_is_capped() -> None:
    def nested(depth: int) -> str:  # the root mapping is the first level
        return "x: " + "[" * (depth - 1) + "]" * (depth - 1)

    assert depth_of(load_text(nested(MAX_DEPTH)).data) == MAX_DEPTH
    err = load_error(nested(MAX_DEPTH + 1))
    assert f"deeper than {MAX_DEPTH} levels" in err.message and (err.span.line, err.span.col) == (1, MAX_DEPTH + 3)


SELF_ALIAS = """\
udlc: 1
name: t
data: {source: digits}
loss: mse
model: &m {input: [4], layers: [*m]}
"""


@pytest.mark.parametrize(
    "text,line,col",
    [
        (SELF_ALIAS, 5, 33),
        ("a: &a [1, [2, *a]]\n", 1, 15),  # deeper inside
        ("a: &a\n  b: &b\n    c: [*a]\n", 3, 9),  # through another anchor
        ("a: &a\n  b: &b\n    c: [*b]\n", 3, 9),  # the inner one
        ("a: &a {b: 1, c: *a}\n", 1, 17),  # a mapping value
    ],
)
def test_an_alias_inside_its_own_anchor_is_refused(text: str, line: int, col: int) -> None:
    # Composed, it would be a cycle: converting it never ended (a RecursionError, an internal error).
    err = load_error(text)
    assert err.message.startswith("a YAML alias refers to the node that contains it")
    assert err.hint == "write the value out instead of the alias"
    assert (err.span.line, err.span.col) == (line, col)


def test_an_alias_after_its_anchor_closed_is_a_copy_not_a_cycle() -> None:
    doc = load_text("a: &a [1, [2]]\nb: [*a, {c: *a}]\n")
    assert doc.data["b"] == [[1, [2]], {"c": [1, [2]]}]
    assert doc.data["b"][0] is not doc.data["a"]  # every alias is its own copy: the tree has no shared nodes


def test_check_reports_a_self_referencing_alias(tmp_path: Path) -> None:
    (tmp_path / "loop.yaml").write_text(SELF_ALIAS)
    result = subprocess.run([sys.executable, "-m", "udlc", "check", "loop.yaml"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("loop.yaml:5:33: a YAML alias refers to the node that contains it"), result.stderr
    assert "write the value out" in result.stderr and "Traceback" not in result.stderr


def test_anchors_are_defined_once() -> None:
    # The C and the Python parser word this differently (or hardly at all); the guard says it one way.
    for text, line, col in [("a: &x [1]\nb: &x [2]\n", 2, 4), ("a: &x [1, &x 2]\n", 1, 11)]:
        err = load_error(text)
        assert err.message == "anchor '&x' is defined twice (first at line 1)"
        assert (err.span.line, err.span.col) == (line, col)


def test_aliases_count_toward_the_nesting_depth() -> None:
    # Each alias nests a deep anchor one level deeper: a few hundred bytes that used to expand past
    # Python's recursion limit while converting.
    lines = ["a0: &a0 " + "[" * 30 + "1" + "]" * 30]
    lines += [f"a{i}: &a{i} " + "[" * 30 + f"*a{i - 1}" + "]" * 30 for i in range(1, 40)]
    err = load_error("\n".join(lines))
    assert f"deeper than {MAX_DEPTH} levels (aliases counted in full)" in err.message
    assert (err.span.line, err.span.col) == (3, 39)
    within = "a: &a " + "[" * (MAX_DEPTH - 2) + "]" * (MAX_DEPTH - 2) + "\nb: [*a]\n"  # root, b's list, a
    assert depth_of(load_text(within).data) == MAX_DEPTH
    assert "deeper than" in load_error(within.replace("[*a]", "[[*a]]")).message


def test_size_cap(tmp_path: Path) -> None:
    big = b"a: 1\n" + b"#" * MAX_BYTES
    with pytest.raises(SpecError, match="larger than"):
        load_bytes(big)
    (tmp_path / "big.yaml").write_bytes(big)
    with pytest.raises(SpecError, match="larger than"):
        load_file(tmp_path / "big.yaml")


def test_duplicate_keys_are_all_reported_where_they_repeat() -> None:
    with pytest.raises(SpecErrors) as info:
        load_text("a: 1\nb:\n  c: 2\n  c: 3\na: 4\n")
    assert [(e.path, e.span.line, e.span.col) for e in info.value.errors] == [("b.c", 4, 3), ("a", 5, 1)]
    assert "first at line 3" in info.value.errors[0].message


@pytest.mark.parametrize(
    "value",
    ["!!python/object/apply:os.system ['true']", "!!python/name:os.system", "!!binary aGVsbG8=", "!custom {a: 1}",
     "!!set {a, b}"],
)
def test_tags_that_build_objects_are_refused(value: str) -> None:
    err = load_error(f"udlc: 1\nv: {value}\n")
    assert "is not allowed" in err.message and (err.path, err.span.line, err.span.col) == ("v", 2, 4)


@pytest.mark.parametrize("key", ["1", "true", "null", "[a, b]"])
def test_keys_must_be_names(key: str) -> None:
    err = load_error(f"udlc: 1\n? {key}\n: x\n")
    assert "keys must be names" in err.message and err.span.line == 2


def test_merge_keys_are_refused() -> None:
    assert "merge keys" in load_error("a: &a {x: 1}\nb:\n  <<: *a\n").message


def test_invalid_utf8_is_located() -> None:
    with pytest.raises(SpecError) as info:
        load_bytes(b"udlc: 1\nname: \xff\n")
    assert (info.value.span.line, info.value.span.col) == (2, 7)


@pytest.mark.parametrize(
    "text,message",
    [("", "file is empty"), ("\n\n", "file is empty"), ("# only a comment\n", "file is empty"), ("~\n", "must be a mapping"),
     ("- a\n- b\n", "must be a mapping"), ("42\n", "must be a mapping"), ("just text\n", "must be a mapping")],
)
def test_a_spec_is_a_mapping(text: str, message: str) -> None:
    err = load_error(text)
    assert message in err.message and "`udlc: 1`" in err.hint
    assert (err.span.line, err.span.col) == (1, 1)


def test_unreadable_paths(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="file not found"):
        load_file(tmp_path / "nope.yaml")
    with pytest.raises(SpecError, match="is a folder"):
        load_file(tmp_path)


# ---- --set overrides ----------------------------------------------------------------------------


def compile_with(*overrides: str):
    doc = load_file(EXAMPLE)
    apply_overrides(doc, overrides)
    return resolve_doc(doc)


def test_an_override_changes_the_value() -> None:
    spec = compile_with("train.epochs=3", "optimizer.lr=5e-4", "model.layers.0.linear=32").spec
    assert spec.train.epochs == 3
    assert spec.optimizer.lr == pytest.approx(5e-4)
    assert spec.model.layers[0] == {"linear": 32}


def test_an_override_can_add_a_section() -> None:
    assert compile_with("export.onnx.opset=19").spec.export.onnx.opset == 19


@pytest.mark.parametrize(
    "override,col,message",
    [
        ("train.epochs=zero", 14, "must be an integer (got 'zero')"),
        ("seed=-1", 6, "must be >= 0 (got -1)"),
        ("model.layers.0.linear=-3", 23, "must be > 0 (got -3)"),
    ],
)
def test_a_bad_override_points_at_the_set(override: str, col: int, message: str) -> None:
    with pytest.raises(SpecErrors) as info:
        compile_with(override)
    (err,) = info.value.errors
    assert (err.span.file, err.span.line, err.span.col, err.span.text) == ("--set", 1, col, override)
    assert message in err.message


@pytest.mark.parametrize("override", ["train.epochs", "=3"])
def test_an_override_needs_key_and_value(override: str) -> None:
    with pytest.raises(SpecError, match="KEY=VALUE") as info:
        compile_with(override)
    assert info.value.span.file == "--set"


# ---- which YAML files are specs (udlc check --only-udlc, the pre-commit hook) ----------------------

WORKFLOW = """\
name: CI
on: [push]
jobs:
  test:
    runs-on: ubuntu-latest
    steps:
      - run: |
          udlc: 1
      - with: {udlc: 1}
"""


@pytest.mark.parametrize(
    "text,is_spec",
    [
        ("udlc: 1\nname: t\n", True),
        ("# a comment first\nname: t\nudlc: 1\n", True),  # anywhere at the top level
        ('"udlc": 1\n', True),
        ("{udlc: 1, name: t}\n", True),
        ("\ufeffudlc: 1\r\nname: t\r\n", True),  # a BOM and CRLF
        ("udlc: 1\nmodel: {layers: [\n", True),  # invalid YAML is still a spec, so that check reports it
        (WORKFLOW, False),  # only indented `udlc:` keys
        ("foo: {a: [\n", False),  # invalid YAML, not a spec
        ("", False),
        ("# udlc: 1\nudlc_version: 2\nudlcx: 1\nudlc:1\n", False),
    ],
)
def test_is_udlc_spec(tmp_path: Path, text: str, is_spec: bool) -> None:
    path = tmp_path / "f.yaml"
    path.write_bytes(text.encode())
    assert is_udlc_spec(path) is is_spec


def test_every_example_is_a_spec_and_this_repos_other_yaml_is_not() -> None:
    assert all(is_udlc_spec(path) for path in (ROOT / "examples").glob("*.yaml"))
    assert all(is_udlc_spec(path) for path in (ROOT / "tests" / "specs").rglob("*.yaml")
               if path.name not in ("empty.yaml", "comments_only.yaml", "root_list.yaml", "alias_bomb.yaml"))
    assert not is_udlc_spec(ROOT / ".pre-commit-hooks.yaml")


def test_an_unreadable_file_counts_as_a_spec(tmp_path: Path) -> None:
    # so that `udlc check` reports it instead of skipping it silently
    assert is_udlc_spec(tmp_path / "missing.yaml")


def test_the_pre_commit_hook_sees_the_files_the_examples_name() -> None:
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["entry"] == "udlc check" and "--only-udlc" in hook["args"]
    for path in [*(ROOT / "examples").glob("*.yaml"), Path("configs/net.yml")]:
        assert re.search(hook["files"], str(path)), path
