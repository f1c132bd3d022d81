"""The data-source registry (udlc/spec/sources.py): every registered set loads and is what `udlc check` says it
is; every file kind has its readers; and a registration with its generator is all a new set needs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from udlc.data import prepare
from udlc.data.builtin_sets import GENERATORS
from udlc.data.file_kinds import FILE_READERS, load_arrays, peek
from udlc.data.peek import builtin_signature
from udlc.errors import SpecError
from udlc.spec.data import BUILTIN_SOURCES, FILE_SUFFIXES, NODE_SET_SOURCES, PICTURE_SOURCES, SEQUENCE_SOURCES, TEXT_SOURCES, DataSpec
from udlc.spec.sources import SOURCES, BuiltinSet, FileKind, SourceRegistry

BUILTIN = SOURCES.builtin()
HERE = Path(".")


def spec(**kw) -> DataSpec:
    return DataSpec.model_validate(kw)


@pytest.mark.parametrize("entry", BUILTIN, ids=lambda e: e.name)
def test_every_set_loads_as_its_signature_says(entry: BuiltinSet) -> None:
    # Enough samples that a generated set shows every class.
    count = {"samples": 300} if entry.generated else {}
    sig = peek(spec(source=entry.name, **count), HERE)
    arrays = load_arrays(spec(source=entry.name, **count), HERE, seed=0)
    assert sig == builtin_signature(entry)
    assert arrays.x.dtype == np.float32 and np.isfinite(arrays.x).all()
    assert sig.natural_shape == arrays.x.shape[1:] and sig.sample_size == math.prod(arrays.x.shape[1:])
    assert sig.task == arrays.task and sig.classes == arrays.classes
    assert sig.target_width == math.prod(arrays.y.shape[1:])
    if entry.classes is None:
        assert arrays.y.dtype == np.float32 and np.isfinite(arrays.y).all()
    else:  # the labels are exactly the classes' indices: none missing, none beyond
        assert arrays.y.dtype == np.int64 and arrays.y.shape == (len(arrays.x),)
        assert set(np.unique(arrays.y).tolist()) == set(range(len(entry.classes)))
    if sig.text_labels:  # text labels are the ones prepare() refuses to read as regression targets
        with pytest.raises(SpecError, match="regression needs numeric targets"):
            prepare(spec(source=entry.name), sig.natural_shape, HERE, 0, task="regression")


@pytest.mark.parametrize("entry", BUILTIN, ids=lambda e: e.name)
def test_samples_noise_and_seed(entry: BuiltinSet) -> None:
    count = {"samples": 50} if entry.generated else {}  # a fixed set takes no count (check refuses one)
    a, b, c = (load_arrays(spec(source=entry.name, **count), HERE, seed) for seed in (1, 1, 2))
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y)
    if not entry.generated:  # a fixed set is the same whatever the seed
        assert entry.keys == frozenset() and np.array_equal(a.x, c.x)
        return
    assert entry.keys == {"samples", "noise"} and entry.noise >= 0
    assert len(a.x) == 50 and not np.array_equal(a.x, c.x)
    quiet = load_arrays(spec(source=entry.name, samples=50, noise=0), HERE, 1)
    assert not np.array_equal(a.x, quiet.x) or not np.array_equal(a.y, quiet.y)  # the default noise is used


@pytest.mark.parametrize("entry", [e for e in BUILTIN if not e.generated], ids=lambda e: e.name)
def test_bundled_class_names_are_scikit_learns(entry: BuiltinSet) -> None:
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{entry.name}")()
    names = getattr(bunch, "target_names", None) if entry.classes is not None else None
    assert entry.classes == (None if names is None else tuple(str(c) for c in names))


def test_every_file_kind_has_a_loader_and_a_header_reader() -> None:
    kinds = {e.name for e in SOURCES.files() if not e.text}  # text (.txt) is tokenized by udlc.data.text
    assert kinds == set(FILE_READERS) == set(FILE_SUFFIXES) - {".txt"} | {"/"}
    for suffix in set(FILE_SUFFIXES):
        assert spec(source=f"data/d{suffix.upper()}").is_file()
    for folder in ("pictures/", "data/pictures"):  # a folder of pictures: a path with a slash, no suffix
        assert spec(source=folder, image_size=8).is_file()


def test_spec_names_come_from_the_registry() -> None:
    assert BUILTIN_SOURCES == tuple(e.name for e in BUILTIN)
    for entry in BUILTIN:
        assert not spec(source=entry.name).is_file()
    with pytest.raises(ValidationError) as e:
        spec(source="digitz")
    (err,) = e.value.errors()
    assert err["type"] == "unknown_source" and err["ctx"]["allowed"] == [*BUILTIN_SOURCES, *TEXT_SOURCES, *SEQUENCE_SOURCES,
                                                                  *NODE_SET_SOURCES, *PICTURE_SOURCES]
    assert err["ctx"]["hint"] == "or a .csv, .npz, .npy or .txt file, or a folder of pictures written with a slash " \
                                 "(`pictures/`)"
    with pytest.raises(ValidationError, match="applies only to CSV files"):
        spec(source="d.npz", categorical=["color"])
    with pytest.raises(ValidationError, match="applies only to CSV files"):
        spec(source="moons", missing="drop")
    # a file is read as it is: how many samples to generate, and their noise, are the generated sets' alone
    for key in ("samples", "noise"):
        with pytest.raises(ValidationError, match=f"applies only to a set udlc generates .*leave `{key}` out"):
            spec(source="d.npz", **{key: 3 if key == "noise" else 300})
        assert getattr(spec(source="moons", **{key: 300}), key) == 300


def test_a_new_set_is_a_registration_and_a_generator(monkeypatch: pytest.MonkeyPatch) -> None:
    def squares(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        x = rng.uniform(-1, 1, size=(n, 3))
        return x, (x**2).sum(axis=1, keepdims=True) + rng.normal(0, noise, size=(n, 1))

    SOURCES.register(BuiltinSet(name="squares", shape=(3,), classes=None, noise=0.0))
    monkeypatch.setitem(GENERATORS, "squares", squares)
    try:
        s = spec(source="squares", samples=20)
        assert not s.is_file()
        arrays = load_arrays(s, HERE, 0)
        assert arrays.x.shape == (20, 3) and arrays.task == "regression"
        assert peek(s, HERE) == builtin_signature(SOURCES.find("squares"))
    finally:
        SOURCES._entries.pop("squares")  # the registry has no unregister: nothing else needs one


def test_registration_refuses_mistakes() -> None:
    fresh = SourceRegistry()
    ok = BuiltinSet(name="a", shape=(1,), classes=None)
    fresh.register(ok)
    for bad in (ok, BuiltinSet(name=".b", shape=(1,), classes=None), BuiltinSet(name="c", shape=(1,), classes=("only",)),
                FileKind(name="tsv", keys=frozenset()), FileKind(name=".TSV", keys=frozenset())):
        with pytest.raises(ValueError):
            fresh.register(bad)
    assert fresh.find("a") is ok and fresh.find("x.a") is None and fresh.find(".b") is None
