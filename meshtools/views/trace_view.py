"""Terminal views of Zipkin v2 spans: waterfall, trace list, breakdown and heatmap.

Everything here takes plain span dicts (Zipkin v2 JSON) and a rich Console, so `inv traces`,
`inv demo` and tests share it:

    from meshtools.views.trace_view import render_trace
    render_trace(spans, console)          # one trace as a tree with a timeline bar per span

Errors are written out in words ("ERROR 500") as well as in red, so piped output keeps them.
`terminal_console()` is the Console every command prints these with.
"""
from __future__ import annotations

import io
import math
import os
import sys
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Iterable, Sequence
from urllib.parse import urlsplit

from rich.console import Console
from rich.table import Table
from rich.text import Text

from meshtools.views.stats import LogBins, nearest_rank
from meshtools.views.urls import readable
from trace_proxy.web.model import self_times, tree_order  # one implementation for terminal and web UI

BAR_WIDTH = 40
MIN_TIMELINE = 8  # columns; a narrow console shrinks the timeline down to this before cutting names
MIN_LABEL = 8  # columns a cut breakdown label or span name keeps, unless the console is tiny
LAST_RESORT_LABEL = 3  # ...then labels go down to this rather than numbers being cut
PIPED_WIDTH = 80  # piped output (tee, CI logs) has no terminal width: the width every view must fit
BAR_CHAR = "█"
EMPTY_CHAR = " "
SHADES = "░▒▓█"  # heatmap cells, fewest to most spans


# -- console --------------------------------------------------------------------------


class _NoTrailingSpaces(io.TextIOBase):
    """A text stream that drops the spaces rich pads table lines with, for piped output."""

    def __init__(self, out) -> None:
        self.out = out
        self.pending = ""

    def write(self, text: str) -> int:
        *lines, self.pending = (self.pending + text).split("\n")
        for line in lines:
            self.out.write(line.rstrip(" ") + "\n")
        return len(text)

    def flush(self) -> None:
        if self.pending and not self.pending.endswith(" "):
            self.out.write(self.pending)
            self.pending = ""
        self.out.flush()

    def isatty(self) -> bool:
        return False


def terminal_console() -> Console:
    """The Console for `inv traces` and `inv demo`: the terminal's width, or PIPED_WIDTH when piped.

    COLUMNS, when set, wins either way (rich reads it).
    """
    if sys.stdout.isatty():
        return Console()
    width = None if "COLUMNS" in os.environ else PIPED_WIDTH
    return Console(file=_NoTrailingSpaces(sys.stdout), width=width)


# -- span fields ------------------------------------------------------------------------


def service_of(span: dict) -> str:
    return (span.get("localEndpoint") or {}).get("serviceName") or "?"


def tags_of(span: dict) -> dict:
    return span.get("tags") or {}


def status_code(span: dict) -> int | None:
    try:
        return int(tags_of(span).get("http.status_code"))
    except (TypeError, ValueError):
        return None


def is_error(span: dict) -> bool:
    code = status_code(span)
    return (code is not None and code >= 500) or "error" in tags_of(span)


# Envoy's response flags (its access log's %RESPONSE_FLAGS%) a trace here may carry, for the
# legend under a view: the status column shows the short form.
RESPONSE_FLAGS = {
    "DC": "the client went away before the answer",
    "UC": "the upstream closed the connection",
    "UF": "no connection to the upstream",
    "UH": "no healthy upstream",
    "UO": "upstream overflow (circuit breaker)",
    "UR": "the upstream reset the stream",
    "URX": "retry limit reached",
    "UT": "upstream timeout",
    "NR": "no route",
    "LR": "reset here",
    "SI": "stream idle timeout",
    "DPE": "bad request from the client",
}
NO_RESPONSE = "no answer"  # Envoy's status 0


def response_flags(span: dict) -> str:
    flags = tags_of(span).get("response_flags")
    return flags if flags and flags != "-" else ""


