"""The web UI: search, trace, heatmap and dependency pages, rendered on the server.

Every page works without script: links, forms and <details> do the clicking. Small ES
modules from static/ (one per feature, no build step) add what needs a script: zoom,
collapsing, the span panel without a reload, keys. Nothing comes from elsewhere (the
Content-Security-Policy allows this server only), so the pages work offline.
Every value from a span goes through Jinja's autoescaping, after `visible` (control
characters shown as \\xNN) and `clip` (huge values cut, saying by how much).
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from flask import Blueprint, Response, redirect, render_template, request, url_for

from trace_proxy.ingest.zipkin_json import SpanError, normalize_trace_id
from trace_proxy.store import wholeness
from trace_proxy.store.query import DEFAULT_LOOKBACK_MS, TraceQuery
from trace_proxy.store.span_store import DONE, SpanStore
from trace_proxy.web import analysis, export, model, upload
from trace_proxy.web.text import clip, visible
from trace_proxy.web.waterfall_html import ROWS_HERE, around_rows, row_groups
from trace_proxy.web import logs as web_logs
from trace_proxy.web import bubbleup as bubble
from trace_proxy.web.replies import text

LOOKBACKS_MS = {60_000: "1 minute", 300_000: "5 minutes", 900_000: "15 minutes", 3_600_000: "1 hour",
                21_600_000: "6 hours", DEFAULT_LOOKBACK_MS: "1 day"}
DEFAULT_ROWS = 20
MAX_ROWS = 1000
HEATMAP_TRACES = 5000
ALL_STATES = frozenset({wholeness.WHOLE, wholeness.ARRIVING, wholeness.PARTIAL})
# Nothing from anywhere but this server; no inline scripts or styles, no framing.
CSP = ("default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")


ASSET_MAX_AGE_S = 365 * 24 * 3600


def asset_versions(folder: Path) -> dict[str, str]:
    """Each static file's short content hash, by name."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:10] for p in folder.iterdir() if p.is_file()}


class FormError(ValueError):
    """A search field with a bad value; shown above the form."""


