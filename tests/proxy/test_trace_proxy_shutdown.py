"""SIGTERM delivers what waits for Honeycomb (issue 21, defect 2): the real server, the real signal."""
from __future__ import annotations

import json
import os
import secrets
import signal

import requests

from tests.support.honeycomb_standin import honeycomb_standin
from tests.support.trace_proxy_process import running_proxy

KEY = "hcaik_standin_" + secrets.token_hex(8)


def spans(trace_id: str, n: int, first: int = 1) -> list[dict]:
    return [{"traceId": trace_id, "id": f"{first + i:016x}", "name": "queued", "timestamp": 1_700_000_000_000_000,
             "duration": 5, "localEndpoint": {"serviceName": "svc"}} for i in range(n)]


def metrics(url: str) -> dict:
    return requests.get(f"{url}/metrics.json", timeout=5).json()


def test_sigterm_sends_every_queued_span_to_a_slow_honeycomb():
    """9,000 spans still queued at SIGTERM, Honeycomb answering each batch after 0.3 s."""
    with honeycomb_standin(keep_events=False, answer_delay=0.3) as standin:
        env = {"HONEYCOMB_API_KEY": KEY, "HONEYCOMB_API_HOST": standin.url}
        with running_proxy("--honeycomb-backlog", "20000", env=env) as proxy:
            trace_id = secrets.token_hex(8)
            for n in range(9):
                reply = requests.post(f"{proxy.url}/api/v2/spans", data=json.dumps(spans(trace_id, 1000, 1 + n * 1000)),
                                      headers={"Content-Type": "application/json"}, timeout=10)
                assert reply.status_code == 202
            queued = metrics(proxy.url)["queues"]["honeycomb"]
            assert queued > 0, "everything was sent before the signal: nothing tested"
            os.killpg(proxy.process.pid, signal.SIGTERM)
            assert proxy.process.wait(timeout=30) == 0, proxy.output()[-2000:]
        assert standin.stats()["accepted"] == 9000, proxy.output()[-2000:]
