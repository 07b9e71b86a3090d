"""`la run --source bitunix` against the mock Bitunix exchange over real sockets on 127.0.0.1."""

from __future__ import annotations

import csv
import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import pairwise

import pytest

from laptop_agents.mock_exchange.testing import MockExchangeHandle, running_mock_exchange
from tests.conftest import REPO, LaEnv


@pytest.fixture
def fast_exchange() -> Iterator[MockExchangeHandle]:
    """Ten 1-minute bars per real second, pushed every 50 ms, with a week of history."""
    with running_mock_exchange(seed=5, time_scale=600, push_interval_ms=50) as mx:
        yield mx


def bitunix_args(mx: MockExchangeHandle) -> list[str]:
    return ["--source", "bitunix", "--rest-url", mx.rest_url, "--ws-url", mx.public_ws_url]


def candle_times(la_env: LaEnv) -> list[datetime]:
    return [datetime.fromisoformat(e["candle_ts"].replace("Z", "+00:00"))
            for e in la_env.events() if e["event"] == "CandleProcessed"]


def assert_contiguous(times: list[datetime]) -> None:
    """No gap and no duplicate: every processed bar is exactly one minute after the previous."""
    assert times, "no candles processed"
    steps = {b - a for a, b in pairwise(times)}
    assert steps <= {timedelta(minutes=1)}, f"gaps or duplicates: {sorted(steps)}"


