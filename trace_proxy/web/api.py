"""The Zipkin v2 query endpoints beyond app.py's: traceMany, dependencies, autocompleteKeys
and autocompleteValues, as zipkin2-api.yaml defines them, plus /api/store (not Zipkin's):
what the store holds, so clients can say what a filter left out.
"""
from __future__ import annotations

import re
import time

from flask import Blueprint, jsonify, request

from trace_proxy.ingest.zipkin_json import normalize_trace_id
from trace_proxy.settings import Settings
from trace_proxy.store.query import DEFAULT_LOOKBACK_MS, QueryError, int_arg
from trace_proxy.store.span_store import SpanStore
from trace_proxy.web.replies import present, required, text

_TRACE_ID = re.compile(r"[0-9a-f]{16,32}")


def api_blueprint(store: SpanStore, settings: Settings) -> Blueprint:
    api = Blueprint("zipkin_api_more", __name__)

    @api.get("/api/v2/traceMany")
    def trace_many():
        ids = [part.strip().lower() for part in required("traceIds").split(",")]
        if len(ids) < 2:
            return text(400, "traceIds needs at least two comma separated trace ids; use /api/v2/trace/{traceId} for one")
        if any(not _TRACE_ID.fullmatch(tid) for tid in ids):
            return text(400, "traceIds must be trace ids of 16 to 32 hex characters, comma separated")
        normalized = [normalize_trace_id(tid) for tid in ids]
        if len(set(normalized)) != len(normalized):
            return text(400, "traceIds lists a trace id twice")
        return jsonify(store.traces_by_id(normalized))

    @api.get("/api/v2/dependencies")
    def dependencies():
        required("endTs")
        try:
            end_ts = int_arg(request.args, "endTs", None, minimum=1)
            lookback = int_arg(request.args, "lookback", DEFAULT_LOOKBACK_MS, minimum=0)
        except QueryError as exc:
            return text(400, str(exc))
        return jsonify(store.dependencies(end_ts, lookback))

    @api.get("/api/v2/autocompleteKeys")
    def autocomplete_keys():
        return jsonify(list(settings.autocomplete_keys))

    @api.get("/api/v2/autocompleteValues")
    def autocomplete_values():
        key = present("key")
        # Zipkin answers an empty list for a key it was not configured to autocomplete.
        return jsonify(store.tag_values(key) if key in settings.autocomplete_keys else [])

    @api.get("/api/store")
    def store_census():
        census = store.census()
        census["settle_seconds"] = store.settle_seconds
        census["now_ms"] = int(time.time() * 1000)
        return jsonify(census)

    return api
