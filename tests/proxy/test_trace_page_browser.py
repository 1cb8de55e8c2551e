"""The trace page in a real browser (headless Chromium) against a real trace proxy process
holding stored fixture traces: the ruler and minimap zoom, collapsing, the span panel and
its links, find, the critical path, statistics, downloads, dark mode, keys, narrow screens
and axe-core's accessibility checks."""
from __future__ import annotations

import json
import re

import pytest
import requests

from tests.support.browser import axe_problems, shoot, sideways_overflow
from tests.support.trace_proxy_process import running_proxy
from tests.support.trace_proxy_spans import envoy_trace, wide_trace
from tests.support.waiting import wait_for
from trace_proxy.web.export import otlp_json as export_otlp


def post(url: str, spans: list[dict]) -> None:
    assert requests.post(f"{url}/api/v2/spans", json=spans, timeout=5).status_code == 202


@pytest.fixture(scope="module")
def proxy():
    """Stored traces: a slow-stage one whose slowest span also failed, and a partial one
    whose lost request ended without a response (status 0, Envoy's DC flag)."""
    with running_proxy("--settle", "0") as running:
        failing = envoy_trace(request_id="failing-slow", slow_stage_us=1_850_000)
        failing[7]["tags"].update({"http.status_code": "503", "error": "true"})  # stage 2's server
        failing[9]["tags"].update({"http.status_code": "500", "error": "true"})  # stage 3's server: slowest
        partial = envoy_trace(request_id="cut-off")
        partial[2]["tags"].update({"http.status_code": "0", "response_flags": "DC", "error": "true"})
        del partial[1]  # service1's ingress span never came: the stage calls lost their parent
        normal = envoy_trace(request_id="normal")  # stage 3 takes 300 ms, not 1,850
        for span in normal:  # another instance of service1: compared as the same service
            span["localEndpoint"]["serviceName"] = span["localEndpoint"]["serviceName"].replace("service1-0", "service1-2")
        del normal[11]  # stage 4's server span: only in the failing trace
        post(running.url, failing + partial + normal)
        yield {"url": running.url, "failing": failing, "partial": partial, "normal": normal}


def open_trace(page, proxy, name="failing", query=""):
    page.goto(f"{proxy['url']}/trace/{proxy[name][0]['traceId']}{query}")
    page.wait_for_selector(".minimap svg")  # the page's modules ran


def rows(page):
    return page.locator(".waterfall .span")


def test_errors_are_red_the_slowest_orange_and_offsets_count_from_the_trace_start(page, proxy):
    open_trace(page, proxy)
    fill = "el => getComputedStyle(el.querySelector('.lane i.b')).backgroundColor"
    slowest = page.locator(".span.slowest")
    assert slowest.count() == 1 and slowest.get_attribute("data-span-id") == proxy["failing"][9]["id"]
    assert "error" in slowest.get_attribute("class")
    red = slowest.evaluate(fill)
    other_error = page.locator(".span.error:not(.slowest)").first
    assert other_error.evaluate(fill) == red == "rgb(198, 40, 40)"  # a failing slowest span is red too
    plain = page.locator(".span:not(.error):not(.slowest)").first
    assert plain.evaluate(fill) not in (red, "rgb(230, 145, 56)")
    assert rows(page).first.locator(".start").inner_text() == "+0.0"
    assert rows(page).nth(2).locator(".start").inner_text() == "+0.2"  # stage 0's egress, 200 µs in
    assert axe_problems(page) == []


def test_the_partial_trace_says_dc_where_envoy_recorded_no_response(page, proxy):
    open_trace(page, proxy, "partial")
    assert page.locator(".problem").inner_text().startswith("Partial: done arriving")
    cut = page.locator(f'.span[data-span-id="{proxy["partial"][1]["id"]}"]')
    assert cut.locator(".num").first.inner_text() == "DC"


def test_the_ruler_and_the_minimap_zoom_into_a_window(page, proxy):
    open_trace(page, proxy)
    ticks = page.locator("[data-ruler] > span")
    assert ticks.all_inner_texts() == ["0.0 ms", "500.0 ms", "1,000 ms", "1,500 ms", "2,000 ms"]
    box = page.locator(".minimap svg").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.5, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.75, y, steps=4)
    page.mouse.up()
    first, last = (float(t.split()[0].replace(",", "")) for t in (ticks.first.inner_text(), ticks.last.inner_text()))
    assert 950 <= first <= 1050 and 1450 <= last <= 1550, ticks.all_inner_texts()
    where = """row => { const cell = row.querySelector('.bar').getBoundingClientRect();
                        const bar = row.querySelector('i.b').getBoundingClientRect();
                        return [bar.left - cell.left, bar.right - cell.right, cell.width]; }"""
    left, right, width = rows(page).first.evaluate(where)  # the root: all of the trace
    assert left < -width and right > width / 2  # the window is a quarter of it: the bar overflows both sides
    left, right, width = rows(page).nth(2).evaluate(where)  # stage 0's call, 1 ms at the start
    assert right < 0  # out of the window, to its left
    page.locator(".minimap svg").dblclick()
    assert ticks.last.inner_text() == "2,000 ms"


