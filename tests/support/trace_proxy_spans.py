"""Span payloads shaped like the mesh's Envoy output, for the trace proxy tests."""
from __future__ import annotations

import itertools
import secrets
import time

_ids = itertools.count(1)


def span_id() -> str:
    return f"{next(_ids):016x}"


def envoy_trace(trace_id: str | None = None, *, request_id: str = "req-1", start_us: int | None = None,
                slow_stage_us: int = 300_000) -> list[dict]:
    """The 12 spans one /echo request makes: front → service1 → 5 × (egress → service2)."""
    trace_id = trace_id or secrets.token_hex(16)
    start = start_us or int(time.time() * 1_000_000)
    tags = {"guid:x-request-id": request_id, "component": "proxy"}
    front = {"traceId": trace_id, "id": span_id(), "name": "front-envoy", "kind": "CLIENT",
             "timestamp": start, "duration": 2_000_000, "localEndpoint": {"serviceName": "front-envoy", "ipv4": "127.0.0.1"},
             "tags": {**tags, "http.url": "http://127.0.0.1:8000/echo/alice"}}
    ingress = {"traceId": trace_id, "id": span_id(), "parentId": front["id"], "name": "echo", "kind": "SERVER",
               "timestamp": start + 100, "duration": 1_900_000, "localEndpoint": {"serviceName": "service1-0"},
               "tags": dict(tags)}
    spans = [front, ingress]
    for stage in range(5):
        duration = slow_stage_us if stage == 3 else 1_000
        egress = {"traceId": trace_id, "id": span_id(), "parentId": ingress["id"], "name": f"stage {stage}",
                  "kind": "CLIENT", "timestamp": start + 200 + stage, "duration": duration,
                  "localEndpoint": {"serviceName": "service1-0"},
                  "tags": {**tags, "http.url": f"http://127.0.0.1:9000/stage/{stage}"}}
        server = {"traceId": trace_id, "id": span_id(), "parentId": egress["id"], "name": "stage",
                  "kind": "SERVER", "timestamp": start + 300 + stage, "duration": duration - 10,
                  "localEndpoint": {"serviceName": "service2-0"}, "tags": dict(tags)}
        spans += [egress, server]
    return spans


def wide_trace(spans: int = 1000, *, request_id: str = "wide", start_us: int | None = None) -> list[dict]:
    """A big trace shaped like a fan-out service: a root, 10 services each calling the next
    level, `spans` in all, every tenth span an error; for the page budget and its benchmark."""
    trace_id = secrets.token_hex(16)
    start = start_us or int(time.time() * 1_000_000)
    root = {"traceId": trace_id, "id": span_id(), "name": "fan-out", "kind": "SERVER", "timestamp": start,
            "duration": spans * 1_000, "localEndpoint": {"serviceName": "front-envoy"},
            "tags": {"guid:x-request-id": request_id, "http.url": "http://127.0.0.1:8000/fan-out"}}
    out, parents = [root], [root]
    for i in range(1, spans):
        parent = parents[(i - 1) // 10] if (i - 1) // 10 < len(parents) else root
        offset = (i % 10) * parent["duration"] // 12
        span = {"traceId": trace_id, "id": span_id(), "parentId": parent["id"], "name": f"call {i % 37}",
                "kind": "CLIENT", "timestamp": parent["timestamp"] + offset, "duration": max(parent["duration"] // 12, 1),
                "localEndpoint": {"serviceName": f"service-{i % 10}"},
                "tags": {"http.url": f"http://127.0.0.1:9000/item/{i}", "http.status_code": "500" if i % 10 == 0 else "200"}}
        out.append(span)
        parents.append(span)
    return out
