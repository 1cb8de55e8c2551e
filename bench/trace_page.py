"""What the trace page costs in a browser: a 1,000-span trace against a 12-span one.

    python bench/trace_page.py [--spans N] [--runs N]

Starts the trace proxy, stores one mesh-shaped trace (12 spans) and one fan-out trace of N
spans, and opens each in headless Chromium (Debian's, driven by Playwright) `--runs` times.
A page counts as rendered at the first frame after its modules ran (DOMContentLoaded fires
once the deferred modules are done; a mark is set from the next animation frame, by a
script Playwright adds to the page); reported: the median time from navigation start, the
server's share (its HTML's response end), and the ratio big/small measured in this run.
Budget: 300 ms. Timings stretch with the machine's load, which is printed alongside.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

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


def render_times(page, url: str, runs: int) -> tuple[float, float]:
    """Median (total, server) ms over `runs` fresh loads of `url`."""
    totals, servers = [], []
    for _ in range(runs + 1):  # the first load warms caches (static files, the proxy's code paths)
        page.goto(url)
        page.wait_for_function("performance.getEntriesByName('rendered').length > 0")
        assert page.locator(".minimap svg").count() == 1  # the modules did run
        timing = page.evaluate(RENDERED)
        totals.append(timing["total"])
        servers.append(timing["server"])
    return statistics.median(totals[1:]), statistics.median(servers[1:])


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
    with serving(trace_proxy_command("127.0.0.1", port, "--settle", "0"), f"{url}/healthz"):
        for spans in (small, big):
            requests.post(f"{url}/api/v2/spans", json=spans, timeout=30).raise_for_status()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.add_init_script(MARK_RENDERED)
            load = os.getloadavg()[0]
            print(f"trace page in Chromium, median of {args.runs} loads each (load average {load:.1f} "
                  f"on {os.cpu_count()} cores)", flush=True)
            results = {}
            for label, spans in (("12 spans", small), (f"{len(big):,} spans", big)):
                total, server = render_times(page, f"{url}/trace/{spans[0]['traceId']}", args.runs)
                results[label] = total
                print(f"  {label:>12}: rendered in {total:6.1f} ms (server HTML done at {server:5.1f} ms)", flush=True)
            browser.close()
    small_ms, big_ms = results.values()
    print(f"  {len(big):,} spans / 12 spans: {big_ms / small_ms:.1f}×; budget {BUDGET_MS} ms: "
          f"{'within' if big_ms <= BUDGET_MS else 'OVER'} ({big_ms / BUDGET_MS:.0%} of it)")
    return 0 if big_ms <= BUDGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
