"""End-to-end: `la` as a real subprocess, real signals, real files; read what a user would read."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import time
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import LaEnv

FAST = ["--source", "mock", "--candle-interval", "0.01"]


def run_session(la_env: LaEnv, minutes: str = "0.05", *extra: str, extra_env: dict[str, str] | None = None):
    return la_env.run("run", "--mode", "live-session", "--duration", minutes, "--source", "mock", "--async", *FAST,
                      *extra, extra_env=extra_env)


def session_end(la_env: LaEnv, run_dir: Path | None = None) -> dict:
    ends = [e for e in la_env.events(run_dir) if e["event"] == "SessionEnd"]
    assert len(ends) == 1, "exactly one SessionEnd per run"
    return ends[0]


def trades_rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "trades.csv").open() as fh:
        return list(csv.DictReader(fh))


def assert_equity_matches_trades(la_env: LaEnv, run_dir: Path) -> None:
    end = session_end(la_env, run_dir)
    rows = trades_rows(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    net = sum((Decimal(r["pnl"]) for r in rows), Decimal(0))
    assert Decimal(summary["ending_equity"]) == Decimal(summary["starting_equity"]) + net
    assert summary["accounting_ok"] is True
    assert Decimal(la_env.state()["equity"]) == Decimal(summary["ending_equity"])
    assert end["open_position"] is False


def test_completed_run_meets_success_criteria(la_env: LaEnv) -> None:
    result = run_session(la_env, "0.05")
    assert result.returncode == 0, result.stderr
    run_dir = la_env.latest.resolve()
    assert run_dir.parent.name == "runs" and re.fullmatch(r"\d{8}T\d{6}Z-paper-[0-9a-f]{6}", run_dir.name)
    for name in ("events.jsonl", "system.jsonl", "trades.csv", "summary.html", "config_snapshot.json"):
        assert (run_dir / name).is_file(), name
    events = la_env.events()
    names = [e["event"] for e in events]
    assert names[0] == "SessionStart" and names[-1] == "SessionEnd"
    assert events[0]["duration_min"] == 0.05
    for needed in ("CandleProcessed", "SignalGenerated", "OrderSubmitted", "ExecutionFill", "ExecutionExit"):
        assert needed in names, needed
    assert session_end(la_env)["stopped_reason"] == "completed"
    for e in events:
        assert e["timestamp"].endswith("Z")
    fill = next(e for e in events if e["event"] == "ExecutionFill")
    assert fill["side"] in ("BUY", "SELL") and fill["price"] > 0 and fill["qty"] > 0
    exit_ = next(e for e in events if e["event"] == "ExecutionExit")
    assert {"reason", "pnl", "exit_price"} <= exit_.keys()

    logs = la_env.system_log()
    assert logs and all({"timestamp", "level", "message", "component"} <= r.keys() for r in logs)
    assert not [r for r in logs if r["level"] in ("CRITICAL", "FATAL")]

    rows = trades_rows(run_dir)
    assert rows, "a fast 3-second session trades"
    for r in rows:
        for col in ("entry_ts", "exit_ts", "side", "entry_price", "exit_price", "qty", "pnl", "fees", "exit_reason"):
            assert r[col] != "", col
        assert Decimal(r["qty"]) > 0 and Decimal(r["entry_price"]) > 0 and Decimal(r["exit_price"]) > 0
    assert_equity_matches_trades(la_env, run_dir)
    html = (run_dir / "summary.html").read_text()
    assert "Final equity" in html and f'id="trade-count">{len(rows)}<' in html and "completed" in html
    assert "<svg" in html
    assert not la_env.lock.exists()
    status = la_env.run("status", "--json")
    assert json.loads(status.stdout)["state"] == "STOPPED"
    assert "session" in result.stdout and "completed" in result.stdout


def test_kill_switch_by_env_closes_restored_position(la_env: LaEnv) -> None:
    la_env.hold_positions()
    proc = la_env.start("run", "--duration", "1", *FAST)
    la_env.wait_for(lambda: la_env.broker_state.exists() and la_env.state()["positions"], what="an open position")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    position_id = la_env.state()["positions"][0]["position_id"]

    result = run_session(la_env, "1", extra_env={"LA_KILL_SWITCH": "TRUE"})
    assert result.returncode == 4, result.stderr
    events = la_env.events()
    assert any(e["event"] == "KillSwitchActivated" for e in events)
    exits = [e for e in events if e["event"] == "ExecutionExit"]
    assert [(e["position_id"], e["reason"]) for e in exits] == [(position_id, "kill_switch")]
    assert not any(e["event"] == "OrderSubmitted" for e in events)
    assert session_end(la_env)["stopped_reason"] == "kill_switch"
    assert la_env.state()["positions"] == []
    assert not la_env.lock.exists()


def test_kill_switch_by_file_mid_position(la_env: LaEnv) -> None:
    la_env.hold_positions()
    proc = la_env.start("run", "--duration", "1", *FAST)
    la_env.wait_for(lambda: la_env.broker_state.exists() and la_env.state()["positions"], what="an open position")
    (la_env.workspace / "kill.txt").write_text("stop now\n")
    assert proc.wait(timeout=20) == 4
    end = session_end(la_env)
    assert end["stopped_reason"] == "kill_switch" and "kill.txt" in end["detail"]
    assert [e["reason"] for e in la_env.events() if e["event"] == "ExecutionExit"][-1] == "kill_switch"
    assert la_env.state()["positions"] == []
    assert not la_env.lock.exists()
    # while kill.txt exists, a new session refuses to trade
    again = run_session(la_env, "1")
    assert again.returncode == 4
    assert not any(e["event"] == "OrderSubmitted" for e in la_env.events())


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_mid_position_flattens_and_exits_zero(la_env: LaEnv, sig: signal.Signals) -> None:
    la_env.hold_positions()
    proc = la_env.start("run", "--duration", "5", *FAST)
    la_env.wait_for(lambda: la_env.broker_state.exists() and la_env.state()["positions"], what="an open position")
    proc.send_signal(sig)
    assert proc.wait(timeout=20) == 0
    events = la_env.events()
    assert session_end(la_env)["stopped_reason"] == sig.name.lower()
    assert events[-2]["event"] == "ExecutionExit" and events[-2]["reason"] == "shutdown"
    assert any("close_all()" in r["message"] for r in la_env.system_log())
    assert la_env.state()["positions"] == []
    assert not la_env.lock.exists()
    assert_equity_matches_trades(la_env, la_env.latest.resolve())


def test_injected_gap_stops_with_stale_data(la_env: LaEnv) -> None:
    result = run_session(la_env, "1", "--inject-gap-at", "1", "--gap-duration", "5", "--stale-timeout", "1.5")
    assert result.returncode == 6, result.stderr
    events = la_env.events()
    stale = [e for e in events if e["event"] == "StaleDataDetected"]
    assert len(stale) == 1 and stale[0]["data_age_sec"] > 1.5
    assert session_end(la_env)["stopped_reason"] == "stale_data"
    assert la_env.state()["positions"] == []
    assert not la_env.lock.exists()


@pytest.mark.slow
def test_35_second_gap_against_30_second_timeout(la_env: LaEnv) -> None:
    """The audit's literal case: a 35 s gap with stale_data_timeout_sec = 30."""
    result = run_session(la_env, "2", "--inject-gap-at", "1", "--gap-duration", "35")
    assert result.returncode == 6, result.stderr
    end = session_end(la_env)
    assert end["stopped_reason"] == "stale_data"
    stale = next(e for e in la_env.events() if e["event"] == "StaleDataDetected")
    assert 30 < stale["data_age_sec"] < 35 and stale["stale_data_timeout_sec"] == 30


