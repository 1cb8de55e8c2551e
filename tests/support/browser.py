"""Headless Chromium for the web UI's tests: Debian's binary driven by Playwright (no
browser download), or a skip that says why no browser can run here."""
from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import pytest

from meshtools.shared.topology import LOOPBACK, PROJECT_ROOT

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")


def chromium_path() -> str | None:
    return next((found for name in CANDIDATES if (found := shutil.which(name))), None)


@contextlib.contextmanager
def headless_chromium() -> Iterator:
    """A Playwright Browser, closed afterwards; pytest.skip with the reason when impossible."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed: pip install -e '.[test]'")
    executable = chromium_path()
    if executable is None:
        pytest.skip("no Chromium to drive: apt-get install chromium (.ci/run does)")
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS, timeout=30_000)
        except Error as exc:
            pytest.skip(f"{executable} cannot start here: {str(exc).splitlines()[0]}")
        try:
            yield browser
        finally:
            browser.close()


class PageWatch:
    """What a page did that a user would call broken: console errors, uncaught exceptions,
    failed or external requests. Anything not on loopback is refused before it leaves."""

    def __init__(self, context):
        self.problems: list[str] = []
        self.requests: list[str] = []
        context.route("**/*", self._route)
        context.on("page", self.watch)

    def watch(self, page) -> None:
        page.on("console", lambda msg: msg.type == "error" and self.problems.append(f"console: {msg.text}"))
        page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        page.on("requestfailed", self._failed)

    def _failed(self, request) -> None:
        # ERR_ABORTED: the browser dropped it for a navigation (a click while the favicon loads).
        if request.failure != "net::ERR_ABORTED":
            self.problems.append(f"failed: {request.url} {request.failure}")

    def _route(self, route) -> None:
        url = route.request.url
        self.requests.append(url)
        if urlsplit(url).hostname != LOOPBACK and not url.startswith(("data:", "about:")):
            self.problems.append(f"external request: {url}")
            route.abort()
        else:
            route.continue_()


AXE_SCRIPT = PROJECT_ROOT / "node_modules" / "axe-core" / "axe.min.js"


def axe_problems(page) -> list[str]:
    """axe-core's critical and serious violations on the page as it is now, one line each.

    axe-core comes from npm (package.json, `npm ci`), pinned, and is evaluated into the page
    by the test only: the proxy never serves it and its CSP still applies to the page."""
    if not AXE_SCRIPT.exists():
        pytest.skip(f"axe-core is not installed: run `npm ci` in {PROJECT_ROOT}")
    page.evaluate(AXE_SCRIPT.read_text(encoding="utf-8"))
    found = page.evaluate("""async () => {
        const result = await axe.run(document, {resultTypes: ['violations']});
        return result.violations.filter(v => ['critical', 'serious'].includes(v.impact))
            .map(v => `${v.impact} ${v.id}: ${v.help} (${v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', ')})`);
    }""")
    return found


def sideways_overflow(page) -> int:
    """How many CSS pixels the page itself scrolls sideways (0: none)."""
    return page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def shoot(page, folder: Path, name: str) -> None:
    """A screenshot of the page's viewport to folder/name (the README's, with --screenshots docs)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    page.screenshot(path=str(path), full_page=False)
    assert path.read_bytes().startswith(PNG_MAGIC)
