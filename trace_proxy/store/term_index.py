"""The traces each annotationQuery term can match, kept up to date by the searches that use it.

A term is what Zipkin's annotationQuery names: an annotation value or a tag key (`error`),
or a tag key with its value (`http.status_code=500`). A span carries a dozen or more of
them, so indexing them as spans arrive would cost ingest more than every other index
together; instead the store notes which traces changed and which left, and the next
search with an annotationQuery (or autocomplete lookup) brings the index up to date:
the spans that came are indexed, the traces that left are taken out. Ingest pays one dict
entry per trace per request.

A trace that leaves is remembered with its spans until then; should that list outgrow the
traces indexed (no such search for a whole turn of the store), the index is dropped and
built again by the next search, so the memory held stays within one store's worth.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Mapping

Term = str | tuple[str, str]


class TermIndex:
    def __init__(self):
        self._terms: dict[Term, set[str]] = {}
        self._values: dict[str, set[str]] = {}  # tag key → its values in the index (autocomplete)
        # Traces with spans not indexed yet; ordered, so that a slice of them leaves from the
        # front in O(1) (a plain dict rescans the holes left at its front).
        self._pending: OrderedDict[str, None] = OrderedDict()
        self._done: dict[str, int] = {}  # spans indexed per trace
        self._leaving: list[tuple[str, list[dict[str, Any]]]] = []  # evicted: (id, indexed spans)

    def changed(self, trace_id: str) -> None:
        self._pending[trace_id] = None

    def evicted(self, trace_id: str, spans: list[dict[str, Any]]) -> None:
        self._pending.pop(trace_id, None)
        done = self._done.pop(trace_id, 0)
        if not done:
            return
        self._leaving.append((trace_id, spans[:done]))
        if len(self._leaving) > len(self._done):
            self._pending.update(dict.fromkeys(self._done))
            self._terms, self._values, self._done, self._leaving = {}, {}, {}, []

    def candidates(self, annotations: Mapping[str, str], spans_of) -> set[str]:
        """The smallest set of trace ids every match of `annotations` is in (a superset of
        the matches). `spans_of(trace id)`: its spans, or None."""
        self.catch_up(spans_of)
        smallest: set[str] | None = None
        for key, value in annotations.items():
            found = self._terms.get((key, value) if value else key, set())
            if smallest is None or len(found) < len(smallest):
                smallest = found
        return smallest if smallest is not None else set()

    def tag_values(self, key: str, spans_of) -> list[str]:
        """Every value the tag `key` has in the stored traces (Zipkin's autocompleteValues)."""
        self.catch_up(spans_of)
        return sorted(self._values.get(key, ()))

    def catch_up(self, spans_of, budget: int | None = None) -> bool:
        """Index what came and take out what left, at most `budget` traces of each; True
        once the index is up to date."""
        terms, values, done = self._terms, self._values, self._done
        leaving = self._leaving
        count = len(leaving) if budget is None else min(budget, len(leaving))
        for trace_id, spans in leaving[:count]:  # first: an id that left may have come back
            for term in _trace_terms(spans):
                found = terms[term]
                found.discard(trace_id)
                if not found:
                    del terms[term]
                    if isinstance(term, tuple):
                        _discard(values, term)
        del leaving[:count]
        if leaving:
            return False
        pending = self._pending
        while pending:
            if budget is not None:
                if budget <= 0:
                    return False
                budget -= 1
            trace_id, _ = pending.popitem(last=False)
            spans = spans_of(trace_id)
            if spans is None:
                continue
            start = done.get(trace_id, 0)
            for term in _trace_terms(spans[start:]):
                found = terms.get(term)
                if found is None:
                    terms[term] = {trace_id}
                    if isinstance(term, tuple):
                        values.setdefault(term[0], set()).add(term[1])
                else:
                    found.add(trace_id)
            done[trace_id] = len(spans)
        return True


def _discard(values: dict[str, set[str]], term: tuple[str, str]) -> None:
    key, value = term
    kept = values[key]
    kept.discard(value)
    if not kept:
        del values[key]


def _trace_terms(spans: list[dict[str, Any]]) -> set[Term]:
    """Every term of these spans that an annotationQuery can name, once each (a trace's spans
    share most of theirs; tag values are strings in the store's form)."""
    terms: set[Term] = set()
    for span in spans:
        for annotation in span.get("annotations") or ():
            if value := annotation.get("value"):
                terms.add(value)
        for key, value in (span.get("tags") or {}).items():
            terms.add(key)
            terms.add((key, value))
    return terms