def test_gap_shorter_than_timeout_is_survived(la_env: LaEnv) -> None:
    result = run_session(la_env, "0.06", "--inject-gap-at", "0.5", "--gap-duration", "1", "--stale-timeout", "3")
    assert result.returncode == 0, result.stderr
    assert session_end(la_env)["stopped_reason"] == "completed"


def test_losing_streak_trips_breaker_and_halts_entries(la_env: LaEnv) -> None:
    result = run_session(la_env, "0.06", "--scenario", "losing_streak", "--candle-interval", "0.005")
    assert result.returncode == 0, result.stderr
    events = la_env.events()
    trips = [i for i, e in enumerate(events) if e["event"] == "CircuitBreakerTripped"]
    assert len(trips) == 1
    trip = events[trips[0]]
    assert trip["reason"] == "consecutive_losses" and trip["consecutive_losses"] == 5
    assert trip["code"] == "CIRCUIT_BREAKER_TRIPPED"
    exits = [e for e in events[: trips[0]] if e["event"] == "ExecutionExit"]
    assert len(exits) == 5 and all(e["pnl"] < 0 for e in exits)
    after = events[trips[0]:]
    assert not any(e["event"] == "OrderSubmitted" for e in after), "no entries after the trip"
    assert any(e["event"] == "RiskRejected" and e["reason"].startswith("circuit_breaker_tripped") for e in after)
    breaker = json.loads((la_env.workspace / "paper" / "circuit_breaker_state.json").read_text())
    assert breaker["tripped"] is True and breaker["reason"] == "consecutive_losses"
    assert breaker["consecutive_losses"] == 5
    assert any("CIRCUIT_BREAKER_TRIPPED" in line for line in (la_env.latest / "events.jsonl").read_text().splitlines())
    # the trip persists: a new session starts halted
    again = run_session(la_env, "0.03", "--scenario", "losing_streak", "--candle-interval", "0.005")
    assert again.returncode == 0
    assert not any(e["event"] == "OrderSubmitted" for e in la_env.events())
    # until the operator resets it
    reset = la_env.run("reset-breaker")
    assert reset.returncode == 0 and "consecutive_losses" in reset.stdout
    breaker = json.loads((la_env.workspace / "paper" / "circuit_breaker_state.json").read_text())
    assert breaker["tripped"] is False and breaker["consecutive_losses"] == 0
    assert run_session(la_env, "0.03", "--scenario", "losing_streak", "--candle-interval", "0.005").returncode == 0
    assert any(e["event"] == "OrderSubmitted" for e in la_env.events())