def status_label(span: dict) -> str:
    """'200', 'ERROR 500', 'ERROR DC' for a request that got no answer (status 0, flags DC).

    Envoy records status 0 when there was no response at all (the client hung up, the
    upstream reset...); its response_flags say which, and `legend` says what they mean.
    """
    code = status_code(span)
    if is_error(span):
        if code:
            return f"ERROR {code}"
        flags = response_flags(span)
        if code == 0:
            return f"ERROR {flags}" if flags else f"ERROR ({NO_RESPONSE})"
        return f"ERROR {flags}" if flags else "ERROR"
    return "" if code is None else str(code)


def legend(spans: Iterable[dict]) -> list[str]:
    """What the short words in these spans' statuses mean: 'DC: no answer: the client went away…'."""
    lines = []
    for flags in sorted({response_flags(s) for s in spans if is_error(s) and response_flags(s)}):
        why = "; ".join(RESPONSE_FLAGS.get(f, "see Envoy's response flags") for f in flags.split(","))
        lines.append(f"{flags}: {why}")
    return lines


def _print_legend(lines: Sequence[str], console: Console) -> None:
    for line in lines:
        console.print(Text(line, style="dim"))


def url_path(span: dict) -> str:
    """The path (and query) of the span's http.url, decoded for reading."""
    url = tags_of(span).get("http.url", "")
    if not url:
        return ""
    parts = urlsplit(url)
    return readable((parts.path or "/") + (f"?{parts.query}" if parts.query else ""))


def duration_ms(span: dict) -> float:
    return (span.get("duration") or 0) / 1000


def _key(name: str) -> Callable[[dict], object]:
    return lambda span: span.get(name)


def _local(name: str) -> Callable[[dict], object]:
    return lambda span: (span.get("localEndpoint") or {}).get(name)


# The span fields by their Honeycomb event names (the upstream proxy's shape); any other
# name is a tag. The first three are the ones worth suggesting to someone who mistyped.
SPAN_FIELDS: dict[str, Callable[[dict], object]] = {
    "serviceName": service_of,
    "name": _key("name"),
    "kind": _key("kind"),
    "traceId": _key("traceId"),
    "id": _key("id"),
    "parentId": _key("parentId"),
    "durationMs": duration_ms,
    "hostIPv4": _local("ipv4"),
    "port": _local("port"),
    "remoteServiceName": lambda span: (span.get("remoteEndpoint") or {}).get("serviceName"),
}
SUGGESTED_FIELDS = tuple(SPAN_FIELDS)[:3]


def field_value(span: dict, name: str):
    """A span field by its Honeycomb event name, else a tag."""
    get = SPAN_FIELDS.get(name)
    return get(span) if get else tags_of(span).get(name)


def _clock(ts_us: int | float) -> str:
    return datetime.fromtimestamp(ts_us / 1e6).strftime("%H:%M:%S.%f")[:-3]


# -- trace shape ------------------------------------------------------------------------


def structurally_whole(spans: Sequence[dict]) -> bool:
    """A root span is there and every span's parent is (the trace proxy's rule, less its settle time)."""
    ids = {s.get("id") for s in spans}
    parents = [s.get("parentId") for s in spans]
    return any(not p for p in parents) and all(not p or p in ids for p in parents)


def trace_window(spans: Iterable[dict]) -> tuple[int, int]:
    """(start, end) of a trace in µs since the epoch."""
    spans = [s for s in spans if s.get("timestamp") is not None]
    if not spans:
        return 0, 0
    start = min(s["timestamp"] for s in spans)
    end = max(s["timestamp"] + (s.get("duration") or 0) for s in spans)
    return start, end


def bar_cells(timestamp: int, duration: int, t0: int, total: int, width: int = BAR_WIDTH) -> tuple[int, int]:
    """(first column, length) of a span's bar on a timeline `width` columns wide.

    first = floor((timestamp - t0) / total * width); length = round(duration / total * width),
    at least one column, never past the end.
    """
    if total <= 0:
        return 0, width
    first = min(width - 1, max(0, math.floor((timestamp - t0) * width / total)))
    length = max(1, round(duration * width / total))
    return first, min(length, width - first)


