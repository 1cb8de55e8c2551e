"""Hostile input at every door: the mesh's front, the live trace proxy, the tasks."""
from __future__ import annotations

import gzip
import json
import threading

import psutil
import pytest
import requests
from hypothesis import HealthCheck, given, settings, strategies as st

from meshtools.views.front import echo
from meshtools.local.mesh import TRACE_PROXY_PROGRAM, LocalMesh
from meshtools.shared.net import free_port
from tests.conftest import running_mesh
from tests.support.inv_process import run_inv

HOSTILE_NAMES = {
    "long": "a" * 4000,
    "binary": "\x00\x01\x7f\x1b[31m",
    "traversal": "../../../../etc/passwd",
    "markup": "<script>alert('x')</script>&amp;\"",
    "unicode": "Zoë 🚀 日本語 \u202eevil",
    "percent": "%2e%2e%2f%00%25",
    "crlf": "a\r\nSet-Cookie: pwned=1",
}


@pytest.mark.parametrize("label", sorted(HOSTILE_NAMES))
def test_hostile_names_pass_the_mesh_as_plain_text(local_mesh, label):
    name = HOSTILE_NAMES[label]
    reply = echo(local_mesh.layout.front_url, name)
    assert reply.status == 200, reply.body[:300]
    # The name comes back once, as text: escaped markup, nothing else changed.
    assert "<script>" not in reply.body and "Set-Cookie: pwned" not in reply.body.split("Hello", 1)[0]
    from markupsafe import escape

    assert f"Hello {escape(name)}!" in reply.body


def test_a_name_longer_than_envoy_accepts_is_refused_with_431(local_mesh):
    reply = requests.get(f"{local_mesh.layout.front_url}/echo/{'a' * 100_000}", timeout=10)
    assert reply.status_code == 431


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_methods_other_than_get_are_refused_with_405(local_mesh, method):
    reply = requests.request(method, f"{local_mesh.layout.front_url}/echo/friend", data=b"x", timeout=10)
    assert reply.status_code == 405


def test_huge_headers_are_refused_with_431(local_mesh):
    reply = requests.get(f"{local_mesh.layout.front_url}/echo/friend", headers={"x-huge": "h" * 100_000}, timeout=10)
    assert reply.status_code == 431


def test_a_forged_trace_header_does_not_break_the_request(local_mesh):
    reply = requests.get(f"{local_mesh.layout.front_url}/echo/friend", timeout=30,
                         headers={"x-b3-traceid": "zz<>", "b3": "garbage", "traceparent": "00-xyz"})
    assert reply.status_code == 200


# -- the trace proxy, fuzzed while it serves the mesh --------------------------------------

@pytest.fixture(scope="module")
def small_mesh(tmp_path_factory):
    """One replica is enough: the point is a live proxy taking real Envoy spans meanwhile."""
    with running_mesh(tmp_path_factory.mktemp("fuzz"), replicas=1) as mesh:
        yield mesh


def hex_id(length: int):
    return st.text(alphabet="0123456789abcdef", min_size=length, max_size=length)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
spans = st.fixed_dictionaries(
    {"traceId": hex_id(16) | hex_id(32), "id": hex_id(16)},
    optional={
        "parentId": hex_id(16) | st.text(max_size=20),
        "name": st.text(max_size=50),
        "kind": st.sampled_from(["CLIENT", "SERVER", "PRODUCER", "CONSUMER", "bogus"]),
        "timestamp": st.integers(min_value=-10, max_value=2**64),
        "duration": st.integers(min_value=-10, max_value=2**64) | st.floats(),
        "localEndpoint": st.fixed_dictionaries({}, optional={"serviceName": st.text(max_size=30),
                                                              "ipv4": st.text(max_size=20), "port": json_values}),
        "tags": st.dictionaries(st.text(max_size=20), st.text(max_size=40) | json_values, max_size=5),
        "annotations": st.lists(json_values, max_size=3),
        "debug": json_values,
    },
)
bodies = st.one_of(
    st.lists(spans, min_size=1, max_size=5).map(lambda s: json.dumps(s).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=300),
)


