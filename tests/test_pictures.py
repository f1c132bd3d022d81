"""A folder of pictures as a data source: check reads its classes without decoding, training learns it (decoded
once, cached), `udlc predict` classifies picture files as training saw them (torch-free), and every mistake —
a lone class folder, no image_size, an unreadable picture — is reported with its place."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import line_of, train_here
from udlc.data.image_folder import CACHE, decode, read_folder
from udlc.errors import SpecError, SpecErrors
from udlc.tasks import compile_spec

SHAPES = ("bar", "disc", "square")


def draw_shapes(folder: Path, per_class: int = 30, size: int = 16, seed: int = 0) -> Path:
    """Grey pictures of a bar, a disc or a square at random places and sizes: a folder per shape."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    for name in SHAPES:
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            picture = Image.new("L", (size, size), 0)
            draw = ImageDraw.Draw(picture)
            r = int(rng.integers(3, 6))
            x, y = (int(v) for v in rng.integers(r, size - r, 2))
            if name == "bar":
                draw.rectangle((1, y - 1, size - 2, y + 1), fill=255)
            elif name == "disc":
                draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
            else:
                draw.rectangle((x - r, y - r, x + r, y + r), outline=255, width=1)
            picture.save(folder / name / f"{i:03d}.png")
    return folder


def spec(tmp_path: Path, **data) -> Path:
    doc = {"udlc": 1, "name": "shapes", "seed": 0,
           "data": {"source": "shapes/", "image_size": 16, "channels": 1, "split": [0.6, 0.2, 0.2], **data},
           "model": {"input": [1, 16, 16], "layers": [
               {"conv2d": {"out_channels": 8, "kernel_size": 3, "padding": 1}}, "relu", {"maxpool2d": 2},
               {"conv2d": {"out_channels": 16, "kernel_size": 3, "padding": 1}}, "relu", "global_maxpool",
               {"linear": 3}]},
           "loss": "cross_entropy", "metrics": ["accuracy"], "optimizer": {"type": "adam", "lr": 0.01},
           "train": {"epochs": 15, "batch_size": 16}, "export": {"onnx": {"opset": 18}}}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False, default_flow_style=None))
    return path


@pytest.mark.slow
def test_a_folder_of_pictures_trains_and_predict_reads_picture_files(tmp_path: Path, invoke, one_torch_thread) -> None:
    import json

    draw_shapes(tmp_path / "shapes")
    compiled = compile_spec(spec(tmp_path))  # check lists the classes without decoding a picture
    assert not (tmp_path / "shapes" / CACHE).exists()
    run = train_here(spec(tmp_path), tmp_path / "runs")
    assert json.loads((run / "results.json").read_text())["test_accuracy"] >= 0.9
    assert len(list((tmp_path / "shapes" / CACHE).glob("*.npy"))) == 1  # decoded once, kept
    assert compiled.spec.data.image_size == 16
    result = invoke("export", run)
    assert result.returncode == 0, result.stderr
    result = invoke("predict", run / "model.onnx", tmp_path / "shapes")
    assert result.returncode == 0, result.stderr
    rows = [line.split(",") for line in result.stdout.strip().splitlines()]
    assert rows[0][:2] == ["file", "prediction"] and len(rows) == 1 + 3 * 30
    right = sum(row[0].split("/")[0] == row[1] for row in rows[1:])  # bar/000.png predicted bar
    assert right >= 0.9 * 90, right

    # Pictures of another size and shape: the graph resizes them as training's decoding did, so the answers
    # agree with those for the same pictures at the trained size; and onnxruntime alone takes one as it is.
    from PIL import Image

    for picture in (tmp_path / "shapes").glob("*/*.png"):
        target = tmp_path / "large" / picture.relative_to(tmp_path / "shapes")
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.open(picture).resize((40, 48), Image.Resampling.BICUBIC).save(target)
    result = invoke("predict", run / "model.onnx", tmp_path / "large")
    assert result.returncode == 0, result.stderr
    large = [line.split(",") for line in result.stdout.strip().splitlines()]
    agree = sum(a[:2] == b[:2] for a, b in zip(rows[1:], large[1:]))
    assert len(large) == len(rows) and agree >= 0.9 * 90, agree

    import onnxruntime as ort

    session = ort.InferenceSession(str(run / "model.onnx"), providers=["CPUExecutionProvider"])
    picture = np.asarray(Image.open(tmp_path / "large" / "disc" / "000.png").convert("L"), np.float32)
    probabilities = session.run(["probabilities"], {session.get_inputs()[0].name: picture[None, None]})[0]
    assert probabilities.shape == (1, 3)
    assert [float(p) for p in large[1 + 30][2:]] == pytest.approx(probabilities[0].tolist(), abs=1e-5)


def test_the_cache_is_used_and_renewed_when_a_picture_changes(tmp_path: Path) -> None:
    folder = draw_shapes(tmp_path / "shapes", per_class=4)
    x, y, classes = read_folder(folder, 16, 1, "crop")
    assert classes == list(SHAPES) and x.shape == (12, 1, 16, 16) and list(y) == [0] * 4 + [1] * 4 + [2] * 4
    again, _, _ = read_folder(folder, 16, 1, "crop")
    assert isinstance(again, np.memmap) and np.array_equal(again, x)  # read back from the cache
    (folder / "disc" / "000.png").write_bytes((folder / "bar" / "000.png").read_bytes())
    changed, _, _ = read_folder(folder, 16, 1, "crop")
    assert np.array_equal(changed[4], x[0]) and len(list((folder / CACHE).glob("*.npy"))) == 2


