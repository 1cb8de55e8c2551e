"""What Envoy's Zipkin encoding costs: HTTP_JSON (the manifests') against HTTP_PROTO.

    python bench/zipkin_encoding.py [--requests N]

Runs the local mesh once per encoding (one replica each, no slow stage), sends the same
closed load of /echo requests (12 spans each), and reports, per request: the CPU time all
Envoys spent (they build, encode and post the spans) and the trace proxy's (it decodes
and stores them), measured from /proc before and after. Spans stay local (no Honeycomb key).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from meshtools.local.mesh import LocalMesh  # noqa: E402
from meshtools.shared.net import free_layout  # noqa: E402
from meshtools.views.load import LoadConfig, run_load  # noqa: E402
from trace_proxy.settings import KEY_VARIABLES  # noqa: E402

NO_SLOW = {"SLOW_STAGE_MIN_SECONDS": "0", "SLOW_STAGE_JITTER_SECONDS": "0"}


def envoy_pids(config_dir: Path) -> list[int]:
    """This mesh's Envoys: their command lines name a config in its directory."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv[0].endswith(b"envoy") and any(str(config_dir).encode() in a for a in argv):
                pids.append(int(entry.name))
    return pids


def cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proxy_pids(port: int) -> list[int]:
    """The trace proxy's gunicorn master (found by its command line) and its worker (its child:
    gunicorn may retitle the worker, so it is not looked up by command line)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                text = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "-m trace_proxy" in text and f"--port {port} " in text + " ":
                master = int(entry.name)
                children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
                return [master, *map(int, children)]
    return []


def measure(encoding: str, requests_n: int, tmp: Path) -> dict[str, float]:
    mesh = LocalMesh(layout=free_layout(replicas=1), state_dir=tmp / encoding, service_env=NO_SLOW,
                     zipkin_encoding=encoding)
    try:
        mesh.up(timeout=120)
        run_load(LoadConfig(url=mesh.layout.front_url, concurrency=4, requests=50, duration=None, timeout=30.0))
        time.sleep(1.5)  # let the warm-up's spans flush before the CPU count starts
        # Looked up after the warm-up: the proxy's gunicorn forks its worker a little after it listens.
        envoys = envoy_pids(mesh.envoy_dir)
        proxies = proxy_pids(mesh.layout.trace_proxy_port)
        before = {pid: cpu(pid) for pid in envoys + proxies}
        summary = run_load(LoadConfig(url=mesh.layout.front_url, concurrency=4, requests=requests_n, duration=None,
                                      timeout=30.0))
        time.sleep(1.5)  # every span of the run flushed (flush interval 0.2 s) and ingested
        spent = {pid: cpu(pid) - t for pid, t in before.items()}
        done = max(summary.completed - summary.error_count, 1)
        return {"envoy_ms": sum(spent[p] for p in envoys) / done * 1000,
                "proxy_ms": sum(spent[p] for p in proxies) / done * 1000, "requests": done}
    finally:
        mesh.down()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests per encoding")
    args = parser.parse_args(argv)
    for key in KEY_VARIABLES:
        os.environ.pop(key, None)
    print(f"load avg {os.getloadavg()[0]:.1f} at start, {os.cpu_count()} cores", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="envoy-tracing-encoding-"))
    results = {}
    for encoding in ("HTTP_JSON", "HTTP_PROTO", "HTTP_JSON", "HTTP_PROTO"):  # interleaved: drift hits both
        figures = measure(encoding, args.requests, tmp)
        results.setdefault(encoding, []).append(figures)
        print(f"{encoding:<11} all Envoys {figures['envoy_ms']:.2f} ms CPU per request · trace proxy "
              f"{figures['proxy_ms']:.2f} ms CPU per request ({figures['requests']} requests, 12 spans each)", flush=True)
    best = {enc: {k: min(f[k] for f in runs) for k in ("envoy_ms", "proxy_ms")} for enc, runs in results.items()}
    j, p = best["HTTP_JSON"], best["HTTP_PROTO"]
    print(f"PROTO / JSON (best of 2): Envoys {p['envoy_ms'] / j['envoy_ms']:.2f}× · trace proxy "
          f"{p['proxy_ms'] / j['proxy_ms']:.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
