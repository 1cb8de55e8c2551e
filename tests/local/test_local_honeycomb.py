"""The local target forwards real Envoy spans to Honeycomb when the user has a key."""
from __future__ import annotations

from meshtools.views.front import echo
from meshtools.views.trace_lookup import SPANS_PER_ECHO, find_trace
from meshtools.views.zipkin_client import ZipkinClient
from tests.conftest import running_mesh
from tests.support.honeycomb_standin import honeycomb_standin

FAKE_KEY = "hcaik_local-test-key-0123456789"


def test_local_mesh_forwards_each_span_of_a_trace_to_honeycomb_with_the_users_key(tmp_path, monkeypatch):
    with honeycomb_standin() as honeycomb:
        monkeypatch.setenv("HONEYCOMB_API_KEY", FAKE_KEY)
        monkeypatch.setenv("HONEYCOMB_API_HOST", honeycomb.url)
        monkeypatch.setenv("HONEYCOMB_DATASET", "envoy-local-test")
        with running_mesh(tmp_path, replicas=1) as mesh:
            reply = echo(mesh.layout.front_url, "honeycomb")
            spans = find_trace(ZipkinClient(mesh.layout.trace_proxy_url), reply.request_id)
            trace_id = spans[0]["traceId"]
            batches = honeycomb.wait_for_trace(trace_id, SPANS_PER_ECHO, timeout=20)
    events = [e["data"] for b in batches for e in b.events if e["data"].get("traceId") == trace_id]
    assert sorted(e["id"] for e in events) == sorted(s["id"] for s in spans)
    assert {b.dataset for b in batches} == {"envoy-local-test"}
    assert {b.headers["X-Honeycomb-Team"] for b in batches} == {FAKE_KEY}
    # The key reached the trace proxy through the environment only: no config or log holds it.
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert FAKE_KEY not in path.read_text(errors="replace"), path
