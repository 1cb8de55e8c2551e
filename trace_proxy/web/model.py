"""What the pages show, computed from stored spans: search rows, the waterfall, the
heatmap grid and the dependency graph's layout. Plain data; the templates only lay it out."""
from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Sequence
from urllib.parse import urlsplit

from trace_proxy.store.query import service_name, trace_timestamp
from trace_proxy.web.analysis import children_of, critical_path, service_group

REQUEST_ID_TAG = "guid:x-request-id"  # Envoy's tag with the request's x-request-id


def tags_of(span: dict) -> dict:
    return span.get("tags") or {}


def is_error(span: dict) -> bool:
    """Envoy tags failed requests `error`; a 5xx status counts too."""
    tags = tags_of(span)
    return "error" in tags or str(tags.get("http.status_code", "")).startswith("5")


def url_path(span: dict) -> str:
    url = tags_of(span).get("http.url", "")
    if not url:
        return ""
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def clock(ts_us: int | float) -> str:
    try:
        return datetime.fromtimestamp(ts_us / 1e6).strftime("%H:%M:%S.%f")[:-3] if ts_us else "?"
    except (OverflowError, ValueError, OSError):  # beyond the year 9999: Zipkin allows any int64
        return "?"


def ms(duration_us: int | float | None) -> str:
    value = (duration_us or 0) / 1000
    return f"{value:.1f}" if value < 1000 else f"{value:,.0f}"


def root_of(spans: Sequence[dict]) -> dict | None:
    roots = [s for s in spans if not s.get("parentId")]
    pool = roots or list(spans)
    return min(pool, key=lambda s: s.get("timestamp") or 0) if pool else None


def window(spans: Sequence[dict]) -> tuple[int, int]:
    """(start, end) of the trace in µs since the epoch."""
    timed = [s for s in spans if s.get("timestamp")]
    if not timed:
        return 0, 0
    return (min(s["timestamp"] for s in timed), max(s["timestamp"] + (s.get("duration") or 0) for s in timed))


def operation(span: dict | None) -> str:
    if span is None:
        return "?"
    path = url_path(span)
    return f"{span.get('name') or '?'} {path}".strip()


def compare_label(span: dict) -> tuple[str, str]:
    """How /compare matches spans of two traces: the service (not its instance) and the span's
    name; then its URL path, which tells same-named calls of one parent apart (/stage/0…4)."""
    return f"{service_group(service_name(span) or '?')} {span.get('name') or '?'}", url_path(span)


# -- search rows ------------------------------------------------------------------------


@dataclass
class TraceRow:
    trace_id: str
    state: str
    start: str
    root_service: str
    root_operation: str
    span_count: int
    services: list[str]
    duration_us: int
    errors: int
    bar: float = 0.0  # duration as a share of the longest listed, 0..1
    start_us: int = 0
    x: float = 0.0  # the scatter plot's place: start time, 0..1000 left to right
    y: float = 0.0  # duration, 0..1 bottom to top... as SVG y, 0 at the top

    @property
    def duration(self) -> str:
        return ms(self.duration_us)


def trace_row(spans: list[dict], state: str) -> TraceRow:
    root = root_of(spans)
    start, end = window(spans)
    return TraceRow(
        trace_id=spans[0]["traceId"], state=state, start=clock(trace_timestamp(spans)),
        root_service=service_name(root) if root else "", root_operation=operation(root),
        span_count=len(spans), services=sorted({service_name(s) for s in spans if service_name(s)}),
        duration_us=(root or {}).get("duration") or (end - start), errors=sum(map(is_error, spans)),
        start_us=trace_timestamp(spans),
    )


SCATTER_WIDTH, SCATTER_HEIGHT = 1000, 160


def trace_rows(found: list[tuple[list[dict], str]]) -> list[TraceRow]:
    """Rows with their bar (duration against the longest) and their place in the scatter plot."""
    rows = [trace_row(spans, state) for spans, state in found]
    longest = max((r.duration_us for r in rows), default=0) or 1
    first = min((r.start_us for r in rows), default=0)
    span = max((r.start_us for r in rows), default=0) - first or 1
    for row in rows:
        row.bar = row.duration_us / longest
        row.x = 10 + (SCATTER_WIDTH - 20) * (row.start_us - first) / span
        row.y = SCATTER_HEIGHT - 8 - (SCATTER_HEIGHT - 16) * row.bar
    return rows


SORTS = {"newest": lambda r: -r.start_us, "oldest": lambda r: r.start_us, "longest": lambda r: -r.duration_us,
         "shortest": lambda r: r.duration_us, "most spans": lambda r: -r.span_count}


# -- waterfall --------------------------------------------------------------------------