def test_breaker_stop_session_action(la_env: LaEnv) -> None:
    la_env.edit_yaml("risk.yaml", circuit_breaker={"action": "stop_session"})
    result = run_session(la_env, "0.2", "--scenario", "losing_streak", "--candle-interval", "0.005")
    assert result.returncode == 5, result.stderr
    end = session_end(la_env)
    assert end["stopped_reason"] == "circuit_breaker" and end["open_position"] is False


def test_second_session_refused_then_stop(la_env: LaEnv) -> None:
    first = la_env.start("run", "--duration", "2", *FAST)
    la_env.wait_for(lambda: la_env.lock.exists() and la_env.latest.exists(), what="first session running")
    second = run_session(la_env, "0.05")
    assert second.returncode == 3
    assert "already running" in second.stderr and "Traceback" not in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
    status = json.loads(la_env.run("status", "--json").stdout)
    assert status["state"] == "RUNNING" and status["pid"] == first.pid
    stop = la_env.run("stop")
    assert stop.returncode == 0 and "STOPPED" in stop.stdout
    assert first.wait(timeout=10) == 0
    assert not la_env.lock.exists()
    assert session_end(la_env)["stopped_reason"] == "sigterm"


def test_stale_lock_from_dead_pid_is_recovered(la_env: LaEnv) -> None:
    proc = la_env.start("run", "--duration", "2", *FAST)
    la_env.wait_for(lambda: la_env.lock.exists() and la_env.latest.exists(), what="session running")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert la_env.lock.exists()
    status = la_env.run("status")
    assert status.stdout.startswith("STOPPED") and "stale lock" in status.stdout
    result = run_session(la_env, "0.03")
    assert result.returncode == 0, result.stderr
    recovered = [e for e in la_env.events() if e["event"] == "LockRecovered"]
    assert len(recovered) == 1 and recovered[0]["previous_pid"] == proc.pid
    assert not la_env.lock.exists()


