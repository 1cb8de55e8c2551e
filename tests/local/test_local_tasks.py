"""`inv local.*` as a user runs it: exit codes, messages, and nothing left behind."""
from __future__ import annotations

import socket

import psutil
import pytest

from meshtools.shared.net import free_layout, free_port, port_in_use
from tests.support.inv_process import layout_flags, run_inv


def inv(*args, state_dir, env=None):
    return run_inv(*args, state_dir=state_dir, env=env, timeout=180)


def test_local_up_then_down_leaves_no_process_and_no_listening_port(tmp_path):
    layout = free_layout(replicas=1)
    up = inv("local.up", *layout_flags(layout), state_dir=tmp_path)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"http://127.0.0.1:{layout.front_port}" in up.stdout
        assert f"Traces in your browser: http://127.0.0.1:{layout.trace_proxy_port}/" in up.stdout
        # Piped, it is 80 columns wide like inv demo's: the next steps are not cut mid-sentence.
        assert "`inv local.status` shows the processes, `inv local.down` stops them." in up.stdout
        status = inv("local.status", state_dir=tmp_path)
        assert status.returncode == 0 and "front-envoy" in status.stdout and "NOT HEALTHY" not in status.stdout
        # Every port a user may point a client at, the OTLP one too.
        proxy_row = next(line for line in status.stdout.splitlines() if line.startswith("trace-proxy "))
        assert f" {layout.trace_proxy_port} {layout.otlp_port} " in proxy_row
        again = inv("local.up", *layout_flags(layout), state_dir=tmp_path)
        assert again.returncode == 0 and "already up" in again.stdout
        supervisord = int((tmp_path / "supervisord.pid").read_text())
        children = psutil.Process(supervisord).children(recursive=True)
        assert len(children) >= 5
    finally:
        down = inv("local.down", state_dir=tmp_path)
    assert down.returncode == 0 and "stopped" in down.stdout
    assert not [p for p in layout.ports() if port_in_use("127.0.0.1", p)]
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    again = inv("local.down", state_dir=tmp_path)
    assert again.returncode == 0 and "was not running" in again.stdout


def test_local_up_refuses_a_taken_port_and_starts_nothing(tmp_path):
    layout = free_layout(replicas=1)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", layout.front_port))
        squatter.listen()
        result = inv("local.up", *layout_flags(layout), state_dir=tmp_path)
    assert result.returncode == 1
    assert f"Port {layout.front_port} on 127.0.0.1 is already in use" in result.stderr
    # Says how to move the ports, also to someone who ran `inv demo` (which has no port flags).
    assert "`inv local.up --front-port`" in result.stderr and "`inv demo` then uses it" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "supervisord.pid").exists()


def test_local_up_without_envoy_says_how_to_get_it(tmp_path):
    layout = free_layout(replicas=1)
    # A PATH with python's own directory but no envoy.
    bare = tmp_path / "bin"
    bare.mkdir()
    result = inv("local.up", *layout_flags(layout), state_dir=tmp_path / "state",
                 env={"PATH": str(bare)})
    assert result.returncode == 1
    assert "envoy is not on PATH" in result.stderr and "Traceback" not in result.stderr


def test_local_status_when_nothing_runs_says_how_to_start(tmp_path):
    result = inv("local.status", state_dir=tmp_path)
    assert result.returncode != 0 and "inv local.up" in result.stdout


def test_unknown_task_option_is_a_clear_error(tmp_path):
    result = inv("local.up", "--replica", "2", state_dir=tmp_path)
    assert result.returncode != 0 and "--replica" in result.stderr and "Traceback" not in result.stderr


def test_echo_against_nothing_says_what_to_do(tmp_path):
    result = inv("echo", "--name", "friend", "--url", f"http://127.0.0.1:{free_port()}", state_dir=tmp_path)
    assert result.returncode == 1
    assert "inv local.up" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("flags, message", [
    (["--front-port", "9411"], "port 9411 would be used twice"),
    (["--base-port", "7990"], "port 8000 would be used twice"),
    (["--base-port", "65530"], "ports must lie between 1 and 65535, not 65536"),
    (["--base-port", "0"], "--base-port must be between 1 and 65535, got 0"),
    (["--front-port", "70000"], "--front-port must be between 1 and 65535, got 70000"),
    (["--replicas", "0"], "--replicas must be at least 1"),
    (["--replicas", "three"], "--replicas must be a whole number, got 'three'"),
    (["--otlp-port", "9411"], "port 9411 would be used twice"),
    (["--tracer", "jaeger"], "--tracer must be zipkin or opentelemetry, got 'jaeger'."),
])
def test_local_up_refuses_a_layout_that_cannot_work_before_starting_anything(tmp_path, flags, message):
    result = inv("local.up", *flags, state_dir=tmp_path)
    assert result.returncode == 1 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and "Starting" not in result.stdout
    assert not (tmp_path / "supervisord.pid").exists()


def test_bare_inv_lists_the_tasks(tmp_path):
    result = inv(state_dir=tmp_path)
    assert result.returncode == 0 and "Available tasks:" in result.stdout
    assert "local.up" in result.stdout and "--echo" not in result.stdout  # not invoke's core options


@pytest.mark.parametrize("args, flag, task", [(["load", "--duration"], "--duration", "load"),
                                              (["echo", "--name"], "--name", "echo"),
                                              (["local.up", "--front-port"], "--front-port", "local.up")])
def test_a_flag_without_its_value_is_one_sentence_naming_it(tmp_path, args, flag, task):
    result = inv(*args, state_dir=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == f"{flag} needs a value after it; `inv --help {task}` says what it takes."


@pytest.mark.parametrize("task, specs", [
    ("load", ["--duration=DURATION", "--requests=N", "--concurrency=N", "--rate=PER_SECOND", "--timeout=DURATION"]),
    ("traces", ["--limit=N", "--lookback=DURATION"]),
    ("local.up", ["--replicas=N", "--front-port=PORT", "--base-port=PORT"]),
    ("forward", ["--front-port=PORT"]),
])
def test_numeric_flags_say_what_they_take_in_help(tmp_path, task, specs):
    result = inv("--help", task, state_dir=tmp_path)
    assert result.returncode == 0
    assert all(spec in result.stdout for spec in specs), result.stdout
    for spec in specs:
        assert spec.replace(spec.split("=")[1], "STRING") not in result.stdout


def test_echo_with_an_empty_name_says_what_to_give(tmp_path):
    result = inv("echo", "--name", "", state_dir=tmp_path)
    assert result.returncode == 1 and "<html" not in result.stdout + result.stderr
    assert result.stderr.strip() == "--name needs a name, e.g. --name friend (the default when --name is left out)."
    assert "default friend" in inv("--help", "echo", state_dir=tmp_path).stdout