def test_a_subtree_collapses_and_expands_and_everything_below_a_depth(page, proxy):
    open_trace(page, proxy)
    assert rows(page).count() == 12
    ingress = rows(page).nth(1)
    ingress.locator("button.twisty").click()
    assert page.locator(".waterfall .span:visible").count() == 2
    assert ingress.locator("button.twisty").get_attribute("aria-expanded") == "false"
    ingress.locator("button.twisty").click()
    assert page.locator(".waterfall .span:visible").count() == 12
    page.select_option("[data-depth]", "2")  # the stage calls stay, their servers fold away
    visible = page.locator(".waterfall .span:visible")
    assert visible.count() == 7 and set(visible.evaluate_all("rs => rs.map(r => r.dataset.depth)")) == {"0", "1", "2"}
    page.select_option("[data-depth]", "")
    assert page.locator(".waterfall .span:visible").count() == 12


def test_a_click_opens_the_span_panel_and_its_link_reopens_it(page, proxy, browser):
    open_trace(page, proxy)
    slow = proxy["failing"][9]
    page.locator(f'.span[data-span-id="{slow["id"]}"] .service').click()
    panel = page.locator("aside.panel")
    panel.locator("dl.detail").wait_for()
    text = panel.inner_text()
    assert "failing-slow" in text and "lasts 1,850 ms" in text and "starts +0.3 ms" in text and "on the critical path" in text
    panel.locator("details.raw summary").click()
    assert json.loads(panel.locator("pre").inner_text())["id"] == slow["id"]
    assert page.url.endswith(f"?span={slow['id']}")
    assert page.locator(".span.selected").get_attribute("data-span-id") == slow["id"]
    assert axe_problems(page) == []
    page.keyboard.press("Escape")
    assert panel.is_hidden() and "span=" not in page.url
    # The span's link, in a fresh page: opens with it selected, without any script too.
    for scripts in (True, False):
        context = browser.new_context(java_script_enabled=scripts)
        tab = context.new_page()
        tab.goto(f"{proxy['url']}/trace/{slow['traceId']}?span={slow['id']}")
        assert tab.locator(".span.selected").get_attribute("data-span-id") == slow["id"]
        assert "failing-slow" in tab.locator("aside.panel").inner_text()
        href = tab.locator(f'.span[data-span-id="{proxy["failing"][0]["id"]}"] .operation a').get_attribute("href")
        assert href.endswith(f"?span={proxy['failing'][0]['id']}#span-{proxy['failing'][0]['id']}")
        context.close()


def test_find_highlights_spans_by_service_name_or_tag_value(page, proxy):
    open_trace(page, proxy)
    page.fill("[data-find]", "stage/3")
    assert page.locator(".span.match").count() == 1
    assert page.locator("[data-found]").inner_text() == "1 of 12 spans match"
    page.fill("[data-find]", "SERVICE2")
    assert page.locator(".span.match").count() == 5
    page.fill("[data-find]", "failing-slow")  # a tag value: every span carries the request id
    assert page.locator(".span.match").count() == 12


def test_the_critical_path_is_marked_and_can_be_shown_alone(page, proxy):
    open_trace(page, proxy)
    failing = proxy["failing"]
    on_path = page.locator('.span[data-critical-path="true"]').evaluate_all("rs => rs.map(r => r.dataset.spanId)")
    # The stages run side by side and stage 3 ends last: front → ingress → stage 3 → its server.
    assert on_path == [failing[0]["id"], failing[1]["id"], failing[8]["id"], failing[9]["id"]]
    page.check("[data-critical-only]")
    assert page.locator(".waterfall .span:visible").count() == 4
    page.uncheck("[data-critical-only]")
    assert page.locator(".waterfall .span:visible").count() == 12


