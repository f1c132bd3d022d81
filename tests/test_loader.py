"""The guarded YAML loader: plain data with 1-based source spans, YAML 1.2 floats, and caps on size, depth and
alias expansion; and `--set` overrides applied to a loaded document."""

from __future__ import annotations

from pathlib import Path

import pytest

from udlc.compiler.pipeline import apply_overrides, compile_doc
from udlc.errors import SpecError, SpecErrors, UdlcError
from udlc.spec.loader import (
    MAX_BYTES,
    MAX_DEPTH,
    MAX_NODES,
    dotted,
    load_bytes,
    load_file,
    load_text,
)

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "digits-mlp.yaml"

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


def test_nesting_depth_is_capped() -> None:
    def nested(depth: int) -> str:  # the root mapping is the first level
        return "x: " + "[" * (depth - 1) + "]" * (depth - 1)

    assert load_text(nested(MAX_DEPTH)).data["x"] is not None
    err = load_error(nested(MAX_DEPTH + 1))
    assert f"deeper than {MAX_DEPTH} levels" in err.message and (err.span.line, err.span.col) == (1, MAX_DEPTH + 3)


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


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "- a\n- b\n", "42\n", "just text\n"])
def test_a_spec_is_a_mapping(text: str) -> None:
    err = load_error(text)
    assert "file is empty" in err.message or "must be a mapping" in err.message
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
    return compile_doc(doc)


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
