"""The web UI in a real browser (headless Chromium via Playwright) against a real local mesh:
the demo's requests, from the search page to the waterfall, the graph and the heatmap.

Every page is watched: no console error, nothing loaded from outside 127.0.0.1. With
`pytest --screenshots docs` the README's screenshots are rewritten from this run.
"""
from __future__ import annotations

import re

import pytest

from meshtools.views.front import echo
from meshtools.views.trace_lookup import SPANS_PER_ECHO, find_trace
from meshtools.views.zipkin_client import ZipkinClient
from tests.support.browser import axe_problems, shoot

def slow_stage_dominates(spans: list[dict]) -> bool:
    """Whether /stage/3's server span lasted over half of service1's ingress span: then it has
    the most time of its own, whatever the rest did. The tests' mesh sleeps only 50–150 ms
    there (to be quick), which a busy machine's overhead elsewhere can outweigh."""
    ingress = next(s for s in spans if s.get("kind") == "SERVER" and s["localEndpoint"]["serviceName"].startswith("service1"))
    calls = {s["id"] for s in spans if s.get("parentId") == ingress["id"] and "/stage/3" in s.get("tags", {}).get("http.url", "")}
    stage3 = [s for s in spans if s.get("parentId") in calls and s.get("kind") == "SERVER"]
    return bool(stage3) and stage3[0]["duration"] * 2 > ingress["duration"]


@pytest.fixture(scope="module")
def demo(local_mesh):
    """inv demo's requests (friend, earth, chris), each waited for until the store lists it whole."""
    client = ZipkinClient(local_mesh.layout.trace_proxy_url)
    traces = {}
    for name in ("friend", "earth", "chris"):
        for _ in range(5 if name == "friend" else 1):
            reply = echo(local_mesh.layout.front_url, name)
            spans = find_trace(client, reply.request_id, spans=2 if name == "chris" else SPANS_PER_ECHO)
            if name != "friend" or slow_stage_dominates(spans):
                break
        traces[name] = {"request_id": reply.request_id, "trace_id": spans[0]["traceId"], "spans": len(spans)}
    assert [t["spans"] for t in traces.values()] == [12, 12, 2]
    return {"url": local_mesh.layout.trace_proxy_url, **traces}


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

    assert axe_problems(page) == []

    friend.get_by_role("link").click()
    page.wait_for_url(f"**/trace/{demo['friend']['trace_id']}")
    spans = page.locator(".waterfall .span")
    assert spans.count() == 12
    assert spans.first.locator(".service").inner_text() == "front-envoy"
    # The stages run one after another: every span is on the critical path.
    assert page.locator('.span[data-critical-path="true"]').count() == 12
    slowest = page.locator(".span.slowest")
    assert slowest.count() == 1 and "/stage/3" in slowest.inner_text()
    slowest.locator(".bar").click()  # its tags open in the panel beside the waterfall
    detail = page.locator("aside.panel dl.detail")
    detail.wait_for()
    assert demo["friend"]["request_id"] in detail.inner_text()
    assert page.url.endswith(f"?span={slowest.get_attribute('data-span-id')}")
    assert axe_problems(page) == []
    shoot(page, screenshots, "ui-trace.png")


def test_the_chris_trace_shows_its_error_and_is_found_by_request_id(page, demo):
    page.goto(f"{demo['url']}/trace/{demo['chris']['request_id']}")
    assert page.locator("h1").inner_text() == f"trace {demo['chris']['trace_id']}"
    failed = page.locator(".waterfall .span.error")
    assert failed.count() >= 1 and "500" in failed.first.inner_text()
    assert "error" in page.locator("p.facts").inner_text()


def test_the_dependency_graph_shows_both_edges(page, demo, screenshots):
    page.goto(demo["url"] + "/dependencies")
    assert axe_problems(page) == []
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
    assert axe_problems(page) == []
    cells = page.locator("table.heatmap tbody td a")
    assert cells.count() >= 2
    top = cells.first  # the slowest band is the first row: the slow stage and what waits for it
    top.click()
    page.wait_for_url("**/?*min_ms=*")
    note = page.locator("p.note").first.inner_text()
    assert re.search(r"up to \d\d:\d\d:\d\d\.\d{3} \(from the heatmap\)", note), note  # a time, not epoch ms
    rows = page.locator("table.traces tbody tr")
    assert rows.count() >= 1
    rows.first.get_by_role("link").click()
    assert page.locator(".waterfall .span").count() >= 2


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
    assert page.locator(".waterfall .span").count() == 12
    assert page.locator(".waterfall .span .service").first.inner_text() == markup.lower()  # shown, as text
    page.locator(".waterfall .span").nth(1).locator(".bar").click()
    page.locator("aside.panel dl.detail").wait_for()
    assert "\\x1b[31m\\x00ZZZ" in page.locator("aside.panel").inner_text()
    page.goto(f"{demo['url']}/?arriving=1")
    assert page.locator("table.traces").is_visible()
    assert dialogs == [] and page.locator("img[src=x]").count() == 0


