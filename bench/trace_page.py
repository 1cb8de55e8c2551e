"""What the trace page costs in a browser: a 1,000-span trace against a 12-span one.

    python bench/trace_page.py [--spans N] [--runs N]

Starts the trace proxy, stores one mesh-shaped trace (12 spans) and one fan-out trace of N
spans, and opens each in headless Chromium (Debian's, driven by Playwright) `--runs` times.
A page counts as rendered at the first frame after its modules ran (DOMContentLoaded fires
once the deferred modules are done; a mark is set from the next animation frame, by a
script Playwright adds to the page); reported: the median time from navigation start, the
server's share (its HTML's response end), and the ratio big/small measured in this run.
A baseline in the same run: the big trace's spans as a bare table (one row per span: service,
operation, start, duration; no stylesheet, no script, served as it is by a static server in
this process), what Chromium alone takes for that many rows here. (Not served by Playwright's
router: with its requests intercepted the 12-span page measured 200-280 ms, 184 without, at
load averages of 11 to 22.)
Loads of the three pages are interleaved.
Budget: 300 ms. Timings stretch with the machine's load, which is printed alongside.
"""
from __future__ import annotations

import argparse
import contextlib
import html
import os
import statistics
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests  # noqa: E402

from meshtools.local.mesh import trace_proxy_command  # noqa: E402
from meshtools.shared.background import serving  # noqa: E402
from meshtools.shared.net import free_port  # noqa: E402
from tests.support.browser import CHROMIUM_FLAGS, chromium_path  # noqa: E402
from tests.support.trace_proxy_spans import envoy_trace, wide_trace  # noqa: E402

BUDGET_MS = 300
# Set in the page before its own scripts: a mark at the first frame after its modules ran.
MARK_RENDERED = """document.addEventListener('DOMContentLoaded', () =>
    requestAnimationFrame(() => setTimeout(() => performance.mark('rendered'), 0)));"""
RENDERED = """() => ({total: performance.getEntriesByName('rendered')[0].startTime,
                 server: performance.getEntriesByType('navigation')[0].responseEnd})"""


def bare_table(spans: list[dict]) -> str:
    """The baseline page: the spans as a plain table, no stylesheet, no script."""
    start = min(s["timestamp"] for s in spans)
    rows = "".join(f"<tr><td>{html.escape(s['localEndpoint']['serviceName'])}</td><td>{html.escape(s['name'])}</td>"
                   f"<td>{(s['timestamp'] - start) / 1000:.1f}</td><td>{s['duration'] / 1000:.1f}</td></tr>\n" for s in spans)
    return (f"<!doctype html><html lang=en><meta charset=utf-8><title>{len(spans)} spans</title>"
            f"<table><tr><th>service<th>operation<th>start ms<th>ms</tr>\n{rows}</table></html>")


@contextlib.contextmanager
def static_page(body: str) -> Iterator[str]:
    """The URL of `body` served on loopback by a plain static server, until the block ends."""
    data = body.encode()

    class Page(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):  # quiet: the bench prints its own lines
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def render_times(page, urls: dict[str, str], runs: int) -> dict[str, tuple[float, float]]:
    """Median (total, server) ms of each labelled url over `runs` fresh loads, interleaved."""
    timings: dict[str, list[dict]] = {label: [] for label in urls}
    for run in range(runs + 1):  # the first round warms caches (static files, the proxy's code paths)
        for label, url in urls.items():
            page.goto(url)
            page.wait_for_function("performance.getEntriesByName('rendered').length > 0")
            if "/trace/" in url:
                assert page.locator(".minimap svg").count() == 1  # the modules did run
            if run:
                timings[label].append(page.evaluate(RENDERED))
    return {label: (statistics.median(t["total"] for t in found), statistics.median(t["server"] for t in found))
            for label, found in timings.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=1000, help="spans in the big trace (default 1000)")
    parser.add_argument("--runs", type=int, default=7, help="page loads per trace, median reported (default 7)")
    args = parser.parse_args(argv)
    if args.spans < 13 or args.runs < 1:
        parser.error("--spans must be at least 13 and --runs at least 1")
    executable = chromium_path()
    if executable is None:
        sys.exit("no Chromium here: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    small, big = envoy_trace(request_id="bench-small"), wide_trace(args.spans, request_id="bench-big")
    with serving(trace_proxy_command("127.0.0.1", port, "--settle", "0"), f"{url}/healthz"), \
            static_page(bare_table(big)) as baseline:
        for spans in (small, big):
            requests.post(f"{url}/api/v2/spans", json=spans, timeout=30).raise_for_status()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.add_init_script(MARK_RENDERED)
            big_label = f"{len(big):,} spans"
            urls = {"12 spans": f"{url}/trace/{small[0]['traceId']}", big_label: f"{url}/trace/{big[0]['traceId']}",
                    "bare table": baseline}
            load = os.getloadavg()[0]
            print(f"trace page in Chromium, median of {args.runs} interleaved loads each (load average {load:.1f} "
                  f"on {os.cpu_count()} cores)", flush=True)
            results = render_times(page, urls, args.runs)
            for label in ("12 spans", big_label):
                total, server = results[label]
                print(f"  {label:>12}: rendered in {total:6.1f} ms (server HTML done at {server:5.1f} ms)", flush=True)
            print(f"  baseline, the {len(big):,} spans as a bare table (no CSS, no script, a static file): "
                  f"{results['bare table'][0]:.1f} ms", flush=True)
            browser.close()
    small_ms, big_ms, bare_ms = (results[label][0] for label in urls)
    print(f"  {len(big):,} spans / 12 spans: {big_ms / small_ms:.1f}×; / bare table: {big_ms / bare_ms:.1f}×; "
          f"budget {BUDGET_MS} ms: {'within' if big_ms <= BUDGET_MS else 'OVER'} ({big_ms / BUDGET_MS:.0%} of it)")
    print(f"  load average at the end: {os.getloadavg()[0]:.1f}")
    return 0 if big_ms <= BUDGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
