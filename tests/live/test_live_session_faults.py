"""Live sessions (`la run --live`, real subprocesses) under trading and process faults, against the mock exchange.

Each test proves from the exchange's side (the mock's ledger and account view) how the account was left:
a circuit-breaker stop ends flat, a shutdown that cannot flatten exits 10 and says so, and the watchdog
flattens a live position through the exchange when the event loop is frozen.
"""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from laptop_agents.mock_exchange.testing import (
    MockExchangeHandle,
    running_mock_exchange,
)
from tests.conftest import LaEnv
from tests.live.conftest import KEY
from tests.live.test_live_session_e2e import (
    assert_flat,
    assert_no_duplicate_orders,
    live_args,
    live_lock,
    setup_live,
    trades,
)
from tests.service.receivers import WebhookReceiver

pytestmark = pytest.mark.slow


@pytest.fixture
def mx() -> Iterator[MockExchangeHandle]:
    """Ten 1-minute bars per real second, pushed every 50 ms."""
    with running_mock_exchange(seed=5, time_scale=600, push_interval_ms=50) as handle:
        yield handle


def _summary(la_env: LaEnv) -> dict:
    return json.loads((la_env.latest.resolve() / "summary.json").read_text())


def _assert_books_agree_with_exchange(la_env: LaEnv, mx: MockExchangeHandle) -> None:
    summary = _summary(la_env)
    assert summary["accounting_ok"], summary.get("accounting_detail")
    assert Decimal(summary["ending_equity"]) == Decimal(str(mx.admin.account(KEY)["balance"]))


def _through_stop_loss(fill: dict) -> str:
    """A price beyond the position's exchange-side stop loss."""
    stop = Decimal(str(fill["stop_loss"]))
    return str(stop - 50 if str(fill["position_side"]).lower() == "long" else stop + 50)


def test_circuit_breaker_stop_session_ends_flat(la_env: LaEnv, mx: MockExchangeHandle) -> None:
    la_env.hold_positions()
    la_env.edit_yaml("risk.yaml", circuit_breaker={"max_consecutive_losses": 1, "action": "stop_session"})
    setup_live(la_env, mx)
    proc = la_env.start(*live_args(mx, "5"))
    fill = la_env.wait_for_event("ExecutionFill", timeout=60)
    mx.admin.set_price(_through_stop_loss(fill))  # the exchange-side stop fires: a certain loss
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 5, err[-3000:]
    events = la_env.events()
    trips = [e for e in events if e["event"] == "CircuitBreakerTripped"]
    assert len(trips) == 1 and trips[0]["reason"] == "consecutive_losses", trips
    exits = [e for e in events if e["event"] == "ExecutionExit"]
    assert len(exits) == 1 and exits[0]["reason"] == "stop_loss" and Decimal(str(exits[0]["pnl"])) < 0
    assert events[-1]["event"] == "SessionEnd" and events[-1]["stopped_reason"] == "circuit_breaker"
    assert events[-1]["open_position"] is False
    assert [e for e in events if e["event"] == "ExecutionFill"] == [fill], "no entry after the trip"
    assert_flat(mx)
    assert_no_duplicate_orders(mx)
    assert len(trades(la_env.latest.resolve())) == 1
    _assert_books_agree_with_exchange(la_env, mx)
    assert not live_lock(la_env).exists()
    breaker = json.loads((la_env.workspace / "live" / "circuit_breaker_state.json").read_text())
    assert breaker["tripped"] is True and breaker["reason"] == "consecutive_losses"


CLOSE_PATHS = ["trade/place_order", "trade/close_all_position", "trade/cancel_all_orders",
               "trade/flash_close_position"]


