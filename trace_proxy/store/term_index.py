"""The traces each annotationQuery term can match, built when a query first needs it.

A term is what Zipkin's annotationQuery names: an annotation value or a tag key (`error`),
or a tag key with its value (`http.status_code=500`). A span carries a dozen or more of
them, so indexing them as spans arrive would cost ingest more than every other index
together; instead the store notes which traces changed, and the first search with an
annotationQuery after that indexes their new spans. Ingest pays one dict entry per trace
per request; the price is paid once per span, by the search that wants it.

An evicted trace's ids are left in the sets (taking them out would cost the request path
as much as putting them in): callers check candidates against the store, and once the
stale ids outnumber the live ones the index is dropped and built again on next use.
"""
from __future__ import annotations

from typing import Any, Mapping

Term = str | tuple[str, str]


class TermIndex:
    def __init__(self):
        self._terms: dict[Term, set[str]] = {}
        self._values: dict[str, set[str]] = {}  # tag key → every value it has had (autocomplete)
        self._pending: dict[str, None] = {}  # traces with spans not indexed yet
        self._done: dict[str, int] = {}  # spans indexed per trace
        self._stale = 0

    def changed(self, trace_id: str) -> None:
        self._pending[trace_id] = None

    def evicted(self, trace_id: str) -> None:
        self._pending.pop(trace_id, None)
        if self._done.pop(trace_id, None) is not None:
            self._stale += 1

    def candidates(self, annotations: Mapping[str, str], spans_of) -> set[str]:
        """The smallest set of trace ids every match of `annotations` is in (a superset of
        the matches, evicted ids among them). `spans_of(trace id)`: its spans, or None."""
        self._catch_up(spans_of)
        smallest: set[str] | None = None
        for key, value in annotations.items():
            found = self._terms.get((key, value) if value else key, set())
            if smallest is None or len(found) < len(smallest):
                smallest = found
        return smallest if smallest is not None else set()

    def tag_values(self, key: str, spans_of) -> list[str]:
        """Every value the tag `key` has in the stored traces (Zipkin's autocompleteValues)."""
        self._catch_up(spans_of)
        terms = self._terms
        return sorted(value for value in self._values.get(key, ())
                      if any(spans_of(tid) is not None for tid in terms[(key, value)]))

    def _catch_up(self, spans_of) -> None:
        if self._stale and self._stale > len(self._done):
            self._pending.update(dict.fromkeys(self._done))
            self._terms, self._values, self._done, self._stale = {}, {}, {}, 0
        terms, values, done = self._terms, self._values, self._done
        for trace_id in self._pending:
            spans = spans_of(trace_id)
            if spans is None:
                continue
            start = done.get(trace_id, 0)
            seen: set[Term] = set()  # a trace's spans share most of their terms
            for span in spans[start:]:
                for term in span_terms(span):
                    if term not in seen:
                        seen.add(term)
                        found = terms.get(term)
                        if found is None:
                            terms[term] = {trace_id}
                            if isinstance(term, tuple):
                                values.setdefault(term[0], set()).add(term[1])
                        else:
                            found.add(trace_id)
            done[trace_id] = len(spans)
        self._pending = {}


def span_terms(span: dict[str, Any]) -> list[Term]:
    """Every term of the span that an annotationQuery can name (tag values are strings in
    the store's form)."""
    terms: list[Term] = [a["value"] for a in span.get("annotations") or () if a.get("value")]
    for key, value in (span.get("tags") or {}).items():
        terms.append(key)
        terms.append((key, value))
    return terms
