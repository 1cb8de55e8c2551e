"""Keeping spans for local viewing: the bounded in-memory store (span_store.py) and the
Zipkin v2 query parameters it answers (query.py)."""