# -- waterfall --------------------------------------------------------------------------


GAP = 1  # spaces between table columns: at 80 columns every one counts


def _table(**kwargs) -> Table:
    return Table(box=None, padding=(0, GAP, 0, 0), pad_edge=False, header_style="bold", **kwargs)


def _fit(natural: list[int], room: int, last_first: bool = False) -> list[int]:
    """Widths for cuttable columns of these natural widths within `room`, none below MIN_LABEL
    (or its natural width) unless that is still too wide. The widest are cut first; with
    `last_first`, the last column is cut as far as it goes, then the one before it..."""
    widths = list(natural)
    for least in (MIN_LABEL, LAST_RESORT_LABEL):
        while sum(widths) > room:
            cuttable = [i for i in range(len(widths)) if widths[i] > min(least, natural[i])]
            if not cuttable:
                break
            widths[max(cuttable) if last_first else max(cuttable, key=lambda i: widths[i])] -= 1
    return widths


def _phrases(phrases: Sequence[Text], width: int) -> Text:
    """Phrases joined by " · ", a line break between two phrases (never inside one) when the
    next would not fit."""
    out, used = Text(), 0
    for phrase in phrases:
        if used and used + 3 + len(phrase) > width:
            out.append("\n")
            used = 0
        elif used:
            out.append(" · ")
            used += 3
        out.append_text(phrase)
        used += len(phrase)
    return out


def _operation(span: dict) -> Text:
    operation = Text(span.get("name") or "")
    if span.get("kind"):
        operation.append(f" {span['kind'].lower()}", style="dim")
    return operation


SLOWEST = "◀ slowest"


def render_trace(spans: Sequence[dict], console: Console, width: int | None = None) -> None:
    """Print one trace as a waterfall: a tree of spans with a timeline bar each.

    `width`: the timeline's columns (default: what the console has left, down to
    MIN_TIMELINE; only then are names cut). Statuses, numbers and the "◀ slowest" mark are
    never cut. The span that spends the most time itself (outside its children) is marked
    "◀ slowest": in this mesh that is the slow stage.
    """
    if not spans:
        console.print("(no spans)")
        return
    rows = tree_order(spans)
    t0, t_end = trace_window(spans)
    total = t_end - t0
    selfs = self_times(spans)
    slowest = max(spans, key=lambda s: selfs[id(s)]) if len(spans) > 1 else None
    errors = [s for s in spans if is_error(s)]
    services = {service_of(s) for s in spans}
    trace_id = spans[0].get("traceId", "?")
    title = [Text(f"trace {trace_id}"), Text(f"{len(spans)} spans"), Text(f"{len(services)} services"),
             Text(f"{total / 1000:.1f} ms")]
    if t0:
        title.append(Text(_clock(t0)))
    if errors:
        title.append(Text(f"ERRORS in {len(errors)} spans", style="bold red"))
    if not structurally_whole(spans):
        title.append(Text("PARTIAL: its root or a parent span has not arrived", style="bold yellow"))
    console.print(_phrases(title, console.width), soft_wrap=True)

    names = [
        max(len("service"), max(2 * d + len(service_of(s)) for d, s in rows)),
        # A long operation or url is cut before the timeline shrinks for it.
        min(40, max(len("operation"), max(len(_operation(s)) for _, s in rows))),
        min(30, max(len("url"), max(len(url_path(s)) for _, s in rows))),
    ]
    mark = SLOWEST if slowest is not None else ""
    fixed = [
        max(len("status"), max(len(status_label(s)) for _, s in rows)),
        max(len("ms"), max(len(f"{duration_ms(s):.1f}") for _, s in rows)),
        len(mark),
    ]
    gaps = GAP * 6
    notes = legend(spans)
    if mark and console.width - sum(names) - sum(fixed) - gaps < BAR_WIDTH // 2:
        mark = SLOWEST[0]  # a narrow console: the arrow alone, its meaning below the table
        fixed[2] = len(mark)
        notes.insert(0, f"{mark} slowest: the span that spends the most time itself")
    if width is None:
        spare = console.width - sum(names) - sum(fixed) - gaps
        width = max(MIN_TIMELINE, min(BAR_WIDTH + 20, spare))
    names = _fit(names, console.width - sum(fixed) - gaps - width, last_first=True)  # url, then operation

    table = _table()
    for header, w in zip(("service", "operation", "url"), names):
        table.add_column(header, no_wrap=True, overflow="ellipsis", max_width=w)
    table.add_column("status", no_wrap=True, min_width=fixed[0])
    table.add_column("ms", justify="right", no_wrap=True, min_width=fixed[1])
    table.add_column("timeline", no_wrap=True, min_width=width, max_width=width)
    table.add_column("", no_wrap=True, min_width=fixed[2])
    for depth, span in rows:
        first, length = bar_cells(span.get("timestamp") or t0, span.get("duration") or 0, t0, total, width)
        err = is_error(span)
        hot = span is slowest
        bar = Text(EMPTY_CHAR * first)
        bar.append(BAR_CHAR * length, style="red" if err else ("yellow" if hot else "cyan"))
        bar.append(EMPTY_CHAR * (width - first - length))
        table.add_row(
            Text("  " * depth + service_of(span)),
            _operation(span),
            url_path(span),
            Text(status_label(span), style="bold red" if err else "green"),
            f"{duration_ms(span):.1f}",
            bar,
            Text(mark, style="bold yellow") if hot else "",
            style="red" if err else None,
        )
    console.print(table)
    _print_legend(notes, console)


