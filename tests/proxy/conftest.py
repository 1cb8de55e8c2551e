"""The web UI's browser tests share one headless Chromium per module and a fresh, watched
context per test (no console error, nothing fetched from outside loopback)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.browser import PageWatch, headless_chromium
from tests.support.speed import scaled


@pytest.fixture(scope="module")
def browser():
    with headless_chromium() as chromium:
        yield chromium


@pytest.fixture()
def page(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 720})
    context.set_default_timeout(scaled(30_000))  # Playwright's 30 s, stretched on a busy machine
    watch = PageWatch(context)
    tab = context.new_page()
    yield tab
    context.close()
    assert watch.requests, "the page loaded nothing"
    assert watch.problems == []


@pytest.fixture(scope="module")
def screenshots(request, tmp_path_factory) -> Path:
    """Where shoot() writes: `pytest --screenshots docs` rewrites the README's pictures."""
    chosen = request.config.getoption("--screenshots")
    return Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")

