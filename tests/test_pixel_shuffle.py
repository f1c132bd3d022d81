"""pixel_shuffle / pixel_unshuffle: shapes, values equal to torch's own modules, errors with a fix, and a spec
that upsamples with them (the registry-wide tests build, run and export their samples)."""

import pytest
import torch

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
