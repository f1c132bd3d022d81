"""`udlc draw`: the typed graph as a diagram — every layer's output shape and parameters, blocks framed or collapsed,
branches side by side, skips as arcs — written as SVG or PNG without torch; and the report's copy of it."""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.processes import NO_TORCH
from udlc.guide.draw import COLLAPSE_PAST, drawings, edge_path, layout, to_svg
from udlc.tasks import compile_spec

ROOT = Path(__file__).resolve().parents[1]
SVG = "{http://www.w3.org/2000/svg}"


def boxes_of(svg: str) -> list[list[str]]:
    """Each box's lines of text, in drawing order."""
    tree = ET.fromstring(svg)
    return [[t.text for t in g.iter(f"{SVG}text")] for g in tree.iter(f"{SVG}g") if g.get("class") == "box"]


def params_shown(svg: str) -> int:
    return sum(int(line.split()[0].replace(",", "")) for box in boxes_of(svg) for line in box
               if line.endswith(" params"))


def test_a_large_network_is_drawn_with_its_stages_collapsed_and_keeps_every_parameter() -> None:
    compiled = compile_spec(ROOT / "examples" / "zoo" / "resnet18.yaml")
    graph = compiled.graphs["model"]
    assert len(graph.nodes) > COLLAPSE_PAST
    svg = to_svg(drawings(compiled))
    heads = [box[0] for box in boxes_of(svg)]
    assert "layer1 · 14 layers" in heads and "layer4 · 16 layers" in heads
    assert not any(h.startswith("layer1_0") for h in heads)
    assert params_shown(svg) == graph.total_params == 11_689_512
    opened = to_svg(drawings(compiled, "all"))
    assert len(boxes_of(opened)) == len(graph.nodes) + len(graph.inputs)
    assert params_shown(opened) == graph.total_params
    # opening one stage opens its copies' frames, and the other stages stay collapsed
    one = layout(graph, "resnet18", ["layer2"])
    assert "layer2_0" in one.boxes and "layer3" in one.boxes and "layer2_0_conv1" not in one.boxes
    assert [f[0] for f in one.frames] == ["layer2"]


def test_a_small_network_is_drawn_open_with_its_blocks_framed_and_shapes_shown() -> None:
    compiled = compile_spec(ROOT / "examples" / "digits-cnn.yaml")
    graph = compiled.graphs["model"]
    (d,) = drawings(compiled)
    assert set(d.boxes) == set(graph.nodes) | set(graph.inputs)
    assert {f[0] for f in d.frames} == {"conv_bn", "conv_bn_1", "conv_bn_2", "conv_bn_3", "conv_bn_4"}
    for name, node in graph.nodes.items():
        assert d.boxes[name].lines[1] == ", ".join(str(tuple(s)).replace(",)", ",)") for s in node.shapes)
    # a framed node is named without its call's prefix; the frame says it
    assert d.boxes["conv_bn_1_conv2d"].lines[0] == "conv2d"
    assert d.boxes["linear"].kind == "output" and d.boxes["x"].kind == "input"


def test_branches_sit_side_by_side_and_a_skip_arcs_past_what_it_skips() -> None:
    (d,) = drawings(compile_spec(ROOT / "examples" / "digits-inception.yaml"))
    firsts = [d.boxes[n] for n in ("inception_conv2d", "inception_conv2d_1", "inception_conv2d_3",
                                   "inception_maxpool2d")]
    assert len({b.y for b in firsts}) == 1 and len({b.x for b in firsts}) == 4
    # the stem's skip to `add` passes to the right of every box in the rows between
    points = edge_path(d, "stem", "add")
    between = [b for b in d.boxes.values() if d.boxes["stem"].y < b.y < d.boxes["add"].y]
    assert between and min(x for x, _ in points[1:3]) > max(b.x + 230 for b in between)
    # a plain edge runs straight down from one box to the next
    (x0, y0), *_, (x3, y3) = edge_path(d, "add", "maxpool2d")
    assert x0 == x3 and y0 < y3


def test_every_network_of_a_spec_is_drawn_side_by_side() -> None:
    compiled = compile_spec(ROOT / "examples" / "vae-digits.yaml")
    svg = to_svg(drawings(compiled))
    titles = [t.text for t in ET.fromstring(svg).iter(f"{SVG}text") if t.get("class") == "title"]
    assert titles == ["vae-digits · encoder", "vae-digits · decoder"]
    assert params_shown(svg) == sum(g.total_params for g in compiled.graphs.values())


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", NO_TORCH, "draw", *args], cwd=cwd, capture_output=True, text=True)


def test_the_command_draws_svg_and_png_without_torch(tmp_path: Path) -> None:
    spec = ROOT / "examples" / "digits-cnn.yaml"
    done = cli(str(spec), "-o", "net.svg", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).name == "net.svg"
    assert params_shown((tmp_path / "net.svg").read_text()) == compile_spec(spec).graphs["model"].total_params
    done = cli(str(spec), "-o", "net.png", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "net.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args,message", [
    (["--expand", "layer9"], r"--expand layer9: no block or stage call of that name — expected one of: layer1, layer1_0"),
    (["--network", "decoder"], r"no network 'decoder' in resnet18"),
    (["-o", "net.pdf"], r"cannot draw into net.pdf: write a .svg or a .png file"),
])
def test_the_command_refuses_what_it_cannot_draw(tmp_path: Path, args: list[str], message: str) -> None:
    done = cli(str(ROOT / "examples" / "zoo" / "resnet18.yaml"), *args, cwd=tmp_path)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert re.search(message, done.stderr), done.stderr
    assert not any(tmp_path.iterdir())
