"""Command line of the trace proxy (flags follow honeycomb-opentracing-proxy where it had them)."""
from __future__ import annotations

import argparse
import tempfile
import sys
from dataclasses import replace
from pathlib import Path

from trace_proxy.settings import DEFAULT_API_HOST, DEFAULT_DATASET, OTLP_HTTP_PORT, Settings, SettingsError

DESCRIPTION = """\
Zipkin-compatible trace proxy: accepts Zipkin spans (v2 JSON or protobuf, v1 JSON or Thrift) on /api/v2/spans and /api/v1/spans
and OTLP/HTTP spans (protobuf or JSON) on /v1/traces, keeps them in a
bounded local store served by Zipkin's query API (services, spans, remoteServices, traces,
trace/ID, traceMany, dependencies, autocompleteKeys/Values under /api/v2) and a web UI at
/, and forwards them to Honeycomb when a write key is configured. Also serves /healthz,
/metrics (Prometheus text) and /metrics.json (the same counts as JSON).
"""

EPILOG = """\
The Honeycomb write key is read from the environment (HONEYCOMB_API_KEY, or the older
HONEYCOMB_WRITEKEY) or from --writekey-file, never from the command line, so it cannot
show in process listings. Without a key spans stay local.
Environment: HONEYCOMB_DATASET (default %s),
HONEYCOMB_API_HOST (default %s; https://api.eu1.honeycomb.io/ for the EU),
AUTOCOMPLETE_KEYS (tag keys for /api/v2/autocompleteValues, comma separated).
""" % (DEFAULT_DATASET, DEFAULT_API_HOST)


class _RefuseWritekey(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(f"{option_string} is not accepted (a key in argv shows in process listings); "
                     "set HONEYCOMB_API_KEY or use --writekey-file PATH")


def _port(text: str) -> tuple[str | None, int]:
    """`9411`, `:9411` (the upstream proxy's form) or `HOST:9411`."""
    host, sep, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}") from None
    if not 0 < number < 65536:
        raise argparse.ArgumentTypeError(f"port {number} out of range 1-65535")
    return (host or None) if sep else None, number


def _port_or_zero(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}") from None
    if not 0 <= number < 65536:
        raise argparse.ArgumentTypeError(f"port {number} out of range 0-65535")
    return number


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"{value:g} must be between 0 and 3600 seconds")
    return value


