"""The waterfall's span rows as HTML, written in Python rather than in trace.html's Jinja.

A 1,000-span trace is 1,000 rows of a dozen values each, and Jinja's attribute lookups,
filters and autoescape per value were most of the page's server time: written here, one
f-string per row, the page took 107 ms instead of 193 (CPU 38 instead of 62 ms; median of 7,
in-process, on the loaded 2-core machine of bench/trace_page.py). The markup is the one the
template wrote; every value from a span still goes through `visible`, `clip` and escape.
"""
from __future__ import annotations

from typing import Iterable, Iterator, Sequence

from markupsafe import Markup, escape

from trace_proxy.web.model import SpanRow
from trace_proxy.web.text import clip, visible

SLOWEST_BADGE = ' <span class="badge slowest">slowest</span>'
ERROR_BADGE = ' <span class="badge error">error</span>'
# Rows come in groups the browser may skip while off screen (content-visibility in ui.css):
# measured with a 1,000-span trace, groups of 50 rendered in ~300 ms where one skippable box
# per row took ~470 ms, and groups of 25 or 100 were no better (bench/trace_page.py's load).
GROUP_ROWS = 50


def shown(value, limit: int) -> str:
    """A span's value as the template showed it: control characters visible, clipped, escaped."""
    return escape(clip(visible(value), limit))


def row_html(row: SpanRow, link: str, matched: bool, selected: bool) -> str:
    """One row; `link` is the span link's start (the span id and its anchor follow)."""
    ident = escape(row.span.get("id") or "")
    classes = (" error" if row.error else "") + (" slowest" if row.slowest else "") + \
        (" match" if matched else "") + (" selected" if selected else "")
    critical = ' data-critical-path="true"' if row.critical else ""
    target = f"{link}{ident}#span-{ident}" if link else f"#span-{ident}"
    badges = (SLOWEST_BADGE if row.slowest else "") + (ERROR_BADGE if row.error else "")
    path = "".join(f'<i class="cp {place}"></i>' for place in row.critical_classes)
    return (f'<div class="span row{classes}" role="row" id="span-{ident}" data-span-id="{ident}" '
            f'data-depth="{row.depth}" data-children="{row.children}"{critical} data-find="{escape(visible(row.find_text))}">'
            f'<span class="service depth-{min(row.depth, 8)}" role="cell">{shown(row.service, 60)}</span>'
            f'<span class="operation" role="cell"><a href="{target}">{shown(row.operation, 120)}</a>{badges}</span>'
            f'<span class="num" role="cell">{shown(row.status, 12)}</span>'
            f'<span class="num start" role="cell">+{row.start}</span><span class="num" role="cell">{row.duration}</span>'
            f'<span class="bar" role="cell"><span class="lane"><i class="b {row.bar_classes}"></i>{path}</span></span></div>')


ROWS_HERE = Markup("<!-- the rows -->")  # where trace.html's page is cut to stream the rows in


def around_rows(page: str, groups: Iterable[str]) -> Iterator[str]:
    """The page rendered with ROWS_HERE, sent in parts: what comes before the rows, each group
    of rows as it is written, the rest. Nothing here needs Flask's request any more, so the
    parts can be written after the view returned (a span's values are escaped: no "<" of
    theirs can look like the mark)."""
    head, tail = page.split(ROWS_HERE, 1)
    yield head
    yield from groups
    yield tail


def row_groups(rows: Sequence[SpanRow], *, span_link: str, matched: set, selected: SpanRow | None) -> Iterator[Markup]:
    """The rows in groups of GROUP_ROWS, each written when asked for: the trace page streams
    them (the browser parses the first groups while the server writes the rest). The browser
    lays out and paints only the groups on screen (ui.css). `span_link`: what a row's link
    starts with (the trace's address and "?span="; "" for an uploaded trace, whose rows link
    to their anchor only)."""
    link = escape(span_link)
    for start in range(0, len(rows), GROUP_ROWS):
        lines = "\n".join(row_html(row, link, row.span.get("id") in matched, row is selected)
                          for row in rows[start:start + GROUP_ROWS])
        yield Markup(f'<div class="rows" role="rowgroup">\n{lines}\n</div>\n')
