"""BubbleUp for traces: which span fields set a selection of spans (a region of the heatmap:
a time range × a duration range) apart from the rest.

Every field of every span (service, name, kind, each tag) is a distribution of values; for
each field the score is the largest difference, over its values, between the share of the
selected spans with that value and the share of the other spans with it (Honeycomb's
BubbleUp ranks by the same kind of difference of proportions). Fields whose values are
unique per span (request ids) have tiny shares on both sides and rank low by themselves.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

from trace_proxy.store.query import service_name, trace_timestamp

TOP_VALUES = 6  # values drawn per field; the rest summed as "other"


@dataclass
class Selection:
    t0_us: int  # trace start from (inclusive)
    t1_us: int  # to (exclusive)
    min_us: int  # span duration from (inclusive)
    max_us: int  # to (inclusive)

    def holds(self, trace_start_us: int, duration_us: int) -> bool:
        return self.t0_us <= trace_start_us < self.t1_us and self.min_us <= duration_us <= self.max_us


@dataclass
class ValueShare:
    value: str
    inside: float  # share of the selected spans with this value, 0..1
    outside: float
    inside_count: int
    outside_count: int


@dataclass
class FieldRank:
    name: str
    score: float  # the largest |inside - outside| over its values
    values: list[ValueShare] = field(default_factory=list)


def span_fields(span: dict) -> dict[str, str]:
    fields = {"service": service_name(span) or "?", "name": span.get("name") or "?",
              "kind": span.get("kind") or "none"}
    for key, value in (span.get("tags") or {}).items():
        fields[f"tag {key}"] = str(value)[:200]
    return fields


def bubbleup(traces: Iterable[list[dict]], selection: Selection, service: str | None = None) -> tuple[list[FieldRank], int, int, set[str]]:
    """(fields ranked, spans inside, spans outside, trace ids with a span inside)."""
    inside: dict[str, Counter] = {}
    outside: dict[str, Counter] = {}
    n_in = n_out = 0
    trace_ids: set[str] = set()
    for spans in traces:
        start = trace_timestamp(spans)
        for span in spans:
            if not span.get("duration") or (service and service_name(span) != service):
                continue
            hit = selection.holds(start, span["duration"])
            side = inside if hit else outside
            if hit:
                n_in += 1
                trace_ids.add(span["traceId"])
            else:
                n_out += 1
            for name, value in span_fields(span).items():
                side.setdefault(name, Counter())[value] += 1
    ranks = []
    for name in inside.keys() | outside.keys():
        a, b = inside.get(name, Counter()), outside.get(name, Counter())
        # A span without the field counts as the value "(none)", so shares add up to one.
        a["(none)"] += n_in - sum(a.values())
        b["(none)"] += n_out - sum(b.values())
        shares = [ValueShare(v, a[v] / n_in if n_in else 0.0, b[v] / n_out if n_out else 0.0, a[v], b[v])
                  for v in a.keys() | b.keys() if a[v] or b[v]]
        shares.sort(key=lambda s: (-abs(s.inside - s.outside), s.value))
        shown = shares[:TOP_VALUES]
        rest = shares[TOP_VALUES:]
        if rest:
            shown.append(ValueShare(f"({len(rest)} other values)", sum(s.inside for s in rest),
                                    sum(s.outside for s in rest), sum(s.inside_count for s in rest),
                                    sum(s.outside_count for s in rest)))
        ranks.append(FieldRank(name, abs(shares[0].inside - shares[0].outside) if shares else 0.0, shown))
    ranks.sort(key=lambda r: (-r.score, r.name))
    return ranks, n_in, n_out, trace_ids
