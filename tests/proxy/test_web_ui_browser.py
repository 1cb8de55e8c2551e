"""The web UI in a real browser (headless Chromium via Playwright) against a real local mesh:
the demo's requests, from the search page to the waterfall, the graph and the heatmap.

Every page is watched: no console error, nothing loaded from outside 127.0.0.1. With
`pytest --screenshots docs` the README's screenshots are rewritten from this run.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from meshtools.views.front import echo
from meshtools.views.trace_lookup import SPANS_PER_ECHO, find_trace
from meshtools.views.zipkin_client import ZipkinClient
from tests.support.browser import PageWatch, headless_chromium
from tests.support.speed import scaled

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def browser():
    with headless_chromium() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def demo(local_mesh):
    """inv demo's requests (friend, earth, chris), each waited for until the store lists it whole."""
    client = ZipkinClient(local_mesh.layout.trace_proxy_url)
    traces = {}
    for name in ("friend", "earth", "chris"):
        reply = echo(local_mesh.layout.front_url, name)
        spans = find_trace(client, reply.request_id, spans=2 if name == "chris" else SPANS_PER_ECHO)
        traces[name] = {"request_id": reply.request_id, "trace_id": spans[0]["traceId"], "spans": len(spans)}
    assert [t["spans"] for t in traces.values()] == [12, 12, 2]
    return {"url": local_mesh.layout.trace_proxy_url, **traces}


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
    chosen = request.config.getoption("--screenshots")
    return Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")


def shoot(page, folder: Path, name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    page.screenshot(path=str(path), full_page=False)
    assert path.read_bytes().startswith(PNG_MAGIC)


def test_the_search_page_lists_the_demo_traces_and_one_click_shows_the_waterfall(page, demo, screenshots):
    page.goto(demo["url"] + "/")
    listed = page.locator("table.traces tbody tr")
    ids = listed.evaluate_all("rows => rows.map(r => r.dataset.traceId)")
    assert {demo[n]["trace_id"] for n in ("friend", "earth", "chris")} <= set(ids)
    friend = page.locator(f'tr[data-trace-id="{demo["friend"]["trace_id"]}"]')
    assert "/echo/friend" in friend.inner_text() and re.search(r"\b12\b", friend.inner_text())
    chris = page.locator(f'tr[data-trace-id="{demo["chris"]["trace_id"]}"]')
    assert "error" in chris.get_attribute("class")
    # The requests through the front only (other tests of the session hit service2 directly).
    page.select_option("select[name=service]", "front-envoy")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**/?service=front-envoy*")
    friend = page.locator(f'tr[data-trace-id="{demo["friend"]["trace_id"]}"]')
    shoot(page, screenshots, "ui-search.png")

    friend.get_by_role("link").click()
    page.wait_for_url(f"**/trace/{demo['friend']['trace_id']}")
    spans = page.locator("details.span")
    assert spans.count() == 12
    assert spans.first.locator(".service").inner_text() == "front-envoy"
    slowest = page.locator("details.span.slowest")
    assert slowest.count() == 1 and "/stage/3" in slowest.inner_text()
    slowest.locator("summary").click()  # its tags open on click
    detail = slowest.locator("dl.detail")
    assert detail.is_visible() and demo["friend"]["request_id"] in detail.inner_text()
    shoot(page, screenshots, "ui-trace.png")


def test_the_chris_trace_shows_its_error_and_is_found_by_request_id(page, demo):
    page.goto(f"{demo['url']}/trace/{demo['chris']['request_id']}")
    assert page.locator("h1").inner_text() == f"trace {demo['chris']['trace_id']}"
    failed = page.locator("details.span.error")
    assert failed.count() >= 1 and "500" in failed.first.inner_text()
    assert "error" in page.locator("p.facts").inner_text()


def test_the_dependency_graph_shows_both_edges(page, demo, screenshots):
    page.goto(demo["url"] + "/dependencies")
    shoot(page, screenshots, "ui-dependencies.png")
    edges = page.locator("svg.graph g.edge").evaluate_all(
        "gs => gs.map(g => [g.dataset.parent, g.dataset.child, g.textContent.trim()])")
    assert any(p == "front-envoy" and c.startswith("service1-") for p, c, _ in edges), edges
    assert any(p.startswith("service1-") and c.startswith("service2-") for p, c, _ in edges), edges
    assert all(re.match(r"\d+ calls", label) for _, _, label in edges)
    assert any("error" in label for p, _, label in edges if p == "front-envoy")  # chris


def test_a_heatmap_cell_leads_to_its_traces(page, demo, screenshots):
    page.goto(demo["url"] + "/heatmap")
    shoot(page, screenshots, "ui-heatmap.png")
    cells = page.locator("table.heatmap tbody a")
    assert cells.count() >= 2
    top = cells.first  # the slowest band is the first row: the slow stage and what waits for it
    top.click()
    page.wait_for_url("**/?*min_ms=*")
    rows = page.locator("table.traces tbody tr")
    assert rows.count() >= 1
    rows.first.get_by_role("link").click()
    assert page.locator("details.span").count() >= 2


def test_hostile_span_data_renders_as_text_and_runs_nothing(page, demo):
    import requests

    from tests.support.trace_proxy_spans import envoy_trace

    spans = envoy_trace(request_id="hostile-browser")
    markup = "<img src=x onerror=alert(1)><script>alert(2)</script>"
    spans[0]["localEndpoint"]["serviceName"] = markup
    spans[1]["tags"]["evil"] = markup + "\x1b[31m\x00" + "Z" * 50_000
    assert requests.post(f"{demo['url']}/api/v2/spans", json=spans, timeout=5).status_code == 202
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(f"{demo['url']}/trace/hostile-browser")
    assert page.locator("details.span").count() == 12
    assert page.locator("details.span .service").first.inner_text() == markup.lower()  # shown, as text
    page.locator("details.span").nth(1).locator("summary").click()
    assert "\\x1b[31m\\x00ZZZ" in page.locator("details.span").nth(1).inner_text()
    page.goto(f"{demo['url']}/?arriving=1")
    assert page.locator("table.traces").is_visible()
    assert dialogs == [] and page.locator("img[src=x]").count() == 0