def test_statistics_per_operation_sort_by_any_column(page, proxy, screenshots):
    page.goto(f"{proxy['url']}/trace/{proxy['failing'][0]['traceId']}/stats")
    shoot(page, screenshots, "ui-stats.png")
    table = page.locator("table.stats")
    first = lambda: table.locator("tbody tr").first.evaluate("r => [r.dataset.service, r.dataset.name]")  # noqa: E731
    assert first() == ["service2-0", "stage"]  # most self time: the five stage servers, the slow one
    table.get_by_role("button", name="max ms").click()
    assert first() == ["front-envoy", "front-envoy"]  # the longest span, descending
    table.get_by_role("button", name="max ms").click()
    ascending = table.locator("tbody tr").evaluate_all("rs => rs.map(r => Number(r.cells[7].dataset.value))")
    assert ascending == sorted(ascending) and len(ascending) == 8
    assert axe_problems(page) == []


def test_both_downloads_are_files_this_proxy_reads_back(page, proxy, tmp_path):
    open_trace(page, proxy)
    trace_id = proxy["failing"][0]["traceId"]
    for label, fmt in (("Zipkin v2 JSON", "zipkin"), ("OTLP JSON", "otlp")):
        with page.expect_download() as caught:
            page.get_by_role("link", name=label).click()
        path = tmp_path / caught.value.suggested_filename
        caught.value.save_as(path)
        assert path.name == f"trace-{trace_id}-{fmt}.json"
        body = json.loads(path.read_text())
        if fmt == "zipkin":
            assert sorted(s["id"] for s in body) == sorted(s["id"] for s in proxy["failing"])
        else:
            spans = [s for r in body["resourceSpans"] for ss in r["scopeSpans"] for s in ss["spans"]]
            assert len(spans) == 12 and sum(s["status"]["code"] == 2 for s in spans) == 2


def test_dark_mode_follows_the_system_and_the_toggle_is_remembered(browser, proxy, screenshots):
    context = browser.new_context(color_scheme="dark")
    page = context.new_page()
    background = "() => getComputedStyle(document.body).backgroundColor"
    page.goto(proxy["url"] + "/")
    toggle = page.locator("[data-theme-toggle]")
    assert page.evaluate(background) == "rgb(20, 24, 29)" and toggle.get_attribute("aria-pressed") == "true"
    assert axe_problems(page) == []
    toggle.click()
    assert page.evaluate(background) == "rgb(255, 255, 255)"
    page.goto(f"{proxy['url']}/trace/{proxy['failing'][0]['traceId']}")
    assert page.evaluate(background) == "rgb(255, 255, 255)"  # remembered over the system's dark
    page.locator("[data-theme-toggle]").click()
    assert page.evaluate(background) == "rgb(20, 24, 29)"
    page.locator(f'.span[data-span-id="{proxy["failing"][9]["id"]}"] .bar').click()
    page.locator("aside.panel dl.detail").wait_for()
    page.set_viewport_size({"width": 1400, "height": 640})
    shoot(page, screenshots, "ui-trace-dark.png")
    assert axe_problems(page) == []
    context.close()


def test_keys_move_open_and_close_spans(page, proxy):
    open_trace(page, proxy)
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("k")
    page.keyboard.press("j")
    page.keyboard.press("Enter")
    page.locator("aside.panel dl.detail").wait_for()
    assert page.locator(".span.selected").get_attribute("data-span-id") == proxy["failing"][1]["id"]
    page.keyboard.press("Escape")
    assert page.locator("aside.panel").is_hidden()
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.dataset.find") == ""
    page.keyboard.press("Escape")
    page.keyboard.press("?")
    assert page.locator("dialog[data-keys]").is_visible()
    assert "next / previous span" in page.locator("dialog[data-keys]").inner_text()


@pytest.mark.parametrize("path", ["/", "/heatmap", "/dependencies", "/trace/{id}", "/trace/{id}?span={span}",
                                  "/trace/{id}/stats", "/compare/{normal}/{id}", "/upload"])
def test_at_420_px_the_page_never_scrolls_sideways(browser, proxy, path):
    context = browser.new_context(viewport={"width": 420, "height": 800})
    page = context.new_page()
    page.goto(proxy["url"] + path.format(id=proxy["failing"][0]["traceId"], span=proxy["failing"][9]["id"],
                                         normal=proxy["normal"][0]["traceId"]))
    assert sideways_overflow(page) == 0
    assert axe_problems(page) == []  # boxes that scroll instead are reached by keyboard too
    if path.startswith("/trace/{id}") and "stats" not in path:  # the waterfall scrolls in its box, bars and all
        page.evaluate("document.querySelector('.waterfall').scrollLeft = 1e6")
        bar = page.locator(".waterfall .span").last.locator("i.b")
        bar.scroll_into_view_if_needed()
        box = bar.bounding_box()
        shown = f"document.elementFromPoint({box['x'] + box['width'] / 2}, {box['y'] + box['height'] / 2})"
        assert page.evaluate(f"{shown}?.closest('.bar') !== null"), "the bar is cut off"
    context.close()


