"""Zipkin v1 spans → v2 spans, by the rules of Zipkin's own converter (zipkin2.v1.V1SpanConverter).

A v1 span could hold both sides of an RPC (cs/cr from the client, sr/ss from the server);
v2 has a span per side, so such a span becomes two: the client's and the server's, the
latter `shared`. Annotations are grouped by their endpoint's service name, each group a
span; core annotations (cs, sr, ss, cr, ms, mr, ws, wr) only count as such when they have
an endpoint, otherwise they stay plain annotations. A server-only span without a
timestamp was shared by v1's convention, and stays so. Binary annotations become tags
only when they are strings (an empty `lc` is a marker, not a tag); ca/sa/ma give the
remote endpoint.

What is Zipkin's here is the rules, written anew from its documentation and behaviour
(tests/proxy/test_zipkin_fidelity.py holds the cases); no code is shared.
"""
from __future__ import annotations

from typing import Any

from trace_proxy.ingest.zipkin_json import (ADDRESS_KEYS, Span, SpanError, _debug, _identity, _list, _object,
                                            _string, each_span, finish_v2, micros, parse_endpoint)

_KINDS = {"cs": "CLIENT", "cr": "CLIENT", "sr": "SERVER", "ss": "SERVER", "ms": "PRODUCER", "mr": "CONSUMER"}


class _Side:
    """One v2 span being built from a v1 span: everything of one service."""
    __slots__ = ("local", "kind", "timestamp", "duration", "shared", "annotations", "tags", "remote")

    def __init__(self, local: dict | None):
        self.local = local
        self.kind = None
        self.timestamp = self.duration = None
        self.shared = False
        self.annotations: list[dict[str, Any]] = []
        self.tags: dict[str, str] = {}
        self.remote = None


def _same_service(a: dict | None, b: dict | None) -> bool:
    return (a or {}).get("serviceName", "").lower() == (b or {}).get("serviceName", "").lower()


class _Split:
    def __init__(self):
        self.first = _Side(None)
        self.others: list[_Side] = []

    def side(self, endpoint: dict | None) -> _Side:
        """The span of `endpoint`'s service (the first span when there is no endpoint)."""
        if endpoint is None:
            return self.first
        for side in (self.first, *self.others):
            if side.local is None:
                side.local = endpoint
                return side
            if _same_service(side.local, endpoint):
                return side
        return self.fork(endpoint)

    def fork(self, endpoint: dict | None) -> _Side:
        side = _Side(endpoint)
        self.others.append(side)
        return side

    def all(self) -> list[_Side]:
        return [self.first, *self.others]


def _endpoint(value: Any, where: str) -> dict | None:
    return parse_endpoint(value, where) or None if value is not None else None


def _annotations(raw: dict, split: _Split) -> dict[str, tuple[int, dict | None]]:
    """Plain annotations onto their spans; the core ones returned as value → (timestamp, endpoint)."""
    core: dict[str, tuple[int, dict | None]] = {}
    for ann in _list(raw.get("annotations"), "annotations"):
        ann = _object(ann, "annotation")
        value = _string(ann, "value") or ""
        ts = micros(ann, "timestamp") or 0
        endpoint = _endpoint(ann.get("endpoint"), "annotation.endpoint")
        side = split.side(endpoint)
        if endpoint is not None and value in ("cs", "sr", "ss", "cr", "ms", "mr", "ws", "wr"):
            if value in _KINDS:
                side.kind = _KINDS[value]
            core[value] = (ts, endpoint)
        else:
            side.annotations.append({"timestamp": ts, "value": value})
    return core


def _ends_span(end: tuple[int, dict | None] | None, timestamp: int, duration: int) -> bool:
    return end is not None and timestamp and duration and timestamp + duration == end[0]


def _time(split: _Split, timestamp: int, duration: int, begin, end) -> None:
    """The span's own timestamp and duration when it has both, else the annotations'."""
    side = split.side(begin[1])
    if timestamp and duration:
        side.timestamp, side.duration = timestamp, duration
    else:
        side.timestamp = begin[0]
        if end is not None:
            side.duration = end[0] - begin[0]


def _rpc(split: _Split, core: dict, timestamp: int, duration: int) -> None:
    cs, sr, ss, cr = (core.get(k) for k in ("cs", "sr", "ss", "cr"))
    # Bridged from an event model: the start is missing but the span's own times end at the end.
    if cs is None and _ends_span(cr, timestamp, duration):
        cs = core["cs"] = (timestamp, cr[1])
    if sr is None and _ends_span(ss, timestamp, duration):
        sr = core["sr"] = (timestamp, ss[1])
    if cs is not None and sr is not None:  # both sides in one span: the client owns its times
        _time(split, timestamp, duration, cs, cr)
        client = split.side(cs[1])
        if _same_service(cs[1], sr[1]):  # loopback: two spans all the same
            client.kind = "CLIENT"
            server = split.fork(sr[1])
            server.kind = "SERVER"
        else:
            server = split.side(sr[1])
        server.shared, server.timestamp = True, sr[0]
        if ss is not None:
            server.duration = ss[0] - sr[0]
        if cr is None and not duration:
            client.duration = None  # one-way: no duration
    elif cs is not None and cr is not None:
        _time(split, timestamp, duration, cs, cr)
    elif sr is not None and ss is not None:
        _time(split, timestamp, duration, sr, ss)
    else:  # an incomplete RPC: the start is the timestamp, the end stays an annotation
        for side in split.all():
            begin, end = {"CLIENT": (cs, cr), "SERVER": (sr, ss)}.get(side.kind, (None, None))
            if begin is not None:
                side.timestamp = begin[0]
            if end is not None:
                side.annotations.append({"timestamp": end[0], "value": "cr" if side.kind == "CLIENT" else "ss"})
        if timestamp:
            split.first.timestamp, split.first.duration = timestamp, duration or None
    # v1 had no shared flag: a server side without the span's own timestamp (or duration,
    # though it ended) was the shared half.
    if cs is None and sr is not None and (not timestamp or (ss is not None and not duration)):
        split.side(sr[1]).shared = True


