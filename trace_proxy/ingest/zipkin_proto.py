"""Zipkin v2 protobuf (`application/x-protobuf`, what Envoy sends with HTTP_PROTO) → spans.

The schema is Zipkin's zipkin.proto (package zipkin.proto3: ListOfSpans, Span, Endpoint,
Annotation), built here as a descriptor instead of generated code: five small messages
need no protoc step and no generated file tied to one protobuf release. Each decoded span
is turned into its v2 JSON shape (hex ids, dotted addresses) and checked by
`zipkin_json.from_v2`, so protobuf spans meet exactly the rules, limits and 4xx reasons
of JSON ones.
"""
from __future__ import annotations

import ipaddress
import socket
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

from trace_proxy.ingest.zipkin_json import Span, SpanError, from_v2

_F = descriptor_pb2.FieldDescriptorProto
KINDS = ("SPAN_KIND_UNSPECIFIED", "CLIENT", "SERVER", "PRODUCER", "CONSUMER")


def _message(file: descriptor_pb2.FileDescriptorProto, name: str, fields, parent=None):
    msg = (parent.nested_type if parent is not None else file.message_type).add(name=name)
    for number, field_name, kind, extra in fields:
        field = msg.field.add(name=field_name, number=number, type=kind, label=extra.get("label", _F.LABEL_OPTIONAL))
        if "type_name" in extra:
            field.type_name = extra["type_name"]
    return msg


def _schema() -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto(name="zipkin.proto", package="zipkin.proto3", syntax="proto3")
    repeated = {"label": _F.LABEL_REPEATED}
    _message(file, "Endpoint", [(1, "service_name", _F.TYPE_STRING, {}), (2, "ipv4", _F.TYPE_BYTES, {}),
                                (3, "ipv6", _F.TYPE_BYTES, {}), (4, "port", _F.TYPE_INT32, {})])
    _message(file, "Annotation", [(1, "timestamp", _F.TYPE_FIXED64, {}), (2, "value", _F.TYPE_STRING, {})])
    span = _message(file, "Span", [
        (1, "trace_id", _F.TYPE_BYTES, {}), (2, "parent_id", _F.TYPE_BYTES, {}), (3, "id", _F.TYPE_BYTES, {}),
        (4, "kind", _F.TYPE_ENUM, {"type_name": ".zipkin.proto3.Span.Kind"}), (5, "name", _F.TYPE_STRING, {}),
        (6, "timestamp", _F.TYPE_FIXED64, {}), (7, "duration", _F.TYPE_UINT64, {}),
        (8, "local_endpoint", _F.TYPE_MESSAGE, {"type_name": ".zipkin.proto3.Endpoint"}),
        (9, "remote_endpoint", _F.TYPE_MESSAGE, {"type_name": ".zipkin.proto3.Endpoint"}),
        (10, "annotations", _F.TYPE_MESSAGE, {"type_name": ".zipkin.proto3.Annotation", **repeated}),
        (11, "tags", _F.TYPE_MESSAGE, {"type_name": ".zipkin.proto3.Span.TagsEntry", **repeated}),
        (12, "debug", _F.TYPE_BOOL, {}), (13, "shared", _F.TYPE_BOOL, {})])
    kind = span.enum_type.add(name="Kind")
    for number, name in enumerate(KINDS):
        kind.value.add(name=name, number=number)
    entry = _message(file, "TagsEntry", [(1, "key", _F.TYPE_STRING, {}), (2, "value", _F.TYPE_STRING, {})], span)
    entry.options.map_entry = True
    _message(file, "ListOfSpans", [(1, "spans", _F.TYPE_MESSAGE, {"type_name": ".zipkin.proto3.Span", **repeated})])
    return file


_pool = descriptor_pool.DescriptorPool()
_pool.Add(_schema())
ListOfSpans = message_factory.GetMessageClass(_pool.FindMessageTypeByName("zipkin.proto3.ListOfSpans"))


def _hex_id(raw: bytes, where: str, sizes: tuple[int, ...]) -> str:
    if len(raw) not in sizes:
        raise SpanError(f"{where} must be {' or '.join(str(s) for s in sizes)} bytes, not {len(raw)}")
    return raw.hex()


