"""The docs' pictures, in docs/images/ (committed).

`python tools/figures.py --drawings` draws each family page's example network with `udlc draw` (no torch, a
second): `make docs` runs it and tests/test_docs.py holds the committed drawings to it. `python tools/figures.py
[NAME...]` trains the examples and copies what their run folders draw (curves.png, a generative model's
samples.png): minutes on a CPU, so `make figures` runs it by hand when an example changes."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
# example spec -> the files of its run folder to keep, and their names under docs/images/
FIGURES = {
    "examples/digits-mlp.yaml": {"curves.png": "digits-mlp-curves.png"},
    "examples/digits-cnn.yaml": {"curves.png": "digits-cnn-curves.png"},
    "examples/text-lines.yaml": {"curves.png": "text-lines-curves.png"},
    "examples/digits-vit.yaml": {"curves.png": "digits-vit-curves.png"},
    "examples/vae-digits.yaml": {"curves.png": "vae-digits-curves.png", "samples.png": "vae-digits-samples.png"},
    "examples/diffusion-digits.yaml": {"samples.png": "diffusion-digits-samples.png"},
    "examples/karate-gcn.yaml": {"curves.png": "karate-gcn-curves.png"},
}


DRAWN = ("examples/digits-mlp.yaml", "examples/digits-cnn.yaml", "examples/zoo/resnet18.yaml",
         "examples/text-lines.yaml", "examples/digits-vit.yaml", "examples/vae-digits.yaml",
         "examples/karate-gcn.yaml", "examples/shapes-unet.yaml")


def drawings() -> dict[str, str]:
    """docs/images/<example>-network.svg for each example DRAWN, by name."""
    from udlc.guide.draw import drawings as draw, to_svg
    from udlc.tasks import compile_spec

    return {f"{Path(spec).stem}-network.svg": to_svg(draw(compile_spec(ROOT / spec))) for spec in DRAWN}


def main(names: list[str]) -> None:
    if names[:1] == ["--drawings"]:  # into docs/images/, or the folder named after it
        out = Path(names[1]) if len(names) > 1 else IMAGES
        out.mkdir(parents=True, exist_ok=True)
        for name, svg in drawings().items():
            (out / name).write_text(svg, encoding="utf-8")
        return
    IMAGES.mkdir(parents=True, exist_ok=True)
    udlc = Path(sys.executable).with_name("udlc")
    for spec, files in FIGURES.items():
        if names and not any(n in spec for n in names):
            continue
        with tempfile.TemporaryDirectory() as out:
            done = subprocess.run([str(udlc), "train", str(ROOT / spec), "--out", out], check=True,
                                  capture_output=True, text=True)
            run = Path(done.stdout.strip().splitlines()[-1])
            for source, target in files.items():
                shutil.copyfile(run / source, IMAGES / target)
                print(f"{spec}: {IMAGES.relative_to(ROOT) / target}")


if __name__ == "__main__":
    main(sys.argv[1:])
