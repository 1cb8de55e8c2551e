"""`inv logs` and `inv traces --id ID --logs`: every process's lines in one stream, joined to traces."""
from __future__ import annotations

import json
import re
import threading
from datetime import datetime, timedelta, timezone

import pytest

from meshtools.local import logs as local_logs
from meshtools.local.mesh import LocalMesh
from meshtools.shared.logs import line_time, mentions, parse_since
from meshtools.shared.net import free_layout
from tests.support.inv_process import run_inv, started_inv
from tests.support.waiting import wait_for

NOW = datetime(2026, 11, 26, 18, 30, tzinfo=timezone.utc)


def test_each_process_s_time_format_is_read_as_utc():
    assert line_time('{"time": "2026-11-26T18:27:45.123Z", "x": 1}') == datetime(2026, 11, 26, 18, 27, 45, 123000,
                                                                                  tzinfo=timezone.utc)
    assert line_time("[2026-11-26 18:27:46 +0100] [9116] [INFO] Starting gunicorn") == datetime(
        2026, 11, 26, 17, 27, 46, tzinfo=timezone.utc)
    local = datetime(2026, 11, 26, 18, 27, 46, 56000).astimezone().astimezone(timezone.utc)
    assert line_time("[2026-11-26 18:27:46.056][9109][warning][main] no limit") == local
    assert line_time("    at a traceback line") is None


@pytest.mark.parametrize("value, expected", [("30s", NOW - timedelta(seconds=30)), ("10m", NOW - timedelta(minutes=10)),
                                             ("2h", NOW - timedelta(hours=2)), ("90", NOW - timedelta(seconds=90)),
                                             ("1m30s", NOW - timedelta(seconds=90)),
                                             ("2026-11-26T18:00", NOW - timedelta(minutes=30)),
                                             ("2026-11-26T19:00+01:00", NOW - timedelta(minutes=30))])
def test_since_takes_a_span_or_a_time(value, expected):
    assert parse_since(value, NOW) == expected


def test_since_that_is_neither_says_what_it_takes():
    with pytest.raises(ValueError, match=r"^--since takes a duration like 10, 10s, 1m30s or 1h, or a time like "):
        parse_since("yesterday", NOW)


def test_a_request_is_found_by_its_request_id_or_its_trace_id_in_either_length():
    line = json.dumps({"request_id": "req-1", "trace_id": "00000000000000001234567890abcdef"})
    assert mentions(line, {"req-1"}) and mentions(line, {"1234567890abcdef"})
    assert not mentions(line, {"req-2"}) and not mentions(line, {"1234"})
    assert mentions("error for req-1 at stage 3", {"req-1"})


def write_logs(directory, files: dict[str, list[str]]):
    directory.mkdir(parents=True, exist_ok=True)
    for name, lines in files.items():
        (directory / name).write_text("".join(line + "\n" for line in lines))


def test_merged_lines_come_in_time_order_with_their_process_and_rotated_parts_first(tmp_path):
    write_logs(tmp_path, {
        "front-envoy.log": ['{"time":"2026-11-26T18:00:01.000Z","request_id":"req-a"}',
                            '{"time":"2026-11-26T18:00:04.000Z","request_id":"req-b"}'],
        "service1-0-app.log.1": ['{"time": "2026-11-26T17:59:59.000Z", "request_id": "old"}'],
        "service1-0-app.log": ['{"time": "2026-11-26T18:00:02.000Z", "request_id": "req-a", "error": "boom"}',
                               "Traceback (most recent call last):",
                               '{"time": "2026-11-26T18:00:03.000Z", "request_id": "req-b"}'],
        "service1-1-app.log": [],
        "supervisord.log": ["2026-11-26 18:00:00,000 INFO spawned: 'front-envoy' with pid 1"],
    })
    lines = list(local_logs.merged(tmp_path, []))
    assert [(l.process, l.text[:40]) for l in lines] == [
        ("service1-0-app", '{"time": "2026-11-26T17:59:59.000Z", "re'),
        ("front-envoy", '{"time":"2026-11-26T18:00:01.000Z","requ'),
        ("service1-0-app", '{"time": "2026-11-26T18:00:02.000Z", "re'),
        ("service1-0-app", "Traceback (most recent call last):"),  # keeps the time of the line before
        ("service1-0-app", '{"time": "2026-11-26T18:00:03.000Z", "re'),
        ("front-envoy", '{"time":"2026-11-26T18:00:04.000Z","requ'),
    ]
    only_a = [l.process for l in local_logs.merged(tmp_path, ["service1", "front-envoy"], ids={"req-a"})]
    assert only_a == ["front-envoy", "service1-0-app"]
    since = datetime(2026, 11, 26, 18, 0, 3, tzinfo=timezone.utc)
    assert len(list(local_logs.merged(tmp_path, ["front"], since=since))) == 1
    assert local_logs.select(tmp_path, ["service1"]) == ["service1-0-app", "service1-1-app"]
    with pytest.raises(local_logs.LogsError, match="No process named 'service3'; the local processes are front-envoy"):
        local_logs.select(tmp_path, ["service3"])


