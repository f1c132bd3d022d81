"""Data as named columns: standardized regression targets, CSV column names, `categorical` and `missing`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from udlc.data import Normalization, prepare
from udlc.data.file_kinds import load_arrays
from udlc.errors import SpecError, SpecErrors
from udlc.spec.data import DataSpec
from udlc.spec.loader import load_text
from udlc.spec.validate import validate_model


def spec(**kw) -> DataSpec:
    return DataSpec.model_validate(kw)


def write_csv(tmp_path: Path, text: str) -> Path:
    (tmp_path / "d.csv").write_text(text)
    return tmp_path


def houses(tmp_path: Path, n: int = 300) -> Path:
    rng = np.random.default_rng(0)
    sqft, rooms, age = rng.uniform(600, 4000, n), rng.integers(1, 7, n), rng.uniform(0, 80, n)
    price = 50_000 + 120 * sqft + 15_000 * rooms - 900 * age + rng.normal(0, 20_000, n)
    rows = "".join(f"{a:.0f},{b},{c:.1f},{d:.0f}\n" for a, b, c, d in zip(sqft, rooms, age, price))
    return write_csv(tmp_path, "sqft,rooms,age,price\n" + rows)


# ---- regression targets ---------------------------------------------------------------------------------


def test_regression_targets_are_standardized_on_train(tmp_path: Path) -> None:
    base = houses(tmp_path)
    ds = prepare(spec(source="d.csv", split=[0.6, 0.2, 0.2]), (3,), base, 0, task="regression")
    np.testing.assert_allclose(ds.y_train.mean(), 0, atol=1e-5)
    np.testing.assert_allclose(ds.y_train.std(), 1, atol=1e-4)
    raw = load_arrays(spec(source="d.csv"), base, 0).y
    norm = ds.target_normalization
    assert norm is not None and norm.shift.shape == (1,) and norm.shift[0] > 1e5
    assert norm.shift[0] != pytest.approx(raw.mean(), rel=1e-6)  # train rows only
    # invert() gives back the raw prices of every split, also after a JSON round trip
    back = Normalization.from_json(norm.to_json())
    restored = np.concatenate([back.invert(ds.y_train), back.invert(ds.y_val), back.invert(ds.y_test)]).ravel()
    np.testing.assert_allclose(np.sort(restored), np.sort(raw), rtol=1e-6)
    assert ds.y_val.dtype == np.float32 and ds.y_val.shape == (len(ds.x_val), 1)


def test_multi_value_targets_have_per_column_statistics(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    y = np.column_stack([rng.normal(5, 2, 50), rng.normal(-1000, 300, 50)]).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=rng.normal(size=(50, 3)).astype(np.float32), y=y)
    ds = prepare(spec(source="d.npz", split=[1, 0, 0]), (3,), tmp_path, 0)
    assert ds.task == "regression" and ds.target_normalization.shift.shape == (2,)
    np.testing.assert_allclose(ds.y_train.std(axis=0), [1, 1], atol=1e-4)
    norm = Normalization.from_json(ds.target_normalization.to_json())
    back = norm.invert(ds.y_train)  # the same rows, shuffled by the split: compare them sorted by column 0
    np.testing.assert_allclose(back[np.argsort(back[:, 0])], y[np.argsort(y[:, 0])], rtol=1e-5)


def test_classification_and_normalize_none_keep_raw_targets(tmp_path: Path) -> None:
    assert prepare(spec(source="iris"), (4,), Path("."), 0).target_normalization is None
    base = houses(tmp_path, 20)
    ds = prepare(spec(source="d.csv", normalize="none", split=[1, 0, 0]), (3,), base, 0, task="regression")
    assert ds.target_normalization is None and ds.y_train.mean() > 1e5
    diabetes = prepare(spec(source="diabetes"), (10,), Path("."), 0)  # minmax inputs, standardized targets
    assert diabetes.target_normalization.kind == "standard"


# ---- column names ---------------------------------------------------------------------------------------


def test_csv_columns_are_remembered_by_name(tmp_path: Path) -> None:
    base = houses(tmp_path, 20)
    ds = prepare(spec(source="d.csv", target="rooms", features=["age", "sqft"]), (2,), base, 0)
    assert ds.feature_columns == ["age", "sqft"] and ds.target_column == "rooms"
    np.save(tmp_path / "d.npy", np.zeros((10, 3)))
    np.savez(tmp_path / "d.npz", x=np.zeros((10, 2)), y=np.zeros(10))
    for source in ("iris", "d.npy", "d.npz"):
        ds = prepare(spec(source=source), (4,) if source == "iris" else (2,), tmp_path, 0)
        assert ds.feature_columns is None and ds.target_column is None and ds.categories == {}


# ---- categorical ----------------------------------------------------------------------------------------


PETS = "weight,color,city,kind\n3.5,red,Oslo,cat\n20,blue,Rome,dog\n4,red,Rome,cat\n30,green,Oslo,dog\n"


def test_categorical_columns_are_one_hot_in_place(tmp_path: Path) -> None:
    base = write_csv(tmp_path, PETS)
    arr = load_arrays(spec(source="d.csv", categorical=["color", "city"]), base, 0)
    assert arr.feature_columns == ["weight", "color=blue", "color=green", "color=red", "city=Oslo", "city=Rome"]
    assert arr.categories == {"color": ["blue", "green", "red"], "city": ["Oslo", "Rome"]}
    assert arr.x.tolist() == [[3.5, 0, 0, 1, 1, 0], [20, 1, 0, 0, 0, 1], [4, 0, 0, 1, 0, 1], [30, 0, 1, 0, 1, 0]]
    assert arr.classes == ["cat", "dog"] and arr.target_column == "kind"
    ds = prepare(spec(source="d.csv", categorical=["color", "city"], split=[1, 0, 0]), (6,), base, 0)
    assert ds.categories == arr.categories and ds.feature_columns == arr.feature_columns
    # features choose the order; a one-hot group stays where its column is
    arr = load_arrays(spec(source="d.csv", features=["city", "weight"], categorical=["city"]), base, 0)
    assert arr.feature_columns == ["city=Oslo", "city=Rome", "weight"]


def test_categorical_feature_count_is_checked_against_the_model(tmp_path: Path) -> None:
    base = write_csv(tmp_path, PETS)
    with pytest.raises(SpecError) as e:
        prepare(spec(source="d.csv", categorical=["color", "city"]), (3,), base, 0)
    assert e.value.path == "model.input" and "samples of 6 values" in e.value.message


def test_categorical_errors_in_the_file(tmp_path: Path) -> None:
    base = write_csv(tmp_path, PETS)
    with pytest.raises(SpecError) as e:
        load_arrays(spec(source="d.csv", categorical=["colour"]), base, 0)
    assert e.value.path == "data.categorical" and "color" in e.value.hint
    with pytest.raises(SpecError) as e:
        load_arrays(spec(source="d.csv", categorical=["kind"]), base, 0)  # the default target, the last column
    assert e.value.path == "data.categorical" and "target" in e.value.message
    with pytest.raises(SpecError) as e:
        load_arrays(spec(source="d.csv"), base, 0)
    assert "column 'color': 'red' is not a number" in e.value.message and "data.categorical" in e.value.hint


def data_errors(text: str) -> list[SpecError]:
    doc = load_text(text)
    with pytest.raises(SpecErrors) as e:
        validate_model(DataSpec, doc.data["data"], doc, ("data",))
    return e.value.errors


@pytest.mark.parametrize("text, path, words", [
    ("data: {source: iris, categorical: [color]}", "data.categorical", "applies only to CSV files"),
    ("data: {source: d.npz, missing: mean}", "data.missing", "applies only to CSV files"),
    ("data: {source: d.csv, categorical: [a, a]}", "data.categorical", "lists 'a' twice"),
    ("data: {source: d.csv, target: a, categorical: [a]}", "data.categorical", "'a' is the target column"),
    ("data: {source: d.csv, features: [b], categorical: [a]}", "data.categorical", "not among data.features"),
    ("data: {source: d.csv, missing: fill}", "data.missing", "must be one of error, drop, mean"),
])
def test_options_validated_without_the_file(text: str, path: str, words: str) -> None:
    (err,) = data_errors(text)
    assert err.path == path and words in err.message and err.span is not None and err.span.line == 1


# ---- missing values -------------------------------------------------------------------------------------


GAPS = "a,b,c,y\n1,2,x,0\n,4,y,1\n5,,x,0\n7,8,y,\n9,10,x,1\n11,12,y,0\n"


def test_missing_error_is_the_default(tmp_path: Path) -> None:
    base = write_csv(tmp_path, GAPS)
    with pytest.raises(SpecError) as e:
        load_arrays(spec(source="d.csv", categorical=["c"]), base, 0)
    assert "d.csv line 3, column 'a': empty cell" in e.value.message and "missing" in e.value.hint


def test_missing_drop_drops_rows_with_an_empty_feature_or_target(tmp_path: Path) -> None:
    base = write_csv(tmp_path, GAPS)
    arr = load_arrays(spec(source="d.csv", categorical=["c"], missing="drop"), base, 0)
    assert arr.x[:, 0].tolist() == [1, 9, 11] and arr.y.tolist() == [0, 1, 0] and arr.dropped_rows == 3
    ds = prepare(spec(source="d.csv", categorical=["c"], missing="drop", split=[1, 0, 0]), (4,), base, 0)
    assert ds.dropped_rows == 3 and len(ds.x_train) == 3
    # an empty cell in a column the spec does not read drops nothing
    arr = load_arrays(spec(source="d.csv", features=["c"], categorical=["c"], missing="drop"), base, 0)
    assert len(arr.x) == 5
    write_csv(tmp_path, "a,y\n,1\n2,\n")
    with pytest.raises(SpecError) as e:
        load_arrays(spec(source="d.csv", missing="drop"), base, 0)
    assert e.value.path == "data.missing" and "leaves no samples" in e.value.message


def test_missing_mean_fills_with_the_train_mean(tmp_path: Path) -> None:
    base = write_csv(tmp_path, "a,b,y\n" + "".join(f"{i},{'' if i % 4 == 0 else 10 * i},{i % 2}\n" for i in range(40)))
    s = spec(source="d.csv", missing="mean", normalize="none")
    ds = prepare(s, (2,), base, 0)
    raw = load_arrays(s, base, 0).x
    assert np.isnan(raw[:, 1]).sum() == 10 and not np.isnan(ds.x_train).any() and not np.isnan(ds.x_test).any()
    # the train rows are the ones whose column-a value shows up in x_train
    train_rows = np.isin(raw[:, 0], ds.x_train[:, 0])
    expected = np.nanmean(raw[train_rows, 1].astype(np.float64))
    assert expected != pytest.approx(np.nanmean(raw[:, 1]))  # so the test tells train from all rows
    assert ds.fill_values == {"a": pytest.approx(raw[train_rows, 0].mean()), "b": pytest.approx(expected)}
    filled = np.concatenate([ds.x_train, ds.x_val, ds.x_test])
    assert set(filled[np.isin(filled[:, 0], raw[np.isnan(raw[:, 1]), 0]), 1]) == {np.float32(expected)}


def test_missing_mean_refuses_what_it_cannot_fill(tmp_path: Path) -> None:
    base = write_csv(tmp_path, "a,c,y\n1,x,0\n2,,1\n")
    with pytest.raises(SpecError) as e:
        load_arrays(spec(source="d.csv", categorical=["c"], missing="mean"), base, 0)
    assert "empty cell in a categorical column" in e.value.message and "missing: drop" in e.value.hint
    write_csv(tmp_path, "a,y\n1,0\n2,\n")
    with pytest.raises(SpecError) as e:
        load_arrays(spec(source="d.csv", missing="mean"), base, 0)
    assert "empty target cell" in e.value.message and "missing: drop" in e.value.hint
    write_csv(tmp_path, "a,b,y\n1,,0\n2,,1\n3,,1\n")
    with pytest.raises(SpecError) as e:
        prepare(spec(source="d.csv", missing="mean"), (2,), base, 0)
    assert e.value.path == "data.missing" and "column 'b' has no values in the training split" in e.value.message