def _messaging(split: _Split, core: dict, timestamp: int, duration: int) -> None:
    ms, mr, ws, wr = (core.get(k) for k in ("ms", "mr", "ws", "wr"))
    if ms is not None and mr is not None:
        producer = split.side(ms[1])
        if _same_service(ms[1], mr[1]):
            producer.kind = "PRODUCER"
            consumer = split.fork(mr[1])
            consumer.kind = "CONSUMER"
        else:
            consumer = split.side(mr[1])
        consumer.shared = True
        consumer.timestamp, consumer.duration = (wr[0], mr[0] - wr[0]) if wr is not None else (mr[0], None)
        producer.timestamp, producer.duration = ms[0], (ws[0] - ms[0] if ws is not None else None)
    elif ms is not None:
        _time(split, timestamp, duration, ms, ws)
    elif mr is not None:
        _time(split, timestamp, duration, wr, mr) if wr is not None else _time(split, timestamp, duration, mr, None)
    else:  # without a message start or receipt, ws and wr are plain annotations
        for key in ("ws", "wr"):
            if (mark := core.get(key)) is not None:
                split.side(mark[1]).annotations.append({"timestamp": mark[0], "value": key})


def _binary_annotations(raw: dict, split: _Split, core: dict) -> None:
    addresses: dict[str, dict | None] = {}
    for ba in _list(raw.get("binaryAnnotations"), "binaryAnnotations"):
        if ba is None:
            continue
        ba = _object(ba, "binaryAnnotation")
        key = _string(ba, "key")
        if key is None:
            raise SpanError("binaryAnnotation has no key")
        value = ba.get("value")
        if isinstance(value, (dict, list)):
            raise SpanError(f"binaryAnnotation {key[:64]!r}: value must be a string, number or boolean")
        endpoint = _endpoint(ba.get("endpoint"), "binaryAnnotation.endpoint")
        if not isinstance(value, str) or ba.get("type", "STRING") != "STRING":
            if key in ADDRESS_KEYS:  # only typed ones (true) are addresses
                addresses[key] = endpoint
            continue  # Zipkin keeps only string binary annotations as tags
        if key == "lc" and not value:
            split.side(endpoint)
            continue  # a marker, not a tag
        split.side(endpoint).tags[key] = value
    ca, sa, ma = (addresses.get(k) for k in ("ca", "sa", "ma"))
    if not any(k in core for k in ("cs", "cr", "ss", "sr")) and (ca is not None or sa is not None):
        if ca is not None and sa is not None:
            split.side(ca).remote = sa
        elif sa is not None:
            split.side(None).remote = sa  # a remote address alone does not make a client
        else:
            side = split.side(None)
            side.kind, side.remote = "SERVER", ca
        return
    server = core.get("sr") or core.get("ss")
    if ca is not None and server is not None and ca != server[1]:
        if _same_service(ca, server[1]):
            ca = {k: v for k, v in ca.items() if k != "serviceName"} or None
        split.side(server[1]).remote = ca
    if sa is not None:
        client = core.get("cs") or core.get("cr")
        if client is not None:
            split.side(client[1]).remote = sa
    if ma is not None:
        for key in ("ms", "mr"):
            if key in core:
                split.side(core[key][1]).remote = ma


def from_v1(raw: Any) -> list[Span]:
    """The v2 spans of one v1 span: one, or two when it held both sides of a call."""
    raw, trace_id, span_id, parent_id, name = _identity(raw)
    timestamp, duration = micros(raw, "timestamp") or 0, micros(raw, "duration") or 0
    debug = _debug(raw)
    split = _Split()
    core = _annotations(raw, split)
    _rpc(split, core, timestamp, duration)
    _messaging(split, core, timestamp, duration)
    _binary_annotations(raw, split, core)
    spans = []
    for n, side in enumerate(split.all()):
        v2 = finish_v2(trace_id, span_id, parent_id, name, side.kind, side.timestamp, side.duration, side.local,
                       side.remote, side.annotations, side.tags, debug, side.shared)
        # The first carries the v1 span to Honeycomb in the upstream proxy's shape; a split-off
        # side goes as the v2 span it is.
        spans.append(Span(v2=v2, raw=raw, version=1) if n == 0 else Span(v2=v2, raw=v2, version=2))
    return spans


def parse(payload: Any) -> list[Span]:
    """Validate a decoded v1 request body; raises SpanError naming the first bad span."""
    if not isinstance(payload, list):
        raise SpanError("the body must be a JSON list of spans")
    return each_span(payload, from_v1)