def test_crop_keeps_the_middle_and_stretch_keeps_everything(tmp_path: Path) -> None:
    from PIL import Image

    wide = np.zeros((10, 20), np.uint8)
    wide[:, :4] = 255  # a white stripe at the far left
    Image.fromarray(wide).save(tmp_path / "wide.png")
    cropped = decode(tmp_path / "wide.png", (10, 10), 1, "crop")
    stretched = decode(tmp_path / "wide.png", (10, 10), 1, "stretch")
    assert cropped.shape == stretched.shape == (1, 10, 10)
    assert cropped.max() == 0 and stretched[0, :, 0].min() == 255
    assert decode(tmp_path / "wide.png", (8, 8), 3, "crop").shape == (3, 8, 8)


def test_an_unreadable_picture_is_named(tmp_path: Path) -> None:
    folder = draw_shapes(tmp_path / "shapes", per_class=2)
    (folder / "disc" / "broken.png").write_bytes(b"not a picture")
    with pytest.raises(SpecError, match=r"cannot read the picture .*disc/broken.png"):
        read_folder(folder, 16, 1, "crop")


@pytest.mark.parametrize("change, marker, words", [
    ({}, "source: shapes/", "holds 1 class folder"),
    ({"image_size": None}, "source: shapes/", "needs data.image_size"),
])
def test_check_refuses_a_folder_it_cannot_use_at_the_source(tmp_path: Path, change: dict, marker: str,
                                                             words: str) -> None:
    (tmp_path / "shapes" / "only").mkdir(parents=True)
    (tmp_path / "shapes" / "only" / "a.png").write_bytes(b"")
    path = spec(tmp_path, **change)
    if change.get("image_size", 1) is None:
        text = path.read_text().replace("image_size: null, ", "")
        path.write_text(text)
    with pytest.raises(SpecErrors) as info:
        compile_spec(path)
    (err,) = info.value.errors
    assert words in err.message and err.span.line == line_of(path, marker), err


def test_picture_options_apply_only_to_folders(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text("udlc: 1\nname: x\ndata: {source: digits, image_size: 8}\nmodel: {input: [64], layers: "
                    "[{linear: 10}]}\nloss: cross_entropy\n")
    with pytest.raises(SpecErrors, match="applies only to a folder of pictures"):
        compile_spec(path)


def test_the_picture_example_checks_on_the_pictures_its_script_makes(tmp_path: Path) -> None:
    import shutil
    import subprocess
    import sys

    example = Path(__file__).resolve().parent.parent / "examples" / "pictures"
    shutil.copy(example / "resnet-digits.yaml", tmp_path)
    made = subprocess.run([sys.executable, str(example / "make_digit_pictures.py"), str(tmp_path / "digit-pictures")],
                          capture_output=True, text=True, check=True)
    assert "1797 pictures" in made.stdout
    compiled = compile_spec(tmp_path / "resnet-digits.yaml")
    assert compiled.spec.data.image_size == 32 and compiled.graph.output_shapes == [(10,)]


def identity_model(channels: int, size: tuple[int, int]):
    """An ONNX graph that returns its (N, channels, *size) input: what a picture front feeds a network."""
    from onnx import TensorProto, helper

    shape = ["batch", channels, *size]
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


@pytest.mark.parametrize("resize", ["crop", "stretch"])
@pytest.mark.parametrize("channels", [1, 3])
def test_the_exported_graph_resizes_a_picture_as_training_decoded_it(tmp_path: Path, resize: str,
                                                                     channels: int) -> None:
    """Pictures of other sizes, scaled by the graph's front, come out as Pillow's decoding gives them, to a unit or
    of 255 (Pillow rounds between its two passes); one of the trained size passes through unchanged."""
    import onnxruntime as ort
    from PIL import Image

    from udlc.exporter.picture_front import add_picture_front

    size = (24, 20)
    proto = add_picture_front(identity_model(channels, size), size, resize)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for height, width in [(24, 20), (64, 48), (100, 37), (13, 17), (300, 410)]:
        rows, columns = np.mgrid[0:height, 0:width]
        smooth = np.stack([rows * 255 // height, columns * 255 // width, (rows + columns) % 40 * 6], -1)
        noisy = np.clip(smooth + rng.normal(0, 12, smooth.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(tmp_path / "picture.png")
        expected = decode(tmp_path / "picture.png", size, channels, resize).astype(np.float32)
        picture = decode(tmp_path / "picture.png", None, channels)
        assert picture.shape == (channels, height, width)
        (got,) = session.run(None, {"x": picture[None].astype(np.float32)})
        assert got.shape == (1, channels, *size)
        difference = np.abs(got[0] - expected)
        if (height, width) == size:
            assert difference.max() == 0
        assert difference.max() <= 1 and difference.mean() < 0.5, (height, width, difference.max())
