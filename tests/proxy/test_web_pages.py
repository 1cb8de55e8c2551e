"""The web UI's pages, in-process: what they list, what they say when nothing matches, and
that hostile span data (markup, control characters, huge values) is shown escaped."""
from __future__ import annotations

import html
import re
import time

import pytest

from tests.support.trace_proxy_spans import envoy_trace, wide_trace
from tests.support.waiting import wait_for
from trace_proxy.app import create_app
from trace_proxy.settings import Settings

HOSTILE_SERVICE = '"><script>alert(1)</script><b x="'
OUR_SCRIPTS = re.compile(r'<script type="module" src="/ui/static/[a-z-]+\.js\?v=[0-9a-f]+"></script>')
HOSTILE_TAG = "<img src=x onerror=alert(1)>\x1b[31m\x00" + "Z" * 100_000


@pytest.fixture()
def client():
    return create_app(Settings(settle_seconds=0)).test_client()


def post(client, spans):
    assert client.post("/api/v2/spans", json=spans).status_code == 202


def page(client, url, status=200) -> str:
    reply = client.get(url)
    assert reply.status_code == status, reply.get_data(as_text=True)[:500]
    assert "default-src 'none'" in reply.headers["Content-Security-Policy"]
    return reply.get_data(as_text=True)


def problem(body: str) -> str:
    found = re.search(r'class="problem[^"]*"[^>]*>(.*?)</p>', body, re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", found.group(1))).strip() if found else ""


def test_search_lists_whole_traces_with_root_operation_spans_services_and_errors(client):
    ok, failing = envoy_trace(request_id="ok"), envoy_trace(request_id="failing")
    failing[0]["tags"].update({"error": "true", "http.status_code": "500"})
    post(client, ok + failing)
    body = page(client, "/")
    rows = re.findall(r'<tr class="([^"]*)" data-trace-id="([0-9a-f]+)">(.*?)</tr>', body, re.S)
    assert {tid for _, tid, _ in rows} == {ok[0]["traceId"], failing[0]["traceId"]}
    for classes, tid, row in rows:
        assert "front-envoy" in row and "/echo/alice" in row and ">12<" in row
        assert "front-envoy, service1-0, service2-0" in row
        assert ("error" in classes) == (tid == failing[0]["traceId"])
    only_errors = page(client, "/?errors=1")
    assert failing[0]["traceId"] in only_errors and ok[0]["traceId"] not in only_errors


def test_partial_traces_are_labelled_and_arriving_ones_listed_only_when_asked_for(client):
    whole, rootless, holed = envoy_trace(), envoy_trace(), envoy_trace()
    post(client, whole + rootless[1:] + holed[:4] + holed[5:])  # holed lost stage 1's egress span
    listing = page(client, "/")
    assert rootless[0]["traceId"] not in listing  # no root yet: the request may still be running
    assert re.search(rf'<tr class="[^"]*whole" data-trace-id="{whole[0]["traceId"]}">', listing)
    row = re.search(rf'<tr class="[^"]*partial" data-trace-id="{holed[0]["traceId"]}">(.*?)</tr>', listing, re.S)
    assert row and 'badge partial">partial<' in row.group(1)
    with_arriving = page(client, "/?arriving=1")
    row = re.search(rf'<tr class="[^"]*arriving" data-trace-id="{rootless[0]["traceId"]}">(.*?)</tr>', with_arriving, re.S)
    assert row and 'badge arriving">arriving<' in row.group(1)
    assert problem(page(client, f"/trace/{rootless[0]['traceId']}")).startswith("Still arriving:")
    assert problem(page(client, f"/trace/{holed[0]['traceId']}")).startswith("Partial: done arriving")
    assert problem(page(client, f"/trace/{whole[0]['traceId']}")) == ""


def test_empty_results_say_what_the_filter_found(client):
    a_minute_ago = int(time.time() * 1_000_000) - 60_000_000
    post(client, envoy_trace(start_us=a_minute_ago) + envoy_trace(start_us=a_minute_ago))
    assert problem(page(client, "/?lookback=1000")) == "no traces in the last 1 s (2 stored)"
    assert problem(page(client, "/?service=nosuch")) == \
        "no service 'nosuch'; services: front-envoy, service1-0, service2-0"
    assert problem(page(client, "/?service=service2-0&min_ms=60000")) == \
        "no traces in the last 1 day with service service2-0, a span of at least 60000 ms (2 stored)"
    assert problem(page(client, "/?operation=nothing")).startswith("no operation 'nothing'; operations: echo,")
    assert problem(page(client, "/?min_ms=soon", status=400)) == "min_ms must be a number, not 'soon'"


def test_a_trace_page_shows_the_waterfall_with_slowest_and_errors_and_every_tag(client):
    spans = envoy_trace(request_id="req-wf", slow_stage_us=2_000_000)
    spans[1]["tags"]["error"] = "true"
    spans[1]["annotations"] = [{"timestamp": spans[1]["timestamp"] + 1500, "value": "retry"}]
    post(client, spans)
    for ident in (spans[0]["traceId"], "req-wf"):  # by trace id and by x-request-id
        body = page(client, f"/trace/{ident}?span={spans[1]['id']}")  # its panel open
        rows = re.findall(r'<div class="span row([^"]*)" role="row" id="[^"]+" data-span-id="([0-9a-f]+)"(.*?)</div>',
                          body, re.S)
        assert len(rows) == 12
        assert rows[0][1] == spans[0]["id"] and "front-envoy" in rows[0][2]
        slowest = [r for r in rows if "slowest" in r[0]]
        # service2's span answering /stage/3: the most time of its own
        assert [r[1] for r in slowest] == [spans[9]["id"]] and "service2-0" in slowest[0][2]
        assert [r[1] for r in rows if "error" in r[0]] == [spans[1]["id"]]
        assert [r[1] for r in rows if "selected" in r[0]] == [spans[1]["id"]]
        assert "<dd>retry @ +1.5 ms</dd>" in body and "<dt>guid:x-request-id</dt><dd>req-wf</dd>" in body
        assert f'href="/trace/{spans[0]["traceId"]}"' in body and 'href="/trace/req-wf"' in body


def test_a_big_trace_page_lists_every_span_once_in_row_groups_even_named_like_the_pages_marks(client):
    spans = wide_trace(230, request_id="<!-- the rows -->")
    spans[7]["name"] = "<!-- the rows -->"
    post(client, spans)
    body = page(client, f"/trace/{spans[0]['traceId']}")
    ids = re.findall(r'<div class="span row[^"]*" role="row" id="[^"]+" data-span-id="([0-9a-f]+)"', body)
    assert sorted(ids) == sorted(s["id"] for s in spans)
    groups = re.findall(r'<div class="rows" role="rowgroup">\n(.*?)\n</div>\n', body, re.S)
    assert [g.count('role="row"') for g in groups] == [50, 50, 50, 50, 30]
    assert body.count("<!-- the rows -->") == 0 and "&lt;!-- the rows --&gt;" in body
    assert body.rstrip().endswith("</html>")


def test_unknown_traces_get_a_404_page_that_says_so_escaped(client):
    body = page(client, "/trace/<b>nope</b>", status=404)
    assert "<b>nope" not in body and "&lt;b&gt;nope&lt;/b&gt;" in body
    assert "No trace" in problem(body) and "0 traces stored" in problem(body)
    page(client, f"/trace/{'a' * 32}", status=404)


def test_hostile_service_names_and_tag_values_are_escaped_and_cut(client):
    spans = envoy_trace(request_id="<script>x</script>")
    spans[0]["localEndpoint"]["serviceName"] = HOSTILE_SERVICE
    spans[0]["name"] = HOSTILE_SERVICE
    spans[2]["tags"]["evil"] = HOSTILE_TAG
    post(client, spans)
    for url in ("/", f"/trace/{spans[0]['traceId']}", "/heatmap", "/dependencies",
                f"/?service={HOSTILE_SERVICE.lower()}", "/trace/%3Cscript%3Ex%3C%2Fscript%3E"):
        body = OUR_SCRIPTS.sub("", page(client, url))
        assert "<script" not in body and "<img" not in body and "<b x" not in body, url
        assert "\x1b" not in body and "\x00" not in body, url
        assert len(body) < 60_000, url  # a 100 kB tag is cut, not pasted
    trace_page = page(client, f"/trace/{spans[0]['traceId']}?span={spans[2]['id']}")
    assert "&lt;img src=x onerror=alert(1)&gt;\\x1b[31m\\x00ZZZ" in trace_page
    assert "characters)" in trace_page


@pytest.mark.parametrize("spread_s", [18, 297.123457])  # one second per column, and an odd column width
def test_a_heatmap_cell_lists_the_traces_with_a_span_in_it(client, spread_s):
    now_us = int(time.time() * 1_000_000) - 1_000_000
    slow = envoy_trace(request_id="slow", slow_stage_us=3_000_000, start_us=now_us - round(spread_s * 1e6) - 333)
    fast = envoy_trace(request_id="fast", slow_stage_us=300_000, start_us=now_us)
    post(client, slow + fast)
    body = page(client, "/heatmap?service=service2-0")
    cells = re.findall(r'<a href="(/\?[^"]+)" title="(\d+) spans', body)
    assert cells and sum(int(n) for _, n in cells) == 10  # 5 service2 spans per trace
    found = {}
    for href, _ in cells:
        listing = page(client, html.unescape(href))
        tids = set(re.findall(r'data-trace-id="([0-9a-f]+)"', listing))
        assert tids, href
        found[html.unescape(href)] = tids
    slowest_cell = max(found, key=lambda h: float(re.search(r"min_ms=([\d.]+)", h).group(1)))
    assert found[slowest_cell] == {slow[0]["traceId"]}


def test_the_dependency_graph_shows_both_edges_with_call_and_error_counts(client):
    # Traces that ended before the page asks: a trace made "now" has calls that start a few
    # milliseconds in the future, outside the graph's window, which ends at the page's now.
    started = int(time.time() * 1_000_000) - 10_000_000
    failing = envoy_trace(start_us=started)
    failing[1]["tags"]["error"] = "true"
    post(client, envoy_trace(start_us=started) + failing)
    body = page(client, "/dependencies")
    edges = re.findall(r'<g class="edge([^"]*)" data-parent="([^"]+)" data-child="([^"]+)">.*?<text[^>]*>([^<]+)</text>',
                       body, re.S)
    assert [(p, c, label) for _, p, c, label in edges] == [
        ("front-envoy", "service1-0", "2 calls, 1 error"), ("service1-0", "service2-0", "10 calls")]


def test_static_files_are_linked_by_content_hash_and_kept_by_the_browser(client):
    body = page(client, "/")
    links = re.findall(r'(?:src|href)="(/ui/static/[^"]+)"', body)
    assert {link.split("?")[0].rsplit("/", 1)[1] for link in links} >= {"ui.css", "theme.js", "keys.js"}
    for link in links:
        assert re.search(r"\?v=[0-9a-f]{10}$", link), link
        reply = client.get(link)
        assert reply.status_code == 200 and "max-age=31536000" in reply.headers["Cache-Control"]
    unversioned = client.get("/ui/static/ui.css")
    assert "max-age=31536000" not in unversioned.headers.get("Cache-Control", "")


def test_compare_needs_two_traces_and_says_which_one_is_missing(client):
    one = envoy_trace(request_id="one")
    post(client, one)
    assert problem(page(client, f"/compare?trace={one[0]['traceId']}", status=400)) == \
        "tick exactly two traces to compare, not 1"
    reply = client.get(f"/compare?trace={one[0]['traceId']}&trace=one")
    assert reply.status_code == 302 and reply.headers["Location"].endswith(f"/compare/{one[0]['traceId']}/one")
    assert "No trace" in problem(page(client, f"/compare/one/{'b' * 32}", status=404))


def test_the_search_page_says_how_long_a_trace_waits_before_it_is_listed():
    def note(settings: Settings) -> str:
        client = create_app(settings).test_client()
        post(client, envoy_trace())

        def listed():  # the note comes with the first listed trace, once it has settled
            found = re.search(r'<p class="note">(.*?)</p>', page(client, "/"), re.S)
            return found and " ".join(html.unescape(re.sub(r"<[^>]+>", "", found.group(1))).split())
        return wait_for(listed, 10, "the trace listed")

    assert "then no span for 0.05 s; partial" in note(Settings(settle_seconds=0.05))
    # as on the local mesh: a trace with every call answered is listed after a shorter quiet
    assert "then no span for 0.05 s, or 0.02 s once every call was answered;" in note(
        Settings(settle_seconds=0.05, answered_settle_seconds=0.02))