def test_restart_after_kill9_resumes_position_once(la_env: LaEnv) -> None:
    la_env.hold_positions()
    proc = la_env.start("run", "--duration", "2", *FAST)
    la_env.wait_for(lambda: la_env.broker_state.exists() and la_env.state()["positions"], what="an open position")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    before = la_env.state()
    position = before["positions"][0]
    first_run = la_env.latest.resolve()

    result = run_session(la_env, "0.03")
    assert result.returncode == 0, result.stderr
    second_run = la_env.latest.resolve()
    assert second_run != first_run
    events = la_env.events(second_run)
    restored = next(e for e in events if e["event"] == "StateRestored")
    assert restored["position_id"] == position["position_id"]
    # the restored position is closed exactly once, in the second run, and never re-opened
    exits = [e for e in events if e["event"] == "ExecutionExit" and e["position_id"] == position["position_id"]]
    assert len(exits) == 1
    fills_first = [e for e in la_env.events(first_run) if e["event"] == "ExecutionFill"]
    assert [f["position_id"] for f in fills_first].count(position["position_id"]) == 1
    assert not [e for e in events if e["event"] == "ExecutionFill" and e["position_id"] == position["position_id"]]
    after = la_env.state()
    ids = [t["trade_id"] for t in after["trades"]]
    assert len(ids) == len(set(ids)) == len(before["trades"]) + len(trades_rows(second_run))
    assert after["positions"] == []
    start, pnl = Decimal(after["starting_equity"]), sum(Decimal(t["pnl"]) for t in after["trades"])
    assert Decimal(after["equity"]) == start + pnl
    assert json.loads((second_run / "summary.json").read_text())["accounting_ok"] is True


def test_invalid_config_is_refused_with_one_line(la_env: LaEnv) -> None:
    la_env.edit_yaml("risk.yaml", max_daily_loss_usd=500)
    result = run_session(la_env, "0.05")
    assert result.returncode == 2
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "risk.yaml" in err and "max_daily_loss_usd" in err and "50" in err
    assert not (la_env.workspace / "runs").exists(), "nothing written"


def test_invalid_strategy_json_is_refused(la_env: LaEnv) -> None:
    la_env.edit_json("strategies/default.json", trend={"fast_ema": 60, "slow_ema": 48})
    result = run_session(la_env, "0.05")
    assert result.returncode == 2
    assert "default.json" in result.stderr and "fast_ema" in result.stderr
    (la_env.config_dir / "strategies" / "default.json").write_text("{not json")
    result = run_session(la_env, "0.05")
    assert result.returncode == 2 and "not valid JSON" in result.stderr


