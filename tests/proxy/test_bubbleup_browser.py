"""BubbleUp in a real browser against a real trace proxy: drag across the heatmap's slow
band, and the fields that set those spans apart come first, each value's share inside and
outside the selection side by side, with a link to exactly the selected traces."""
from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.support.browser import axe_problems, shoot, sideways_overflow
from tests.support.trace_proxy_process import running_proxy
from tests.support.trace_proxy_spans import envoy_trace

NOW_US = int(time.time() * 1_000_000)


def fast_trace(i: int) -> list[dict]:
    spans = envoy_trace(request_id=f"fast-{i}", start_us=NOW_US - i * 3_000_000)
    spans[0]["duration"], spans[1]["duration"] = 350_000, 340_000  # a 300 ms stage 3
    return spans


def slow_trace(i: int) -> list[dict]:
    """Stage 3 takes 1.85 s, answered by service2-1, the pod on the slow node."""
    spans = envoy_trace(request_id=f"slow-{i}", start_us=NOW_US - i * 3_000_000 - 1_000_000,
                        slow_stage_us=1_850_000)
    spans[9]["localEndpoint"]["serviceName"] = "service2-1"
    spans[9]["tags"]["node"] = "slow-node"
    return spans


@pytest.fixture(scope="module")
def proxy():
    with running_proxy("--settle", "0") as running:
        fast = [fast_trace(i) for i in range(12)]
        slow = [slow_trace(i) for i in range(0, 12, 3)]
        for spans in fast + slow:
            assert requests.post(f"{running.url}/api/v2/spans", json=spans, timeout=5).status_code == 202
        yield {"url": running.url, "slow": {s[0]["traceId"] for s in slow}}


def test_a_dragged_heatmap_region_bubbles_up_the_slow_pod(page, proxy, screenshots):
    page.goto(proxy["url"] + "/heatmap")
    top = page.locator("table.heatmap tbody tr").first.locator("td[data-t0]")  # the slowest band
    first, last = top.first.bounding_box(), top.last.bounding_box()
    page.mouse.move(first["x"] + 3, first["y"] + 3)
    page.mouse.down()
    page.mouse.move(last["x"] + 3, last["y"] + 3, steps=8)
    page.mouse.up()
    selection = page.locator("[data-selection]")
    assert selection.is_visible() and "Selected 16 spans" in selection.inner_text()  # 4 slow traces × 4 spans
    assert page.url.endswith("/heatmap")  # a drag follows no cell's link
    selection.get_by_role("link", name="BubbleUp this selection").click()
    page.wait_for_url("**/bubbleup?*")
    shoot(page, screenshots, "ui-bubbleup.png")
    fields = page.locator("section.field")
    scores = fields.evaluate_all("fs => fs.map(f => Number(f.dataset.score))")
    assert scores == sorted(scores, reverse=True) and scores[0] > 0
    node = page.locator('section.field[data-field="tag node"] tr[data-value="slow-node"]')
    assert (node.get_attribute("data-inside"), node.get_attribute("data-outside")) == ("0.2500", "0.0000")
    pod = page.locator('section.field[data-field="service"] tr[data-value="service2-1"]')
    assert (pod.get_attribute("data-inside"), pod.get_attribute("data-outside")) == ("0.2500", "0.0000")
    assert axe_problems(page) == []
    page.set_viewport_size({"width": 420, "height": 800})
    assert sideways_overflow(page) == 0  # the distributions' tables scroll in their own box
    assert axe_problems(page) == []  # which a keyboard reaches too
    page.set_viewport_size({"width": 1200, "height": 720})
    page.locator("[data-selected-traces]").click()
    page.wait_for_url("**/?*")
    listed = set(page.locator("table.traces tbody tr").evaluate_all("rs => rs.map(r => r.dataset.traceId)"))
    assert listed == proxy["slow"]


def test_without_script_a_band_links_to_its_bubbleup(browser, proxy):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(proxy["url"] + "/heatmap")
    band = page.locator("table.heatmap tbody tr").first.locator("a.band")
    query = parse_qs(urlsplit(band.get_attribute("href")).query)
    assert float(query["min_ms"][0]) == 1048.576
    band.click()
    assert page.locator('section.field[data-field="tag node"]').count() == 1
    page.goto(proxy["url"] + "/bubbleup?t0=5")
    assert "BubbleUp needs a selection: t1, min_ms, max_ms missing" in page.locator(".problem").inner_text()
    context.close()
