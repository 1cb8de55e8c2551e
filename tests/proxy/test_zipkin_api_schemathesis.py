"""schemathesis against Zipkin's own OpenAPI spec (issue 21, item 4): requests generated from
zipkin2-api.yaml, valid and invalid, sent to the real proxy; no answer may be a server error
or break the spec's response schemas.

The spec is openzipkin/zipkin-api's zipkin2-api.yaml (Apache-2.0, its licence header kept),
from commit 069ec8d1c7b58578d338b39f60abb211b7212618, in tests/proxy/data. Bounded by
default (a deterministic few seconds); `SCHEMATHESIS_EXAMPLES=1000` runs longer.
POST /spans is generated as JSON only: protobuf bodies are fuzzed by test_ingest_fuzz.py.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests
import schemathesis
import yaml
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.support.trace_proxy_process import running_proxy
from tests.support.trace_proxy_spans import envoy_trace

SPEC = Path(__file__).parent / "data" / "zipkin2-api.yaml"
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "25"))


def _spec() -> dict:
    spec = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    spec["paths"]["/spans"]["post"]["consumes"] = ["application/json"]
    return spec


schema = schemathesis.openapi.from_dict(_spec())


@pytest.fixture(scope="module")
def proxy():
    with running_proxy() as running:
        # Traces to find, so that query answers have spans in them to check, not only [].
        for _ in range(3):
            spans = envoy_trace()
            reply = requests.post(f"{running.url}/api/v2/spans", json=spans, timeout=5)
            assert reply.status_code == 202, reply.text
        yield running


@schema.parametrize()
@settings(max_examples=EXAMPLES, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                 HealthCheck.function_scoped_fixture])
def test_zipkin_api_answers_within_its_spec(case, proxy):
    case.call_and_validate(base_url=f"{proxy.url}/api/v2", timeout=10,
                           checks=[not_a_server_error, response_schema_conformance])