class cached_property:  # noqa: N801 (named after the functools one it stands in for)
    """functools.cached_property without its per-access lock (Python 3.11 takes an RLock on
    every read: 1,000 rows × 10 fields were ~10 ms of a trace page here). Computed on the
    first read and stored in the instance, which later reads find before this descriptor."""

    def __init__(self, compute):
        self.compute = compute
        self.__doc__ = compute.__doc__

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        value = instance.__dict__[self.name] = self.compute(instance)
        return value


@dataclass
class SpanRow:
    span: dict
    depth: int
    offset: float  # share of the trace's window before the span starts, 0..1
    width: float  # share of the window the span covers
    self_us: int
    start_us: int = 0  # µs from the trace's start
    children: int = 0
    critical: list[tuple[float, float]] = field(default_factory=list)  # path sections, as offset/width
    slowest: bool = False

    @cached_property
    def service(self) -> str:
        return service_name(self.span) or "?"

    @cached_property
    def operation(self) -> str:
        return operation(self.span)

    @cached_property
    def duration(self) -> str:
        return ms(self.span.get("duration"))

    @cached_property
    def error(self) -> bool:
        return is_error(self.span)

    @cached_property
    def status(self) -> str:
        return status_label(self.span)

    @cached_property
    def start(self) -> str:
        return ms(self.start_us)

    @cached_property
    def bar_classes(self) -> str:
        """The bar's place as bars.css classes: x (start) and w (width) in thousandths."""
        return bar_place(self.offset, self.width, 2)

    @cached_property
    def critical_classes(self) -> list[str]:
        return [bar_place(x, w, 1) for x, w in self.critical]

    @cached_property
    def find_text(self) -> str:
        """What find-in-trace matches: service, operation and tag values, lower-cased."""
        values = [self.service, self.operation, *(str(v)[:200] for v in tags_of(self.span).values())]
        return " ".join(values).lower()

    @cached_property
    def raw_json(self) -> str:
        return json.dumps(self.span, indent=2, sort_keys=True)

    def matches(self, needle: str) -> bool:
        return needle.lower() in self.find_text


BAR_STEPS = 1000  # bars.css places bars in thousandths of the trace: no inline style needed


def bar_place(offset: float, width: float, least: int) -> str:
    x = min(BAR_STEPS, max(0, round(offset * BAR_STEPS)))
    return f"x{x} w{min(BAR_STEPS, max(least, round(width * BAR_STEPS)))}"


def bars_css() -> str:
    """The classes bar_place names: .x0…x1000 (left) and .w1…w1000 (width), in per mille."""
    return "".join(f".x{i}{{left:{i / 10:g}%}}" for i in range(BAR_STEPS + 1)) + \
        "".join(f".w{i}{{width:{i / 10:g}%}}" for i in range(1, BAR_STEPS + 1)) + "\n"


def status_label(span: dict) -> str:
    """The HTTP status; for Envoy's status 0 (no response at all) its response flags, `DC`
    (the client hung up), `UF`…, as the terminal's trace view shows them."""
    tags = tags_of(span)
    code = str(tags.get("http.status_code", ""))
    if code == "0":
        flags = tags.get("response_flags", "")
        return flags if flags and flags != "-" else "no response"
    return code


def tree_order(spans: Sequence[dict]) -> list[tuple[int, dict]]:
    """(depth, span) depth first, children by start time; orphans (parent not here) as roots."""
    ids = {s.get("id") for s in spans}
    children: dict[str | None, list[dict]] = defaultdict(list)
    for s in spans:
        parent = s.get("parentId")
        children[parent if parent in ids and parent != s.get("id") else None].append(s)
    key = lambda s: (s.get("timestamp") or 0, s.get("id") or "")  # noqa: E731
    out: list[tuple[int, dict]] = []
    seen: set[int] = set()
    stack = [(0, s) for s in sorted(children[None], key=key, reverse=True)]
    while stack:
        depth, span = stack.pop()
        if id(span) in seen:
            continue
        seen.add(id(span))
        out.append((depth, span))
        stack.extend((depth + 1, c) for c in sorted(children.get(span.get("id"), []), key=key, reverse=True))
    out += [(0, s) for s in sorted(spans, key=key) if id(s) not in seen]  # parent cycles
    return out


def self_times(spans: Sequence[dict]) -> dict[int, int]:
    """µs each span spends outside its children (the union of their intervals), by id(span)."""
    kids: dict[str, list[dict]] = defaultdict(list)
    for s in spans:
        if s.get("parentId"):
            kids[s["parentId"]].append(s)
    result = {}
    for s in spans:
        start = s.get("timestamp") or 0
        end = start + (s.get("duration") or 0)
        covered, cursor = 0, start
        for a, b in sorted((max(start, c.get("timestamp") or 0), min(end, (c.get("timestamp") or 0) + (c.get("duration") or 0)))
                           for c in kids.get(s.get("id"), []) if c is not s):
            a = max(a, cursor)
            if b > a:
                covered, cursor = covered + b - a, b
        result[id(s)] = (s.get("duration") or 0) - covered
    return result


