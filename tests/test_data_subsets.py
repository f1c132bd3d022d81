"""`data.fraction` and `data.limit`: a subset of the training split drawn reproducibly and in proportion to the
classes, by the tasks whose data udlc.data.prepare splits (`Task.draws_subsets`); the others, and a limit past a
built-in set's training split, refused by `check` at the line, with the number training would find."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from udlc.errors import SpecError, SpecErrors


def prepared(source: str = "wine", seed: int = 0, **subset):
    from udlc.data import prepare
    from udlc.spec.data import DataSpec

    return prepare(DataSpec(source=source, **subset), None, Path("."), seed, None)


def test_fraction_is_reproducible_stratified_and_trains_only():
    whole, half = prepared(), prepared(fraction=0.5)
    assert len(half.x_train) == round(len(whole.x_train) * 0.5)
    np.testing.assert_array_equal(prepared(fraction=0.5).x_train, half.x_train)  # same seed, same rows
    other = prepared(seed=1, fraction=0.5)
    assert not np.array_equal(np.sort(other.y_train), np.sort(half.y_train)) or \
        not np.allclose(other.x_train.sum(), half.x_train.sum())
    counts, kept = np.bincount(whole.y_train), np.bincount(half.y_train)
    assert np.all(np.abs(kept - counts * len(half.x_train) / len(whole.x_train)) < 1)  # in proportion, within 1
    raw_whole, raw_half = (d.normalization.invert(d.x_val) for d in (whole, half))
    np.testing.assert_allclose(raw_half, raw_whole, rtol=1e-5, atol=1e-4)  # validation and test: the same rows
    np.testing.assert_array_equal(half.y_test, whole.y_test)
    train_rows = {tuple(r) for r in np.round(whole.normalization.invert(whole.x_train), 3)}
    assert {tuple(r) for r in np.round(half.normalization.invert(half.x_train), 3)} <= train_rows


def test_limit_counts_rows_and_refuses_more_than_the_split():
    assert len(prepared(limit=20).x_train) == 20
    with pytest.raises(SpecError, match="more than the training split's 142 samples") as e:
        prepared(limit=500)
    assert e.value.path == "data.limit"


CONTRACT = Path(__file__).parent / "specs" / "contract"


def with_subset(task: str, subset: str, source: str | None = None) -> str:
    """The task's contract spec (tests/specs/contract/) with `subset` (and another source) in its data mapping."""
    text = (CONTRACT / f"{task}.yaml").read_text()
    line = next(x for x in text.splitlines() if x.startswith("data: {"))
    new = line.replace("data: {", f"data: {{{subset}, ")
    if source is not None:
        new = new.replace(f"source: {line.split('source: ')[1].split(',')[0]}", f"source: {source}")
    return text.replace(line, new)


def test_subsets_where_the_task_draws_them():
    """Each task's `draws_subsets` against its contract spec: where udlc.data.prepare splits the data, `limit`
    is accepted; elsewhere it is refused at data.limit's line (by the source's check, or by the task's)."""
    from udlc.tasks import TASKS
    from udlc.tasks.check import compile_doc
    from udlc.spec.loader import load_text

    drawing = {name for name, task in TASKS.items() if task.draws_subsets}
    assert drawing == {"supervised", "auxiliary", "forecasting", "autoencoder", "vae", "gan", "diffusion",
                       "sequence_classification"}
    for name, task in TASKS.items():
        text = with_subset(name, "limit: 9")
        line = 1 + text.splitlines().index(next(x for x in text.splitlines() if "limit: 9" in x))
        if name in drawing:
            assert compile_doc(load_text(text, "s.yaml"), check_files=False).spec.data.limit == 9
            continue
        with pytest.raises(SpecErrors) as e:
            compile_doc(load_text(text, "s.yaml"), check_files=False)
        assert [(err.path, err.span.line) for err in e.value.errors] == [("data.limit", line)], name


