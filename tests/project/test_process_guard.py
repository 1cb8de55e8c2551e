"""No test leaves a process behind, even when it fails or the run is killed by `timeout`; and
children get SIGINT's default even when pytest runs as a background job (SIGINT ignored)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil

from meshtools.shared.topology import PROJECT_ROOT
from tests.support.waiting import wait_for

LEAKY_TEST = textwrap.dedent('''
    import json, os, subprocess, sys, time

    def test_leaks_three_ways_and_fails():
        own_group = subprocess.Popen(["sleep", "600"], start_new_session=True)
        same_group = subprocess.Popen(["sleep", "600"])
        # A daemon, as supervisord is: its parent exits, it is nobody's child any more.
        daemon = subprocess.run([sys.executable, "-c",
                                 "import subprocess; p = subprocess.Popen(['sleep', '600'], start_new_session=True, "
                                 "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); print(p.pid)"], capture_output=True, text=True)
        pids = [own_group.pid, same_group.pid, int(daemon.stdout)]
        with open(os.environ["PIDS_FILE"], "w") as out:
            json.dump(pids, out)
        if os.environ.get("HANG"):
            time.sleep(600)  # killed by `timeout` meanwhile
        assert False, "a failed test that did not clean up"

    def test_children_get_sigint_s_default():
        said = subprocess.run([sys.executable, "-c", "import signal; print(signal.getsignal(signal.SIGINT))"],
                              capture_output=True, text=True).stdout
        assert "default_int_handler" in said, said
''')


def run_leaky(tmp_path, hang: bool):
    (tmp_path / "test_leaky.py").write_text(LEAKY_TEST)
    pids_file = tmp_path / "pids.json"
    env = {**os.environ, "PIDS_FILE": str(pids_file), **({"HANG": "1"} if hang else {})}
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "tests.support.process_guard",
                             "-p", "no:cacheprovider", str(tmp_path / "test_leaky.py")],
                            cwd=PROJECT_ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            # as `pytest &` in a shell: SIGINT ignored, inherited by the run
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    wait_for(lambda: pids_file.exists() and pids_file.read_text(), 60, "the leaky test's processes")
    if hang:
        proc.send_signal(signal.SIGTERM)  # what `timeout` sends
    out, _ = proc.communicate(timeout=120)
    return json.loads(pids_file.read_text()), out


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_failed_test_leaves_no_process_behind(tmp_path):
    pids, out = run_leaky(tmp_path, hang=False)
    assert "1 failed, 1 passed" in out, out  # and children had SIGINT's default in a background run
    assert "processes the tests left behind (stopped now)" in out, out
    assert all(gone(pid) for pid in pids), [psutil.Process(p).cmdline() for p in pids if not gone(p)]


def test_a_run_killed_by_timeout_leaves_no_process_behind(tmp_path):
    started = time.monotonic()
    pids, out = run_leaky(tmp_path, hang=True)
    assert time.monotonic() - started < 60, out  # it stopped at SIGTERM, not after the test's 600 s
    assert all(gone(pid) for pid in pids), [psutil.Process(p).cmdline() for p in pids if not gone(p)]