def build_parser() -> argparse.ArgumentParser:
    defaults = Settings()
    p = argparse.ArgumentParser(prog="trace-proxy", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", help=f"address to listen on (default {defaults.host})")
    p.add_argument("-p", "--port", type=_port, metavar="PORT",
                   help=f"port to listen on; also accepts :PORT or HOST:PORT (default {defaults.port})")
    p.add_argument("--otlp-port", type=_port_or_zero, metavar="PORT",
                   help=f"a second port serving the same endpoints, for OTLP/HTTP clients' default "
                        f"(default {OTLP_HTTP_PORT}; 0: none, OTLP still arrives on --port)")
    p.add_argument("-d", "--dataset", help="Honeycomb dataset (default: $HONEYCOMB_DATASET or %s)" % DEFAULT_DATASET)
    p.add_argument("--api-host", "--api_host", dest="api_host",
                   help="Honeycomb API URL (default: $HONEYCOMB_API_HOST or %s)" % DEFAULT_API_HOST)
    p.add_argument("--writekey-file", metavar="PATH", help="read the Honeycomb write key from this file")
    p.add_argument("-k", "--writekey", action=_RefuseWritekey, nargs="?", metavar="KEY",
                   help="refused: pass the key in HONEYCOMB_API_KEY or --writekey-file instead")
    p.add_argument("--sample-rate", "--samplerate", dest="sample_rate", type=_positive, metavar="N",
                   help="forward 1 in N traces to Honeycomb, deciding from the trace id so whole "
                        "traces are kept (default 1: all)")
    p.add_argument("--drop-field", "--drop_field", dest="drop_fields", action="append", metavar="NAME",
                   help="do not send the span tag NAME to Honeycomb; repeat for more")
    p.add_argument("--debug", action="store_true", help="also print each span as a JSON line on stdout")
    p.add_argument("--downstream", metavar="URL",
                   help="mirror every request body unchanged to this Zipkin-compatible collector "
                        "(e.g. http://zipkin:9411), at the same /api/vN/spans path")
    p.add_argument("--max-body-bytes", type=_positive, metavar="N",
                   help=f"largest accepted request body, before and after gzip (default {defaults.max_body_bytes})")
    p.add_argument("--max-spans", type=_positive, metavar="N",
                   help=f"spans kept in the local store; the least recently active traces go first (default {defaults.max_spans})")
    p.add_argument("--max-store-bytes", type=_positive, metavar="N",
                   help=f"bytes of span JSON kept in the local store; the least recently active traces go first "
                        f"(default {defaults.max_store_bytes})")
    p.add_argument("--store-file", metavar="PATH",
                   help="keep the local store's spans in this SQLite file too, so traces outlive restarts "
                        f"(default {defaults.store_file}: in memory only)")
    p.add_argument("--honeycomb-backlog", type=_positive, metavar="N",
                   help="events waiting to be sent to Honeycomb before new ones are dropped and "
                        f"counted (default {defaults.honeycomb_backlog})")
    p.add_argument("--spool-dir", metavar="DIR",
                   help="keep the batches waiting for Honeycomb in this directory, so an outage, restart or crash "
                        "loses none; they are sent on the next start (default: in memory, kept across outages only)")
    p.add_argument("--spool-bytes", type=_positive, metavar="N",
                   help=f"bytes of compressed batches the spool holds before new spans are dropped and counted "
                        f"(default {defaults.spool_bytes})")
    p.add_argument("--downstream-queue", type=_positive, metavar="N",
                   help=f"request bodies waiting for --downstream before new ones are dropped (default {defaults.downstream_queue})")
    p.add_argument("--settle", dest="settle_seconds", type=_seconds, metavar="SECONDS",
                   help="a trace with its root and every parent is listed as whole once no span has arrived "
                        f"for it for this long (default {defaults.settle_seconds:g})")
    p.add_argument("--answered-settle", dest="answered_settle_seconds", type=_seconds, metavar="SECONDS",
                   help="a whole trace whose every client span also has the span of its answer below it is listed "
                        "once no span has arrived for it for this long, if shorter than --settle (default: --settle)")
    p.add_argument("--shutdown-seconds", type=_seconds, metavar="SECONDS",
                   help="on SIGTERM, how long to go on delivering spans that wait for Honeycomb before "
                        f"spooling or counting the rest (default {defaults.shutdown_seconds:g})")
    p.add_argument("--cors-origin", dest="cors_origins", action="append", metavar="ORIGIN",
                   help="let pages of this web origin (e.g. https://ui.example) post spans and read the API; "
                        "repeat for more (default: none, browsers' cross-site requests are refused)")
    p.add_argument("--log-dir", metavar="DIR",
                   help="a folder of the mesh's log files (NAME.log): the web UI shows each span's request's lines")
    p.add_argument("--threads", type=_positive, metavar="N",
                   help=f"threads answering the query API and the web UI (span ingest runs on the event loop; default {defaults.threads})")
    return p


def settings_from_args(argv: list[str] | None = None) -> Settings:
    parser = build_parser()
    args = parser.parse_args(argv)
    host, port = args.port if args.port else (None, None)
    settings = Settings.from_env(
        host=args.host or host, port=port, otlp_port=args.otlp_port, dataset=args.dataset, api_host=args.api_host,
        sample_rate=args.sample_rate, debug=args.debug or None, downstream=args.downstream,
        max_body_bytes=args.max_body_bytes, max_spans=args.max_spans, threads=args.threads,
        max_store_bytes=args.max_store_bytes, store_file=args.store_file,
        honeycomb_backlog=args.honeycomb_backlog, downstream_queue=args.downstream_queue,
        settle_seconds=args.settle_seconds, answered_settle_seconds=args.answered_settle_seconds,
        shutdown_seconds=args.shutdown_seconds,
        spool_dir=args.spool_dir, spool_bytes=args.spool_bytes, log_dir=args.log_dir,
    )
    if args.drop_fields:
        settings = replace(settings, drop_fields=tuple(args.drop_fields))
    if args.cors_origins:
        settings = replace(settings, cors_origins=tuple(o.rstrip("/") for o in args.cors_origins))
    try:
        settings = settings.with_key_file(args.writekey_file)
    except SettingsError as exc:
        parser.error(str(exc))
    if settings.spool_dir:  # a spool it could not write would lose, at the first outage, what it promised to keep
        try:
            spool = Path(settings.spool_dir)
            spool.mkdir(parents=True, exist_ok=True)
            tempfile.TemporaryFile(dir=spool).close()
        except OSError as exc:
            parser.error(f"--spool-dir {settings.spool_dir}: {exc.strerror or exc}")
    if settings.store_file != ":memory:":
        from trace_proxy.store.span_file import SpanFile, SpanFileError

        try:  # a path that cannot be a store is said here, once, not as a worker's traceback
            SpanFile(settings.store_file).close()
        except SpanFileError as exc:
            parser.error(str(exc))
    return settings


def main(argv: list[str] | None = None) -> None:
    settings = settings_from_args(argv)
    from trace_proxy.server import serve

    serve(settings)
    sys.exit(0)