def _worker(mesh: LocalMesh) -> psutil.Process:
    # gunicorn: the store lives in the single worker, the child of the supervised master.
    master = psutil.Process({p.name: p for p in mesh.status()}[TRACE_PROXY_PROGRAM].pid)
    return master.children()[0]


def test_fuzzed_spans_never_break_the_live_proxy_nor_cost_an_accepted_span(small_mesh):
    proxy = small_mesh.layout.trace_proxy_url
    worker = _worker(small_mesh)
    rss_before = worker.memory_info().rss
    accepted: list[tuple[str, str]] = []
    stop, load_errors, load_ids = threading.Event(), [], []

    def normal_load():
        session = requests.Session()
        while not stop.is_set():
            reply = session.get(f"{small_mesh.layout.front_url}/echo/under-fuzz", timeout=30)
            (load_ids if reply.status_code == 200 else load_errors).append(reply.headers.get("x-request-id"))

    loader = threading.Thread(target=normal_load, daemon=True)
    loader.start()
    session = requests.Session()

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(body=bodies, gzipped=st.booleans(), version=st.sampled_from([1, 2]))
    def post(body, gzipped, version):
        headers = {"Content-Type": "application/json"}
        if gzipped:
            body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
        reply = session.post(f"{proxy}/api/v{version}/spans", data=body, headers=headers, timeout=10)
        assert reply.status_code in (202, 400, 413, 415), (reply.status_code, reply.text)
        if reply.status_code == 202 and version == 2:
            for span in json.loads(gzip.decompress(body) if gzipped else body):
                accepted.append((span["traceId"], span["id"]))

    try:
        post()
    finally:
        stop.set()
        loader.join(timeout=60)
    assert not load_errors and len(load_ids) >= 5, (load_errors, len(load_ids))
    assert worker.is_running(), "the proxy's worker was replaced: it crashed"
    assert worker.memory_info().rss - rss_before < 50 * 1024 * 1024

    for trace_id, span_id in accepted:
        trace = requests.get(f"{proxy}/api/v2/trace/{trace_id}", timeout=5)
        assert trace.status_code == 200 and span_id in {s["id"] for s in trace.json()}, (trace_id, span_id)
    for request_id in load_ids[:5]:
        traces = requests.get(f"{proxy}/api/v2/traces", params={"annotationQuery": f"guid:x-request-id={request_id}"},
                              timeout=5).json()
        assert len(traces) == 1 and len(traces[0]) == 12, "a normal trace lost spans during the fuzz"


# -- tasks ---------------------------------------------------------------------------------

def nowhere() -> str:
    return f"http://127.0.0.1:{free_port()}"


BAD_CALLS = {
    "load-duration-not-a-number": (["load", "--duration", "soon"], "--duration"),
    "load-unreachable": (["load", "--url", "NOWHERE", "--requests", "3"], "inv local.up"),
    "traces-unreachable": (["traces", "--url", "NOWHERE"], "inv local.up"),
    "traces-limit-zero": (["traces", "--limit", "0", "--url", "NOWHERE"], "--limit"),
    "traces-bad-id": (["traces", "--id", "not-hex", "--url", "NOWHERE"], "trace proxy"),
    "echo-unreachable": (["echo", "--name", "x", "--url", "NOWHERE"], "inv local.up"),
    "echo-not-a-url": (["echo", "--name", "x", "--url", "not a url"], ""),
    "unknown-flag": (["traces", "--colour"], "--colour"),
    "local-up-replicas-zero": (["local.up", "--replicas", "0"], "--replicas"),
    "local-up-replicas-text": (["local.up", "--replicas", "three"], "replicas"),
}


@pytest.mark.parametrize("case", sorted(BAD_CALLS))
def test_bad_task_calls_say_one_clear_line_and_exit_non_zero(case, tmp_path):
    args, expected = BAD_CALLS[case]
    result = run_inv(*[nowhere() if a == "NOWHERE" else a for a in args], state_dir=tmp_path)
    assert result.returncode != 0
    said = (result.stderr + result.stdout).strip()
    assert "Traceback" not in said, said
    assert expected in said, said
