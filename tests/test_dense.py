"""Dense prediction (udlc.tasks.dense): tasks segmentation and image_to_image — their metrics against scikit-learn
and a hand computation, every spec mistake refused at its place with a fix, the built-in picture sets, .npz
sources, and a run that trains, exports and answers through `udlc predict` (an array, or a PNG written back)."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.fast_export import fast_exporter  # noqa: F401  (a fixture: pytest finds it by name)
from udlc.errors import SpecError, SpecErrors
from udlc.tasks import compile_text

CONTRACT = Path(__file__).parent / "specs" / "contract"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


# ---- metrics ----------------------------------------------------------------------------------------------

def test_mean_iou_and_pixel_accuracy_match_scikit_learn() -> None:
    from sklearn.metrics import accuracy_score, jaccard_score

    from udlc.objectives.metrics import COMPUTE
    from udlc.spec.metrics import MeanIoU, PixelAccuracy

    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 5, 7, 9, generator=gen)
    logits[:, 4] -= 100  # class 4 never predicted ...
    masks = torch.randint(0, 4, (6, 7, 9), generator=gen)  # ... nor present: left out, as sklearn leaves it
    pred = logits.argmax(1).reshape(-1).numpy()
    true = masks.reshape(-1).numpy()
    assert COMPUTE["mean_iou"](MeanIoU(), logits, masks, "softmax") == pytest.approx(
        jaccard_score(true, pred, average="macro"), abs=1e-12)
    assert COMPUTE["pixel_accuracy"](PixelAccuracy(), logits, masks, "softmax") == pytest.approx(
        accuracy_score(true, pred), abs=1e-12)
    # A class in the targets that is never predicted counts, with IoU 0 (here: all of class 3 predicted as 0).
    one_hot = torch.nn.functional.one_hot(masks.clamp(max=2), 5).permute(0, 3, 1, 2).float()
    assert COMPUTE["mean_iou"](MeanIoU(), one_hot, masks, "softmax") == pytest.approx(
        jaccard_score(true, masks.clamp(max=2).reshape(-1).numpy(), average="macro"), abs=1e-12)


def test_psnr_is_ten_log10_of_range_squared_over_mse() -> None:
    from udlc.objectives.metrics import COMPUTE
    from udlc.spec.metrics import PSNR

    y = torch.tensor([[[[0.0, 16.0], [8.0, 4.0]]]])
    out = y + torch.tensor([[[[1.0, -1.0], [2.0, 0.0]]]])  # MSE (1 + 1 + 4 + 0) / 4 = 1.5
    assert COMPUTE["psnr"](PSNR(data_range=16), out, y, "identity") == pytest.approx(10 * math.log10(256 / 1.5))
    assert COMPUTE["psnr"](PSNR(), out, y, "identity") == pytest.approx(10 * math.log10(16**2 / 1.5))  # span 16


# ---- check: each mistake at its place, with the fix -----------------------------------------------------

SEGMENT = """udlc: 1
name: seg
task: segmentation
data: {source: shape_masks, samples: 16}
model:
  input: [1, 32, 32]
  layers:
    - conv2d: {out_channels: 8, kernel_size: 3, padding: 1}
    - LAST
