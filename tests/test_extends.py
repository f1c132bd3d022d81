"""`extends: base.yaml` (a spec as another plus what differs, merged key by key, lists replaced) and
`model.params` (values the top-level layers use as `$name`): a family of models as one base and a line each."""

from __future__ import annotations

from pathlib import Path

import pytest

from udlc.errors import SpecError, SpecErrors
from udlc.tasks import compile_spec, compile_text

BASE = """\
udlc: 1
name: base
data: {source: digits, split: [0.8, 0.1, 0.1]}
model:
  input: [64]
  params: {width: 1.0}
  layers:
    - linear: round(32 * $width)
    - relu
    - linear: 10
loss: cross_entropy
metrics: [accuracy, f1_macro]
optimizer: {type: adam, lr: 0.01}
train: {epochs: 3, batch_size: 32}
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_spec_extends_its_base_mappings_merged_and_lists_replaced(tmp_path: Path) -> None:
    write(tmp_path / "base.yaml", BASE)
    wide = write(tmp_path / "wide.yaml", "udlc: 1\nextends: base.yaml\nname: wide\nmodel:\n  params: {width: 2.5}\n"
                                         "metrics: [accuracy]\ntrain: {epochs: 5}\n")
    compiled = compile_spec(wide)
    spec = compiled.spec
    assert spec.name == "wide" and spec.optimizer.lr == 0.01  # the base's, where the file says nothing
    assert spec.train.epochs == 5 and spec.train.batch_size == 32  # a mapping merged key by key
    assert [m.type for m in spec.metrics] == ["accuracy"]  # a list replaced whole
    assert compiled.graph.nodes["linear"].shape == (80,)  # round(32 * 2.5): the base's layers, the file's width
    assert "extends" not in compiled.doc.data  # the run folder keeps the whole spec


def test_a_section_of_another_type_replaces_the_bases_whole(tmp_path: Path) -> None:
    write(tmp_path / "base.yaml", BASE.replace("optimizer: {type: adam, lr: 0.01}",
                                               "optimizer: {type: sgd, lr: 0.1, momentum: 0.9}\n"
                                               "schedule: {type: step, step_size: 2, gamma: 0.5}"))
    child = write(tmp_path / "child.yaml", "udlc: 1\nextends: base.yaml\nname: child\nschedule: {type: constant}\n"
                                           "optimizer: {adamw: {lr: 0.003}}\n")
    spec = compile_spec(child).spec
    assert spec.schedule.type == "constant" and spec.optimizer.type == "adamw" and spec.optimizer.lr == 0.003


def test_an_error_in_a_value_from_the_base_points_into_the_base(tmp_path: Path) -> None:
    base = write(tmp_path / "family" / "base.yaml", BASE.replace("linear: 10", "linear: -10"))
    child = write(tmp_path / "child.yaml", "udlc: 1\nextends: family/base.yaml\nname: child\n"
                                           "train: {epochs: 0}\n")
    with pytest.raises(SpecErrors) as info:
        compile_spec(child)
    where = {(Path(e.span.file).name, e.span.line) for e in info.value.errors}
    assert ("base.yaml", 10) in where and ("child.yaml", 4) in where, info.value.errors
    assert base.is_file()


def test_a_data_file_named_in_the_base_is_found_beside_the_base(tmp_path: Path) -> None:
    rows = "\n".join(f"{i % 7},{(i * 3) % 5},{i % 2}" for i in range(60))
    write(tmp_path / "family" / "pets.csv", "a,b,label\n" + rows + "\n")
    write(tmp_path / "family" / "base.yaml", BASE.replace("source: digits", "source: pets.csv").replace(
        "input: [64]", "input: [2]").replace("linear: 10", "linear: 2"))
    child = write(tmp_path / "runs" / "child.yaml", "udlc: 1\nextends: ../family/base.yaml\nname: child\n")
    compiled = compile_spec(child)
    assert (compiled.base_dir / compiled.spec.data.source).resolve() == (tmp_path / "family" / "pets.csv").resolve()


@pytest.mark.parametrize("files, words", [
    ({"a.yaml": "udlc: 1\nextends: b.yaml\nname: a\n", "b.yaml": "udlc: 1\nextends: a.yaml\nname: b\n"},
     "extends goes round in a circle: a.yaml → b.yaml → a.yaml"),
    ({"a.yaml": "udlc: 1\nextends: nowhere.yaml\nname: a\n"}, "extends: no spec file at"),
    ({"a.yaml": "udlc: 1\nextends: [b.yaml]\nname: a\n"}, "extends names the spec file"),
])
def test_a_bad_extends_is_refused_at_its_line(tmp_path: Path, files: dict, words: str) -> None:
    for name, text in files.items():
        write(tmp_path / name, text)
    with pytest.raises(SpecError) as info:
        compile_spec(tmp_path / "a.yaml")
    assert words in info.value.message and info.value.span.line == 2, info.value


def test_extends_needs_a_file_to_be_relative_to() -> None:
    with pytest.raises(SpecErrors, match="given as text"):
        compile_text(BASE.replace("name: base", "extends: base.yaml\nname: x"))


def test_model_params_at_the_top_level_and_a_missing_one_named() -> None:
    assert compile_text(BASE.replace("width: 1.0", "width: 0.5")).graph.nodes["linear"].shape == (16,)
    with pytest.raises(SpecErrors) as info:
        compile_text(BASE.replace("params: {width: 1.0}", "params: {depth: 1.0}"), file="spec.yaml")
    (err,) = info.value.errors
    assert err.span.line == 8 and "unknown parameter '$width'" in err.message and "depth" in err.hint, err
