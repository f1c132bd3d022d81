"""The data package: sources, reshape/split/normalize, augmentation, minibatches."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from udlc.data import (
    InMemoryBatches,
    LoaderBatches,
    Normalization,
    augment_batch,
    make_batches,
    prepare,
)
from udlc.data.file_kinds import load_arrays
from udlc.errors import SpecError
from udlc.spec.data import DataSpec
from udlc.spec.sources import SOURCES, BuiltinSet


def spec(**kw) -> DataSpec:
    return DataSpec.model_validate(kw)


@pytest.mark.parametrize("entry", SOURCES.builtin(), ids=lambda e: e.name)
def test_builtin_sources_prepare(entry: BuiltinSet) -> None:
    source, n_features = entry.name, math.prod(entry.shape)
    n_classes = len(entry.classes) if entry.classes is not None else None
    count = {"samples": 60} if entry.generated else {}  # a fixed set takes no count (check refuses one)
    ds = prepare(spec(source=source, **count), (n_features,), Path("."), seed=0)
    n = len(ds.x_train) + len(ds.x_val) + len(ds.x_test)
    assert ds.x_train.shape[1:] == (n_features,) and ds.x_train.dtype == np.float32
    assert np.isfinite(ds.x_train).all()
    if n_classes is None:
        assert ds.task == "regression" and ds.classes is None and ds.n_classes is None
        assert ds.y_train.shape == (len(ds.x_train), entry.target_width) and ds.y_train.dtype == np.float32
    else:
        assert ds.task == "classification" and ds.n_classes == n_classes == len(ds.classes)
        assert ds.y_train.dtype == np.int64 and ds.y_train.shape == (len(ds.x_train),)
        assert 0 <= ds.y_train.min() and ds.y_train.max() < n_classes
    if entry.generated:
        assert n == 60  # generated sets honor `samples`


def test_bundled_class_names() -> None:
    assert load_arrays(spec(source="iris"), Path("."), 0).classes == ["setosa", "versicolor", "virginica"]
    assert load_arrays(spec(source="digits"), Path("."), 0).classes == [str(i) for i in range(10)]


def test_generated_is_seeded() -> None:
    a, b, c = (load_arrays(spec(source="spirals", samples=30), Path("."), s) for s in (1, 1, 2))
    assert np.array_equal(a.x, b.x) and not np.array_equal(a.x, c.x)
    xor = load_arrays(spec(source="xor", samples=200, noise=0), Path("."), 0)
    assert np.array_equal(xor.y, (np.sign(xor.x[:, 0]) != np.sign(xor.x[:, 1])).astype(np.int64))


def test_digits_reshape_and_mismatch() -> None:
    ds = prepare(spec(source="digits"), (1, 8, 8), Path("."), seed=0)
    assert ds.x_train.shape[1:] == (1, 8, 8) and ds.input_shape == (1, 8, 8)
    assert ds.normalization.shift.shape == (1, 1, 1)  # per channel
    with pytest.raises(SpecError) as e:
        prepare(spec(source="digits"), (3, 8, 8), Path("."), seed=0)
    assert e.value.path == "model.input"
    assert "digits gives samples of 64 values, but model.input [3, 8, 8] holds 192" in e.value.message


def test_split_sizes_and_determinism() -> None:
    s = spec(source="moons", samples=100, split=[0.6, 0.4, 0.0])
    a, b, c = (prepare(s, (2,), Path("."), seed=k) for k in (3, 3, 4))
    assert (len(a.x_train), len(a.x_val), len(a.x_test)) == (60, 40, 0)
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_val, b.y_val)
    assert not np.array_equal(a.x_train, c.x_train)
    with pytest.raises(SpecError) as e:  # a file's rows are counted when it is read
        prepare(spec(source="moons", samples=3, split=[0.4, 0.3, 0.3]).model_copy(update={"samples": 2}), (2,),
                Path("."), seed=0)
    assert e.value.path == "data.split"
    with pytest.raises(ValidationError, match="2 samples are too few"):  # a generated set's, when validated
        spec(source="moons", samples=2, split=[0.4, 0.3, 0.3])


def test_normalization_fits_train_only() -> None:
    s = spec(source="wine", split=[0.5, 0.25, 0.25])
    ds = prepare(s, (13,), Path("."), seed=0)
    np.testing.assert_allclose(ds.x_train.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(ds.x_train.std(axis=0), 1, atol=1e-3)
    raw = load_arrays(s, Path("."), 0).x
    assert not np.allclose(ds.normalization.shift, raw.mean(axis=0))
    # apply_normalization on raw data reproduces the stored splits, and survives a JSON round trip
    norm = Normalization.from_json(ds.normalization.to_json())
    full = norm.apply_normalization(raw)
    assert any(np.allclose(full[i], ds.x_train[0], atol=1e-5) for i in range(len(raw)))
    mm = prepare(spec(source="wine", normalize="minmax"), (13,), Path("."), seed=0)
    assert mm.x_train.min() == pytest.approx(0) and mm.x_train.max() == pytest.approx(1)
    none = prepare(spec(source="wine", normalize="none"), (13,), Path("."), seed=0)
    assert set(np.unique(raw)) >= set(np.unique(none.x_train))


def test_channel_normalization_shape() -> None:
    norm = Normalization.fit("standard", np.random.default_rng(0).normal(3, 2, (20, 2, 5)).astype(np.float32))
    assert norm.shift.shape == norm.scale.shape == (2, 1)


def write_csv(tmp_path: Path, text: str) -> Path:
    (tmp_path / "d.csv").write_text(text)
    return tmp_path


def test_csv_string_labels(tmp_path: Path) -> None:
    base = write_csv(tmp_path, "a,b,kind\n1,2,dog\n3,4,cat\n5,6,dog\n7,8,bird\n\n")
    arr = load_arrays(spec(source="d.csv"), base, 0)
    assert arr.classes == ["bird", "cat", "dog"] and arr.y.tolist() == [2, 1, 2, 0]
    assert arr.x.tolist() == [[1, 2], [3, 4], [5, 6], [7, 8]] and arr.task == "classification"


def test_csv_named_target_and_features(tmp_path: Path) -> None:
    base = write_csv(tmp_path, "price,rooms,age\n1.5,2,10\n2.5,3,20\n3.5,4,30\n")
    arr = load_arrays(spec(source="d.csv", target="price", features=["age"]), base, 0)
    assert arr.x.tolist() == [[10], [20], [30]] and arr.y.tolist() == [1.5, 2.5, 3.5]
    ds = prepare(spec(source="d.csv", target="price", split=[1, 0, 0]), (2,), base, 0, task="regression")
    assert ds.y_train.shape == (3, 1)
    with pytest.raises(SpecError) as e:
        load_arrays(spec(source="d.csv", target="prize"), base, 0)
    assert e.value.path == "data.target" and "price" in e.value.hint


def test_csv_bad_cells(tmp_path: Path) -> None:
    base = write_csv(tmp_path, "a,b,y\n1,2,0\n3,oops,1\n")
    with pytest.raises(SpecError) as e:
        load_arrays(spec(source="d.csv"), base, 0)
    assert "d.csv line 3, column 'b'" in e.value.message and e.value.span is None
    write_csv(tmp_path, "a,b,y\n1,,0\n")
    with pytest.raises(SpecError, match="line 2, column 'b': empty cell"):
        load_arrays(spec(source="d.csv"), base, 0)
    write_csv(tmp_path, "a,b,y\n1,2\n")
    with pytest.raises(SpecError, match="line 2: 2 cells"):
        load_arrays(spec(source="d.csv"), base, 0)
    with pytest.raises(SpecError, match="not found") as e:
        load_arrays(spec(source="missing.csv"), base, 0)
    assert e.value.path == "data.source"


def test_npz_round_trip(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(10, 1, 4, 4)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(10) % 2, images=x * 2, labels=np.array(["a", "b"] * 5))
    arr = load_arrays(spec(source="d.npz"), tmp_path, 0)
    assert np.array_equal(arr.x, x) and arr.y.tolist() == [0, 1] * 5
    arr = load_arrays(spec(source="d.npz", features=["images"], target="labels"), tmp_path, 0)
    assert np.array_equal(arr.x, x * 2) and arr.classes == ["a", "b"]
    ds = prepare(spec(source="d.npz", split=[0.8, 0.2, 0]), (16,), tmp_path, 0)
    assert ds.x_train.shape == (8, 16) and ds.n_classes == 2
    with pytest.raises(SpecError) as e:
        load_arrays(spec(source="d.npz", target="label"), tmp_path, 0)
    assert e.value.path == "data.target" and "labels" in e.value.hint


def test_npz_refuses_pickles(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.zeros((2, 2)), y=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(SpecError, match="cannot read"):
        load_arrays(spec(source="d.npz"), tmp_path, 0)


def test_npy_round_trip(tmp_path: Path) -> None:
    data = np.column_stack([np.arange(6.0), np.arange(6.0) * 2, np.arange(6) % 3])
    np.save(tmp_path / "d.npy", data)
    arr = load_arrays(spec(source="d.npy"), tmp_path, 0)
    assert arr.x.shape == (6, 2) and arr.y.tolist() == [0, 1, 2, 0, 1, 2] and arr.task == "classification"
    arr = load_arrays(spec(source="d.npy", target=0), tmp_path, 0)
    assert arr.y.tolist() == list(range(6)) and arr.x[:, 0].tolist() == (np.arange(6.0) * 2).tolist()
    with pytest.raises(SpecError) as e:
        load_arrays(spec(source="d.npy", target=5), tmp_path, 0)
    assert e.value.path == "data.target"


AUGMENTS = [{"random_crop": {"size": 8, "padding": 2}}, "hflip", {"rotate": 15}, {"brightness": 0.2},
            {"contrast": 0.3}, {"noise": 0.1}]


def test_augment_shapes_and_determinism() -> None:
    import torch

    augs = spec(source="digits", augment=AUGMENTS).augment
    x = torch.randn(5, 1, 8, 8)
    a = augment_batch(x, augs, torch.Generator().manual_seed(7))
    b = augment_batch(x, augs, torch.Generator().manual_seed(7))
    c = augment_batch(x, augs, torch.Generator().manual_seed(8))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    vec = spec(source="iris", augment=[{"noise": 0.1}, {"brightness": 0.1}]).augment
    assert augment_batch(torch.zeros(4, 3), vec, torch.Generator()).shape == (4, 3)
    with pytest.raises(ValueError, match="image batches"):
        augment_batch(torch.zeros(4, 3), spec(source="iris", augment=["hflip"]).augment, torch.Generator())


def test_crop_windows_are_per_sample() -> None:
    import torch

    # Values 1..36 so the zero padding is recognisable; a crop keeps the 6x6 size.
    x = 1 + torch.arange(2 * 36, dtype=torch.float32).view(2, 1, 6, 6)
    out = augment_batch(x, spec(source="digits", augment=[{"random_crop": 3}]).augment,
                        torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    for b in range(2):  # each output is some 6x6 window of its own zero-padded input
        padded = torch.nn.functional.pad(x[b], (3, 3, 3, 3))
        windows = [padded[:, r:r + 6, c:c + 6] for r in range(7) for c in range(7)]
        assert any(torch.equal(out[b], w) for w in windows)


def test_hflip_p1_is_flip() -> None:
    import torch

    x = torch.randn(3, 2, 4, 5)
    out = augment_batch(x, spec(source="digits", augment=[{"hflip": 1.0}]).augment, torch.Generator())
    assert torch.equal(out, torch.flip(x, dims=[-1]))


def test_in_memory_batches_cover_each_sample_once() -> None:
    import torch

    x, y = np.arange(23, dtype=np.float32)[:, None], np.arange(23)
    batches = InMemoryBatches({"x": x, "target": y}, batch_size=5, shuffle=True, device="cpu")
    assert len(batches) == 5
    epoch = list(batches.epoch_batches(torch.Generator().manual_seed(0)))
    assert all(set(b) == {"x", "target"} and torch.equal(b["x"][:, 0].long(), b["target"]) for b in epoch)
    seen = [b["target"] for b in epoch]
    assert sorted(torch.cat(seen).tolist()) == list(range(23)) and seen[0].tolist() != [0, 1, 2, 3, 4]
    again = [b["target"] for b in batches.epoch_batches(torch.Generator().manual_seed(0))]
    assert all(torch.equal(p, q) for p, q in zip(seen, again))


def test_loader_batches_match_in_memory(tmp_path: Path) -> None:
    import torch

    x, y = np.random.default_rng(0).normal(size=(11, 3)).astype(np.float32), np.arange(11)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    mem = make_batches({"x": x, "y": y}, 4, True, "cpu")
    disk = make_batches({"x": str(tmp_path / "x.npy"), "y": str(tmp_path / "y.npy")}, 4, True, "cpu", threshold=0)
    assert isinstance(mem, InMemoryBatches) and isinstance(disk, LoaderBatches) and len(disk) == len(mem) == 3
    pairs = zip(mem.epoch_batches(torch.Generator().manual_seed(1)), disk.epoch_batches(torch.Generator().manual_seed(1)))
    for a, b in pairs:
        assert a.keys() == b.keys() == {"x", "y"} and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("world", [2, 3, 5])
def test_processes_share_each_global_batch_and_read_only_their_rows(tmp_path: Path, world: int) -> None:
    """Every process's shares, in memory or streamed, together are the single process's batches, row for row; the
    counted rows add up to each batch's size, and a process with no row of a small last batch gets a stand-in
    row that counts for nothing (11 rows, batch 4: the last batch of 3 leaves one of 5 processes without)."""
    import torch

    x, y = np.random.default_rng(0).normal(size=(11, 3)).astype(np.float32), np.arange(11)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    mem = make_batches({"x": x, "y": y}, 4, True, "cpu")
    disk = make_batches({"x": str(tmp_path / "x.npy"), "y": str(tmp_path / "y.npy")}, 4, True, "cpu", threshold=0)
    whole = list(mem.epoch_batches(torch.Generator().manual_seed(1)))
    for batches in (mem, disk):
        shares = [list(batches.epoch_shares(torch.Generator().manual_seed(1), rank, world)) for rank in range(world)]
        for step, batch in enumerate(whole):
            parts = [shares[rank][step] for rank in range(world)]
            assert all(n == len(batch["y"]) for n, _, _ in parts)
            assert sum(counted for _, counted, _ in parts) == len(batch["y"])
            counted = [part["y"] for _, c, part in parts if c]
            assert torch.equal(torch.cat(counted), batch["y"])  # contiguous, in rank order
            assert all(len(part["y"]) == max(c, 1) for _, c, part in parts)


def test_fit_chunks_equals_fit() -> None:
    x = np.random.default_rng(0).normal(3, 2, (50, 2, 3, 3)).astype(np.float32) * np.array([1, 100])[:, None, None]
    for kind in ("standard", "minmax", "none"):
        whole = Normalization.fit(kind, x)
        pieces = Normalization.fit_chunks(kind, [x[:7], x[7:8], x[8:8], x[8:]], x.shape[1:])
        np.testing.assert_allclose(pieces.shift, whole.shift, rtol=1e-6)
        np.testing.assert_allclose(pieces.scale, whole.scale, rtol=1e-6)
    assert Normalization.fit("standard", x).shift.shape == (2, 1, 1)


def test_large_npy_is_read_lazily(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from udlc.data import dataset
    from udlc.data.sources import LazyRows

    rng = np.random.default_rng(0)
    data = np.column_stack([rng.normal(5, 3, (40, 4)), np.arange(40) % 3])  # target in the last column
    np.save(tmp_path / "d.npy", data)
    s = spec(source="d.npy", split=[0.5, 0.25, 0.25])
    eager = prepare(s, (1, 2, 2), tmp_path, seed=0)
    monkeypatch.setattr(dataset, "LAZY_NPY_BYTES", 0)
    lazy = prepare(s, (1, 2, 2), tmp_path, seed=0)
    assert isinstance(lazy.x_train, LazyRows) and isinstance(lazy.x_train.data, np.memmap)
    assert lazy.x_train.shape == eager.x_train.shape and lazy.n_classes == eager.n_classes == 3
    np.testing.assert_allclose(lazy.normalization.shift, eager.normalization.shift, rtol=1e-6)
    for a, b in ((lazy.x_train, eager.x_train), (lazy.x_val, eager.x_val), (lazy.x_test, eager.x_test)):
        np.testing.assert_allclose(np.asarray(a), b, rtol=1e-5, atol=1e-6)
    assert np.array_equal(lazy.y_train, eager.y_train)
    np.testing.assert_allclose(lazy.x_train[[3, 0]], eager.x_train[[3, 0]], rtol=1e-5, atol=1e-6)
    # streamed batch by batch, they are the in-memory batches
    streamed = make_batches({"x": lazy.x_train, "y": lazy.y_train}, 6, True, "cpu", threshold=0)
    held = make_batches({"x": eager.x_train, "y": eager.y_train}, 6, True, "cpu")
    assert isinstance(streamed, LoaderBatches)
    pairs = zip(streamed.epoch_batches(torch.Generator().manual_seed(2)),
                held.epoch_batches(torch.Generator().manual_seed(2)))
    for a, b in pairs:
        torch.testing.assert_close(a["x"], b["x"])
        assert torch.equal(a["y"], b["y"])
    data[7, 2] = np.nan
    np.save(tmp_path / "d.npy", data)
    with pytest.raises(SpecError, match="features sample 7 .* holds NaN"):
        prepare(s, (4,), tmp_path, seed=0)


def test_collate_pads_variable_length_samples_and_builds_their_masks() -> None:
    from udlc.data.collate import collate

    samples = [{"tokens": np.array([5, 6, 7]), "label": np.int64(1), "frames": np.ones((1, 2), np.float32)},
               {"tokens": np.array([8]), "label": np.int64(0), "frames": np.ones((3, 2), np.float32)}]
    batch = collate(samples, pad_values={"tokens": -1})
    assert batch["tokens"].tolist() == [[5, 6, 7], [8, -1, -1]] and batch["tokens"].dtype == np.int64
    assert batch["tokens_mask"].tolist() == [[True, True, True], [True, False, False]]
    assert batch["label"].tolist() == [1, 0] and "label_mask" not in batch  # fixed shapes are stacked
    assert batch["frames"].shape == (2, 3, 2) and batch["frames_mask"].sum(axis=1).tolist() == [1, 3]
    assert batch["frames"][0, 1:].sum() == 0
    with pytest.raises(ValueError, match="only in their first axis"):
        collate([{"a": np.ones((2, 3))}, {"a": np.ones((2, 4))}])


def test_padded_batches_cover_every_sample_once_in_the_generators_order() -> None:
    import torch

    from udlc.data import PaddedBatches

    rng = np.random.default_rng(0)
    samples = [{"tokens": np.full(rng.integers(1, 6), i), "target": np.int64(i)} for i in range(11)]
    batches = PaddedBatches(samples, batch_size=4, shuffle=True)
    assert len(batches) == 3
    epoch = list(batches.epoch_batches(torch.Generator().manual_seed(3)))
    targets = torch.cat([b["target"] for b in epoch]).tolist()
    assert sorted(targets) == list(range(11)) and targets != list(range(11))
    for b in epoch:  # each row holds its own sample's tokens where the mask is true, padding elsewhere
        for row, mask, t in zip(b["tokens"], b["tokens_mask"], b["target"]):
            assert int(mask.sum()) == len(samples[int(t)]["tokens"])
            assert (row[mask] == t).all() and (row[~mask] == 0).all()
    again = torch.cat([b["target"] for b in batches.epoch_batches(torch.Generator().manual_seed(3))]).tolist()
    assert again == targets
