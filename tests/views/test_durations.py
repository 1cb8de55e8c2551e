"""One duration syntax for every duration flag: `10`, `10s`, `1m30s`, `1h`, read by one parser."""
from __future__ import annotations

import pytest

from meshtools.shared.durations import parse_duration
from tests.support.inv_process import run_inv


@pytest.mark.parametrize("text, seconds", [("10", 10), ("10s", 10), ("1m30s", 90), ("1h", 3600), ("1h30m", 5400),
                                           ("0.5s", 0.5), ("2.5", 2.5), ("2d", 172800), (" 5M ", 300),
                                           ("1h0m5s", 3605)])
def test_a_duration_reads_as_seconds(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "s", "ten", "10x", "1s1m", "1m1m", "-5", "inf", "nan", "1e3", "10 minutes"])
def test_anything_else_names_the_syntax(text):
    with pytest.raises(ValueError, match=r"^takes a duration like 10, 10s, 1m30s or 1h, got "):
        parse_duration(text)


# Every duration flag of every task: each refuses a wrong value with the same sentence, so
# each reads it with the one parser (a flag with a parser of its own would word it otherwise).
DURATION_FLAGS = [("load", "--duration"), ("load", "--timeout"), ("traces", "--lookback"), ("logs", "--since")]


@pytest.mark.parametrize("task, flag", DURATION_FLAGS, ids=[f"{t} {f}" for t, f in DURATION_FLAGS])
def test_every_duration_flag_takes_the_one_syntax(tmp_path, task, flag):
    result = run_inv(task, flag, "10 parsecs", state_dir=tmp_path, env={"NO_COLOR": "1"}, timeout=60)
    message = result.stderr.strip()
    assert result.returncode == 1 and "Traceback" not in result.stderr, message
    assert message.startswith(f"{flag} takes a duration like 10, 10s, 1m30s or 1h"), message
    assert message.endswith("got '10 parsecs'."), message
    help_text = run_inv("--help", task, timeout=60).stdout
    assert "1m30s" in help_text, help_text
