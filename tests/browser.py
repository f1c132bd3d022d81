"""Headless Chromium for the tests that look at a page as a user would (udlc serve's page, the report, the docs
site); they are skipped where chromium, chromedriver or selenium is missing."""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
from typing import Any, Iterator

import pytest

INSTALL = "apt-get install -y chromium chromium-driver && pip install 'selenium>=4.20'"


@contextlib.contextmanager
def headless_chromium(width: int = 1000, height: int = 2200) -> Iterator[Any]:
    """A selenium driver of headless Chromium with the browser's console log kept; skips the test without one."""
    if importlib.util.find_spec("selenium") is None:
        pytest.skip(f"selenium is not installed: {INSTALL}")
    chromium, chromedriver = (shutil.which(n) for n in ("chromium", "chromedriver"))
    if not (chromium and chromedriver):
        pytest.skip(f"no headless browser (chromium, chromedriver) here: {INSTALL}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(chromedriver))
    try:
        yield browser
    finally:
        browser.quit()


def console_errors(browser: Any) -> list[str]:
    """The page's script errors and refused loads (the console's SEVERE entries), favicon requests aside."""
    return [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE" and "favicon" not in e["message"]]
