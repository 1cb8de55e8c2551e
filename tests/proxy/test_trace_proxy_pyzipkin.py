"""An independent Zipkin client (py_zipkin) reports to the proxy; the Zipkin API returns the
same spans: ids, names, parentage and durations."""
from __future__ import annotations

import time

import pytest
import requests
from py_zipkin.encoding import Encoding
from py_zipkin.transport import SimpleHTTPTransport
from py_zipkin.zipkin import ZipkinAttrs, zipkin_span

from tests.support.trace_proxy_process import running_proxy


@pytest.fixture(scope="module")
def proxy():
    with running_proxy("--settle", "0") as running:  # listed as whole once its spans are in
        yield running


@pytest.mark.parametrize("encoding", [Encoding.V2_JSON, Encoding.V1_JSON], ids=["v2", "v1"])
def test_py_zipkin_spans_come_back_through_the_zipkin_api(proxy, encoding):
    port = int(proxy.url.rsplit(":", 1)[1])
    transport = SimpleHTTPTransport("127.0.0.1", port)
    recorded = {}
    with zipkin_span(service_name="pyzipkin-frontend", span_name="checkout", transport_handler=transport,
                     sample_rate=100.0, encoding=encoding) as root:
        root.update_binary_annotations({"order.id": "42"})
        with zipkin_span(service_name="pyzipkin-frontend", span_name="charge-card") as child:
            time.sleep(0.02)
            recorded["child"] = child.zipkin_attrs
        recorded["root"] = root.zipkin_attrs
    trace_id = recorded["root"].trace_id

    got = requests.get(f"{proxy.url}/api/v2/trace/{trace_id}", timeout=5)
    assert got.status_code == 200, got.text
    spans = {span["name"]: span for span in got.json()}
    assert set(spans) == {"checkout", "charge-card"}
    assert spans["checkout"]["id"] == recorded["root"].span_id
    assert spans["charge-card"]["id"] == recorded["child"].span_id
    assert spans["charge-card"]["parentId"] == recorded["root"].span_id
    assert spans["checkout"]["tags"]["order.id"] == "42"
    assert 20_000 <= spans["charge-card"]["duration"] <= spans["checkout"]["duration"]
    assert spans["checkout"]["localEndpoint"]["serviceName"] == "pyzipkin-frontend"

    listed = requests.get(f"{proxy.url}/api/v2/traces", timeout=5,
                          params={"serviceName": "pyzipkin-frontend", "spanName": "checkout",
                                  "annotationQuery": "order.id=42", "minDuration": 20_000}).json()
    assert trace_id in [trace[0]["traceId"] for trace in listed]