loss: cross_entropy
"""


def refused(text: str) -> str:
    with pytest.raises(SpecErrors) as e:
        compile_text(text, "spec.yaml")
    return str(e.value)


@pytest.mark.parametrize("change, where, message, hint", [
    ({"    - LAST": "    - flatten\n    - linear: 576"}, "spec.yaml:10:7", "outputs (576,)",
     "end the model with `conv2d: {out_channels: 4, kernel_size: 1}` (no `flatten` or `linear`)"),
    ({"LAST": "maxpool2d: 2\n    - conv2d: {out_channels: 4, kernel_size: 1}"}, "spec.yaml:10:7",
     "outputs (4, 16, 16)", "bring the 16×16 output to 32×32"),
    ({"LAST": "conv2d: {out_channels: 3, kernel_size: 1}"}, "spec.yaml:9:7", "4 logits, one per class",
     "out_channels: 4"),
    ({"loss: cross_entropy": "loss: mse"}, "spec.yaml:10:7", "learns with cross_entropy, not mse",
     "loss: cross_entropy"),
    ({"loss: cross_entropy": "loss: cross_entropy\nmetrics: [accuracy]"}, "spec.yaml:11:11",
     "accuracy does not measure masks", "pixel_accuracy, mean_iou"),
    ({"samples: 16}": "samples: 16, augment: [hflip]}"}, "spec.yaml:4:42", "takes no augmentation",
     "drop `augment`"),
    ({"source: shape_masks, samples: 16": "source: digits_2x"}, "spec.yaml:4:16", "digits_2x gives pictures",
     "`task: image_to_image` learns pictures"),
    ({"source: shape_masks, samples: 16": "source: digits"}, "spec.yaml:4:16", "learns masks for pictures",
     "data.source: shape_masks"),
    ({"input: [1, 32, 32]": "input: [1, 28, 28]"}, "spec.yaml:6:3", "shape_masks gives pictures of [1, 32, 32]",
     "input: [1, 32, 32]"),
])
def test_segmentation_mistakes_are_located_and_fixed(change: dict, where: str, message: str, hint: str) -> None:
    text = SEGMENT.replace("LAST", "conv2d: {out_channels: 4, kernel_size: 1}") if "LAST" not in str(change) \
        else SEGMENT
    for old, new in change.items():
        text = text.replace(old, new)
    shown = refused(text)
    assert shown.startswith(where + ":") and message in shown and hint in shown, shown
    assert "linear: 576" not in shown.split(" — ")[-1]


def test_image_to_image_says_how_to_reach_the_target_size() -> None:
    text = SEGMENT.replace("segmentation", "image_to_image").replace("shape_masks, samples: 16", "digits_2x") \
        .replace("[1, 32, 32]", "[1, 4, 4]").replace("cross_entropy", "mse") \
        .replace("LAST", "conv2d: {out_channels: 1, kernel_size: 1}")
    shown = refused(text)
    assert shown.startswith("spec.yaml:9:7:") and "the target pictures are (1, 8, 8)" in shown
    assert "`conv2d: {out_channels: 4, kernel_size: 3, padding: 1}` then `pixel_shuffle: 2`" in shown
    compile_text(text.replace("conv2d: {out_channels: 1, kernel_size: 1}",
                              "conv2d: {out_channels: 4, kernel_size: 1}\n    - pixel_shuffle: 2"))


def test_supervised_picture_targets_get_flatten_not_a_linear_of_their_size(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "pairs.npz", x=rng.random((8, 1, 8, 8)).astype("f4"), y=rng.random((8, 1, 8, 8)).astype("f4"))
    text = ("udlc: 1\nname: s\ndata: {source: pairs.npz}\nmodel:\n  input: [1, 8, 8]\n  layers:\n"
            "    - conv2d: {out_channels: 1, kernel_size: 3, padding: 1}\nloss: mse\n")
    (tmp_path / "s.yaml").write_text(text)
    from udlc.tasks import compile_spec

    with pytest.raises(SpecErrors) as e:
        compile_spec(tmp_path / "s.yaml")
    shown = str(e.value)
    assert "end the model with `flatten`;" in shown and "task: image_to_image" in shown and "linear: 64" not in shown
    (tmp_path / "s.yaml").write_text(text.replace("data: {", "task: image_to_image\ndata: {"))
    compile_spec(tmp_path / "s.yaml")  # the same model learns them as pictures


def test_npz_masks_are_checked_at_their_header_and_their_classes_when_loaded(tmp_path: Path) -> None:
    from udlc.tasks import compile_spec

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "m.npz", x=rng.random((12, 1, 8, 8)).astype("f4"), y=rng.integers(0, 3, (12, 8, 8)))
    np.savez(tmp_path / "bad.npz", x=rng.random((12, 64)).astype("f4"), y=rng.integers(0, 3, (12, 8, 8)))
    text = SEGMENT.replace("shape_masks, samples: 16", "m.npz").replace("[1, 32, 32]", "[1, 8, 8]") \
        .replace("LAST", "conv2d: {out_channels: 2, kernel_size: 1}")
    (tmp_path / "s.yaml").write_text(text)
    compiled = compile_spec(tmp_path / "s.yaml")  # the header says masks; how many classes, only the data
    with pytest.raises(SpecError, match="class ids up to 2, but the model outputs 2 logits"):
        compiled.task.load_data(compiled)
    (tmp_path / "s.yaml").write_text(text.replace("m.npz", "bad.npz"))
    with pytest.raises(SpecErrors, match=r"'x' is \[12, 64\].*\(N, C, H, W\)"):
        compile_spec(tmp_path / "s.yaml")


def test_pictures_of_any_size_bind_to_the_data() -> None:
    """A fully convolutional model on `input: [1, H, W]`: its output is checked at the data's sizes."""
    text = SEGMENT.replace("[1, 32, 32]", "[1, H, W]").replace("LAST", "conv2d: {out_channels: 4, kernel_size: 1}")
    graph = next(iter(compile_text(text).graphs.values()))
    assert graph.shape_of(graph.outputs[0]) == (4, "H", "W")
    shown = refused(text.replace("out_channels: 8, kernel_size: 3, padding: 1", "out_channels: 8, kernel_size: 3"))
    assert "outputs (4, 30, 30)" in shown


