"""bench/trace_page.py runs end to end: a real proxy, two stored traces, Chromium, and a
report of both render times and their ratio (briefly: 50 spans, one load each)."""
from __future__ import annotations

import re
import subprocess
import sys

from meshtools.shared.topology import PROJECT_ROOT
from tests.support.browser import chromium_path

import pytest


def test_the_trace_page_benchmark_reports_both_traces_and_the_budget():
    if chromium_path() is None:
        pytest.skip("no Chromium to drive: apt-get install chromium")
    run = subprocess.run([sys.executable, str(PROJECT_ROOT / "bench" / "trace_page.py"), "--spans", "50", "--runs", "1"],
                         capture_output=True, text=True, timeout=180, cwd=PROJECT_ROOT)
    out = run.stdout
    assert run.returncode in (0, 1), run.stderr[-2000:]  # 1: over the budget, said so below
    assert re.search(r"12 spans: rendered in +\d+\.\d ms \(server HTML done at +\d+\.\d ms\)", out), out
    assert re.search(r"50 spans: rendered in +\d+\.\d ms", out), out
    assert re.search(r"baseline, the 50 spans as a bare table \(no CSS, no script, a static file\): \d+\.\d ms", out), out
    verdict = re.search(r"50 spans / 12 spans: \d+\.\d×; / bare table: \d+\.\d×; budget 300 ms: (within|OVER) \(\d+% of it\)", out)
    assert verdict and (verdict.group(1) == "within") == (run.returncode == 0), out
    bad = subprocess.run([sys.executable, str(PROJECT_ROOT / "bench" / "trace_page.py"), "--spans", "3"],
                         capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT)
    assert bad.returncode == 2 and "--spans must be at least 13" in bad.stderr and "Traceback" not in bad.stderr