def test_shutdown_that_cannot_flatten_exits_10_alerts_and_releases_the_lock(la_env: LaEnv,
                                                                             mx: MockExchangeHandle) -> None:
    la_env.hold_positions()
    setup_live(la_env, mx)
    webhook = WebhookReceiver()
    try:
        urls = la_env.root / "alert-urls"
        urls.write_text(webhook.url + "\n")
        proc = la_env.start("serve", "--live", "--source", "bitunix", "--rest-url", mx.rest_url, "--ws-url",
                            mx.public_ws_url, "--no-http", extra_env={"LA_ALERT_URLS_FILE": str(urls)})
        la_env.wait_for_event("ExecutionFill", timeout=60)
        position = mx.admin.account(KEY)["positions"]
        assert len(position) == 1
        # the exchange refuses to close for the whole exit budget; the market is held still meanwhile so the
        # exchange-side stop cannot close it for us (at 600x a long refused shutdown would otherwise reach it)
        mx.admin.set_faults(rest_error_share=1.0, rest_fault_paths=CLOSE_PATHS, price_paused=True)
        started = time.monotonic()
        proc.terminate()
        out, err = proc.communicate(timeout=120)
        shutdown_sec = time.monotonic() - started
        assert proc.returncode == 10, err[-3000:]
        # one clear line for the operator, no traceback
        assert "Traceback" not in err, err[-3000:]
        flat_lines = [line for line in err.splitlines() if "account is NOT flat" in line]
        assert len(flat_lines) == 1, err[-3000:]
        assert "CRITICAL" in flat_lines[0] and "close it on the exchange now" in flat_lines[0]
        assert "(exit 10)" in out
        end = la_env.events()[-1]
        assert end["event"] == "SessionEnd" and end["exit_code"] == 10 and end["open_position"] is True
        assert any("Shutdown NOT flat" in m["title"] for m in webhook.received), webhook.received
        assert not live_lock(la_env).exists()
        state = json.loads((la_env.workspace / "live" / "async_broker_state.json").read_text())
        assert state["positions"] and state["positions"][0]["position_id"] == position[0]["positionId"]
        print(f"shutdown_sec={shutdown_sec:.1f}")
    finally:
        webhook.close()
    # the exchange recovers: the next session adopts the position and ends flat
    mx.admin.set_faults(rest_error_share=0.0, rest_fault_paths=[], price_paused=False)
    result = la_env.run(*live_args(mx, "0.05"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert_flat(mx)
    assert_no_duplicate_orders(mx)
    _assert_books_agree_with_exchange(la_env, mx)
    assert not live_lock(la_env).exists()


FREEZER = '''
"""Test-only: block the `la` event loop once, when the file named by LA_TEST_FREEZE_FILE appears."""
import os
import time

_path = os.environ.get("LA_TEST_FREEZE_FILE")
if _path:
    try:
        from laptop_agents.session.kill_switch import KillSwitch
    except Exception:  # noqa: BLE001
        KillSwitch = None
    if KillSwitch is not None:
        _reason = KillSwitch.reason

        def reason(self):
            if os.path.exists(_path):
                os.remove(_path)
                time.sleep(float(os.environ.get("LA_TEST_FREEZE_SEC", "60")))  # the control loop's thread
            return _reason(self)

        KillSwitch.reason = reason
'''


def _freezer(root: Path) -> dict[str, str]:
    site = root / "freezer"
    site.mkdir()
    (site / "sitecustomize.py").write_text(textwrap.dedent(FREEZER))
    return {"PYTHONPATH": str(site), "LA_TEST_FREEZE_FILE": str(root / "freeze-now"), "LA_TEST_FREEZE_SEC": "120"}


def test_watchdog_flattens_a_live_position_when_the_loop_freezes(la_env: LaEnv, mx: MockExchangeHandle) -> None:
    la_env.hold_positions()
    la_env.edit_yaml("settings.yaml", session={"heartbeat_timeout_sec": 1.5, "shutdown_grace_sec": 1,
                                               "watchdog_interval_sec": 0.2})
    setup_live(la_env, mx)
    env = _freezer(la_env.root)
    proc = la_env.start(*live_args(mx, "5"), extra_env=env)
    fill = la_env.wait_for_event("ExecutionFill", timeout=60)
    assert mx.admin.account(KEY)["positions"], "a position is open on the exchange"
    started = time.monotonic()
    Path(env["LA_TEST_FREEZE_FILE"]).write_text("freeze\n")
    _out, err = proc.communicate(timeout=60)
    elapsed = time.monotonic() - started
    assert elapsed < 30, "the watchdog ended the frozen process, not the freeze"
    assert proc.returncode == 7, err[-3000:]
    events = la_env.events()
    assert any(e["event"] == "WatchdogTriggered" and e["reason"] == "watchdog_heartbeat" for e in events)
    exits = [e for e in events if e["event"] == "ExecutionExit"]
    assert len(exits) == 1 and exits[0]["reason"] == "watchdog" and exits[0]["position_id"] == fill["position_id"]
    end = events[-1]
    assert end["event"] == "SessionEnd" and end["stopped_reason"] == "watchdog_heartbeat"
    assert end["open_position"] is False and end["exit_code"] == 7
    criticals = [r for r in la_env.system_log() if r["level"] == "CRITICAL"]
    assert criticals and "heartbeat" in criticals[0]["message"]
    assert_flat(mx)
    assert_no_duplicate_orders(mx)
    _assert_books_agree_with_exchange(la_env, mx)
    assert json.loads((la_env.workspace / "live" / "async_broker_state.json").read_text())["positions"] == []
    assert not live_lock(la_env).exists()
    print(f"watchdog_exit_sec={elapsed:.1f}")


def test_exchange_side_tpsl_exits_agree_with_the_ledger(la_env: LaEnv, mx: MockExchangeHandle) -> None:
    """Stops and targets a fraction of an ATR away at 600x: the exchange closes positions, sometimes between the
    entry's fill and the broker's position query; every trade is booked once, from the exchange's fills.

    0.3 ATR, not less: at 600x the price moves a minute's worth between the candle and the order, so a tighter
    stop is on the wrong side of the price by then for most signals (refused before sending, or 30020/30021 by
    the exchange, both correct); at 0.15 ATR a 15 s session often got no entry at all, under any preset."""
    la_env.edit_json("strategies/default.json", exits={"stop_atr_mult": 0.3, "take_profit_r": 1,
                                                       "max_hold_candles": 0}, cooldown_candles=1)
    setup_live(la_env, mx)
    result = la_env.run(*live_args(mx, "0.25"))
    assert result.returncode == 0, result.stderr[-3000:]
    rows = trades(la_env.latest.resolve())
    reasons = {r["exit_reason"] for r in rows}
    assert reasons & {"take_profit", "stop_loss"}, rows
    fills = mx.admin.events("fill", account=KEY)
    assert len(fills) == 2 * len(rows), (len(fills), len(rows))
    assert sum(Decimal(str(f["fee"])) for f in fills) == sum(Decimal(r["fees"]) for r in rows)
    assert sum(Decimal(str(f["realizedPNL"] or 0)) for f in fills) == sum(Decimal(r["gross_pnl"]) for r in rows)
    for row in rows:  # trade by trade where the positionId is known (the private stream's CLOSE push names it)
        mine = [f for f in fills if f["positionId"] == row["trade_id"]]
        if not row["trade_id"].startswith("order-"):
            assert len(mine) == 2, (row, mine)
            assert sum(Decimal(str(f["fee"])) for f in mine) == Decimal(row["fees"])
    assert_flat(mx)
    assert_no_duplicate_orders(mx)
    _assert_books_agree_with_exchange(la_env, mx)
    # the session's risk checks saw every trade, including those booked inside submit
    breaker = json.loads((la_env.workspace / "live" / "circuit_breaker_state.json").read_text())
    trailing = 0
    for row in reversed(rows):
        if Decimal(row["pnl"]) >= 0:
            break
        trailing += 1
    assert breaker["consecutive_losses"] == trailing, (breaker, rows)
    races = [r for r in la_env.system_log() if "before la saw it open" in r["message"]]
    print(f"trades={len(rows)} reasons={sorted(reasons)} races={len(races)}")


def test_watchdog_that_cannot_flatten_exits_10_and_releases_the_lock(la_env: LaEnv, mx: MockExchangeHandle) -> None:
    la_env.hold_positions()
    la_env.edit_yaml("settings.yaml", session={"heartbeat_timeout_sec": 1.5, "shutdown_grace_sec": 1,
                                               "watchdog_interval_sec": 0.2})
    setup_live(la_env, mx)
    env = _freezer(la_env.root)
    proc = la_env.start(*live_args(mx, "5"), extra_env=env)
    la_env.wait_for_event("ExecutionFill", timeout=60)
    mx.admin.set_faults(rest_error_share=1.0, rest_fault_paths=CLOSE_PATHS, price_paused=True)  # no stop fires
    Path(env["LA_TEST_FREEZE_FILE"]).write_text("freeze\n")
    _out, err = proc.communicate(timeout=90)
    assert proc.returncode == 10, err[-3000:]
    end = la_env.events()[-1]
    assert end["event"] == "SessionEnd" and end["stopped_reason"] == "watchdog_heartbeat"
    assert end["exit_code"] == 10 and end["open_position"] is True
    assert any("watchdog could not flatten" in r["message"] and "NOT flat" in r["message"]
               for r in la_env.system_log() if r["level"] == "CRITICAL")
    assert "Traceback" not in err, err[-3000:]
    assert not live_lock(la_env).exists()
    assert mx.admin.account(KEY)["positions"], "the exchange refused every close"
    # the exchange recovers: the next session adopts the position and ends flat
    mx.admin.set_faults(rest_error_share=0.0, rest_fault_paths=[], price_paused=False)
    result = la_env.run(*live_args(mx, "0.05"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert_flat(mx)
    assert_no_duplicate_orders(mx)
    _assert_books_agree_with_exchange(la_env, mx)