@pytest.mark.parametrize("task", ["node_classification", "link_prediction"])
def test_a_graph_file_draws_no_subset(task):
    """A graph's NPZ is a file of rows as far as the source check sees; the task's own check refuses `limit`."""
    from udlc.tasks.check import compile_doc
    from udlc.spec.loader import load_text

    with pytest.raises(SpecErrors) as e:
        compile_doc(load_text(with_subset(task, "fraction: 0.5", "g.npz"), "s.yaml"), check_files=False)
    (error,) = e.value.errors
    assert error.path == "data.fraction" and error.span.line == 6 and error.hint == "leave `fraction` out"
    assert f"task {task} splits its data its own way" in error.message


def test_generated_sets_make_the_samples_limit_counts_by():
    from udlc.data.layout import DEFAULT_SAMPLES
    from udlc.spec.data import GENERATED_SAMPLES

    assert DEFAULT_SAMPLES == GENERATED_SAMPLES == len(prepared("moons", split=[1.0, 0.0, 0.0]).x_train)


def test_fixed_sets_counts_are_scikit_learns():
    from sklearn import datasets

    from udlc.spec.sources import SOURCES

    for name in ("iris", "wine", "breast_cancer", "diabetes", "digits"):
        assert SOURCES.find(name).count == len(getattr(datasets, f"load_{name}")().target), name


@pytest.mark.parametrize("limit, split", [(1438, [0.8, 0.1, 0.1]), (1257, [0.7, 0.15, 0.15])])
def test_check_counts_a_fixed_sets_training_split(limit, split):
    """check refuses a limit one past the training split udlc.data.prepare makes of digits, and accepts that split."""
    from udlc.spec.loader import load_text
    from udlc.tasks.check import compile_doc

    n = len(prepared("digits", split=split).x_train)
    text = with_subset("supervised", f"limit: {limit}").replace("split: [0.8, 0.1, 0.1]", f"split: {split}")
    if limit > n:
        with pytest.raises(SpecErrors) as e:
            compile_doc(load_text(text, "s.yaml"), check_files=False)
        (error,) = e.value.errors
        assert (error.path, error.span.line) == ("data.limit", 6)
        assert f"more than the training split's {n} samples" in error.message and f"at most {n}" in error.hint
    else:
        assert compile_doc(load_text(text, "s.yaml"), check_files=False).spec.data.limit == limit


def text_rows(tmp_path: Path, subset: str) -> tuple[list, list]:
    """The training rows a text classifier reads from a 300-row CSV of two unequal classes, under `subset`."""
    from udlc.tasks.check import compile_spec

    rows = [f"row {i} {'spam' if i % 3 == 0 else 'ham'},{'a' if i % 3 == 0 else 'b'}" for i in range(300)]
    (tmp_path / "t.csv").write_text("text,label\n" + "\n".join(rows) + "\n")
    (tmp_path / "t.yaml").write_text((CONTRACT / "sequence_classification.yaml").read_text())
    compiled = compile_spec(tmp_path / "t.yaml", [f"data.source={tmp_path / 't.csv'}", "data.text=text",
                                                 "data.target=label", "data.split=[0.5, 0.25, 0.25]", subset])
    data = compiled.task.load_data(compiled)
    return data.splits["train"], data.splits["test"]


def test_a_text_column_draws_its_subset_by_class(tmp_path):
    whole, whole_test = text_rows(tmp_path, "seed=0")
    half, half_test = text_rows(tmp_path, "data.fraction=0.5")
    assert len(whole) == 150 and len(half) == 75
    assert [int(r["target"]) for r in half].count(0) == round(75 * [int(r["target"]) for r in whole].count(0) / 150)
    assert {tuple(r["tokens"]) for r in half} <= {tuple(r["tokens"]) for r in whole}  # a subset of the same split
    assert [tuple(r["tokens"]) for r in half_test] == [tuple(r["tokens"]) for r in whole_test]
    again, _ = text_rows(tmp_path, "data.fraction=0.5")
    assert [tuple(r["tokens"]) for r in again] == [tuple(r["tokens"]) for r in half]  # the same seed, the same rows


def test_check_counts_a_text_columns_rows_for_limit(tmp_path):
    with pytest.raises(SpecErrors) as e:
        text_rows(tmp_path, "data.limit=151")
    (error,) = e.value.errors
    assert error.path == "data.limit" and "more than the training split's 150 rows" in error.message
    assert len(text_rows(tmp_path, "data.limit=150")[0]) == 150