def test_supervisord_rotates_every_log_file(tmp_path):
    conf = LocalMesh(layout=free_layout(replicas=1), state_dir=tmp_path).supervisord_conf(
        __import__("meshtools.local.mesh", fromlist=["programs"]).programs(free_layout(replicas=1), tmp_path, envoy="envoy"))
    programs = conf.split("[program:")[1:]
    assert programs and all("stdout_logfile_maxbytes=5MB" in p and "stdout_logfile_backups=1" in p for p in programs)


def inv(mesh, *args, timeout=60):
    return run_inv(*args, state_dir=mesh.state_dir, timeout=timeout)


def request_id_of(echo, status: int = 200) -> str:
    assert f"-- HTTP {status} " in echo.stdout, echo.stdout + echo.stderr
    return re.search(r"x-request-id (\S+)", echo.stdout)[1]


def lines_of(mesh, request_id: str, minimum: int) -> list[str]:
    def enough():
        result = inv(mesh, "logs", "--request", request_id)
        lines = result.stdout.splitlines()
        return lines if result.returncode == 0 and len(lines) >= minimum else None
    return wait_for(enough, 10, f"{minimum} log lines of request {request_id}")


def test_one_request_s_lines_from_every_process_it_crossed(local_mesh):
    request_id = request_id_of(inv(local_mesh, "echo", "--name", "logcheck"))
    # front-envoy, service1's sidecar (ingress and 5 egress), service2's sidecar ×5, both apps (1 + 5).
    lines = lines_of(local_mesh, request_id, 18)
    processes = {line.split(" | ")[0].strip() for line in lines}
    assert "front-envoy" in processes and "service2-0-envoy" in processes and "service2-0-app" in processes
    assert any(p.startswith("service1-") and p.endswith("-envoy") for p in processes)
    records = [json.loads(line.split(" | ", 1)[1]) for line in lines]
    trace_ids = {r["trace_id"] for r in records}
    assert len(trace_ids) == 1 and all(r["request_id"] == request_id for r in records)
    front = next(r for r, line in zip(records, lines) if line.startswith("front-envoy"))
    assert front["path"] == "/echo/logcheck" and front["status"] == 200 and front["response_flags"] == "-"
    assert re.fullmatch(r"127\.0\.0\.1:\d+", front["upstream_host"]) and front["duration_ms"] >= 0
    times = [line_time(line.split(" | ", 1)[1]) for line in lines]
    assert times == sorted(times)
    by_trace = inv(local_mesh, "logs", "--request", trace_ids.pop())
    assert by_trace.stdout.splitlines() == lines


def test_traces_id_logs_prints_the_request_s_lines_under_its_waterfall(local_mesh):
    request_id = request_id_of(inv(local_mesh, "echo", "--name", "chris"), 500)
    lines_of(local_mesh, request_id, 3)
    # The trace is listed once whole (its spans arrive within a second or so).
    result = wait_for(lambda: (r := inv(local_mesh, "traces", "--id", request_id, "--logs")).returncode == 0 and r,
                      20, f"inv traces --id {request_id} --logs")
    waterfall, _, logs = result.stdout.partition("log lines of this request")
    assert "/echo/chris" in waterfall and "500" in waterfall
    assert '"error": "too many chrises"' in logs and request_id in logs and "front-envoy" in logs


def test_follow_prints_new_lines_as_they_are_written(local_mesh):
    with started_inv("logs", "service2-0-app", "-f", state_dir=local_mesh.state_dir) as follower:
        seen: list[str] = []
        reader = threading.Thread(target=lambda: seen.extend(iter(follower.stdout.readline, "")), daemon=True)
        reader.start()
        # Sent while the backlog may still be printing: -f goes on from where the backlog ended.
        request_id = request_id_of(inv(local_mesh, "echo", "--name", "follow"))
        wait_for(lambda: sum(request_id in line for line in list(seen)) >= 5, 20,
                 "service2's five /stage lines of the request, followed")
        assert all(line.startswith("service2-0-app | ") for line in list(seen) if line.strip())


@pytest.mark.parametrize("args, message", [
    (["--since", "yesterday"], "--since takes a duration like 10, 10s, 1m30s or 1h"),
    (["--request", ""], "--request needs an x-request-id or a trace id"),
    (["nosuch"], "No process named 'nosuch'; the local processes are "),
])
def test_bad_logs_flags_are_one_sentence(local_mesh, args, message):
    result = inv(local_mesh, "logs", *args)
    assert result.returncode == 1 and result.stderr.startswith(message) and "Traceback" not in result.stderr


def test_logs_without_a_mesh_say_how_to_start_one(tmp_path):
    result = run_inv("logs", state_dir=tmp_path)
    assert result.returncode == 1
    assert "`inv local.up` starts the local mesh" in result.stderr and "inv logs --cluster" in result.stderr