# -- trace list -------------------------------------------------------------------------


def root_of(spans: Sequence[dict]) -> dict:
    order = tree_order(spans)
    return order[0][1] if order else {}


SHORT_ID = 16  # hex digits of a trace id a narrow list shows; `inv traces --id` takes them


def render_trace_list(traces: Sequence[Sequence[dict]], console: Console) -> None:
    """One line per trace, newest first as given: time, id, spans, duration, root, status.

    What gives way when the line is too wide, least useful first: the operation column, the
    trace id's digits past SHORT_ID (a 128-bit OpenTelemetry id is 32), the time's
    milliseconds, the words of the status (with a legend); only then are service and url
    cut, never below MIN_LABEL columns."""
    traces = [spans for spans in traces if spans]
    rows = []
    for spans in traces:
        root = root_of(spans)
        t0, t_end = trace_window(spans)
        errors = [s for s in spans if is_error(s)]
        rows.append({"time": _clock(t0) if t0 else "", "trace id": root.get("traceId", ""),
                     "spans": str(len(spans)), "ms": f"{(t_end - t0) / 1000:.1f}", "service": service_of(root),
                     "op": root.get("name") or "", "url": url_path(root), "root": status_label(root),
                     "errors": len(errors) if errors and not is_error(root) else 0,
                     "partial": not structurally_whole(spans), "error": bool(errors)})
    headers = ["time", "trace id", "spans", "ms", "service", "op", "url", "status"]  # "op": 80 columns are tight
    short_words = False

    def status(row) -> str:
        words = [row["root"]]
        if row["errors"]:
            words.append(f"{row['errors']} ERR" if short_words else f"ERROR in {row['errors']} spans")
        if row["partial"]:
            words.append("PART" if short_words else "PARTIAL")  # done arriving, but spans were lost
        return " ".join(w for w in words if w)

    def cells(row) -> list[str]:
        return [row[h] if h != "status" else status(row) for h in headers]

    def natural() -> list[int]:
        return [max([len(h)] + [len(cells(r)[i]) for r in rows]) for i, h in enumerate(headers)]

    def too_wide() -> bool:
        return sum(natural()) + GAP * (len(headers) - 1) > console.width

    notes = []
    if too_wide():
        headers.remove("op")
    if too_wide() and any(len(r["trace id"]) > SHORT_ID for r in rows):
        ids = {r["trace id"] for r in rows}
        digits = next(n for n in range(SHORT_ID, 33) if len({i[:n] for i in ids}) == len(ids))
        for r in rows:
            r["trace id"] = r["trace id"][:digits]
        notes.append(f"trace id: its first {digits} digits, which `inv traces --id` takes")
    if too_wide():
        for r in rows:
            r["time"] = r["time"][:8]
    if too_wide() and any(r["errors"] or r["partial"] for r in rows):
        short_words = True
        if any(r["errors"] for r in rows):
            notes.append("N ERR: errors in N of its spans")
        if any(r["partial"] for r in rows):
            notes.append("PART: partial, a span never arrived")
    widths = natural()
    cut = [headers.index(h) for h in ("service", "op", "url") if h in headers]
    room = console.width - sum(w for i, w in enumerate(widths) if i not in cut) - GAP * (len(headers) - 1)
    for i, w in zip(cut, _fit([widths[i] for i in cut], room, last_first=True)):
        widths[i] = w
    table = _table()
    for i, (col, w) in enumerate(zip(headers, widths)):
        if i in cut:
            table.add_column(col, no_wrap=True, overflow="ellipsis", max_width=w)
        else:
            table.add_column(col, justify="right" if col in ("spans", "ms") else "left", no_wrap=True, min_width=w)
    for row in rows:
        *first, last = cells(row)
        table.add_row(*first, Text(last, style="bold red" if row["error"] else "green"),
                      style="red" if row["error"] else None)
    console.print(table)
    _print_legend(notes + legend(root_of(spans) for spans in traces), console)