# ---- the built-in sets ----------------------------------------------------------------------------------

def test_built_in_picture_sets_load_as_registered() -> None:
    from udlc.data.builtin_sets import generator
    from udlc.spec.sources import SOURCES

    x, y = generator("shape_masks")(20, 0.3, np.random.default_rng(0))
    entry = SOURCES.find("shape_masks")
    assert x.shape == (20, *entry.shape) and y.shape == (20, *entry.target_shape)
    assert set(np.unique(y)) == set(range(len(entry.classes)))  # background and every shape occur
    x, y = generator("digits_2x")(0, None, None)
    assert x.shape[1:] == SOURCES.find("digits_2x").shape and y.shape[1:] == (1, 8, 8)
    assert np.allclose(x[:, 0, 1, 2], y[:, 0, 2:4, 4:6].mean(axis=(1, 2)))  # each input pixel a 2×2 mean
    assert y.max() == 255 and y.min() == 0


# ---- a run, its file, its answers -----------------------------------------------------------------------

@pytest.mark.usefixtures("fast_exporter")
@pytest.mark.parametrize("spec", ["segmentation.yaml", "image_to_image.yaml"])
def test_a_run_exports_and_predicts_what_torch_computes(spec: str, tmp_path: Path, invoke) -> None:
    import json

    from udlc.compiler.lower import lower
    from udlc.exporter.onnx import export_run
    from udlc.runs import checkpoint
    from udlc.tasks import compile_spec
    from udlc.trainer.run import train_spec

    compiled = compile_spec(CONTRACT / spec)
    run = train_spec(compiled, out=tmp_path / "runs", quiet=True)
    results = json.loads((run / "results.json").read_text())
    assert all(np.isfinite(v) for v in results.values() if isinstance(v, float))
    export_run(run)
    state = compiled.task.start(compiled, compiled.task.load_data(compiled), "cpu")
    x_raw = state.data.normalization.invert(state.data.x_test[:3])
    np.save(tmp_path / "x.npy", x_raw)
    result = invoke("predict", run / "model.onnx", tmp_path / "x.npy")
    assert result.returncode == 0, result.stderr
    rows = list(csv.reader(io.StringIO(result.stdout)))
    answers = np.array(rows[1:], dtype=np.float64)
    network = lower(compiled.graphs["model"])
    checkpoint.load_models({"model": network}, run / "checkpoints" / "best.safetensors")
    with torch.no_grad():
        out = network(torch.from_numpy(state.data.x_test[:3]))
    if spec == "segmentation.yaml":
        assert rows[0][:2] == ["y0", "y1"] and answers.shape == (3, 32 * 32)
        assert (answers == out.argmax(1).reshape(3, -1).numpy()).mean() > 0.999  # ties aside, the same classes
    else:
        norm = state.data.target_normalization
        assert np.allclose(answers, norm.invert(out.numpy()).reshape(3, -1), atol=1e-3)
    # `udlc serve` answers the same over its friendly route (rows of raw values) and the Open Inference Protocol.
    from starlette.testclient import TestClient

    from udlc.runtime.http.app import build_app
    from udlc.runtime.http.limits import Limits

    with TestClient(build_app([run / "model.onnx"], Limits(body_bytes=1 << 20, rows=10, pixels=4096, seconds=10),
                              max_batch=1)) as client:
        asked = client.post(f"/v1/predict/{compiled.spec.name}", json={"rows": x_raw[:2].reshape(2, -1).tolist()})
        assert asked.status_code == 200, asked.text
        served = np.array([list(a.values()) for a in asked.json()["answers"]])
        assert np.allclose(served, answers[:2], atol=1e-3)
    # A picture file: its answer written as a PNG in the current folder (invoke's is tmp_path).
    from PIL import Image

    Image.fromarray(np.clip(x_raw[0, 0], 0, 255).astype(np.uint8)).save(tmp_path / "p.png")
    result = invoke("predict", run / "model.onnx", tmp_path / "p.png")
    assert result.returncode == 0, result.stderr
    written = tmp_path / list(csv.reader(io.StringIO(result.stdout)))[1][1]
    assert written.name == ("p.mask.png" if spec == "segmentation.yaml" else "p.predicted.png")
    picture = np.asarray(Image.open(written))
    assert picture.shape == ((32, 32) if spec == "segmentation.yaml" else (8, 8))
    if spec == "segmentation.yaml":
        assert picture.max() < 4  # class ids, the convention masks are read in


