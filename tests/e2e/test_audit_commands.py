"""The audit's pre-run and run commands, as written, and its success criteria on a 10-minute session."""

from __future__ import annotations

import csv
import json
from decimal import Decimal

import pytest

from tests.conftest import LaEnv


@pytest.mark.long  # minutes of wall clock: its own pytest process in `make test`
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_ten_minute_mock_session_meets_every_success_criterion(la_env: LaEnv) -> None:
    assert la_env.run("doctor", "--fix").returncode == 0
    assert la_env.run("clean").returncode == 0
    status = la_env.run("status")
    assert status.stdout.startswith("STOPPED")

    result = la_env.run("run", "--mode", "live-session", "--duration", "10", "--source", "mock", "--async", timeout=800)
    assert result.returncode == 0, result.stderr
    run_dir = la_env.latest.resolve()
    events = la_env.events()
    start, end = events[0], events[-1]
    assert start["event"] == "SessionStart" and start["duration_min"] == 10
    # ran the full 10 minutes without intervention, exit reason completed
    assert end["event"] == "SessionEnd" and end["stopped_reason"] == "completed"
    assert 600 <= end["duration_sec"] < 620
    # no CRITICAL/FATAL
    assert not [r for r in la_env.system_log() if r["level"] in ("CRITICAL", "FATAL")]
    # no unexpected breaker trip, no stale data
    names = {e["event"] for e in events}
    assert "CircuitBreakerTripped" not in names and "StaleDataDetected" not in names
    # summary.html exists and is readable
    html = (run_dir / "summary.html").read_text()
    assert "Final equity" in html and "completed" in html
    # trades.csv valid, several whole trades
    with (run_dir / "trades.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) >= 3
    for r in rows:
        assert Decimal(r["entry_price"]) > 0 and Decimal(r["exit_price"]) > 0 and r["pnl"]
    # ending equity matches calculated PnL exactly
    summary = json.loads((run_dir / "summary.json").read_text())
    assert Decimal(summary["ending_equity"]) == Decimal(summary["starting_equity"]) + sum(Decimal(r["pnl"]) for r in rows)
    assert summary["accounting_ok"]
    # lock removed
    assert not la_env.lock.exists()