# -- breakdown --------------------------------------------------------------------------


@dataclass
class BreakdownRow:
    key: tuple
    count: int
    errors: int
    p50: float
    p95: float
    p99: float


def group_value(span: dict, name: str):
    """What a breakdown groups by: the field, except http.url, whose path is enough to tell
    the routes apart and fits a terminal."""
    if name == "http.url":
        return url_path(span) or None
    return field_value(span, name)


def group_header(name: str) -> str:
    """A breakdown column is headed by the field asked for (http.url shows its path)."""
    return name


def missing_fields(spans: Iterable[dict], fields: Sequence[str]) -> list[str]:
    """The fields no span has a value for."""
    spans = list(spans)
    return [f for f in fields if all(field_value(s, f) in (None, "") for s in spans)]


def available_fields(spans: Iterable[dict]) -> list[str]:
    """Span fields, then the tags these spans carry, for telling a user what --breakdown takes."""
    tags = sorted({k for s in spans for k in tags_of(s)})
    return [*SUGGESTED_FIELDS, *tags]


def breakdown(spans: Iterable[dict], fields: Sequence[str]) -> list[BreakdownRow]:
    """Group spans by `fields` (span fields or tags): count, errors, p50/p95/p99 of durationMs.

    Rows come slowest p99 first: the spans that wrap a whole request (the /echo ones), then
    the slow stage that makes them slow, then the rest; as in the seed's "BREAK DOWN by
    serviceName and http.url".
    """
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for s in spans:
        groups[tuple(group_value(s, f) for f in fields)].append(s)
    rows = []
    for key, members in groups.items():
        durations = [duration_ms(s) for s in members]
        rows.append(
            BreakdownRow(
                key=key,
                count=len(members),
                errors=sum(is_error(s) for s in members),
                p50=nearest_rank(durations, 50),
                p95=nearest_rank(durations, 95),
                p99=nearest_rank(durations, 99),
            )
        )
    rows.sort(key=lambda r: (-r.p99, tuple("" if v is None else str(v) for v in r.key)))
    return rows


