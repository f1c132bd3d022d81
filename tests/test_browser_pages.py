"""The report and the docs site looked at in a real browser (headless Chromium, opened from disk as a user would):
each page renders with no script error or refused load, and what it is there to show is drawn."""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator

import pytest

from tests.browser import console_errors, headless_chromium

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.long


def test_the_report_shows_the_network_drawn_and_its_curves(digits_run, tmp_path: Path) -> None:
    from udlc.guide.report import write_report

    page = write_report(digits_run.run, tmp_path / "report.html")
    with headless_chromium(1200, 1600) as browser:
        browser.get(page.as_uri())
        sizes = browser.execute_script(
            "return [...document.querySelectorAll('svg')].map(s => [s.getAttribute('class'), "
            "s.getBoundingClientRect().width, s.getBoundingClientRect().height])")
        assert browser.save_screenshot(str(tmp_path / "report.png"))
        errors = console_errors(browser)
    drawn = [s for s in sizes if s[0] == "udlc-net"]
    assert len(sizes) == 2 and len(drawn) == 1 and drawn[0][1] > 100 and drawn[0][2] > 100, sizes
    assert not errors, errors


@contextlib.contextmanager
def served(folder: Path) -> Iterator[str]:
    """The folder over HTTP on a free local port (as `python -m http.server -d site` serves it), and its URL."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_the_docs_site_renders_offline_with_its_pictures(tmp_path: Path) -> None:
    """Over a local HTTP server, as the README says to read it: opened from disk (file://) the pages read the same,
    but browsers run no search worker from disk."""
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    if mkdocs is None:
        pytest.skip("mkdocs is not installed (pip install 'udlc[docs]')")
    site = tmp_path / "site"
    subprocess.run([mkdocs, "build", "--strict", "-q", "-d", str(site)], cwd=ROOT, check=True,
                   env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    pages = {"index.html": "udlc", "getting-started.html": "Getting started",
             "families/pictures.html": "Pictures", "reference/layers.html": "Layers"}
    with headless_chromium(1200, 1600) as browser, served(site) as url:
        for name, title in pages.items():
            browser.get(f"{url}/{name}")
            assert browser.execute_script("return document.querySelector('article h1').textContent").startswith(title)
            broken = browser.execute_script(
                "return [...document.querySelectorAll('article img')].filter(i => !i.complete || i.naturalWidth == 0)"
                ".map(i => i.src)")
            assert not broken, f"{name}: pictures that did not load: {broken}"
            assert not console_errors(browser), name
        browser.get(f"{url}/getting-started.html")
        assert browser.execute_script("return document.querySelectorAll('article img').length") >= 1
        assert browser.save_screenshot(str(tmp_path / "docs.png"))