def ms_text(value: float) -> str:
    """Milliseconds to the microsecond, without trailing zeros: 1048.576, 0.5, 3."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


def human_span(ms: int) -> str:
    if ms in LOOKBACKS_MS:
        return LOOKBACKS_MS[ms]
    for unit, size in (("h", 3_600_000), ("min", 60_000), ("s", 1000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size} {unit}"
    return f"{ms / 1000:g} s"


def _number(args, name: str, *, integer: bool = False, minimum: float = 0):
    raw = (args.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        raise FormError(f"{name} must be a number, not {clip(raw, 40)!r}") from None
    if value != value or value < minimum or value > 1e15:
        raise FormError(f"{name} must be at least {minimum:g}")
    return value


def search_form(args) -> dict:
    """The search fields, checked; durations in ms as a user types them, times in epoch ms."""
    form = {
        "service": (args.get("service") or "").strip().lower(),
        "operation": (args.get("operation") or "").strip().lower(),
        "min_ms": _number(args, "min_ms"),
        "max_ms": _number(args, "max_ms"),
        "errors": args.get("errors") in ("1", "on", "true"),
        "arriving": args.get("arriving") in ("1", "on", "true"),
        "lookback": _number(args, "lookback", integer=True, minimum=1) or DEFAULT_LOOKBACK_MS,
        "end": _number(args, "end", integer=True, minimum=1),
        "limit": min(_number(args, "limit", integer=True, minimum=1) or DEFAULT_ROWS, MAX_ROWS),
        "sort": args.get("sort") if args.get("sort") in model.SORTS else "newest",
    }
    if form["max_ms"] is not None and form["min_ms"] is not None and form["max_ms"] < form["min_ms"]:
        raise FormError("max duration must be at least the min duration")
    return form


def query_of(form: dict) -> TraceQuery:
    min_us = round(form["min_ms"] * 1000) if form["min_ms"] is not None else None
    max_us = round(form["max_ms"] * 1000) if form["max_ms"] is not None else None
    return TraceQuery(
        service_name=form["service"] or None, span_name=form["operation"] or None,
        annotations={"error": ""} if form["errors"] else {},
        min_duration=max(1, min_us or 0) if (min_us or max_us) else None, max_duration=max_us,
        end_ts=form["end"] or int(time.time() * 1000), lookback=form["lookback"], limit=form["limit"],
    )


def empty_reason(store: SpanStore, form: dict) -> str:
    """What the filter found, e.g. "no traces in the last 1 s (44 stored)"."""
    services = store.services()
    if form["service"] and form["service"] not in services:
        return f"no service {form['service']!r}; services: {', '.join(services) or 'none yet'}"
    if form["operation"]:
        names = store.span_names(form["service"]) if form["service"] else sorted(
            {n for s in services for n in store.span_names(s)})
        if form["operation"] not in names:
            where = f" in {form['service']!r}" if form["service"] else ""
            return f"no operation {form['operation']!r}{where}; operations: {', '.join(names) or 'none yet'}"
    census = store.census()
    if not census["traces"]:
        return "no traces stored yet: send a request through the front (inv echo --name friend)"
    stored = f"{census['whole'] + census['partial']} stored"
    if census["partial"]:
        stored += f", {census['partial']} of them partial"
    if census["arriving"]:
        stored += f"; {census['arriving']} arriving"
    filters = [f"service {form['service']}"] if form["service"] else []
    filters += [f"operation {form['operation']}"] if form["operation"] else []
    if form["min_ms"] is not None or form["max_ms"] is not None:
        filters.append(f"a span of {form['min_ms'] or 0:g}–{form['max_ms']:g} ms" if form["max_ms"] is not None
                       else f"a span of at least {form['min_ms']:g} ms")
    filters += ["errors"] if form["errors"] else []
    window = f"in the last {human_span(form['lookback'])}" if not form["end"] else \
        f"in the {human_span(form['lookback'])} up to {model.clock(form['end'] * 1000)}"
    return f"no traces {window}{' with ' + ', '.join(filters) if filters else ''} ({stored})"


def find_trace(store: SpanStore, ident: str) -> tuple[list[dict], str] | None:
    """By trace id, else the newest trace whose spans carry x-request-id `ident`."""
    try:
        tid = normalize_trace_id(ident)
    except SpanError:
        tid = None
    if tid and (spans := store.trace(tid)):
        return spans, store.state(tid) or wholeness.ARRIVING
    query = TraceQuery(annotations={model.REQUEST_ID_TAG: ident}, end_ts=int(time.time() * 1000) + 60_000,
                       lookback=10 * 365 * DEFAULT_LOOKBACK_MS, limit=1)
    found = store.search(query, ALL_STATES)
    return found[0] if found else None


def pages_blueprint(store: SpanStore, log_dir: str = "") -> Blueprint:
    """`log_dir`: the local mesh's log folder, for the span panel's log lines ("" on the cluster)."""
    pages = Blueprint("pages", __name__, template_folder="templates", static_folder="static",
                      static_url_path="/ui/static")
    pages.add_app_template_filter(visible, "visible")
    pages.add_app_template_filter(clip, "clip")
    pages.add_app_template_filter(ms_text, "ms_text")
    versions = asset_versions(Path(pages.static_folder))
    # Asset URLs carry their content's hash, so browsers may keep them for good: a page
    # load asks for the page alone, not for each stylesheet and module again.
    pages.get_send_file_max_age = lambda filename: ASSET_MAX_AGE_S if request.args.get("v") else None

    bars = model.bars_css()
    bars_version = hashlib.sha256(bars.encode()).hexdigest()[:10]

    @pages.app_template_global()
    def asset(filename: str) -> str:
        if filename == "bars.css":
            return url_for("pages.bars_stylesheet", v=bars_version)
        return url_for("pages.static", filename=filename, v=versions.get(filename, ""))

    @pages.get("/ui/bars.css")
    def bars_stylesheet():
        """The waterfall's bar places (generated once: 2,000 one-line rules, kept by browsers)."""
        reply = Response(bars, mimetype="text/css")
        reply.headers["Cache-Control"] = f"public, max-age={ASSET_MAX_AGE_S}"
        return reply

    @pages.after_request
    def secure(reply: Response) -> Response:
        reply.headers["Content-Security-Policy"] = CSP
        reply.headers["X-Content-Type-Options"] = "nosniff"
        reply.headers["Referrer-Policy"] = "no-referrer"
        return reply

    def page(template: str, status: int = 200, **values):
        return render_template(template, lookbacks=LOOKBACKS_MS, human_span=human_span, clock=model.clock, sorts=model.SORTS,
                               **values), status

    @pages.get("/")
    def search():
        if (ident := (request.args.get("id") or "").strip()):  # the header's jump box
            return redirect(url_for("pages.trace", ident=ident))
        services = store.services()
        try:
            form = search_form(request.args)
        except FormError as exc:
            return page("search.html", 400, form=search_form({}), services=services, operations=[],
                        rows=[], settle=store.settle_seconds, answered_settle=store.answered_settle_seconds,
                        problem=str(exc))
        states = ALL_STATES if form["arriving"] else DONE
        rows = model.trace_rows(store.search(query_of(form), states))
        rows.sort(key=model.SORTS[form["sort"]])
        operations = store.span_names(form["service"]) if form["service"] else []
        # "Show more" repeats the query; url_for takes keys starting with "_" as its own options.
        more_args = {k: v for k, v in request.args.items() if not k.startswith("_")}
        return page("search.html", form=form, services=services, operations=operations, rows=rows,
                    settle=store.settle_seconds, answered_settle=store.answered_settle_seconds,
                    problem="" if rows else empty_reason(store, form), more_args=more_args)

    def missing(ident: str):
        census = store.census()
        return page("missing.html", 404, ident=ident, stored=f"{census['traces']} traces stored ({census['whole']} whole)")

    def trace_view(ident: str) -> dict | None:
        """What the trace page and its span panel show, the selected span from ?span=."""
        found = find_trace(store, ident.strip())
        if found is None:
            return None
        spans, state = found
        rows = model.waterfall(spans)
        wanted = (request.args.get("span") or "").strip().lower()
        selected = next((r for r in rows if r.span.get("id") == wanted), None)
        values = dict(summary=model.summary(spans), rows=rows, state=state, selected=selected)
        if wanted and selected is None:
            values["problem"] = f"no span {wanted!r} in this trace; showing the whole trace"
        return values

    @pages.get("/trace/<path:ident>")
    def trace(ident: str):
        if ident.endswith("/stats"):  # the path converter takes slashes: route by hand
            return trace_stats(ident[: -len("/stats")])
        if ident.endswith("/panel"):
            return trace_panel(ident[: -len("/panel")])
        if ident.endswith("/download"):
            return download(ident[: -len("/download")])
        view = trace_view(ident)
        if view is None:
            return missing(ident)
        return trace_page(view, logs=span_logs(view))

    def trace_page(view: dict, status: int = 200, **extra):
        find = (request.args.get("find") or "").strip()[:200]
        matched = {r.span.get("id") for r in view["rows"] if r.matches(find)} if find else set()
        span_link = "" if extra.get("uploaded") else url_for("pages.trace", ident=view["summary"].trace_id) + "?span="
        groups = row_groups(view["rows"], span_link=span_link, matched=matched, selected=view["selected"])
        html, status = page("trace.html", status, **view, settle=store.settle_seconds, find=find, matches=len(matched),
                            rows_here=ROWS_HERE, ruler=model.ruler(view["summary"].duration_us),
                            max_depth=max(r.depth for r in view["rows"]) + 1, **extra)
        # Streamed: the browser parses the first rows while the server writes the rest.
        return Response(around_rows(html, groups), status, mimetype="text/html")

    @pages.route("/upload", methods=["GET", "POST"])
    def upload_file():
        """View a Zipkin v2 or OTLP JSON file without storing it, or store it when asked."""
        if request.method == "GET":
            return page("upload.html")
        sent = request.files.get("file")
        if sent is None or not sent.filename:
            return page("upload.html", 400, problem="choose a file: Zipkin v2 JSON or OTLP JSON")
        try:
            spans = upload.read_spans(sent.stream.read(upload.LIMIT_BYTES + 1))
        except upload.UploadError as exc:
            return page("upload.html", 400, problem=f"{clip(sent.filename, 80)}: {exc}")
        traces = upload.traces_of(spans)
        if request.form.get("store") in ("1", "on"):
            store.add(spans)
            if len(traces) == 1:
                return redirect(url_for("pages.trace", ident=traces[0][0]["traceId"]))
            return page("upload.html", stored=len(spans), rows=model.trace_rows([(t, "uploaded") for t in traces]))
        wanted = (request.form.get("trace") or "").strip().lower()
        chosen = next((t for t in traces if t[0]["traceId"] == wanted), None) if wanted else None
        if chosen is None and len(traces) > 1:
            if wanted:
                return page("upload.html", 400, problem=f"no trace {clip(wanted, 40)!r} in {clip(sent.filename, 80)}",
                            rows=model.trace_rows([(t, "uploaded") for t in traces]), filename=sent.filename)
            return page("upload.html", rows=model.trace_rows([(t, "uploaded") for t in traces]), filename=sent.filename)
        chosen = chosen or traces[0]
        rows = model.waterfall(chosen)
        view = dict(summary=model.summary(chosen), rows=rows, state="whole", selected=None)
        return trace_page(view, uploaded=sent.filename)

    def span_logs(view: dict) -> web_logs.RequestLogs | None:
        selected = view.get("selected")
        if not log_dir or selected is None:
            return None
        ids = {view["summary"].trace_id} | ({view["summary"].request_id} if view["summary"].request_id else set())
        return web_logs.request_logs(Path(log_dir), selected.service, ids)

    def trace_panel(ident: str):
        """The span panel alone, for the page's script to show without a reload."""
        view = trace_view(ident)
        if view is None or view["selected"] is None:
            return text(404, "no such trace or span")
        return render_template("_panel.html", **view, logs=span_logs(view))

    def trace_stats(ident: str):
        found = find_trace(store, ident.strip())
        if found is None:
            return missing(ident)
        spans, _ = found
        summary = model.summary(spans)
        rows = analysis.statistics(spans, model.self_times(spans), summary.duration_us)
        return page("stats.html", summary=summary, rows=rows)

    def download(ident: str):
        found = find_trace(store, ident.strip())
        if found is None:
            return text(404, f"no trace {ident!r}")
        spans, _ = found
        form = request.args.get("format", "zipkin")
        if form not in export.FORMATS:
            return text(400, f"format must be one of {', '.join(export.FORMATS)}, not {clip(form, 40)!r}")
        body = export.FORMATS[form](spans)
        reply = Response(json.dumps(body, indent=1), mimetype="application/json")
        reply.headers["Content-Disposition"] = f'attachment; filename="trace-{spans[0]["traceId"]}-{form}.json"'
        return reply

    pages.add_url_rule("/trace/<path:ident>/stats", "trace_stats", trace_stats)
    pages.add_url_rule("/trace/<path:ident>/download", "download", download)

    @pages.get("/compare")
    def compare_form():
        """The search list's "compare the two ticked" button: to /compare/A/B."""
        picked = [t.strip() for t in request.args.getlist("trace") if t.strip()]
        if len(picked) != 2:
            return page("base.html", 400, problem=f"tick exactly two traces to compare, not {len(picked)}")
        return redirect(url_for("pages.compare", a=picked[0], b=picked[1]))

    @pages.get("/compare/<a>/<b>")
    def compare(a: str, b: str):
        found = [find_trace(store, ident.strip()) for ident in (a, b)]
        for ident, hit in zip((a, b), found):
            if hit is None:
                return missing(ident)
        (spans_a, _), (spans_b, _) = found
        rows = analysis.compare(spans_a, spans_b, model.compare_label, model.self_times)
        return page("compare.html", a=model.summary(spans_a), b=model.summary(spans_b), rows=rows)

    @pages.get("/heatmap")
    def heatmap():
        try:
            lookback = _number(request.args, "lookback", integer=True, minimum=1) or DEFAULT_LOOKBACK_MS
        except FormError as exc:
            return page("heatmap.html", 400, grid=None, service="", lookback=DEFAULT_LOOKBACK_MS,
                        services=store.services(), problem=str(exc))
        service = (request.args.get("service") or "").strip().lower() or None
        query = TraceQuery(service_name=service, end_ts=int(time.time() * 1000), lookback=lookback,
                           limit=HEATMAP_TRACES)
        grid = model.heatmap(store.traces(query), service)
        problem = "" if grid else empty_reason(store, {**search_form({}), "service": service or "",
                                                        "lookback": lookback})
        return page("heatmap.html", grid=grid, service=service or "", lookback=lookback,
                    services=store.services(), problem=problem)

    @pages.get("/bubbleup")
    def bubbleup():
        """Which fields set a heatmap selection (trace start t0..t1 ms, span duration
        min_ms..max_ms) apart from the other spans of the heatmap's traces."""
        args = request.args
        service = (args.get("service") or "").strip().lower() or None
        try:
            lookback = _number(args, "lookback", integer=True, minimum=1) or DEFAULT_LOOKBACK_MS
            values = {name: _number(args, name, integer=name in ("t0", "t1")) for name in ("t0", "t1", "min_ms", "max_ms")}
            missing_names = [name for name, value in values.items() if value is None]
            if missing_names:
                raise FormError(f"BubbleUp needs a selection: {', '.join(missing_names)} missing "
                                "(drag across the heatmap's cells)")
            if values["t1"] <= values["t0"] or values["max_ms"] < values["min_ms"]:
                raise FormError("the selection is empty: t1 must be after t0, max_ms at least min_ms")
        except FormError as exc:
            return page("bubbleup.html", 400, problem=str(exc), ranks=[], selection=None, service=service or "")
        selection = bubble.Selection(values["t0"] * 1000, values["t1"] * 1000, round(values["min_ms"] * 1000),
                                     round(values["max_ms"] * 1000))
        query = TraceQuery(service_name=service, end_ts=int(time.time() * 1000), lookback=lookback, limit=HEATMAP_TRACES)
        ranks, inside, outside, trace_ids = bubble.bubbleup(store.traces(query), selection, service)
        traces_link = url_for("pages.search", service=service or "", min_ms=ms_text(values["min_ms"]),
                              max_ms=ms_text(values["max_ms"]), end=values["t1"], lookback=values["t1"] - values["t0"],
                              limit=100)
        problem = "" if inside else "no spans in this selection: pick cells with a count on the heatmap"
        return page("bubbleup.html", ranks=ranks, inside=inside, outside=outside, traces=len(trace_ids),
                    selection=selection, values=values, service=service or "", traces_link=traces_link,
                    problem=problem)

    @pages.get("/dependencies")
    def dependencies():
        try:
            lookback = _number(request.args, "lookback", integer=True, minimum=1) or DEFAULT_LOOKBACK_MS
        except FormError as exc:
            return page("dependencies.html", 400, nodes=[], edges=[], height=0, links=[], grouped=False,
                        lookback=DEFAULT_LOOKBACK_MS, problem=str(exc))
        links = store.dependencies(int(time.time() * 1000), lookback)
        grouped = request.args.get("group") in ("1", "on", "true")
        members: dict[str, list[str]] = {}
        if grouped:
            links, members = model.group_links(links, analysis.service_group)
        nodes, edges, height = model.graph_layout(links)
        for node in nodes:
            node.members = members.get(node.name, [])
        problem = "" if links else f"no calls between services in the last {human_span(lookback)}"
        return page("dependencies.html", nodes=nodes, edges=edges, height=height, links=links, grouped=grouped,
                    lookback=lookback, end_ms=int(time.time() * 1000), problem=problem)

    return pages