IN_VIEW = "r => { const box = r.getBoundingClientRect(); return box.height > 0 && box.top >= 0 && box.bottom <= innerHeight; }"


def scrolled_into_view(page, selector: str, what: str) -> None:
    """Polled from here, not with page.wait_for_function: that polls by evaluating a string,
    which the page's Content Security Policy (script-src 'self') refuses once a first look
    is not enough, as on a busy machine."""
    wait_for(lambda: page.locator(selector).count() == 1 and page.locator(selector).evaluate(IN_VIEW), 10, what)


def test_a_1000_span_trace_renders_whole_collapses_and_opens_at_a_span_far_down(page, proxy):
    spans = wide_trace(1000, request_id="wide-browser")
    post(proxy["url"], spans)
    open_trace(page, {**proxy, "wide": spans}, "wide")
    assert rows(page).count() == 1000
    assert page.locator(".span.error").count() == sum(s["tags"].get("http.status_code") == "500" for s in spans) > 90
    far = rows(page).nth(900).get_attribute("data-span-id")
    # Rows off screen are not laid out until scrolled to (ui.css); a link to one still shows it.
    for query in (f"?span={far}", f"?span={far}#span-{far}"):
        open_trace(page, {**proxy, "wide": spans}, "wide", query)
        selected = page.locator(".span.selected")
        assert selected.get_attribute("data-span-id") == far
        scrolled_into_view(page, ".span.selected", "the selected span scrolled into view")
    open_trace(page, {**proxy, "wide": spans}, "wide")
    page.fill("[data-find]", "/item/998")
    page.keyboard.press("Enter")
    match = page.locator(".span.match")
    assert match.count() == 1
    scrolled_into_view(page, ".span.match", "the found span scrolled into view")
    page.select_option("[data-depth]", "1")
    assert page.locator(".waterfall .span:visible").count() == 11


def test_two_traces_ticked_in_the_list_are_compared_span_by_span(page, proxy, screenshots):
    normal, failing = proxy["normal"][0]["traceId"], proxy["failing"][0]["traceId"]
    page.goto(proxy["url"] + "/")
    button = page.locator("[data-compare-button]")
    assert button.is_disabled()
    page.check(f'input[name=trace][value="{normal}"]')
    page.check(f'input[name=trace][value="{failing}"]')
    assert button.is_enabled()
    button.click()
    page.wait_for_url(f"**/compare/{normal}/{failing}")
    shoot(page, screenshots, "ui-compare.png")
    table = page.locator("table.compare tbody tr")
    assert table.count() == 12  # service1-2 and service1-0 matched as service1: one row per span path
    top = table.first
    assert top.get_attribute("data-path").endswith("service1 stage 3 › service2 stage")
    cells = top.locator("td").all_inner_texts()
    assert cells[1:] == ["300.0", "1850.0", "+1550.0", "+1550.0"]
    only_b = page.locator('tr[data-only="b"]')
    assert only_b.count() == 1 and only_b.get_attribute("data-path").endswith("stage 4 › service2 stage")
    assert only_b.locator("td").nth(1).inner_text() == "–"
    assert axe_problems(page) == []


def test_a_downloaded_file_uploads_back_as_a_trace_page_without_storing_it(page, proxy, tmp_path):
    other = envoy_trace(request_id="from-elsewhere")
    other[5]["tags"]["error"] = "true"
    (tmp_path / "one.json").write_text(json.dumps(export_otlp(other)))
    page.goto(proxy["url"] + "/upload")
    page.set_input_files("input[name=file]", str(tmp_path / "one.json"))
    page.get_by_role("button", name="Open").click()
    page.wait_for_selector(".minimap svg")
    assert rows(page).count() == 12 and page.locator(".span.error").count() == 1
    page.locator(f'.span[data-span-id="{other[5]["id"]}"] .bar').click()
    assert "from-elsewhere" in page.locator("aside.panel").inner_text()  # its panel came with the page
    assert axe_problems(page) == []
    assert requests.get(f"{proxy['url']}/api/v2/trace/{other[0]['traceId']}", timeout=5).status_code == 404
    # Stored when asked: then it is an ordinary trace page.
    page.goto(proxy["url"] + "/upload")
    page.set_input_files("input[name=file]", str(tmp_path / "one.json"))
    page.check("input[name=store]")
    page.get_by_role("button", name="Open").click()
    page.wait_for_url(f"**/trace/{other[0]['traceId']}")
    assert rows(page).count() == 12


