"""`la run --live` against the mock exchange: one session per account, and ordinary exchange failures end with
their own exit code and one line (cause and fix), never exit 1 with a traceback. Asserted from the mock's ledger.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from decimal import Decimal

import pytest

from laptop_agents.config_loader import load_config
from laptop_agents.mock_exchange.testing import MockExchangeHandle, running_mock_exchange
from laptop_agents.security.credentials import Credentials
from laptop_agents.security.credentials_file import write_credentials_file
from tests.conftest import LaEnv
from tests.live.conftest import KEY, record_passed_preflight
from tests.live.test_live_session_e2e import assert_flat, live_args, live_lock, setup_live, trades
from tests.security.helpers import FAST, passphrase_source

pytestmark = pytest.mark.slow


@pytest.fixture
def mx() -> Iterator[MockExchangeHandle]:
    with running_mock_exchange(seed=5, time_scale=600, push_interval_ms=50) as handle:
        yield handle


def _orders(mx: MockExchangeHandle) -> list[dict]:
    return [r for r in mx.admin.events("order_request", account=KEY) if r["accepted"]]


def _one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.startswith("la: error:")]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


def test_second_live_session_on_the_same_account_from_another_directory_is_refused(
        la_env: LaEnv, mx: MockExchangeHandle) -> None:
    la_env.hold_positions()
    setup_live(la_env, mx)
    first = la_env.start(*live_args(mx, "2"))
    la_env.wait_for_event("ExecutionFill", timeout=60)
    held = lambda: [(p["positionId"], p["side"], p["qty"]) for p in mx.admin.account(KEY)["positions"]]  # noqa: E731
    position = held()
    orders_before = _orders(mx)
    assert position

    # the same account, config and credentials, from a different directory and workspace
    other = LaEnv(root=la_env.root / "elsewhere", workspace=la_env.root / "elsewhere" / ".workspace",
                  config_dir=la_env.config_dir, env=dict(la_env.env))
    other.root.mkdir()
    second = other.run(*live_args(mx, "0.2"), timeout=60)
    assert second.returncode == 3, second.stderr[-3000:]
    line = _one_error_line(second.stderr)
    assert f"pid {first.pid}" in line and str(la_env.workspace) in line and "account" in line
    assert KEY not in second.stderr and KEY not in "".join(p.name for p in (la_env.root / "locks").iterdir())
    # the refused session sent nothing: the first one's position is as it was
    assert _orders(mx) == orders_before and held() == position
    assert not live_lock(other).exists()

    assert la_env.run("stop", "--live").returncode == 0
    assert first.wait(timeout=30) == 0
    assert_flat(mx)


@pytest.mark.parametrize("fault, code, words", [
    ({"rest_error_next": 1000}, 12, "exchange is unavailable"),
    ({"rate_limit_next": 1000}, 12, "rate-limiting"),
    (None, 13, "rejected our API credentials"),
    ({"clock_skew_ms": 9000}, 15, "s behind the exchange's"),
], ids=["503_at_start", "429_at_start", "wrong_secret", "clock_skew"])
def test_exchange_failure_at_start_exits_with_its_code_and_one_line(
        la_env: LaEnv, mx: MockExchangeHandle, fault: dict | None, code: int, words: str) -> None:
    setup_live(la_env, mx)
    if fault is None:  # the same API key (so the signed opt-in still matches), a wrong secret
        source = passphrase_source(la_env.root / "secrets")
        creds = la_env.root / "secrets" / "bitunix.credentials.enc"
        creds.unlink()
        write_credentials_file(creds, Credentials(KEY, "not-the-secret-0123456789abcdef"), source.read(), params=FAST)
        # the preflight passed under these credentials (its record is sealed with them); the exchange refuses them
        record_passed_preflight(la_env.workspace / "live", load_config(la_env.config_dir, env={}),
                                secret="not-the-secret-0123456789abcdef")
    else:
        mx.admin.set_faults(**fault)
    result = la_env.run(*live_args(mx, "0.2"), timeout=90)
    assert result.returncode == code, result.stderr[-3000:]
    line = _one_error_line(result.stderr)
    assert words in line, line
    assert "not-the-secret" not in result.stderr
    assert _orders(mx) == []
    assert not live_lock(la_env).exists()
    assert (la_env.root / "locks").is_dir()  # the account lock was taken (then released)
    assert not list((la_env.root / "locks").glob("*.lock")), "the host-wide account lock was left behind"
    assert KEY not in result.stderr
    assert not (la_env.workspace / "live" / "async_broker_state.json").exists()


def test_exchange_outage_mid_session_is_not_a_bug(la_env: LaEnv, mx: MockExchangeHandle) -> None:
    """Every REST call fails, with a position open, while candles keep coming over the WS: past the bound a live
    session may run blind (session.stale_data_timeout_sec) it stops; the exchange answers again while it shuts
    down: exit 12, flat on the exchange, one error line, never exit 1 and a traceback, never running on blind."""
    la_env.hold_positions()
    # a short bound: the position is still open when the session stops, so its shutdown must close it
    la_env.edit_yaml("settings.yaml", session={"stale_data_timeout_sec": 5})
    setup_live(la_env, mx)
    proc = la_env.start(*live_args(mx, "2"))
    la_env.wait_for_event("ExecutionFill", timeout=60)
    mx.admin.set_faults(rest_error_share=1.0)
    la_env.wait_for(lambda: proc.poll() is not None or any(
        "exchange_unavailable" in r["message"] for r in la_env.system_log()), timeout=60, what="the session stopping")
    mx.admin.set_faults(rest_error_share=0.0)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 12, err[-3000:]
    line = _one_error_line(err)
    assert "exchange is unavailable" in line and "check the exchange's status" in line
    assert_flat(mx)
    end = [e for e in la_env.events() if e["event"] == "SessionEnd"][-1]
    assert end["stopped_reason"] == "exchange_unavailable" and end["exit_code"] == 12 and not end["open_position"]


def test_round_trip_closed_while_down_lands_in_the_restarted_runs_trades_csv(
        la_env: LaEnv, mx: MockExchangeHandle) -> None:
    """kill -9 with a position open; the exchange's stop loss closes it while no session runs. The restart books
    that round trip while opening its broker: its trades.csv has the row (no earlier run could write it)."""
    la_env.hold_positions()
    setup_live(la_env, mx)
    proc = la_env.start(*live_args(mx, "5"))
    fill = la_env.wait_for_event("ExecutionFill", timeout=60)
    state = la_env.workspace / "live" / "async_broker_state.json"
    la_env.wait_for(lambda: state.exists() and json.loads(state.read_text())["positions"], timeout=10,
                    what="the position persisted")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    first_run = la_env.latest.resolve()
    stop = Decimal(str(fill["stop_loss"]))
    mx.admin.set_price(str(stop - 50 if str(fill["position_side"]).lower() == "long" else stop + 50))
    la_env.wait_for(lambda: not mx.admin.account(KEY)["positions"], timeout=10, what="the exchange's stop loss")

    # a restart killed after journaling that booking, before the state save: it must not have written the row
    interrupted = la_env.run(*live_args(mx, "0.05"), extra_env={"LA_TEST_SIGKILL_BEFORE_EXIT_SAVED": "1"})
    assert interrupted.returncode == -signal.SIGKILL, interrupted.stderr[-3000:]
    interrupted_run = la_env.latest.resolve()
    assert not [r for r in trades(interrupted_run) if r["trade_id"] == fill["position_id"]]

    result = la_env.run(*live_args(mx, "0.05"))
    assert result.returncode == 0, result.stderr[-3000:]
    second_run = la_env.latest.resolve()
    assert second_run not in (first_run, interrupted_run)
    rows = trades(second_run)
    mine = [r for r in rows if r["trade_id"] == fill["position_id"]]
    assert len(mine) == 1, rows
    assert not [r for r in trades(first_run) if r["trade_id"] == fill["position_id"]]
    summary = json.loads((second_run / "summary.json").read_text())
    assert summary["accounting_ok"], summary.get("accounting_detail")
    assert_flat(mx)


def test_kill_after_the_state_save_loses_no_trades_csv_row_live(la_env: LaEnv, mx: MockExchangeHandle) -> None:
    """SIGKILL right after a live exit is saved in the state, before its trades.csv row: the next start appends the
    row to the killed run's trades.csv. Judged from the mock's ledger: every fill in trades.csv and the journal."""
    from laptop_agents.mock_exchange.ledger_audit import audit, read_runs
    from tests.e2e.test_lock_and_exits import all_run_records, assert_complete_trail

    setup_live(la_env, mx)
    state = la_env.workspace / "live" / "async_broker_state.json"
    killed = la_env.run(*live_args(mx, "2"), extra_env={"LA_TEST_SIGKILL_AFTER_EXIT_SAVED": "1"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    first_run = la_env.latest.resolve()
    booked = [t["trade_id"] for t in json.loads(state.read_text())["trades"]]
    assert len(booked) == 1 and trades(first_run) == []  # the window hit: booked, no row

    result = la_env.run(*live_args(mx, "0.05"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert [r["trade_id"] for r in trades(first_run)] == booked
    assert_complete_trail([t["trade_id"] for t in json.loads(state.read_text())["trades"]],
                          all_run_records(la_env, "live"))
    ledger = mx.admin.ledger(type=["order_request", "fill"], account=KEY)
    verdict = audit(ledger["events"], ledger["accounts"][KEY], read_runs(la_env.workspace))
    assert verdict.fills and verdict.ok, verdict.problems()
    assert_flat(mx)
