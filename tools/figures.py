"""The docs' pictures, in docs/images/ (committed).

`python tools/figures.py --drawings` draws each family page's example network with `udlc draw` (no torch, a
second): `make docs` runs it and tests/test_docs.py holds the committed drawings to it. `python tools/figures.py
[NAME...]` trains the examples and copies what their run folders draw (curves.png, a generative model's
samples.png), and takes a picture of `udlc serve`'s page answering the picture ResNet (headless Chromium, where
installed): minutes on a CPU, so `make figures` runs it by hand when an example changes."""

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
         "examples/karate-gcn.yaml", "examples/shapes-unet.yaml", "examples/audio/vowels-cnn.yaml",
         "examples/transfer/stdlib-finetune.yaml")


def drawings() -> dict[str, str]:
    """docs/images/<example>-network.svg for each example DRAWN, by name."""
    from udlc.guide.draw import drawings as draw, to_svg
    from udlc.tasks import compile_spec

    return {f"{Path(spec).stem}-network.svg": to_svg(draw(compile_spec(ROOT / spec))) for spec in DRAWN}


def serve_page(udlc: Path, target: Path) -> None:
    """examples/pictures/resnet-digits.yaml trained and served; its page in headless Chromium with a digit
    picture dropped on it and the classes' probabilities drawn, saved as `target`."""
    import socket
    import time
    import urllib.request

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with tempfile.TemporaryDirectory() as out:
        spec = ROOT / "examples" / "pictures" / "resnet-digits.yaml"
        done = subprocess.run([str(udlc), "train", str(spec), "--out", out], check=True,
                              capture_output=True, text=True)
        run = Path(done.stdout.strip().splitlines()[-1])
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = subprocess.Popen([str(udlc), "serve", str(run / "model.onnx"), "--port", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium") or ""  # Debian's: selenium fetches nothing
        for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=900,760"):
            options.add_argument(flag)
        browser = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
        try:
            for _ in range(300):  # until the server answers
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1)
                    break
                except OSError:
                    time.sleep(0.1)
            browser.get(f"http://127.0.0.1:{port}/")
            picture = ROOT / "examples" / "pictures" / "digit-pictures" / "7" / "0007.png"
            browser.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(picture))
            WebDriverWait(browser, 20).until(lambda b: b.find_elements(By.CSS_SELECTOR, ".answer .bar"))
            browser.save_screenshot(str(target))
        finally:
            browser.quit()
            server.terminate()
            server.wait()


def main(names: list[str]) -> None:
    if names[:1] == ["--drawings"]:  # into docs/images/, or the folder named after it
        out = Path(names[1]) if len(names) > 1 else IMAGES
        out.mkdir(parents=True, exist_ok=True)
        for name, svg in drawings().items():
            (out / name).write_text(svg, encoding="utf-8")
        return
    IMAGES.mkdir(parents=True, exist_ok=True)
    udlc = Path(sys.executable).with_name("udlc")
    if not names or "serve-page" in names:
        serve_page(udlc, IMAGES / "serve-page.png")
        print(f"udlc serve's page: {(IMAGES / 'serve-page.png').relative_to(ROOT)}")
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