def _endpoint(ep, where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if ep.service_name:
        out["serviceName"] = ep.service_name
    for key, family, size in (("ipv4", socket.AF_INET, 4), ("ipv6", socket.AF_INET6, 16)):
        raw = getattr(ep, key)
        if raw:
            if len(raw) != size:
                raise SpanError(f"{where}.{key} must be {size} bytes, not {len(raw)}")
            out[key] = socket.inet_ntop(family, raw)
    if ep.port:
        out["port"] = ep.port  # from_v2 refuses ports outside 1-65535 with the JSON reason
    return out


def to_v2_json(span) -> dict[str, Any]:
    """One decoded protobuf Span in Zipkin's v2 JSON shape (before validation)."""
    doc: dict[str, Any] = {"traceId": _hex_id(span.trace_id, "traceId", (8, 16)), "id": _hex_id(span.id, "id", (8,))}
    if span.parent_id:
        doc["parentId"] = _hex_id(span.parent_id, "parentId", (8,))
    if span.kind:
        doc["kind"] = KINDS[span.kind] if span.kind < len(KINDS) else None
        if doc["kind"] is None:
            raise SpanError(f"kind {span.kind} is not a Zipkin span kind")
    if span.name:
        doc["name"] = span.name
    if span.timestamp:
        doc["timestamp"] = span.timestamp
    if span.duration:
        doc["duration"] = span.duration
    if span.HasField("local_endpoint"):
        doc["localEndpoint"] = _endpoint(span.local_endpoint, "localEndpoint")
    if span.HasField("remote_endpoint"):
        doc["remoteEndpoint"] = _endpoint(span.remote_endpoint, "remoteEndpoint")
    if span.annotations:
        doc["annotations"] = [{"timestamp": a.timestamp, "value": a.value} for a in span.annotations]
    if span.tags:
        doc["tags"] = dict(span.tags)
    if span.debug:
        doc["debug"] = True
    if span.shared:
        doc["shared"] = True
    return doc


def parse(data: bytes) -> list[Span]:
    """A ListOfSpans body → validated spans; SpanError names the first bad span."""
    message = ListOfSpans()
    try:
        message.ParseFromString(data)
    except (DecodeError, RecursionError) as exc:
        raise SpanError(f"body is not a Zipkin protobuf ListOfSpans: {exc}") from None
    spans = []
    for index, span in enumerate(message.spans):
        try:
            spans.append(from_v2(to_v2_json(span)))
        except SpanError as exc:
            raise SpanError(f"span {index}: {exc}") from None
    return spans


def encode_spans(spans: list[dict[str, Any]]) -> bytes:
    """v2 JSON spans → a ListOfSpans body (what Envoy sends); for tests and the benchmark."""
    message = ListOfSpans()
    for doc in spans:
        span = message.spans.add()
        span.trace_id = bytes.fromhex(doc["traceId"].zfill(32 if len(doc["traceId"]) > 16 else 16))
        span.id = bytes.fromhex(doc["id"].zfill(16))
        if doc.get("parentId"):
            span.parent_id = bytes.fromhex(doc["parentId"].zfill(16))
        if doc.get("kind"):
            span.kind = KINDS.index(doc["kind"])
        for key in ("name", "timestamp", "duration", "debug", "shared"):
            if doc.get(key):
                setattr(span, key, doc[key])
        for key, field in (("localEndpoint", span.local_endpoint), ("remoteEndpoint", span.remote_endpoint)):
            ep = doc.get(key)
            if ep is None:
                continue
            field.SetInParent()
            if ep.get("serviceName"):
                field.service_name = ep["serviceName"]
            if ep.get("ipv4"):
                field.ipv4 = ipaddress.IPv4Address(ep["ipv4"]).packed
            if ep.get("ipv6"):
                field.ipv6 = ipaddress.IPv6Address(ep["ipv6"]).packed
            if ep.get("port"):
                field.port = ep["port"]
        for ann in doc.get("annotations", ()):
            span.annotations.add(timestamp=ann["timestamp"], value=ann["value"])
        for key, value in doc.get("tags", {}).items():
            span.tags[key] = value
    return message.SerializeToString()
