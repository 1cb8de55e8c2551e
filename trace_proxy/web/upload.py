"""A trace file from elsewhere (Zipkin v2 JSON, or OTLP JSON as /trace/ID/download writes
it) read with the ingest's own parsers, so a file is checked exactly as a POST of it would be."""
from __future__ import annotations

import io
import json
from collections import defaultdict

from trace_proxy.ingest.body import IngestError
from trace_proxy.ingest.zipkin_json import Span, SpanError, parse
from trace_proxy.store.normalize import stored_form

LIMIT_BYTES = 20 * 1024 * 1024


class UploadError(ValueError):
    """A file that holds no spans we can read; the message says why, in one line."""


def read_spans(data: bytes) -> list[Span]:
    if len(data) > LIMIT_BYTES:
        raise UploadError(f"the file is {len(data):,} bytes; the limit is {LIMIT_BYTES:,}")
    try:
        payload = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UploadError(f"not JSON: {str(exc)[:120]}") from None
    if isinstance(payload, dict) and "resourceSpans" in payload:
        # OTLP's messages (protobuf) are loaded for the first OTLP file, not with the web UI.
        from trace_proxy.ingest.otlp_spans import convert
        from trace_proxy.ingest.otlp_wire import JSON as OTLP_JSON, decode

        try:
            body = decode(io.BytesIO(data), content_type=OTLP_JSON, content_encoding=None, limit=LIMIT_BYTES)
        except IngestError as exc:
            raise UploadError(f"not OTLP JSON: {exc}") from None
        conversion = convert(body.request)
        if conversion.rejected and not conversion.spans:
            where, reason = conversion.rejected[0]
            raise UploadError(f"no readable span: {where}: {reason}")
        spans = conversion.spans
    elif isinstance(payload, list):
        try:
            spans = parse(payload, 2)
        except SpanError as exc:
            raise UploadError(f"not Zipkin v2 JSON: {exc}") from None
    else:
        raise UploadError("neither Zipkin v2 JSON (a list of spans) nor OTLP JSON (an object with resourceSpans)")
    if not spans:
        raise UploadError("the file holds no spans")
    return spans


def traces_of(spans: list[Span]) -> list[list[dict]]:
    """The spans in the store's form, grouped by trace, in the file's order."""
    grouped: dict[str, list[dict]] = defaultdict(list)
    for span in spans:
        grouped[span.trace_id].append(span.v2 if span.stored else stored_form(span.v2))
    return list(grouped.values())
