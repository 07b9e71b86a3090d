"""What an operator sees in a terminal: a line per order/fill/exit, a status line, --quiet/--verbose,
and `la status` telling the truth after a kill -9."""

from __future__ import annotations

import json
import re
import signal

import pytest

from tests.conftest import LaEnv

FAST = ["--source", "mock", "--candle-interval", "0.01"]
LEVEL = re.compile(r"^\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL)\s")


def levels(stderr: str) -> set[str]:
    return {m.group(1) for line in stderr.splitlines() if (m := LEVEL.match(line))}


def count(events: list[dict], name: str) -> int:
    return sum(1 for e in events if e["event"] == name)


@pytest.mark.slow
def test_lines_per_order_fill_exit_status_line_and_verbosity(la_env: LaEnv) -> None:
    r = la_env.run("run", "--duration", "0.04", *FAST, "--status-every", "0.5")
    assert r.returncode == 0, r.stderr
    events = la_env.events()
    assert count(events, "OrderSubmitted") > 0
    lines = r.stderr.splitlines()
    assert sum(" ORDER " in x for x in lines) == count(events, "OrderSubmitted")
    assert sum(" FILL " in x for x in lines) == count(events, "ExecutionFill")
    assert sum(" EXIT " in x for x in lines) == count(events, "ExecutionExit")
    exit_line = next(x for x in lines if " EXIT " in x)
    assert "pnl " in exit_line and "equity " in exit_line
    status = [x for x in lines if "status: up" in x]
    assert status and "candles" in status[0] and "equity" in status[0] and "position" in status[0]
    assert "DEBUG" not in levels(r.stderr)

    quiet = la_env.run("run", "--duration", "0.03", *FAST, "--quiet")
    assert quiet.returncode == 0, quiet.stderr
    assert levels(quiet.stderr) <= {"WARNING", "ERROR", "CRITICAL"}, quiet.stderr[:2000]
    assert " ORDER " not in quiet.stderr and "session" in quiet.stdout  # the one-line result stays on stdout

    verbose = la_env.run("run", "--duration", "0.03", *FAST, "--verbose")
    assert verbose.returncode == 0, verbose.stderr
    assert "DEBUG" in levels(verbose.stderr) and " signal " in verbose.stderr

    both = la_env.run("run", "--duration", "0.03", *FAST, "--quiet", "--verbose")
    assert both.returncode == 2 and "--quiet and --verbose" in both.stderr and "Traceback" not in both.stderr
    bt = la_env.run("run", "--mode", "backtest", "--candles", "300", "--quiet")
    assert bt.returncode == 0 and levels(bt.stderr) <= {"WARNING", "ERROR", "CRITICAL"}


def test_status_after_kill9_shows_the_open_position_and_how_the_run_ended(la_env: LaEnv) -> None:
    la_env.hold_positions()
    proc = la_env.start("run", "--duration", "1", *FAST)
    la_env.wait_for(lambda: la_env.broker_state.exists() and la_env.state()["positions"], what="an open position")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    held = la_env.state()["positions"][0]

    st = la_env.run("status")
    assert st.returncode == 0 and st.stdout.startswith("STOPPED")
    assert "None" not in st.stdout and "died without a clean shutdown" in st.stdout
    assert "OPEN POSITION" in st.stdout and f"{held['side']} {held['qty']} @ {held['entry_price']}" in st.stdout
    js = json.loads(la_env.run("status", "--json").stdout)
    assert js["position"]["position_id"] == held["position_id"] and js["equity"] == la_env.state()["equity"]
    assert "died" in js["last_stopped_reason"]

    # the next (quiet) run: the stale-lock warning stays visible, info lines do not; it closes the position
    again = la_env.run("run", "--duration", "0.03", *FAST, "--quiet")
    assert again.returncode == 0, again.stderr
    assert "recovered a stale lock" in again.stderr and levels(again.stderr) <= {"WARNING", "ERROR", "CRITICAL"}
    st = la_env.run("status")
    assert "OPEN POSITION" not in st.stdout and ": completed, equity" in st.stdout


def test_serve_quiet_hides_info_but_journals_the_trade_lines(la_env: LaEnv) -> None:
    """`la serve --quiet` used to log at INFO anyway (the session re-ran the logging set-up)."""
    proc = la_env.start("serve", "--source", "mock", "--candle-interval", "0.01", "--no-http", "--quiet",
                        "--status-every", "0.2")
    la_env.wait_for(lambda: count(la_env.events(), "ExecutionExit") > 0, what="a closed trade")
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert levels(stderr) <= {"WARNING", "ERROR", "CRITICAL"}, stderr[:2000]
    console = [r["message"] for r in la_env.system_log() if r.get("component") == "console"]
    assert any(m.startswith("ORDER ") for m in console) and any(m.startswith("EXIT ") for m in console)
    assert any(m.startswith("status: up") for m in console)
