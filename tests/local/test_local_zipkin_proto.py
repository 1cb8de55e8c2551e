"""Envoy's protobuf encoding (`collector_endpoint_version: HTTP_PROTO`) end to end on the local mesh."""
from __future__ import annotations

import requests
import yaml

from meshtools.local.envoy_config import ZIPKIN_ENCODINGS, render_local
from meshtools.local.mesh import LocalMesh
from meshtools.shared.net import free_layout
from meshtools.views.front import echo
from meshtools.views.trace_lookup import SPANS_PER_ECHO, find_trace
from meshtools.views.zipkin_client import ZipkinClient
from tests.conftest import FAST_SLOW_STAGE
from tests.support.trace_assertions import assert_echo_trace


def test_the_encoding_switch_changes_only_the_tracer():
    layout = free_layout(replicas=1)
    for instance in layout.envoys:
        plain, proto = render_local(instance, layout), render_local(instance, layout, zipkin_encoding="HTTP_PROTO")
        text = yaml.safe_dump(proto)
        assert "HTTP_PROTO" in text and "HTTP_JSON" not in text
        assert yaml.safe_dump(plain).replace("HTTP_JSON", "HTTP_PROTO") == text
    assert ZIPKIN_ENCODINGS == ("HTTP_JSON", "HTTP_PROTO")


def test_mesh_sending_protobuf_spans_gives_the_same_12_span_trace(tmp_path):
    mesh = LocalMesh(layout=free_layout(replicas=1), state_dir=tmp_path, service_env=FAST_SLOW_STAGE,
                     zipkin_encoding="HTTP_PROTO")
    try:
        mesh.up(timeout=90)
        reply = echo(mesh.layout.front_url, "proto")
        assert reply.status == 200
        spans = find_trace(ZipkinClient(mesh.layout.trace_proxy_url), reply.request_id, SPANS_PER_ECHO)
        assert_echo_trace(spans, reply.request_id, "front-envoy", "service1-", "service2-")
        received = requests.get(f"{mesh.layout.trace_proxy_url}/metrics.json", timeout=5).json()["received"]
        # every span of the mesh came as protobuf: none as JSON
        assert received["by_encoding"].get("proto_v2", 0) >= SPANS_PER_ECHO and "json_v2" not in received["by_encoding"]
    finally:
        mesh.down()