def render_breakdown(rows: Sequence[BreakdownRow], fields: Sequence[str], console: Console) -> None:
    """A table that fits the console: labels are cut (with …) before numbers ever are."""
    numbers = ("count", "errors", "p50 ms", "p95 ms", "p99 ms")
    cells = [
        [str(r.count), f"ERRORS {r.errors}" if r.errors else "0", f"{r.p50:.1f}", f"{r.p95:.1f}", f"{r.p99:.1f}"]
        for r in rows
    ]
    labels = [["(none)" if v is None else str(v) for v in r.key] for r in rows]
    number_widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(numbers)]
    label_widths = [max([len(group_header(f))] + [len(row[i]) for row in labels]) for i, f in enumerate(fields)]
    room = console.width - sum(number_widths) - GAP * (len(fields) + len(numbers) - 1)
    label_widths = _fit(label_widths, room)

    table = _table()
    for f, w in zip(fields, label_widths):
        table.add_column(group_header(f), no_wrap=True, overflow="ellipsis", max_width=w)
    for col, w in zip(numbers, number_widths):
        table.add_column(col, justify="right", no_wrap=True, min_width=w)
    for r, label, cell in zip(rows, labels, cells):
        table.add_row(
            *label,
            *cell[:1],
            Text(cell[1], style="bold red" if r.errors else "green"),
            *cell[2:],
            style="red" if r.errors else None,
        )
    console.print(table)


# -- heatmap ----------------------------------------------------------------------------


@dataclass
class Heatmap:
    rows: list[list[int]]  # rows[0] is the slowest band
    edges_ms: list[float]  # len(rows) + 1 duration edges, ascending
    t0: int  # µs
    t1: int  # µs
    peak: int


def heatmap(spans: Iterable[dict], columns: int = 60, bands: int = 12) -> Heatmap | None:
    """Count spans per (start time column, log-spaced durationMs band), the seed's HEATMAP."""
    points = [(s["timestamp"], max(duration_ms(s), 0.001)) for s in spans if s.get("timestamp")]
    if not points:
        return None
    t0 = min(t for t, _ in points)
    t1 = max(t for t, _ in points)
    low = min(d for _, d in points)
    high = max(d for _, d in points)
    scale = LogBins(low, high, bands)
    grid = [[0] * columns for _ in range(bands)]
    for t, d in points:
        col = min(columns - 1, int((t - t0) * columns / (t1 - t0))) if t1 > t0 else 0
        grid[bands - 1 - scale.slot(d)][col] += 1
    return Heatmap(grid, scale.edges, t0, t1, max(max(r) for r in grid))


def recent_spans(spans: Iterable[dict], seconds: float) -> list[dict]:
    """The spans that started in the `seconds` up to the newest one: a heatmap of a recent load
    is not squeezed into two columns by a trace from hours before."""
    spans = [s for s in spans if s.get("timestamp")]
    newest = max((s["timestamp"] for s in spans), default=0)
    return [s for s in spans if s["timestamp"] >= newest - seconds * 1e6]


HEATMAP_LABEL = 15  # "    1234.5 ms │" before each row


def heatmap_columns(console: Console) -> int:
    """As many time columns as the console has room for beside the labels (60 at 80 columns)."""
    return max(20, min(160, console.width - HEATMAP_LABEL - 5))


def shade(count: int, peak: int) -> str:
    if not count:
        return " "
    return SHADES[min(len(SHADES) - 1, int(len(SHADES) * count / (peak + 1)))]


def render_heatmap(hm: Heatmap | None, console: Console) -> None:
    if hm is None:
        console.print("(no spans to plot)")
        return
    bands = len(hm.rows)
    for i, row in enumerate(hm.rows):
        high = hm.edges_ms[bands - i]
        line = Text(f"{high:>10.1f} ms │")
        line.append("".join(shade(c, hm.peak) for c in row), style="magenta")
        console.print(line)
    columns = len(hm.rows[0])
    console.print(Text(f"{hm.edges_ms[0]:>10.1f} ms └" + "─" * columns))
    left, right = _clock(hm.t0), _clock(hm.t1)
    console.print(" " * 15 + left + " " * max(1, columns - len(left) - len(right)) + right)
    console.print(
        f"durationMs by start time · {sum(map(sum, hm.rows))} spans · shades "
        + " ".join(f"{ch}" for ch in SHADES)
        + f" = fewest … {hm.peak} per cell"
    )