# ---- folders of pictures --------------------------------------------------------------------------------

def picture_folders(root: Path, n: int = 8, size: int = 20) -> None:
    """pics/<i>.png (grey, `size`²) and masks/<i>.png (grey class ids), from the shape_masks set at 32² resized."""
    from PIL import Image

    from udlc.data.builtin_sets import generator

    x, y = generator("shape_masks")(n, 0.3, np.random.default_rng(0))
    for folder in ("pics", "masks"):
        (root / folder).mkdir()
    for i in range(n):
        Image.fromarray(np.clip(x[i, 0], 0, 255).astype(np.uint8)).resize((size, size)).save(root / "pics" / f"{i}.png")
        Image.fromarray(y[i].astype(np.uint8)).resize((size, size), Image.NEAREST).save(root / "masks" / f"{i}.png")


FOLDER_SPEC = """udlc: 1
name: f
task: segmentation
data: {source: pics/, targets: masks/, image_size: 16, channels: 1}
model:
  input: [1, 16, 16]
  layers:
    - conv2d: {out_channels: 4, kernel_size: 3, padding: 1}
loss: cross_entropy
"""


def test_a_folder_of_pictures_pairs_with_its_masks_by_name(tmp_path: Path) -> None:
    from udlc.data.dense import load_dense
    from udlc.tasks import compile_spec

    picture_folders(tmp_path)
    (tmp_path / "s.yaml").write_text(FOLDER_SPEC)
    compiled = compile_spec(tmp_path / "s.yaml")
    data = load_dense(compiled.spec.data, tmp_path, 0, "masks")
    assert data.x_train.shape[1:] == (1, 16, 16) and data.y_train.shape[1:] == (16, 16)
    from PIL import Image

    whole = np.concatenate([data.y_train, data.y_val, data.y_test])
    # nearest-neighbour resizing keeps class ids: no id appears that the mask files do not hold
    held = set().union(*(np.unique(np.asarray(Image.open(f))).tolist() for f in (tmp_path / "masks").iterdir()))
    assert set(np.unique(whole).tolist()) <= held and data.classes == [str(i) for i in range(max(held) + 1)]
    (tmp_path / "masks" / "3.png").unlink()
    with pytest.raises(SpecErrors) as e:
        compile_spec(tmp_path / "s.yaml")
    assert "s.yaml:4:" in str(e.value) and "masks/ has no target for 3.png" in str(e.value)
    assert "name each target as its picture: masks/3.png" in str(e.value)