def test_a_file_of_several_traces_lists_them_and_opens_one_by_id(page, proxy, tmp_path):
    first, second = envoy_trace(request_id="first"), envoy_trace(request_id="second")
    (tmp_path / "two.json").write_text(json.dumps(first + second))  # Zipkin v2 JSON
    page.goto(proxy["url"] + "/upload")
    page.set_input_files("input[name=file]", str(tmp_path / "two.json"))
    page.get_by_role("button", name="Open").click()
    listed = page.locator("table.traces tbody tr").evaluate_all("rs => rs.map(r => r.dataset.traceId)")
    assert listed == [first[0]["traceId"], second[0]["traceId"]]
    page.goto(proxy["url"] + "/upload")
    page.set_input_files("input[name=file]", str(tmp_path / "two.json"))
    page.fill("input[name=trace]", second[0]["traceId"])
    page.get_by_role("button", name="Open").click()
    assert page.locator(".waterfall").get_attribute("data-trace-id") == second[0]["traceId"]


def test_a_file_that_is_no_trace_is_refused_saying_why(browser, proxy, tmp_path):
    context = browser.new_context()  # unwatched: the refusal is a 400, which the console reports
    page = context.new_page()
    (tmp_path / "bad.json").write_text('{"spans": []}')
    page.goto(proxy["url"] + "/upload")
    page.set_input_files("input[name=file]", str(tmp_path / "bad.json"))
    page.get_by_role("button", name="Open").click()
    assert page.locator(".problem").inner_text() == \
        "bad.json: neither Zipkin v2 JSON (a list of spans) nor OTLP JSON (an object with resourceSpans)"
    context.close()


def test_the_search_list_plots_sorts_and_goes_live(page, proxy):
    page.goto(proxy["url"] + "/?limit=100")
    failing = proxy["failing"][0]["traceId"]
    assert not re.search(r"\b\d{12,}\b", page.locator("main").inner_text())  # human times, no epoch numbers
    table = page.locator("table.traces")
    ys = dict(page.locator("svg.scatter a").evaluate_all(
        "as => as.map(a => [a.dataset.traceId, +a.querySelector('circle').getAttribute('cy')])"))
    lengths = dict(table.locator("tbody tr").evaluate_all("rs => rs.map(r => [r.dataset.traceId, +r.cells[5].dataset.value])"))
    assert ys.keys() == lengths.keys()
    by_height = [lengths[t] for t in sorted(ys, key=ys.get)]  # the longer the trace, the higher its dot
    assert by_height == sorted(by_height, reverse=True)
    table.get_by_role("button", name="duration ms").click()  # descending first
    durations = table.locator("tbody tr").evaluate_all("rs => rs.map(r => Number(r.cells[5].dataset.value))")
    assert durations == sorted(durations, reverse=True) and len(durations) >= 3
    table.get_by_role("button", name="spans").click()
    spans = table.locator("tbody tr").evaluate_all("rs => rs.map(r => Number(r.cells[3].textContent))")
    assert spans == sorted(spans, reverse=True)
    assert axe_problems(page) == []
    page.check("[data-live]")
    arriving = envoy_trace(request_id="live-one")
    post(proxy["url"], arriving)
    page.wait_for_selector(f'tr.new[data-trace-id="{arriving[0]["traceId"]}"]', timeout=15_000)
    assert page.locator(f'svg.scatter a[data-trace-id="{arriving[0]["traceId"]}"]').count() == 1
    page.uncheck("[data-live]")
    page.locator(f'svg.scatter a[data-trace-id="{failing}"]').click()
    page.wait_for_url(f"**/trace/{failing}")


def test_without_script_the_list_sorts_on_the_server(browser, proxy):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(proxy["url"] + "/?sort=longest&limit=100")
    durations = [int(v) for v in page.locator("table.traces tbody td[data-value]:nth-child(6)").evaluate_all(
        "cs => cs.map(c => c.dataset.value)")]
    assert durations == sorted(durations, reverse=True) and len(durations) >= 3
    assert "longest first" in page.locator("p.note").last.inner_text()
    context.close()


def test_without_a_log_folder_the_panel_says_where_the_logs_are(page, proxy):
    slow = proxy["failing"][9]
    page.goto(f"{proxy['url']}/trace/{slow['traceId']}?span={slow['id']}")
    assert "inv logs --cluster --request failing-slow" in page.locator("aside.panel .logs").inner_text()