def assert_success_criteria(la_env: LaEnv) -> dict:
    events = la_env.events()
    end = events[-1]
    assert end["event"] == "SessionEnd" and end["stopped_reason"] == "completed"
    assert not [r for r in la_env.system_log() if r["level"] in ("CRITICAL", "FATAL")]
    run_dir = la_env.latest.resolve()
    assert (run_dir / "summary.html").exists()
    with (run_dir / "trades.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        assert Decimal(r["entry_price"]) > 0 and Decimal(r["exit_price"]) > 0 and r["pnl"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["accounting_ok"]
    assert Decimal(summary["ending_equity"]) == Decimal(summary["starting_equity"]) + sum(Decimal(r["pnl"]) for r in rows)
    assert not la_env.lock.exists()
    return summary


@pytest.mark.slow
def test_bitunix_session_meets_success_criteria(la_env: LaEnv, fast_exchange: MockExchangeHandle) -> None:
    result = la_env.run("run", "--mode", "live-session", "--duration", "0.25", *bitunix_args(fast_exchange))
    assert result.returncode == 0, result.stderr
    summary = assert_success_criteria(la_env)
    warm = [e for e in la_env.events() if e["event"] == "WarmupCompleted"]
    assert warm and warm[0]["candles"] >= 48
    times = candle_times(la_env)
    assert len(times) > 80
    assert_contiguous(times)
    # the first live bar follows the warm-up history without a gap or an overlap
    assert times[0] - datetime.fromisoformat(warm[0]["last_candle_ts"].replace("Z", "+00:00")) == timedelta(minutes=1)
    start = la_env.events()[0]
    assert start["event"] == "SessionStart" and start["source"] == "bitunix"
    assert summary["candles_processed"] == len(times)


def test_ws_drops_are_survived_without_gap_or_duplicate(la_env: LaEnv, fast_exchange: MockExchangeHandle) -> None:
    fast_exchange.admin.set_faults(ws_drop_every_s=3)
    result = la_env.run("run", "--mode", "live-session", "--duration", "0.2", *bitunix_args(fast_exchange))
    assert result.returncode == 0, result.stderr
    assert_success_criteria(la_env)
    assert_contiguous(candle_times(la_env))
    reconnects = [r for r in la_env.system_log() if "reconnect" in r["message"].lower()]
    assert len(reconnects) >= 2, "the drops really happened"


@pytest.mark.long  # minutes of wall clock: its own pytest process in `make test`
@pytest.mark.slow
@pytest.mark.timeout(400)
def test_ws_drops_every_30_seconds(la_env: LaEnv) -> None:
    """The issue's case: drops every 30 s over a longer session (1-minute bars each real second)."""
    with running_mock_exchange(seed=8, time_scale=60, faults={"ws_drop_every_s": 30}) as mx:
        result = la_env.run("run", "--mode", "live-session", "--duration", "1.6", *bitunix_args(mx), timeout=300)
    assert result.returncode == 0, result.stderr
    assert_success_criteria(la_env)
    times = candle_times(la_env)
    assert len(times) >= 80
    assert_contiguous(times)
    reconnects = [r for r in la_env.system_log() if "reconnect" in r["message"].lower()]
    assert len(reconnects) >= 3


def test_outage_longer_than_stale_timeout_stops_with_stale_data(la_env: LaEnv, fast_exchange: MockExchangeHandle) -> None:
    env = {"LA_BITUNIX__STALL_TIMEOUT_SEC": "1", "LA_BITUNIX__BACKOFF_MAX_SEC": "0.5"}
    proc = la_env.start("run", "--mode", "live-session", "--duration", "2", "--stale-timeout", "4",
                        *bitunix_args(fast_exchange), extra_env=env)
    la_env.wait_for(lambda: len(candle_times(la_env)) >= 5, what="live candles")
    fast_exchange.admin.set_faults(ws_stall=True)
    assert proc.wait(timeout=30) == 6
    end = la_env.events()[-1]
    assert end["event"] == "SessionEnd" and end["stopped_reason"] == "stale_data"
    stale = [e for e in la_env.events() if e["event"] == "StaleDataDetected"]
    assert len(stale) == 1 and stale[0]["data_age_sec"] > 4
    assert not la_env.lock.exists()


def test_outage_shorter_than_stale_timeout_is_survived(la_env: LaEnv, fast_exchange: MockExchangeHandle) -> None:
    env = {"LA_BITUNIX__STALL_TIMEOUT_SEC": "0.5", "LA_BITUNIX__BACKOFF_MAX_SEC": "0.2"}
    proc = la_env.start("run", "--mode", "live-session", "--duration", "0.15", "--stale-timeout", "5",
                        *bitunix_args(fast_exchange), extra_env=env)
    la_env.wait_for(lambda: len(candle_times(la_env)) >= 5, what="live candles")
    fast_exchange.admin.set_faults(ws_stall=True)
    la_env.wait_for(lambda: any("stall" in r["message"].lower() for r in la_env.system_log()), what="stall detected")
    fast_exchange.admin.set_faults(ws_stall=False)
    assert proc.wait(timeout=30) == 0
    assert la_env.events()[-1]["stopped_reason"] == "completed"
    assert_contiguous(candle_times(la_env))


def test_unreachable_exchange_fails_cleanly(la_env: LaEnv) -> None:
    env = {"LA_BITUNIX__MAX_RECONNECT_ATTEMPTS": "3", "LA_BITUNIX__BACKOFF_MAX_SEC": "0.1",
           "LA_BITUNIX__BACKOFF_BASE_SEC": "0.05"}
    result = la_env.run("run", "--mode", "live-session", "--duration", "1", "--stale-timeout", "30",
                        "--source", "bitunix", "--rest-url", "http://127.0.0.1:9", "--ws-url", "ws://127.0.0.1:9/public/",
                        extra_env=env)
    assert result.returncode == 9, result.stderr
    end = la_env.events()[-1]
    assert end["stopped_reason"] == "data_error" and "Traceback" not in result.stderr
    assert not la_env.lock.exists()


def test_mock_exchange_cli_subprocess_serves_a_session(la_env: LaEnv) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "laptop_agents", "mock-exchange", "--port", "0", "--time-scale", "600",
                             "--push-interval-ms", "50"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert match, line
        port = match.group(1)
        result = la_env.run("run", "--mode", "live-session", "--duration", "0.05", "--source", "bitunix",
                            "--rest-url", f"http://127.0.0.1:{port}", "--ws-url", f"ws://127.0.0.1:{port}/public/")
        assert result.returncode == 0, result.stderr
        assert len(candle_times(la_env)) > 5
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