def test_corrupted_state_is_refused_and_left_untouched(la_env: LaEnv) -> None:
    assert run_session(la_env, "0.03").returncode == 0
    runs_before = sorted(p.name for p in (la_env.workspace / "runs").iterdir())
    original = la_env.broker_state.read_bytes()
    corrupted = original[: len(original) // 2]
    la_env.broker_state.write_bytes(corrupted)
    result = run_session(la_env, "0.03")
    assert result.returncode == 8
    assert "corrupted state file" in result.stderr and "async_broker_state.json" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert la_env.broker_state.read_bytes() == corrupted
    assert sorted(p.name for p in (la_env.workspace / "runs").iterdir()) == runs_before
    assert not la_env.lock.exists()

    tampered = json.loads(original)
    tampered["equity"] = str(Decimal(tampered["equity"]) + 1)
    la_env.broker_state.write_text(json.dumps(tampered))
    result = run_session(la_env, "0.03")
    assert result.returncode == 8 and "disagrees with trades" in result.stderr

    tampered = json.loads(original)
    tampered["schema_version"] = 99
    la_env.broker_state.write_text(json.dumps(tampered))
    result = run_session(la_env, "0.03")
    assert result.returncode == 8 and "schema_version 99" in result.stderr


def test_detach_status_stop(la_env: LaEnv) -> None:
    result = la_env.run("run", "--mode", "live-session", "--duration", "5", "--source", "mock", "--detach", *FAST)
    assert result.returncode == 0, result.stderr
    assert "started session" in result.stdout
    status = json.loads(la_env.run("status", "--json").stdout)
    assert status["state"] == "RUNNING" and status["run_id"]
    pid = status["pid"]
    la_env.wait_for(lambda: json.loads(la_env.run("status", "--json").stdout)["equity"] is not None, what="status")
    human = la_env.run("status").stdout
    assert human.startswith("RUNNING") and f"pid {pid}" in human and "equity" in human and "position" in human
    stop = la_env.run("stop")
    assert stop.returncode == 0 and "STOPPED" in stop.stdout
    with pytest.raises(ProcessLookupError):
        for _ in range(100):
            os.kill(pid, 0)
            time.sleep(0.05)
    assert not la_env.lock.exists()
    assert session_end(la_env)["stopped_reason"] == "sigterm"


def test_watchdog_catches_frozen_loop(la_env: LaEnv) -> None:
    env = {"LA_MOCK__FREEZE_AT_SEC": "1", "LA_MOCK__FREEZE_DURATION_SEC": "60",
           "LA_SESSION__HEARTBEAT_TIMEOUT_SEC": "1.5", "LA_SESSION__SHUTDOWN_GRACE_SEC": "1",
           "LA_SESSION__WATCHDOG_INTERVAL_SEC": "0.2"}
    started = time.monotonic()
    result = run_session(la_env, "1", extra_env=env)
    assert time.monotonic() - started < 30, "the watchdog ended the frozen process, not the freeze"
    assert result.returncode == 7, result.stderr
    end = session_end(la_env)
    assert end["stopped_reason"] == "watchdog_heartbeat" and end["open_position"] is False
    criticals = [r for r in la_env.system_log() if r["level"] == "CRITICAL"]
    assert criticals and "heartbeat" in criticals[0]["message"]
    assert la_env.state()["positions"] == []
    assert not la_env.lock.exists()


def test_watchdog_memory_limit(la_env: LaEnv) -> None:
    result = run_session(la_env, "1", extra_env={"LA_SESSION__MAX_MEMORY_MB": "20", "LA_SESSION__WATCHDOG_INTERVAL_SEC": "0.2"})
    assert result.returncode == 7, result.stderr
    end = session_end(la_env)
    assert end["stopped_reason"] == "watchdog_memory"
    assert any(r["level"] == "CRITICAL" and "RSS" in r["message"] for r in la_env.system_log())
    assert not la_env.lock.exists()


def test_doctor_clean_status_commands(la_env: LaEnv) -> None:
    doctor = la_env.run("doctor", "--fix")
    assert doctor.returncode == 0, doctor.stdout
    assert "all checks passed" in doctor.stdout
    assert run_session(la_env, "0.02").returncode == 0
    clean = la_env.run("clean")
    assert clean.returncode == 0 and not (la_env.workspace / "runs").exists()
    assert la_env.broker_state.exists()
    clean_all = la_env.run("clean", "--all")
    assert clean_all.returncode == 0 and not la_env.broker_state.exists()
    status = la_env.run("status")
    assert status.returncode == 0 and status.stdout.startswith("STOPPED")
    for sub in ("run", "doctor", "clean", "status", "stop"):
        helped = la_env.run(sub, "--help")
        assert helped.returncode == 0 and "usage: la" in helped.stdout