LABELS_AND_LINES = """() => {
    const svg = document.querySelector('svg.graph');
    const toScreen = (x, y) => { const p = svg.createSVGPoint(); p.x = x; p.y = y; return p.matrixTransform(svg.getScreenCTM()); };
    const lines = [...svg.querySelectorAll('g.edge line')].map(l => [toScreen(+l.getAttribute('x1'), +l.getAttribute('y1')),
                                                                     toScreen(+l.getAttribute('x2'), +l.getAttribute('y2'))]);
    const boxes = [...svg.querySelectorAll('g.edge text')].map(t => t.getBoundingClientRect());
    // Does segment a-b cross box r? Sample it finely: the lines are straight and short.
    const crosses = (a, b, r) => Array.from({length: 201}, (_, i) => i / 200).some(f => {
        const x = a.x + (b.x - a.x) * f, y = a.y + (b.y - a.y) * f;
        return x >= r.left && x <= r.right && y >= r.top && y <= r.bottom; });
    return boxes.flatMap((r, i) => lines.map(([a, b], j) => crosses(a, b, r) ? `label ${i} crosses line ${j}` : null)).filter(Boolean);
}"""


def test_dependency_labels_keep_off_the_lines_nodes_link_and_instances_group(page, demo):
    page.goto(demo["url"] + "/dependencies")
    edges = page.locator("g.edge").evaluate_all("gs => gs.map(g => [g.dataset.parent, g.dataset.child])")
    replicas = {c for p, c in edges if p == "front-envoy" and c.startswith("service1-")}
    assert len(edges) >= 3 and replicas  # front → each service1 replica it reached → service2
    assert page.evaluate(LABELS_AND_LINES) == []
    page.locator('g.node[data-name="front-envoy"] a').click()
    page.wait_for_url("**/?service=front-envoy")
    assert demo["friend"]["trace_id"] in page.locator("table.traces").inner_html()
    page.goto(demo["url"] + "/dependencies")
    page.check("input[name=group]")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**/dependencies?*group=1*")
    edges = page.locator("g.edge").evaluate_all("gs => gs.map(g => [g.dataset.parent, g.dataset.child])")
    assert ["front-envoy", "service1"] in edges and ["service1", "service2"] in edges
    assert page.evaluate(LABELS_AND_LINES) == []
    page.locator('g.node[data-name="service1"] a').click()
    instances = page.locator("#group-service1 a").all_inner_texts()
    assert set(instances) >= replicas
    assert axe_problems(page) == []


def test_the_span_panel_lists_its_requests_log_lines_from_the_mesh(page, demo, screenshots):
    page.goto(f"{demo['url']}/trace/{demo['friend']['trace_id']}")
    ingress = page.locator(".waterfall .span").nth(1)  # service1's SERVER span: its app and its Envoy
    service = ingress.locator(".service").inner_text()
    assert service.startswith("service1-")
    ingress.locator(".bar").click()
    lines = page.locator("aside.panel ol.loglines li")
    lines.first.wait_for()
    processes = set(lines.locator(".process").all_inner_texts())
    assert processes <= {f"{service}-app", f"{service}-envoy"} and f"{service}-app" in processes
    assert all(demo["friend"]["request_id"] in t or demo["friend"]["trace_id"] in t for t in lines.all_inner_texts())
    assert axe_problems(page) == []
    page.locator("aside.panel section.logs").scroll_into_view_if_needed()
    shoot(page, screenshots, "ui-logs.png")


def test_two_mesh_requests_compare_span_by_span_and_each_has_its_statistics(page, demo):
    friend, earth = demo["friend"]["trace_id"], demo["earth"]["trace_id"]
    page.goto(f"{demo['url']}/trace/{friend}/stats")
    stats = page.locator("table.stats tbody tr")
    assert sum(stats.evaluate_all("rs => rs.map(r => Number(r.cells[2].innerText))")) == 12
    selfs = stats.evaluate_all("rs => rs.map(r => Number(r.cells[4].dataset.value))")
    assert selfs == sorted(selfs, reverse=True)  # most self time first
    assert axe_problems(page) == []
    # /echo/friend and /echo/earth: two runs of one request, matched span by span (the
    # five stage calls told apart by their URL), whichever service1 instance each reached.
    page.goto(f"{demo['url']}/compare/{friend}/{earth}")
    rows = page.locator("table.compare tbody tr")
    assert rows.count() == 12 and page.locator("table.compare tr.only-a, table.compare tr.only-b").count() == 0
    paths = rows.evaluate_all("rs => rs.map(r => r.dataset.path)")
    assert sum("/stage/" in p for p in paths) == 10 and not any("service1-" in p for p in paths)
    changes = rows.evaluate_all("rs => rs.map(r => Math.abs(Number(r.cells[4].dataset.value)))")
    assert changes == sorted(changes, reverse=True)  # what explains the difference first
    assert axe_problems(page) == []
