"""What every start pays for: an `inv` command loads the tasks, not the trace proxy's web app,
and a trace proxy fed Zipkin JSON (the mesh's default) never loads protobuf or OpenTelemetry's
messages. Each was a measurable part of `inv local.up`'s cold start (0.15 s and 25 ms on the
2-core machine); the first OTLP request loads what it needs and is served as before."""
from __future__ import annotations

import json
import subprocess
import sys

from meshtools.shared.topology import PROJECT_ROOT

HEAVY = ("flask", "google.protobuf", "opentelemetry.proto")


def loaded_after(code: str) -> list[str]:
    """Which of HEAVY a fresh interpreter has loaded after running `code`."""
    probe = f"{code}\nimport sys, json\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=PROJECT_ROOT,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_inv_tasks_load_without_the_trace_proxy_web_app():
    assert loaded_after("import tasks") == []


def test_the_trace_proxy_serves_zipkin_json_without_loading_protobuf_and_otlp_on_first_use():
    code = """
import json
from tests.support.trace_proxy_spans import envoy_trace
from trace_proxy.app import create_app
from trace_proxy.settings import Settings
client = create_app(Settings(settle_seconds=0)).test_client()
assert client.post("/api/v2/spans", json=envoy_trace()).status_code == 202
assert client.get("/api/v2/traces").status_code == 200
import sys
before = [m for m in ("google.protobuf", "opentelemetry.proto") if m in sys.modules]
otlp = {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
        "scopeSpans": [{"spans": [{"traceId": "01" * 16, "spanId": "02" * 8, "name": "op",
                                   "startTimeUnixNano": "1", "endTimeUnixNano": "2"}]}]}]}
reply = client.post("/v1/traces", data=json.dumps(otlp), headers={"Content-Type": "application/json"})
assert reply.status_code == 200, reply.data
assert len(client.get("/api/v2/trace/" + "01" * 16).get_json()) == 1
print(json.dumps(before))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
