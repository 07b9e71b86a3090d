"""A breaker trip and a kill switch are never silent (issue 13): a WARNING in system.jsonl and on the console at the
trip, `la status` (+ --json) and `la doctor` show them with no session running, and the next session says at start
that entries are halted and how to reset."""

from __future__ import annotations

import json

import pytest

from tests.conftest import LaEnv
from tests.e2e.test_paper_session import run_session

STREAK = ("--scenario", "losing_streak", "--candle-interval", "0.005")


def _warnings(la_env: LaEnv, needle: str) -> list[str]:
    return [r["message"] for r in la_env.system_log() if r.get("level") == "WARNING" and needle in r["message"]]


@pytest.mark.slow
def test_halt_entries_trip_is_visible_everywhere_until_reset(la_env: LaEnv) -> None:
    first = run_session(la_env, "0.06", *STREAK)  # default action halt_entries: the session goes on, exit 0
    assert first.returncode == 0, first.stderr
    assert _warnings(la_env, "CIRCUIT BREAKER TRIPPED (consecutive_losses)"), "a WARNING in system.jsonl"
    assert "CIRCUIT BREAKER TRIPPED" in first.stderr and "la reset-breaker" in first.stderr, "and on the console"

    status = la_env.run("status", "--json")
    data = json.loads(status.stdout)
    assert data["state"] == "STOPPED" and data["entries_halted"] is True
    assert data["breaker"]["tripped"] is True and data["breaker"]["reason"] == "consecutive_losses"
    text = la_env.run("status").stdout
    assert "WARNING: circuit breaker tripped" in text and "la reset-breaker" in text, text
    doctor = la_env.run("doctor")
    assert doctor.returncode == 0, doctor.stdout
    assert "[WARN] circuit breaker: circuit breaker tripped" in doctor.stdout and "la reset-breaker" in doctor.stdout

    again = run_session(la_env, "0.02", *STREAK)
    assert again.returncode == 0, again.stderr
    start = _warnings(la_env, "new entries are halted")
    assert start and "la reset-breaker" in start[0], "the next session says so at start"

    assert la_env.run("reset-breaker").returncode == 0
    assert json.loads(la_env.run("status", "--json").stdout)["entries_halted"] is False
    assert "WARNING" not in la_env.run("status").stdout


@pytest.mark.slow
def test_kill_file_left_in_place_is_shown_by_status_doctor_and_session_start(la_env: LaEnv) -> None:
    la_env.workspace.mkdir(parents=True, exist_ok=True)
    kill = la_env.workspace / "kill.txt"
    kill.write_text("stop\n")
    data = json.loads(la_env.run("status", "--json").stdout)
    assert data["kill_switch"] and str(kill) in data["kill_switch"]
    assert "WARNING: kill switch active" in la_env.run("status").stdout
    assert "[WARN] kill switch:" in la_env.run("doctor").stdout
    result = run_session(la_env, "0.05")
    assert result.returncode == 4, result.stderr
    assert _warnings(la_env, "kill switch is active"), "the session says at start why it will stop"
