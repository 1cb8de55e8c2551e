"""`inv logs --tail N`, `-f` from the tail, and lines rendered readable on a terminal (`--json`: raw)."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from meshtools.shared import logformat
from tests.support.inv_process import run_inv, started_inv
from tests.support.terminal import on_a_terminal

FRONT_LINE = ('{"time":"2026-11-26T18:00:01.250Z","method":"GET","path":"/echo/ann","status":200,'
              '"response_flags":"-","upstream_cluster":"service1","upstream_host":"127.0.0.1:9","duration_ms":812,'
              '"attempts":1,"request_id":"0b5c-req","trace_id":"00000000000000001234567890abcdef"}')
APP_ERROR = ('{"time": "2026-11-26T18:00:02.000Z", "service": "1", "pod": "service1-0", "request_id": "r-2", '
             '"trace_id": "abcdef0123456789", "error": "too many chrises", "name": "chris"}')


def local(moment: str) -> str:
    return datetime.fromisoformat(moment).replace(tzinfo=timezone.utc).astimezone().strftime("%H:%M:%S.%f")[:-3]


@pytest.mark.parametrize("text, level, message", [
    (FRONT_LINE, "INFO", "GET /echo/ann 200 812ms"),
    (APP_ERROR, "ERROR", "too many chrises name=chris"),
    ('{"time":"2026-11-26T18:00:01.000Z","method":"GET","path":"/stage/3","status":503,"response_flags":"UF",'
     '"duration_ms":5,"request_id":"x"}', "ERROR", "GET /stage/3 503 5ms flags=UF"),
    ("[2026-11-26 18:27:46.056][9109][warning][main] [source/server.cc:1] there is no configured limit",
     "WARN", "there is no configured limit"),
    ("[2026-11-26 18:27:46 +0000] [9116] [INFO] Booting worker with pid: 9120", "INFO", "Booting worker with pid: 9120"),
    ("2026-11-26 18:27:46,123 ERROR trace_proxy.sinks: Honeycomb answered 401", "ERROR",
     "trace_proxy.sinks: Honeycomb answered 401"),
    ("Traceback (most recent call last):", "ERROR", "Traceback (most recent call last):"),
    ("just words", "INFO", "just words"),
])
def test_each_kind_of_line_gives_its_level_and_what_it_says(text, level, message):
    parsed = logformat.read(text)
    assert (parsed.level, parsed.message) == (level, message)
    assert logformat.is_error(text) == (level == "ERROR")


def test_a_readable_line_has_time_process_level_request_and_ids():
    assert logformat.readable(FRONT_LINE, "front-envoy", 14) == (
        f"{local('2026-11-26T18:00:01.250')} front-envoy    INFO  GET /echo/ann 200 812ms "
        "req=0b5c-req trace=00000000000000001234567890abcdef")


def write_mesh_logs(state_dir):
    logs = state_dir / "logs"
    logs.mkdir(parents=True)
    (logs / "front-envoy.log").write_text(FRONT_LINE + "\n" + FRONT_LINE.replace("18:00:01.250", "18:00:03.000")
                                          .replace("/echo/ann", "/echo/bob") + "\n")
    (logs / "service1-0-app.log").write_text(APP_ERROR + "\n")


def test_tail_prints_the_last_lines_of_the_merged_stream(tmp_path):
    write_mesh_logs(tmp_path)
    result = run_inv("logs", "--tail", "2", state_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # Piped: the raw lines, prefixed, the last two in time order.
    assert lines == [f"service1-0-app | {APP_ERROR}",
                     "front-envoy    | " + FRONT_LINE.replace("18:00:01.250", "18:00:03.000").replace("/echo/ann", "/echo/bob")]
    assert run_inv("logs", "--tail", "0", state_dir=tmp_path).stdout == ""


def test_tail_that_is_not_a_number_is_one_sentence(tmp_path):
    write_mesh_logs(tmp_path)
    result = run_inv("logs", "--tail", "many", state_dir=tmp_path)
    assert result.returncode == 1 and result.stderr.startswith("--tail must be a whole number") and "Traceback" not in result.stderr


def test_on_a_terminal_lines_are_readable_and_json_gives_them_raw(tmp_path):
    write_mesh_logs(tmp_path)
    code, out = on_a_terminal("logs", "front-envoy", state_dir=tmp_path)
    lines = out.splitlines()
    assert code == 0, out
    assert lines == [
        f"{local('2026-11-26T18:00:01.250')} front-envoy INFO  GET /echo/ann 200 812ms req=0b5c-req "
        "trace=00000000000000001234567890abcdef",
        f"{local('2026-11-26T18:00:03.000')} front-envoy INFO  GET /echo/bob 200 812ms req=0b5c-req "
        "trace=00000000000000001234567890abcdef"]
    raw = on_a_terminal("logs", "front-envoy", "--json", "--tail", "1", state_dir=tmp_path)[1].splitlines()
    assert raw == ["front-envoy | " + FRONT_LINE.replace("18:00:01.250", "18:00:03.000").replace("/echo/ann", "/echo/bob")]


def test_follow_starts_from_the_last_ten_lines_then_prints_new_ones(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    line = '{{"time":"2026-11-26T18:00:{:02d}.000Z","path":"/echo/n{}","status":200}}'
    (logs / "front-envoy.log").write_text("".join(line.format(n, n) + "\n" for n in range(15)))
    with started_inv("logs", "-f", state_dir=tmp_path) as follower:
        first = [follower.stdout.readline() for _ in range(10)]
        assert [text.split("/echo/")[1].split('"')[0] for text in first] == [f"n{n}" for n in range(5, 15)]
        with (logs / "front-envoy.log").open("a") as handle:
            handle.write(line.format(30, "new") + "\n")
        assert '"/echo/nnew"' in follower.stdout.readline()
