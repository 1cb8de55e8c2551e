"""The write-ahead journal (issue 21, item 9): a kill -9 loses no span it answered 202 for,
even one still waiting for the spooler, and what is replayed reaches Honeycomb exactly as
it would have."""
from __future__ import annotations

import io
import json
import os
import secrets
import signal
import struct

import pytest
import requests
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as OtlpSpan

from meshtools.shared.net import free_port
from tests.proxy.test_otlp_ingest import request_of, span as otlp_span
from tests.proxy.test_trace_proxy_binary_ingest import thrift_span
from tests.proxy.test_trace_proxy_spool import KEY, metrics_of, spans as some_spans
from tests.support.honeycomb_standin import honeycomb_standin
from tests.support.trace_proxy_process import running_proxy
from tests.support.trace_proxy_spans import envoy_trace
from tests.support.waiting import wait_for
from tests.support.zipkin_thrift_writer import thrift_body, zipkin_core as zc
from trace_proxy.ingest import otlp_spans, zipkin
from trace_proxy.sinks.honeycomb_batch import encode_event
from trace_proxy.sinks.honeycomb_events import span_event_events, to_event
from trace_proxy.sinks.journal import Journal, decode, encode

JSON = {"Content-Type": "application/json"}


def _zipkin(body: bytes, content_type: str, version: int):
    return zipkin.parse_request(io.BytesIO(body), content_type=content_type, content_encoding=None,
                                limit=10**7, version=version)[1]


def _v1_json():
    ep = {"serviceName": "web", "ipv4": "10.0.0.1"}
    return [{"traceId": secrets.token_hex(8), "id": "0000000000000002", "name": "get", "timestamp": 1_700_000_000_000_000,
             "duration": 40, "annotations": [{"timestamp": 1_700_000_000_000_000, "value": "cs", "endpoint": ep}],
             "binaryAnnotations": [{"key": "http.status_code", "value": "200", "endpoint": ep},
                                   {"key": "big", "value": str(2**70), "endpoint": ep}]}]


def _otlp():
    attrs = [KeyValue(key="ratio", value=AnyValue(double_value=float("nan"))),
             KeyValue(key="inf", value=AnyValue(double_value=float("inf"))),
             KeyValue(key="n", value=AnyValue(int_value=7)), KeyValue(key="ok", value=AnyValue(bool_value=True))]
    one = otlp_span(secrets.token_bytes(16), secrets.token_bytes(8), attributes=attrs,
                    events=[OtlpSpan.Event(time_unix_nano=1_700_000_000_000_500_000, name="retry", attributes=attrs)],
                    links=[OtlpSpan.Link(trace_id=b"\x05" * 16, span_id=b"\x06" * 8)])
    return otlp_spans.convert(request_of(one)).spans


ENCODINGS = {
    "envoy v2 json": lambda: _zipkin(json.dumps(envoy_trace()).encode(), "application/json", 2),
    "v2 json, numbers as tags": lambda: _zipkin(json.dumps([{**some_spans(secrets.token_hex(16), 1)[0],
                                                            "tags": {"http.path": "/a"}}]).encode(),
                                                "application/json", 2),
    "v1 json": lambda: _zipkin(json.dumps(_v1_json()).encode(), "application/json", 1),
    "v1 thrift": lambda: _zipkin(thrift_body([thrift_span(secrets.token_hex(8), binary_annotations=[
        zc.BinaryAnnotation(key="ratio", value=struct.pack(">d", float("nan")), annotation_type=5)])]),
        "application/x-thrift", 1),
    "otlp with events and links": _otlp,
}


def _as_honeycomb_gets_them(spans) -> list[bytes]:
    out = []
    for span in spans:
        event = to_event(span)
        out.append(encode_event(event))
        out.extend(encode_event(extra) for extra in span_event_events(span, event))
    return out


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_a_journaled_batch_becomes_the_same_honeycomb_events(encoding):
    spans = ENCODINGS[encoding]()
    [line] = encode(spans).splitlines()
    assert _as_honeycomb_gets_them(decode(line)) == _as_honeycomb_gets_them(spans)


def test_segments_go_once_spooled_and_a_restart_reads_what_is_left(tmp_path, caplog):
    journal = Journal(tmp_path)
    first = journal.append(_zipkin(json.dumps(envoy_trace()).encode(), "application/json", 2))
    journal.rotate()
    second = journal.append(_zipkin(json.dumps(envoy_trace()).encode(), "application/json", 2))
    journal.done(first)
    assert journal.segments() == 1  # the first is spooled; the second is still being written
    journal.rotate()
    assert journal.segments() == 1  # rotated, but its batch is not spooled yet
    # A crash here, mid-way through the next batch's line: the next start reads the rest.
    with open(journal._path(second), "ab") as fh:
        fh.write(b'[[2,{"traceId":')
    again = Journal(tmp_path)
    [(segment, recovered)] = again.recover()
    assert segment == second and len(recovered) == 12
    assert "partial line" in caplog.text
    again.done(segment)
    assert again.segments() == 0
    journal.done(second)


def test_a_kill_9_right_after_the_202s_loses_nothing(tmp_path):
    """Before the journal, what waited for the spooler (its 0.25 s gathering window) was lost:
    here that is every batch, as the proxy is killed at once."""
    port = free_port()  # Honeycomb down: nothing could be sent before the kill in any case
    env = {"HONEYCOMB_API_KEY": KEY, "HONEYCOMB_API_HOST": f"http://127.0.0.1:{port}"}
    spool = tmp_path / "spool"
    trace_id = secrets.token_hex(8)
    with running_proxy("--spool-dir", str(spool), env=env) as proxy:
        with requests.Session() as session:
            for n in range(10):
                body = json.dumps(some_spans(trace_id, 100, 1 + n * 100))
                assert session.post(f"{proxy.url}/api/v2/spans", data=body, headers=JSON, timeout=10).status_code == 202
        os.killpg(proxy.process.pid, signal.SIGKILL)
        proxy.process.wait(timeout=30)
    with honeycomb_standin(port) as standin:
        with running_proxy("--spool-dir", str(spool), env=env) as again:
            batches = standin.wait_for_trace(trace_id, 1000, timeout=30)
            received = {e["data"]["id"] for b in batches for e in b.events if e["data"].get("traceId") == trace_id}
            assert received == {f"{i:016x}" for i in range(1, 1001)}
            wait_for(lambda: metrics_of(again.url)["spools"]["honeycomb"]["spans"] == 0, 10, "the spool emptied")
            wait_for(lambda: not list((spool / "journal").glob("*.jsonl")), 10, "the journal emptied")