def waterfall(spans: list[dict]) -> list[SpanRow]:
    """Rows in tree order; the span with the most time of its own is the slowest (the slow stage);
    each row knows its children's count and its sections of the critical path."""
    start, end = window(spans)
    total = max(end - start, 1)
    selfs = self_times(spans)
    kids = children_of(spans)
    path = critical_path(spans, root_of(spans))
    rows = []
    for depth, span in tree_order(spans):
        ts = span.get("timestamp") or start
        sections = [((a - start) / total, max((b - a) / total, 0.001)) for a, b in path.get(span.get("id"), [])]
        rows.append(SpanRow(span, depth, (ts - start) / total, max((span.get("duration") or 0) / total, 0.002),
                            selfs[id(span)], ts - start, len(kids.get(span.get("id"), [])), sections))
    if len(rows) > 1:
        max(rows, key=lambda r: r.self_us).slowest = True
    return rows


def ruler(total_us: int, ticks: int = 4) -> list[str]:
    """The time ruler's labels: the start of each of `ticks` equal parts, then the end."""
    return [f"{ms(total_us * i / ticks)} ms" for i in range(ticks + 1)]


@dataclass
class TraceSummary:
    trace_id: str
    request_id: str
    start: str
    duration: str
    services: list[str]
    errors: int
    span_count: int
    duration_us: int = 0


def summary(spans: list[dict]) -> TraceSummary:
    start, end = window(spans)
    request_ids = [tags_of(s)[REQUEST_ID_TAG] for s in spans if tags_of(s).get(REQUEST_ID_TAG)]
    return TraceSummary(spans[0]["traceId"], request_ids[0] if request_ids else "", clock(start),
                        ms(end - start), sorted({service_name(s) for s in spans if service_name(s)}),
                        sum(map(is_error, spans)), len(spans), end - start)


# -- heatmap ----------------------------------------------------------------------------

COLUMNS = 30
SHADES = 6  # CSS classes shade-1 .. shade-6


@dataclass
class Heatmap:
    t0_us: int
    column_us: int
    edges_us: list[int]  # duration edges, ascending; rows[i] covers [edges[i], edges[i+1])
    rows: list[list[int]]  # fastest first
    spans: int
    max_count: int = 0
    times: list[str] = field(default_factory=list)

    def shade(self, count: int) -> int:
        return 0 if not count else 1 + min(SHADES - 1, int((SHADES - 1) * math.log1p(count) / math.log1p(self.max_count)))


