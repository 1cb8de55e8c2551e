"""Traces outlive the proxy (issue 21, defect 10): the store writes behind to a SQLite file."""
from __future__ import annotations

import json
import secrets
import sqlite3
import subprocess
import sys
import threading

import requests

from tests.support.trace_proxy_process import running_proxy
from tests.support.waiting import wait_for
from trace_proxy import create_app
from trace_proxy.settings import Settings
from trace_proxy.store.span_file import SpanFile

JSON = {"Content-Type": "application/json"}


def trace(trace_id: str, n: int = 3) -> list[dict]:
    root = secrets.token_hex(8)
    spans = [{"traceId": trace_id, "id": root, "name": "root", "timestamp": 1_700_000_000_000_000, "duration": 50,
              "localEndpoint": {"serviceName": "front"}}]
    spans += [{"traceId": trace_id, "id": secrets.token_hex(8), "parentId": root, "name": f"child-{i}",
               "timestamp": 1_700_000_000_000_010, "duration": 5, "localEndpoint": {"serviceName": "back"},
               "tags": {"i": str(i)}} for i in range(n - 1)]
    return spans


def test_a_restarted_proxy_still_has_its_traces(tmp_path):
    store = tmp_path / "state" / "spans.sqlite"
    kept = secrets.token_hex(8)
    with running_proxy("--store-file", str(store)) as proxy:
        assert requests.post(f"{proxy.url}/api/v2/spans", data=json.dumps(trace(kept)), headers=JSON,
                             timeout=5).status_code == 202
        before = requests.get(f"{proxy.url}/api/v2/trace/{kept}", timeout=5).json()
    with running_proxy("--store-file", str(store)) as again:
        after = requests.get(f"{again.url}/api/v2/trace/{kept}", timeout=5)
        assert after.status_code == 200 and sorted(after.json(), key=lambda s: s["id"]) == sorted(
            before, key=lambda s: s["id"])
        listed = requests.get(f"{again.url}/api/v2/traces", params={"endTs": 1_700_000_001_000,
                                                                     "lookback": 10_000}, timeout=5).json()
        assert [t[0]["traceId"] for t in listed] == [kept]
        assert requests.get(f"{again.url}/trace/{kept}", timeout=5).status_code == 200


def test_the_file_holds_only_what_the_store_holds(tmp_path):
    path = tmp_path / "spans.sqlite"
    app = create_app(Settings(store_file=str(path), max_spans=30))
    client = app.test_client()
    state = app.extensions["trace_proxy"]
    try:
        ids = [secrets.token_hex(8) for _ in range(20)]
        for trace_id in ids:
            assert client.post("/api/v2/spans", data=json.dumps(trace(trace_id)), headers=JSON).status_code == 202
        state.store.span_file.flush()
        stored = {row[0] for row in sqlite3.connect(path).execute("SELECT DISTINCT trace_id FROM chunks")}
        assert stored == set(ids[-10:]) and state.store.stats()["spans"] == 30
    finally:
        state.close()
    wal = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert wal == "wal"


def test_memory_is_the_default_and_writes_no_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = create_app(Settings())
    try:
        assert app.extensions["trace_proxy"].store.span_file is None
    finally:
        app.extensions["trace_proxy"].close()
    assert list(tmp_path.iterdir()) == []


def test_a_store_file_that_cannot_be_opened_is_one_line_and_exit_2(tmp_path):
    not_a_db = tmp_path / "file.txt"
    not_a_db.write_text("hello, not SQLite " * 100)
    result = subprocess.run([sys.executable, "-m", "trace_proxy", "--store-file", str(not_a_db)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"cannot use {not_a_db} as the span store" in result.stderr


def test_the_local_mesh_keeps_its_store_in_the_state_folder(tmp_path):
    from meshtools.local.mesh import TRACE_PROXY_PROGRAM, LocalMesh, programs
    from meshtools.shared.net import free_layout

    mesh = LocalMesh(layout=free_layout(replicas=1), state_dir=tmp_path)
    proxy = next(p for p in programs(mesh.layout, mesh.envoy_dir, envoy="envoy", proxy_dir=mesh.trace_proxy_dir)
                 if p.name == TRACE_PROXY_PROGRAM)
    assert proxy.command[proxy.command.index("--store-file") + 1].startswith(str(tmp_path))


def test_the_writer_flushes_on_its_own(tmp_path):
    """The writer flushes on its own within its interval: no explicit flush needed."""
    path = tmp_path / "spans.sqlite"
    app = create_app(Settings(store_file=str(path)))
    try:
        trace_id = secrets.token_hex(8)
        app.test_client().post("/api/v2/spans", data=json.dumps(trace(trace_id)), headers=JSON)
        wait_for(lambda: sqlite3.connect(path).execute("SELECT count(*) FROM chunks WHERE trace_id = ?",
                                                       (trace_id,)).fetchone()[0] == 1, 10, "the row written")
    finally:
        app.extensions["trace_proxy"].close()


def test_a_flush_beside_the_writer_thread_loses_nothing(tmp_path):
    """flush() from another thread (close, bench/store_scale.py) while the writer flushes:
    two transactions on one connection failed, and that batch of spans was never written."""
    span_file = SpanFile(tmp_path / "spans.sqlite")
    try:
        def hammer(worker: int):
            for n in range(150):
                span_file.added({f"{worker:02d}{n:014x}": trace("x")}, 3)
                span_file.flush()

        threads = [threading.Thread(target=hammer, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        span_file.flush()
        assert span_file.rows() == 600
    finally:
        span_file.close()