def test_targets_under_a_task_of_classes_say_which_task_reads_them(tmp_path: Path) -> None:
    from udlc.tasks import compile_spec

    picture_folders(tmp_path)
    (tmp_path / "s.yaml").write_text(FOLDER_SPEC.replace("task: segmentation\n", "").replace(
        "out_channels: 4, kernel_size: 3, padding: 1}", "out_channels: 4, kernel_size: 16}\n    - flatten"))
    with pytest.raises(SpecErrors) as e:
        compile_spec(tmp_path / "s.yaml")
    assert "s.yaml:3:23: data.targets:" in str(e.value) and "`task: segmentation`" in str(e.value)
    with pytest.raises(SpecErrors) as e:  # a built-in set of them, likewise
        compile_text(SEGMENT.replace("task: segmentation\n", "").replace("LAST", "flatten"), "spec.yaml")
    assert str(e.value).startswith("spec.yaml:3:16: data.source: shape_masks pairs each picture")


def test_loose_pictures_are_unlabelled_data_and_a_classifier_is_told_so(tmp_path: Path) -> None:
    from udlc.data.image_folder import read_folder
    from udlc.tasks import compile_spec

    picture_folders(tmp_path, n=5)
    x, y, classes = read_folder(tmp_path / "pics", 12, 1, "crop", labelled=False)
    assert x.shape == (5, 1, 12, 12) and len(y) == 0 and classes == []
    (tmp_path / "s.yaml").write_text(FOLDER_SPEC.replace("task: segmentation\n", "").replace(", targets: masks/", "")
                                     .replace("out_channels: 4, kernel_size: 3, padding: 1}",
                                              "out_channels: 2, kernel_size: 16}\n    - flatten"))
    with pytest.raises(SpecErrors) as e:
        compile_spec(tmp_path / "s.yaml")
    assert "holds pictures but no class folders" in str(e.value) and "(gan, vae, autoencoder)" in str(e.value)


@pytest.mark.usefixtures("fast_exporter")
def test_a_folder_trained_model_resizes_any_picture_in_its_graph(tmp_path: Path, invoke) -> None:
    from PIL import Image

    from udlc.exporter.onnx import export_run
    from udlc.tasks import compile_spec
    from udlc.trainer.run import train_spec

    picture_folders(tmp_path)
    (tmp_path / "s.yaml").write_text(FOLDER_SPEC + "train: {epochs: 1, batch_size: 8}\n")
    run = train_spec(compile_spec(tmp_path / "s.yaml"), out=tmp_path / "runs", quiet=True)
    export_run(run)
    Image.fromarray(np.full((30, 44), 200, np.uint8)).save(tmp_path / "big.png")
    result = invoke("predict", run / "model.onnx", tmp_path / "big.png")
    assert result.returncode == 0, result.stderr
    assert np.asarray(Image.open(tmp_path / "big.mask.png")).shape == (16, 16)  # the mask at the size trained on


# ---- the examples: checked, and a short run each (their full runs: bench/dense_examples.py) ------------------

@pytest.mark.parametrize("example, overrides, metric", [
    ("digits-superres.yaml", ["train.epochs=1", "data.split=[0.05, 0.05, 0.9]"], "test_psnr"),
    ("shapes-unet.yaml", ["train.epochs=1", "data.samples=48", "train.batch_size=16"], "test_mean_iou"),
])
def test_the_examples_check_and_train(example: str, overrides: list, metric: str, tmp_path: Path) -> None:
    import json

    from udlc.tasks import compile_spec
    from udlc.trainer.run import train_spec

    run = train_spec(compile_spec(EXAMPLES / example, overrides), out=tmp_path, quiet=True)
    assert np.isfinite(json.loads((run / "results.json").read_text())[metric])


@pytest.mark.long
def test_the_examples_reach_their_stated_figures(tmp_path: Path) -> None:
    """The README's figures (bench/dense_examples.py prints them with the baselines): the super-resolution beats
    bicubic upscaling (13.2 dB on this split) by far, and the U-Net segments most of every shape."""
    import json

    from udlc.tasks import compile_spec
    from udlc.trainer.run import train_spec

    results = {e: json.loads((train_spec(compile_spec(EXAMPLES / e), out=tmp_path / e, quiet=True)
                              / "results.json").read_text()) for e in ("digits-superres.yaml", "shapes-unet.yaml")}
    assert results["digits-superres.yaml"]["test_psnr"] > 17.0  # 19.17 measured
    assert results["shapes-unet.yaml"]["test_mean_iou"] > 0.75  # 0.83 measured
