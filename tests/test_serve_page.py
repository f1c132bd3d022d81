"""`udlc serve`'s page (`GET /`): served with every model named and nothing fetched from elsewhere, what the
files' metadata says escaped; and in a real headless Chromium against a real server, each form answers what the
friendly routes answer — a picture uploaded, rows and array values typed, a text, a prompt's tokens streamed,
samples drawn — shown on the page.

The models are hand-built (tests/serve_models.py, and here a rows model whose column names and categories hold
HTML and quotes, and a byte-level language model), served from one folder as a run's files are."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.browser import console_errors, headless_chromium
from tests.processes import start_serve, wait_until_serving
from tests.serve_models import letter_model, picture_classifier, rows_model, sampler, text_classifier, write_picture
from udlc.runtime.http.app import build_app

@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A folder `udlc serve` serves whole, as a run's: model.onnx is named by its spec ('fruit <b>'), the others
    add their stem ('try-shapes')."""
    import onnx

    root = tmp_path_factory.mktemp("page")
    rows_model(root / "model.onnx")
    picture_classifier(root / "shapes.onnx", "try")
    text_classifier(root / "reviews.onnx", "try")
    sampler(root / "points.onnx", "try")
    letter_model(root / "letters.onnx", "try")
    # the picture classifier as a model of arrays (a built-in data set's): its 64 values typed by position
    grid = onnx.load(str(picture_classifier(root / "grid.onnx", "try")))
    kept = [p for p in grid.metadata_props if p.key != "pictures"]
    del grid.metadata_props[:]
    grid.metadata_props.extend(kept)
    onnx.save(grid, str(root / "grid.onnx"))
    return root


def test_the_page_names_each_model_escaped_and_fetches_nothing_from_elsewhere(folder) -> None:
    from starlette.testclient import TestClient

    with TestClient(build_app(sorted(folder.glob("*.onnx")))) as client:
        reply = client.get("/")
        names = [m["name"] for m in client.get("/v1/models").json()["models"]]
    assert reply.status_code == 200 and reply.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in reply.headers["content-security-policy"]
    page = reply.text
    headings = re.findall(r"<h2>(.*?)</h2>", page)
    assert headings == ["try-grid", "try-letters", "fruit &lt;b&gt;", "try-points", "try-reviews", "try-shapes"]
    assert names[2] == "fruit <b>"
    assert not re.search(r"https?:|\b(src|href)\s*=\s*[\"']?\s*//", page)  # no URL of another host
    assert "<b>" not in page and "<i>" not in page and '"green"' not in page  # the metadata's markup, escaped
    assert 'data-column="size &lt;cm&gt; &quot;x&quot;"' in page and "&quot;green&quot; &lt;i&gt;" in page
    # each model's form, by what its route reads (the sampler draws: no class to choose)
    for route, takes in (("v1/predict/try-shapes", "picture"), ("v1/predict/try-reviews", "texts"),
                         ("v1/sample/try-points", "draws"), ("v1/predict/fruit%20%3Cb%3E", "rows"),
                         ("v1/generate/try-letters", "prompt"), ("v1/predict/try-grid", "values")):
        assert f'data-route="{route}" data-takes="{takes}"' in page
    numbers = re.findall(r'<input data-column="([^"]*)" inputmode="decimal" ([^>]*)>', page)
    assert numbers == [("weight", 'placeholder="empty: the mean"'), ("size &lt;cm&gt; &quot;x&quot;", "required")]


@pytest.mark.long
def test_a_browser_uploads_a_picture_and_reads_the_class_the_server_answers(folder, tmp_path: Path) -> None:
    """Headless Chromium against a real `udlc serve` (in an interpreter without torch): each form's answer on the
    page is the friendly route's answer for the same input; a screenshot is saved in tmp_path."""
    server, url = start_serve(folder)  # it starts while the browser does
    try:
        with headless_chromium() as browser:
            check_the_page(browser, url, server, tmp_path)
    finally:
        server.terminate()
    output, _ = server.communicate(timeout=10)
    assert server.returncode == 0, output
    assert "POST /v1/predict/try-shapes 200" in output and "GET / 200" in output


