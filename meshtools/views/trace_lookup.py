"""Find the trace of one request: front-envoy returns its x-request-id, every span carries it."""
from __future__ import annotations

import re
import time
from typing import Callable

from meshtools.views.urls import shorten
from meshtools.views.zipkin_client import TraceNotFound, TraceProxyError, ZipkinClient

REQUEST_ID_TAG = "guid:x-request-id"
TRACE_ID = re.compile(r"[0-9a-fA-F]{1,32}")  # Zipkin: 64 or 128 bits in hex
MIN_PREFIX = 12  # hex digits of a trace id's start that `--id` takes for the whole id
PREFIX_SEARCH = 10_000  # the newest traces searched for an id's start
SPANS_PER_ECHO = 12  # front-envoy, service1 ingress, 5 × (service1 egress, service2 ingress)
ARRIVING_WAIT = 10.0  # seconds `--id` waits for a trace that is still arriving (the slow stage takes up to 3.3 s)
# A miss is final after this long with no span reaching the store: Envoy sends its spans every
# 0.2 s (tracing.*.flush_interval_ms), later on a busy machine.
QUIET_SECONDS = 3.0


def request_id_query(request_id: str) -> str:
    return f"{REQUEST_ID_TAG}={request_id}"


def find_trace(client: ZipkinClient, request_id: str, spans: int = SPANS_PER_ECHO, timeout: float = 20.0,
               interval: float = 0.1) -> list[dict]:
    """The request's trace once it has `spans` spans, or what arrived by the deadline, asked
    every `interval` seconds.

    Envoy flushes spans in small batches, so a trace fills up over a second or so, and the
    trace proxy lists it once whole and settled (a second more); a loaded machine takes longer.
    """
    deadline = time.monotonic() + timeout
    found: list[dict] = []
    while True:
        traces = client.traces(annotation_query=request_id_query(request_id), limit=1)
        found = traces[0] if traces else []
        if len(found) >= spans or time.monotonic() >= deadline:
            return found
        time.sleep(interval)


def why_no_traces(client: ZipkinClient, service: str | None = None, lookback_s: float | None = None) -> str:
    """What a filter that found nothing did find, as one sentence for the user.

    "No service 'nosuch' at …; services: front-envoy, service1-0, …", "No traces in the last
    1 s at … (44 stored)", "No traces at … yet; send a request …".
    """
    where = shorten(client.base_url)
    if service:
        services = client.services()
        if service.lower() not in services:
            listed = ", ".join(services[:12]) + (", …" if len(services) > 12 else "")
            return f"No service {service!r} at {where}; services: {listed or 'none yet'}."
    census = client.store_census()
    stored = census["whole"] + census["partial"] if census else None
    if stored == 0 or (census is None and not service and lookback_s is None):
        arriving = census["arriving"] if census else 0
        still = f" ({arriving} still arriving)" if arriving else ""
        return f"No traces at {where} yet{still}; send a request with `inv echo --name friend`."
    filters = [f"in the last {lookback_s:g} s"] if lookback_s is not None else []
    filters += [f"with service {service}"] if service else []
    count = f" ({stored} stored)" if stored is not None else ""
    return f"No traces {' '.join(filters)} at {where}{count}; widen the filter or send a request."


def trace_by_id_or_request_id(client: ZipkinClient, ident: str, wait: float = ARRIVING_WAIT,
                              on_wait: Callable[[], None] | None = None) -> list[dict]:
    """The trace whose id is `ident`, else the newest whose spans carry x-request-id `ident`.

    So `inv traces --id` takes a trace id or the x-request-id `inv echo` printed. The proxy
    lists a trace by x-request-id only once it is whole and settled, a second or two after the
    answer, and Envoy holds spans up to its flush interval before sending them: a miss is asked
    again for up to `wait` seconds while spans come in (`on_wait` is called once first), and is
    final once the store has taken no span for QUIET_SECONDS.
    """
    started = time.monotonic()
    deadline, quiet_since, spans_seen, waiting = started + wait, started, None, False
    while True:
        found = _lookup(client, ident)
        if found:
            return found
        census = client.store_census()
        now = time.monotonic()
        if census and (census.get("arriving") or census.get("spans") != spans_seen):
            if spans_seen is not None or census.get("arriving"):
                if not waiting and on_wait:
                    on_wait()
                waiting = True
            quiet_since, spans_seen = now, census.get("spans")
        if not census or now - quiet_since >= QUIET_SECONDS or now >= deadline:
            raise TraceNotFound(f"No trace {shorten(ident, 40)} (as a trace id or {REQUEST_ID_TAG}) at "
                                f"{shorten(client.base_url)}; `inv traces --limit 10` lists recent ones.")
        time.sleep(0.2)


def _lookup(client: ZipkinClient, ident: str) -> list[dict]:
    if TRACE_ID.fullmatch(ident):
        try:
            return client.trace(ident)
        except TraceNotFound:
            pass
    found = client.traces(annotation_query=request_id_query(ident), limit=1)
    if found and found[0]:
        return found[0]
    if TRACE_ID.fullmatch(ident) and MIN_PREFIX <= len(ident) < 32:
        # The start of a longer id, as a narrow `inv traces --limit` shows a 128-bit one.
        matches = [t for t in client.traces(limit=PREFIX_SEARCH) if t and t[0].get("traceId", "").startswith(
            ident.lower())]
        if len(matches) > 1:
            raise TraceProxyError(f"{len(matches)} traces start with {ident}; give more of its digits.")
        return matches[0] if matches else []
    return []


def join_ids(spans: list[dict]) -> set[str]:
    """What a trace's log lines carry: its trace id and each x-request-id its spans were tagged with."""
    ids = {s.get("traceId", "") for s in spans} | {(s.get("tags") or {}).get(REQUEST_ID_TAG, "") for s in spans}
    return {i for i in ids if i}