def heatmap(traces: list[list[dict]], service: str | None = None, columns: int = COLUMNS) -> Heatmap | None:
    """Span durations over time: x is the start of each span's trace (so a cell's traces are
    exactly what the search finds for its time and duration range); y doubles per row."""
    points = []
    for spans in traces:
        ts = trace_timestamp(spans)
        points += [(ts, s["duration"]) for s in spans
                   if s.get("duration") and (service is None or service_name(s) == service)]
    if not points:
        return None
    # Columns start and end on whole milliseconds, the search's time unit, so the link of a
    # cell (endTs and lookback in ms) covers exactly the cell's time span.
    t0 = min(p[0] for p in points) // 1000 * 1000
    t1 = max(p[0] for p in points)
    column = max(1_000_000, math.ceil((t1 - t0 + 1) / columns / 1000) * 1000)  # at least a second per column
    columns = min(columns, (t1 - t0) // column + 1)
    low = 2 ** math.floor(math.log2(min(p[1] for p in points)))
    high = max(p[1] for p in points)
    edges = [low]
    while edges[-1] <= high:
        edges.append(edges[-1] * 2)
    rows = [[0] * columns for _ in range(len(edges) - 1)]
    for ts, duration in points:
        row = min(len(rows) - 1, int(math.log2(duration / low)))
        rows[row][min(columns - 1, (ts - t0) // column)] += 1
    result = Heatmap(t0, column, edges, rows, len(points), max(max(r) for r in rows))
    result.times = [clock(t0 + i * column)[:8] for i in range(columns)]
    return result


# -- dependency graph -------------------------------------------------------------------


NODE_HALF_WIDTH = 70  # the node boxes' half width in the graph's units


@dataclass
class GraphNode:
    name: str
    x: float
    y: float
    members: list[str] = field(default_factory=list)  # the instances of a grouped node


@dataclass
class GraphEdge:
    parent: GraphNode
    child: GraphNode
    calls: int
    errors: int

    @property
    def ends(self) -> tuple[float, float, float, float]:
        """x1, y1, x2, y2: from the caller's box's right edge to the callee's left edge."""
        return self.parent.x + NODE_HALF_WIDTH, self.parent.y, self.child.x - NODE_HALF_WIDTH, self.child.y

    placed: tuple[float, float, str] | None = None  # set by graph_layout where no line crosses it

    @property
    def label(self) -> str:
        errors = f", {self.errors} {'error' if self.errors == 1 else 'errors'}" if self.errors else ""
        return f"{self.calls} calls{errors}"

    @property
    def label_at(self) -> tuple[float, float, str]:
        """Where the label goes (x, y, text-anchor): where graph_layout found room, else beside
        the line's middle."""
        return self.placed or self.label_candidates()[0]

    def label_candidates(self) -> list[tuple[float, float, str]]:
        """Spots beside the line, best first: its middle, then nearer either end; on the side
        the line leaves free (above a level line; below and right of a rising one, above and
        right of a falling one), then the other side."""
        x1, y1, x2, y2 = self.ends
        spots = []
        for t in (0.5, 0.38, 0.62, 0.27, 0.73, 0.18, 0.82):
            mx, my = x1 + (x2 - x1) * t, y1 + (y2 - y1) * t
            if abs(y2 - y1) < 1:
                spots += [(mx, my - 6, "middle"), (mx, my + 15, "middle")]
            elif y2 < y1:
                spots += [(mx + 6, my + 14, "start"), (mx - 6, my - 6, "end")]
            else:
                spots += [(mx + 6, my - 6, "start"), (mx - 6, my + 14, "end")]
        return spots

    def label_box(self, spot: tuple[float, float, str]) -> tuple[float, float, float, float]:
        """The label's box at `spot` (left, top, right, bottom), from its 11px font's widths."""
        x, y, anchor = spot
        width = 6.6 * len(self.label) + 2
        left = {"start": x, "middle": x - width / 2, "end": x - width}[anchor]
        return left - 1, y - 11, left + width, y + 3


def place_labels(edges: list[GraphEdge]) -> None:
    """Each edge's label at its first candidate spot that no line of the graph crosses."""
    lines = [e.ends for e in edges]
    for edge in edges:
        for spot in edge.label_candidates():
            if not any(_crosses(line, edge.label_box(spot)) for line in lines):
                edge.placed = spot
                break


def _crosses(line: tuple[float, float, float, float], box: tuple[float, float, float, float]) -> bool:
    x1, y1, x2, y2 = line
    left, top, right, bottom = box
    return any(left <= x1 + (x2 - x1) * i / 200 <= right and top <= y1 + (y2 - y1) * i / 200 <= bottom
               for i in range(201))


def group_links(links: list[dict], group) -> tuple[list[dict], dict[str, list[str]]]:
    """Links between services instead of instances (`group` names an instance's service),
    calls and errors summed; and each group's instances."""
    summed: dict[tuple[str, str], dict] = {}
    members: dict[str, set[str]] = defaultdict(set)
    for link in links:
        parent, child = group(link["parent"]), group(link["child"])
        members[parent].add(link["parent"])
        members[child].add(link["child"])
        entry = summed.setdefault((parent, child), {"parent": parent, "child": child, "callCount": 0, "errorCount": 0})
        entry["callCount"] += link["callCount"]
        entry["errorCount"] += link.get("errorCount", 0)
    return list(summed.values()), {k: sorted(v) for k, v in members.items()}


def graph_layout(links: list[dict], width: int = 900, row_height: int = 70) -> tuple[list[GraphNode], list[GraphEdge], int]:
    """Nodes in columns by their longest call path from a caller nobody calls; edges between them."""
    names = sorted({l["parent"] for l in links} | {l["child"] for l in links})
    callers: dict[str, set[str]] = defaultdict(set)
    for link in links:
        if link["parent"] != link["child"]:
            callers[link["child"]].add(link["parent"])
    level: dict[str, int] = {}

    def depth(name: str, path: frozenset = frozenset()) -> int:
        if name not in level:
            parents = [p for p in callers[name] if p not in path]  # cycles stop here
            level[name] = 1 + max((depth(p, path | {name}) for p in parents), default=-1)
        return level[name]

    for name in names:
        depth(name)
    columns: dict[int, list[str]] = defaultdict(list)
    for name in names:
        columns[level[name]].append(name)
    step = width / (max(columns, default=0) + 1)
    tallest = max((len(c) for c in columns.values()), default=1)
    nodes = {}
    for col, members in columns.items():
        for i, name in enumerate(members):
            offset = (tallest - len(members)) * row_height / 2
            nodes[name] = GraphNode(name, step * col + step / 2, offset + row_height * i + row_height / 2)
    edges = [GraphEdge(nodes[l["parent"]], nodes[l["child"]], l["callCount"], l.get("errorCount", 0)) for l in links]
    place_labels(edges)
    return list(nodes.values()), edges, tallest * row_height