def check_the_page(browser, url: str, server, tmp_path: Path) -> None:
    import httpx
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait_until_serving(server, url)
    browser.get(url)
    wait = WebDriverWait(browser, 10)

    def section(model: str):  # by id: a quoted name ('fruit%20%3Cb%3E') is no CSS selector
        return browser.find_element(By.ID, f"model-{model}")

    def answer(model: str, css: str):
        box = section(model).find_element(By.CSS_SELECTOR, ".answer")
        return wait.until(lambda _: box.find_elements(By.CSS_SELECTOR, css) or None)[0]

    picture = write_picture(tmp_path / "cat.png", seed=3)
    section("try-shapes").find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(picture))
    shown = answer("try-shapes", ".prediction").text  # asked as soon as chosen
    with picture.open("rb") as f:
        (expected,) = httpx.post(f"{url}/v1/predict/try-shapes", files={"picture": f}).json()["answers"]
    assert shown == expected["prediction"]
    bars = section("try-shapes").find_elements(By.CSS_SELECTOR, ".bar")
    assert [b.find_element(By.CSS_SELECTOR, ".class").text for b in bars] == ["bar", "disc", "square"]
    assert [b.find_element(By.CSS_SELECTOR, ".p").text for b in bars] == [
        f"{p:.3f}" for p in expected["probabilities"].values()]

    fruit = section("fruit%20%3Cb%3E")
    fruit.find_element(By.CSS_SELECTOR, 'input[data-column^="size"]').send_keys("0.5")
    fruit.find_element(By.CSS_SELECTOR, "option:nth-child(2)").click()  # CATEGORIES[1]
    fruit.find_element(By.CSS_SELECTOR, "button").click()
    price = float(answer("fruit%20%3Cb%3E", "dd").text)
    assert price == 1.5 + 10 * 0.5 + 1000  # weight filled with its mean; the second category's one-hot

    values = [str(v) for v in range(0, 256, 4)]  # 64 values
    section("try-grid").find_element(By.CSS_SELECTOR, "textarea").send_keys(", ".join(values))
    section("try-grid").find_element(By.CSS_SELECTOR, "button").click()
    expected = httpx.post(f"{url}/v1/predict/try-grid", json={"rows": [values]}).json()["answers"][0]
    assert answer("try-grid", ".prediction").text == expected["prediction"]

    section("try-reviews").find_element(By.CSS_SELECTOR, "textarea").send_keys("a fine film")
    section("try-reviews").find_element(By.CSS_SELECTOR, "button").click()
    expected = httpx.post(f"{url}/v1/predict/try-reviews", json={"texts": ["a fine film"]}).json()["answers"][0]
    assert answer("try-reviews", ".prediction").text == expected["prediction"]

    section("try-points").find_element(By.CSS_SELECTOR, "button").click()
    drawn = answer("try-points", "img")
    assert wait.until(lambda _: browser.execute_script("return arguments[0].naturalWidth", drawn)) > 0

    letters = section("try-letters")
    letters.find_element(By.CSS_SELECTOR, "textarea").send_keys("abc")
    for name, value in (("max_new_tokens", "5"), ("temperature", "0")):  # greedy: one answer
        field = letters.find_element(By.NAME, name)
        field.clear()
        field.send_keys(value)
    letters.find_element(By.CSS_SELECTOR, "button").click()
    answer("try-letters", ".done")  # the stream's last event, read from the stream
    expected = httpx.post(f"{url}/v1/generate/try-letters?stream=false", json={
        "prompt": "abc", "max_new_tokens": 5, "temperature": 0}).json()["text"]
    assert letters.find_element(By.CSS_SELECTOR, ".generated").text == expected == "abcdefgh"

    assert browser.save_screenshot(str(tmp_path / "page.png"))
    assert (tmp_path / "page.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not console_errors(browser)  # no script error, nothing the page's policy refused
