"""Generative tasks at real picture sizes: Fréchet on a fixed small feature space (against scipy's sqrtm),
samples without labels (an .npz of `x` alone, a 4-D .npy) accepted for unconditional tasks and refused at
their line elsewhere, one-class labels that skip the reference classifier, and `normalize: symmetric` with
pictures and `udlc sample` mapping [-1, 1] back to the data's units."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import DIGITS_MLP, line_of, train_here, write_spec
from udlc.errors import SpecErrors
from udlc.tasks import compile_spec

# ---- Fréchet --------------------------------------------------------------------------------------------


def reference_frechet(a: np.ndarray, b: np.ndarray) -> float:
    """FID's formula as its reference implementations write it: scipy's general matrix square root."""
    from scipy import linalg

    ca, cb = (np.atleast_2d(np.cov(v, rowvar=False)) for v in (a, b))
    root = linalg.sqrtm(ca @ cb).real
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(ca + cb - 2 * root))


@pytest.mark.parametrize("d, n", [(1, 50), (6, 40), (24, 300), (30, 12)])  # (30, 12): singular covariances
def test_frechet_equals_scipy_sqrtm(d: int, n: int) -> None:
    from udlc.tasks.generative import frechet_distance

    rng = np.random.default_rng(d)
    mix = rng.standard_normal((d, d))
    a = rng.standard_normal((n, d)) @ mix
    b = rng.standard_normal((n, d)) @ mix * 1.5 + 0.3
    assert frechet_distance(a, b) == pytest.approx(reference_frechet(a, b), rel=1e-6, abs=1e-6)
    scale = np.trace(np.atleast_2d(np.cov(a, rowvar=False)))
    assert 0.0 <= frechet_distance(a, a) <= 1e-8 * scale  # rounding only, never below 0


def test_pictures_are_measured_on_a_fixed_projection_of_256() -> None:
    from udlc.tasks.generative import FEATURES, features, sample_frechet

    rng = np.random.default_rng(0)
    pictures = rng.standard_normal((40, 3, 64, 64))  # 12,288 values: a covariance of 12,288² unprojected
    projected = features(pictures)
    assert FEATURES == 256 and projected.shape == (40, 256)
    assert np.array_equal(projected, features(pictures.copy()))  # the same projection each time: runs compare
    small = rng.standard_normal((40, 64))
    assert np.array_equal(features(small), small)  # up to 256 values the samples are their own features
    # a Gaussian projection keeps lengths on average (1/√256 scaling): |Px|² ≈ |x|²
    ratio = (projected**2).sum(axis=1) / (pictures.reshape(40, -1) ** 2).sum(axis=1)
    assert ratio.mean() == pytest.approx(1.0, abs=0.05)
    # a shift c of every sample moves only the means: the distance is |Pc|², about |c|² (0.25 x 12,288)
    shifted = sample_frechet(pictures, pictures + 0.5)
    from udlc.tasks.generative import projection

    assert shifted == pytest.approx(((np.full(12288, 0.5) @ projection(12288)) ** 2).sum(), rel=1e-6)
    assert shifted == pytest.approx(0.25 * 12288, rel=0.2)


# ---- samples without labels -----------------------------------------------------------------------------

GAN_PICTURES = {
    "udlc": 1, "name": "tiny-gan", "seed": 0,
    "task": {"gan": {"loss": "non_saturating"}},
    "data": {"source": "x.npz", "split": [0.6, 0.2, 0.2]},
    "models": {
        "generator": {"input": [4], "layers": [{"linear": 48}, "tanh", {"reshape": [3, 4, 4]}]},
        "discriminator": {"input": [3, 4, 4], "layers": ["flatten", {"linear": 1}]},
    },
    "optimizers": {"generator": {"adam": {"lr": 0.001}}, "discriminator": {"adam": {"lr": 0.001}}},
    "train": {"epochs": 1, "batch_size": 16, "checkpoint_seconds": 0},
}


def pictures(n: int = 50, seed: int = 0) -> np.ndarray:
    """(n, 3, 4, 4) uint8 pictures spanning 0..255."""
    x = np.random.default_rng(seed).integers(0, 256, (n, 3, 4, 4)).astype(np.uint8)
    x[0, 0, 0, 0], x[1, 0, 0, 0] = 0, 255
    return x


def test_an_npz_of_x_alone_trains_a_gan_and_is_refused_to_a_classifier(tmp_path: Path) -> None:
    np.savez(tmp_path / "x.npz", x=pictures())
    spec = write_spec(tmp_path / "gan.yaml", GAN_PICTURES)
    run = train_here(spec, tmp_path / "runs")
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "done" and info["classes"] is None
    results = json.loads((run / "results.json").read_text())
    assert results["test_frechet"] >= 0 and "test_classifier_frechet" not in results  # no labels, no classifier

    supervised = write_spec(tmp_path / "mlp.yaml", {**DIGITS_MLP, "data": {"source": "x.npz"},
                                                     "model": {"input": [48], "layers": [{"linear": 10}]}})
    with pytest.raises(SpecErrors) as info_:
        compile_spec(supervised)
    (e,) = info_.value.errors
    assert "without labels" in e.message and "gan" in e.hint and e.span.line == line_of(supervised, "x.npz")


def test_a_folder_of_loose_pictures_trains_a_gan(tmp_path: Path) -> None:
    """A folder without class folders is pictures without labels (udlc.data.layout reads them); for the gan
    they are its samples, decoded as training decodes any folder."""
    from PIL import Image

    from udlc.data.file_kinds import load_arrays, peek

    x = pictures(30)
    (tmp_path / "loose" / "more").mkdir(parents=True)
    for i, picture in enumerate(x):
        where = tmp_path / "loose" / ("more" if i % 2 else "") / f"{i:02d}.png"
        Image.fromarray(picture.transpose(1, 2, 0)).save(where)
    spec = write_spec(tmp_path / "gan.yaml", GAN_PICTURES,
                      data={"source": "loose/", "image_size": 4, "split": [0.6, 0.2, 0.2]})
    compiled = compile_spec(spec)
    data = compiled.spec.data.for_generation()
    assert not peek(data, tmp_path).labeled
    arrays = load_arrays(data, tmp_path, 0)
    assert arrays.classes is None and sorted(map(bytes, arrays.x.astype(np.uint8))) == sorted(map(bytes, x))
    run = train_here(spec, tmp_path / "runs")
    assert json.loads((run / "run.json").read_text())["status"] == "done"


@pytest.mark.parametrize("task, width", [("vae", 64), ("autoencoder", 64), ("diffusion", 2)])
def test_the_other_unconditional_tasks_check_samples_without_labels(tmp_path: Path, task: str, width: int) -> None:
    """The contract test's example of each, its data an .npz of `x` alone shaped as the example's samples."""
    root = Path(__file__).resolve().parent / "specs" / "contract"
    doc = yaml.safe_load((root / f"{task}.yaml").read_text())
    np.savez(tmp_path / "x.npz", x=np.random.default_rng(0).random((40, width)))
    doc["data"] = {**{k: v for k, v in doc["data"].items() if k not in ("samples", "noise")}, "source": "x.npz"}
    assert compile_spec(write_spec(tmp_path / "s.yaml", doc)).task.name == task


def test_an_npz_that_names_a_missing_target_is_still_refused(tmp_path: Path) -> None:
    np.savez(tmp_path / "x.npz", x=pictures())
    spec = write_spec(tmp_path / "gan.yaml", GAN_PICTURES, data={"source": "x.npz", "target": "labels"})
    with pytest.raises(SpecErrors, match="has no array 'labels'"):
        compile_spec(spec)


@pytest.mark.parametrize("last", [False, True])
def test_a_4d_npy_is_read_channels_first(tmp_path: Path, last: bool) -> None:
    from udlc.data.file_kinds import load_arrays, peek

    x = pictures()
    np.save(tmp_path / "x.npy", x.transpose(0, 2, 3, 1) if last else x)  # (N, H, W, C) or (N, C, H, W)
    spec = write_spec(tmp_path / "gan.yaml", GAN_PICTURES, data={"source": "x.npy", "split": [0.6, 0.2, 0.2]})
    compiled = compile_spec(spec)  # check accepts it for the gan
    data = compiled.spec.data.for_generation()
    assert peek(data, tmp_path).natural_shape == (3, 4, 4)
    arrays = load_arrays(data, tmp_path, 0)
    assert not arrays.labeled and np.array_equal(arrays.x, x.astype(np.float32))
    with pytest.raises(Exception, match="without labels"):
        load_arrays(compiled.spec.data, tmp_path, 0)  # the loader refuses them to a labelled task too


def test_a_large_4d_npy_streams_from_disk_and_symmetric_scales_it(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Past LAZY_NPY_BYTES (here 1 byte) an .npy is memory-mapped and read batch by batch: its pictures must be
    channels first, and `normalize: symmetric` applies as each batch is read."""
    import udlc.data.dataset as dataset
    from udlc.data.arrays import LazyRows
    from udlc.data.file_kinds import load_arrays
    from udlc.tasks.generative import load_samples

    monkeypatch.setattr(dataset, "LAZY_NPY_BYTES", 1)
    x = pictures()
    np.save(tmp_path / "x.npy", x)
    spec = write_spec(tmp_path / "gan.yaml", GAN_PICTURES,
                      data={"source": "x.npy", "split": [0.6, 0.2, 0.2], "normalize": "symmetric"})
    data = load_samples(compile_spec(spec), (3, 4, 4))
    assert isinstance(data.x_train, LazyRows)
    train = np.asarray(data.x_train)
    assert train.min() == pytest.approx(-1.0) and train.max() == pytest.approx(1.0)
    raw = data.normalization.invert(np.concatenate([train, np.asarray(data.x_val), np.asarray(data.x_test)]))
    assert np.allclose(np.sort(raw.reshape(-1)), np.sort(x.astype(np.float32).reshape(-1)), atol=1e-3)

    np.save(tmp_path / "last.npy", x.transpose(0, 2, 3, 1))
    last = compile_spec(spec).spec.data.model_copy(update={"source": "last.npy"}).for_generation()
    with pytest.raises(Exception, match="channels last") as info:
        load_arrays(last, tmp_path, 0, lazy_bytes=1)
    assert "transpose(0, 3, 1, 2)" in info.value.hint


