"""pixel_shuffle / pixel_unshuffle: shapes, values equal to torch's own modules, errors with a fix, and a spec
that upsamples with them (the registry-wide tests build, run and export their samples)."""

import pytest
import torch

from tests.fast_export import fast_exporter  # noqa: F401  (a fixture)
from udlc.compiler.infer import infer
from udlc.layers.registry import REGISTRY, ShapeError


def shape_of(name: str, args: dict, shape: tuple) -> tuple:
    lt = REGISTRY[name]
    return infer(lt, lt.config(**args), [shape], ["float32"])[0][0]


def test_shapes_trade_resolution_for_channels() -> None:
    assert shape_of("pixel_shuffle", {"upscale_factor": 2}, (12, 5, 7)) == (3, 10, 14)
    assert shape_of("pixel_unshuffle", {"downscale_factor": 2}, (3, 10, 14)) == (12, 5, 7)


def test_values_equal_torch_and_invert_each_other() -> None:
    lt_up, lt_down = REGISTRY["pixel_shuffle"], REGISTRY["pixel_unshuffle"]
    up = lt_up.build(lt_up.config(upscale_factor=3), (18, 4, 5))
    down = lt_down.build(lt_down.config(downscale_factor=3), (2, 12, 15))
    x = torch.randn(2, 18, 4, 5)
    # torch's reference, and the hand definition: out[c, h*r+i, w*r+j] = in[c*r*r + i*r + j, h, w]
    assert torch.equal(up(x), torch.nn.functional.pixel_shuffle(x, 3))
    y = up(x)
    assert y[1, 1, 2 * 3 + 1, 4 * 3 + 2] == x[1, 1 * 9 + 1 * 3 + 2, 2, 4]
    assert torch.equal(down(y), x)


@pytest.mark.parametrize("name, args, shape, text, hint", [
    ("pixel_shuffle", {"upscale_factor": 2}, (6, 4, 4), "needs channels divisible by 4", "output channels"),
    ("pixel_unshuffle", {"downscale_factor": 2}, (3, 5, 4), "height and width divisible by 2", "multiple of 2"),
    ("pixel_shuffle", {"upscale_factor": 2}, (8, 4), "(channels, height, width)", "reshape"),
])
def test_misfits_say_why_and_how(name: str, args: dict, shape: tuple, text: str, hint: str) -> None:
    with pytest.raises(ShapeError) as e:
        shape_of(name, args, shape)
    assert text in e.value.message and hint in (e.value.hint or "")


def test_a_spec_upsamples_with_pixel_shuffle() -> None:
    from udlc.compiler.pipeline import resolve_text

    compiled = resolve_text("udlc: 1\nname: up\ndata: {source: digits}\nmodel:\n  input: [1, 8, 8]\n  layers:\n"
                    "    - pixel_unshuffle: 2\n    - conv2d: {out_channels: 16, kernel_size: 3, padding: 1}\n"
                    "    - pixel_shuffle: 4\n    - flatten\n    - linear: 10\nloss: cross_entropy\n")
    graph = next(iter(compiled.graphs.values()))
    assert graph.shape_of("pixel_shuffle") == (1, 16, 16)


UNET = """udlc: 1
name: sym-unet
seed: 0
task: segmentation
data: {source: masks.npz, split: [0.6, 0.2, 0.2]}
model:
  input: [1, H, W]
  layers:
    - conv2d: {out_channels: 8, kernel_size: 3, padding: 1, id: skip}
    - pixel_unshuffle: 2
    - conv2d: {out_channels: 16, kernel_size: 3, padding: 1}
    - maxpool2d: 2
    - upsample: 2
    - conv2d: {out_channels: 32, kernel_size: 3, padding: 1}
    - pixel_shuffle: 2
    - concat: {from: skip}
    - conv2d: {out_channels: 3, kernel_size: 1}
loss: cross_entropy
metrics: [mean_iou]
optimizer: {adam: 0.01}
train: {epochs: 1, batch_size: 16, checkpoint_seconds: 0}
"""


def write_masks(folder, size: int) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    np.savez(folder / "masks.npz", x=rng.random((40, 1, size, size), np.float32),
             y=rng.integers(0, 3, (40, size, size)))


@pytest.mark.usefixtures("fast_exporter")
def test_a_network_that_halves_symbolic_sizes_checks_trains_and_serves_any_multiple(tmp_path, invoke) -> None:
    """pixel_unshuffle and pooling name H/2 and H/4, pixel_shuffle and upsample bring H back: the spec's input stays
    [1, H, W], the export takes any multiple of 4, and check and predict refuse a size that is not one."""
    import numpy as np
    import onnxruntime as ort

    from udlc.compiler.pipeline import resolve_text
    from udlc.tasks import compile_spec

    spec = tmp_path / "s.yaml"
    spec.write_text(UNET)
    write_masks(tmp_path, 16)
    graph = resolve_text(UNET, str(spec)).graph
    assert graph.shape_of("pixel_unshuffle") == (32, "H/2", "W/2") and graph.shape_of("maxpool2d") == (16, "H/4", "W/4")
    assert graph.shape_of("pixel_shuffle") == (8, "H", "W")
    compile_spec(spec)
    result = invoke("train", spec, "--out", tmp_path / "runs")
    assert result.returncode == 0, result.stderr
    run = next((tmp_path / "runs" / "sym-unet").iterdir())
    assert invoke("export", run).returncode == 0
    session = ort.InferenceSession(str(run / "model.onnx"))
    assert session.get_inputs()[0].shape == ["batch", 1, "H", "W"]
    for h, w in ((16, 16), (12, 28), (40, 8)):
        probabilities, mask = session.run(None, {"x": np.zeros((2, 1, h, w), np.float32)})
        assert probabilities.shape == (2, 3, h, w) and mask.shape == (2, h, w)
    np.save(tmp_path / "odd.npy", np.zeros((1, 1, 18, 16), np.float32))
    refused = invoke("predict", run / "model.onnx", tmp_path / "odd.npy")
    assert refused.returncode != 0 and "H in multiples of 4" in refused.stderr
    write_masks(tmp_path, 18)  # 18 is even but no multiple of 4: check refuses it at the input's line
    out = invoke("check", spec)
    assert out.returncode == 2 and "s.yaml:7:3" in out.stdout + out.stderr
    assert "must be a multiple of 4" in out.stdout + out.stderr