def test_a_conditional_denoiser_refuses_samples_without_labels(tmp_path: Path) -> None:
    np.savez(tmp_path / "x.npz", x=pictures())
    spec = write_spec(tmp_path / "d.yaml", {
        "udlc": 1, "name": "d", "seed": 0, "task": "diffusion", "data": {"source": "x.npz"},
        "model": {"inputs": {"x": [48], "t": [1], "label": {"shape": [1], "dtype": "int64"}},
                  "layers": [{"embedding": {"num_embeddings": 11, "embedding_dim": 48, "from": "label"}},
                             {"flatten": {"id": "label_features"}},
                             {"add": {"from": ["x", "label_features"]}}, {"linear": 48}]},
        "optimizer": {"adam": {"lr": 0.001}}, "train": {"epochs": 1}})
    with pytest.raises(SpecErrors) as info:
        compile_spec(spec)
    (e,) = info.value.errors
    assert "no classes" in e.message and e.span.line == line_of(spec, "label:"), e.message


# ---- one class ------------------------------------------------------------------------------------------


def test_one_class_skips_the_reference_classifier_and_says_so_once(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from udlc.tasks.generative import reference_quality

    rng = np.random.default_rng(0)
    data = SimpleNamespace(n_classes=1, input_shape=(8,), x_train=rng.standard_normal((30, 8)),
                           y_train=np.zeros(30, np.int64), x_test=rng.standard_normal((10, 8)),
                           y_test=np.zeros(10, np.int64), x_val=rng.standard_normal((10, 8)))
    notes: list[str] = []
    assert reference_quality(data, rng.standard_normal((20, 8)), note=notes.append) == {}
    assert len(notes) == 1 and "one class" in notes[0]
    # two classes: the classifier measures, and its test accuracy is scikit-learn's own
    from sklearn.linear_model import LogisticRegression

    data.y_train, data.n_classes = (data.x_train[:, 0] > 0).astype(np.int64), 2
    data.y_test = (data.x_test[:, 0] > 0).astype(np.int64)
    out = reference_quality(data, rng.standard_normal((20, 8)), labels=np.ones(20, np.int64), note=notes.append)
    fitted = LogisticRegression(max_iter=2000).fit(data.x_train, data.y_train)
    assert out["test_reference_accuracy"] == pytest.approx(fitted.score(data.x_test, data.y_test))
    assert 0 <= out["test_class_accuracy"] <= 1 and len(notes) == 1


def test_a_gan_on_one_class_labels_ends_done(tmp_path: Path) -> None:
    x = pictures()
    np.savez(tmp_path / "x.npz", x=x, y=np.zeros(len(x), np.int64))
    run = train_here(write_spec(tmp_path / "gan.yaml", GAN_PICTURES), tmp_path / "runs")
    assert json.loads((run / "run.json").read_text())["status"] == "done"


# ---- normalize: symmetric -------------------------------------------------------------------------------


def test_symmetric_scales_into_minus_one_one_and_sampling_maps_back(tmp_path: Path) -> None:
    from PIL import Image

    from udlc.exporter.onnx import export_run
    from udlc.runtime.sample import SampleFile, write_samples
    from udlc.tasks.generative import load_samples

    np.savez(tmp_path / "x.npz", x=pictures())
    spec = write_spec(tmp_path / "gan.yaml", GAN_PICTURES,
                      data={"source": "x.npz", "split": [0.6, 0.2, 0.2], "normalize": "symmetric"})
    compiled = compile_spec(spec)
    data = load_samples(compiled, (3, 4, 4))
    assert data.x_train.min() == pytest.approx(-1.0) and data.x_train.max() == pytest.approx(1.0)
    assert np.allclose(data.normalization.invert(data.x_train).min(), 0) and \
        np.allclose(data.normalization.invert(data.x_train).max(), 255)
    run = train_here(spec, tmp_path / "runs")
    info = json.loads((run / "run.json").read_text())
    assert info["normalization"]["kind"] == "symmetric" and info["value_range"] == [0.0, 255.0]
    assert Image.open(run / "samples.png").size[0] > 32  # the grid training drew
    sampler = SampleFile(export_run(run))
    assert sampler.value_range == (0.0, 255.0)  # the exported file's metadata carries the pixel range
    samples = sampler.sample(4, seed=0)
    assert samples.min() >= -1e-3 and samples.max() <= 255 + 1e-3  # tanh's [-1, 1] back in 0..255
    assert samples.max() - samples.min() > 50  # not collapsed into a corner of the range
    picture = np.asarray(Image.open(write_samples(samples, tmp_path / "s.png", sampler.value_range, columns=4)))
    first = picture[1:1 + 32:8, 1:1 + 32:8]  # the first tile, each of its 4x4 pixels scaled up 8 times
    assert np.abs(first.astype(float) - samples[0].transpose(1, 2, 0)).max() <= 0.5 + 1e-3  # 0..255 as is


@pytest.mark.parametrize("doc, marker, words", [
    ({**DIGITS_MLP, "data": {"source": "digits", "normalize": "symmetric"}}, "normalize", "generative"),
    ({**DIGITS_MLP, "data": {"source": "stdlib", "normalize": "symmetric"}}, "normalize", "none to scale"),
])
def test_symmetric_is_refused_where_it_does_not_apply(tmp_path: Path, doc: dict, marker: str, words: str) -> None:
    spec = write_spec(tmp_path / "s.yaml", doc)
    with pytest.raises(SpecErrors) as info:
        compile_spec(spec)
    (e,) = info.value.errors
    assert words in e.message and e.span.line == line_of(spec, marker), e.message
    assert "normalize: standard" in e.message + (e.hint or "")
    assert yaml.safe_load(spec.read_text())["data"]["normalize"] == "symmetric"
