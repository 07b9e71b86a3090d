"""BitunixBroker against the mock exchange: trades, faults, flattening, restart reconciliation."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from laptop_agents.bitunix import (
    OrderSide,
    OrderType,
    PlaceOrderRequest,
    TransportError,
)
from laptop_agents.core.events import EventName
from laptop_agents.core.models import Side
from laptop_agents.execution.bitunix_broker import (
    ORDER_REJECTED,
    BitunixBroker,
    NotFlatError,
    OtherInstanceError,
    ReconcileError,
)
from laptop_agents.mock_exchange.testing import (
    MockExchangeHandle,
    running_mock_exchange,
)
from laptop_agents.resilience.retry import RetryPolicy
from tests.live.conftest import (
    T0,
    accepted_orders,
    candle,
    intent,
    ledger_fills,
    make_broker,
    price_of,
    run,
)

SAVED_AT = datetime(2026, 11, 29, tzinfo=UTC)  # the state files' saved_at stamp (written, never read back)

pytestmark = pytest.mark.dialects  # runs once per mock dialect preset (docs/bitunix-dialects.md)

MX = {"seed": 11, "time_scale": 0}


def _names(events: list) -> list[str]:
    return [e.name for e in events]


def _assert_ledger_agrees(mx: MockExchangeHandle, broker: BitunixBroker) -> None:
    fills = ledger_fills(mx)
    net = sum(Decimal(f["realizedPNL"]) - Decimal(f["fee"]) for f in fills)
    account = mx.admin.account()
    assert broker.equity == Decimal(account["balance"])
    assert broker.equity - broker.starting_equity == net
    assert sum(t.pnl for t in broker.trades) == net
    broker.verify_accounting()


@pytest.mark.slow
def test_opens_and_closes_trades_and_the_ledger_agrees() -> None:
    with running_mock_exchange(**MX) as mx:
        async def scenario() -> None:
            broker = make_broker(mx)
            start = await broker.start(T0)
            assert start[-1].name == EventName.STATE_RESTORED and broker.position is None
            p = price_of(mx)
            events = await broker.submit(intent(Side.LONG, p), candle(p), T0)
            assert _names(events) == [EventName.ORDER_SUBMITTED, EventName.EXECUTION_FILL]
            fill = events[1].data
            assert fill["qty"] == Decimal("0.01") and fill["fee"] > 0 and broker.position is not None
            assert set(events[1].data) >= {"order_id", "client_id", "position_id", "price", "equity", "liquidity"}
            assert await broker.on_candle(candle(p, 1), T0) == ([], None)
            events, trade = await broker.close_position("max_hold", p, T0, T0)
            assert trade is not None and trade.exit_reason == "max_hold" and events[0].name == EventName.EXECUTION_EXIT
            # second trade: a short closed by the exchange-side take profit
            p = price_of(mx)
            events = await broker.submit(intent(Side.SHORT, p), candle(p, 2), T0)
            assert broker.position is not None
            mx.admin.set_price(str(broker.position.take_profit - 10))
            _, trade = await broker.on_candle(candle(p, 3), T0)
            assert trade is not None and trade.exit_reason == "take_profit" and trade.pnl > 0
            assert broker.position is None and len(broker.trades) == 2
            _assert_ledger_agrees(mx, broker)
            assert mx.admin.account()["tradeCount"] == 4
            await broker.shutdown("test", T0)

        run(scenario)


def test_stop_loss_on_the_exchange_is_booked_as_stop_loss() -> None:
    with running_mock_exchange(**MX) as mx:
        async def scenario() -> None:
            broker = make_broker(mx)
            await broker.start(T0)
            p = price_of(mx)
            await broker.submit(intent(Side.LONG, p), candle(p), T0)
            mx.admin.set_price(str(broker.position.stop_loss - 5))  # type: ignore[union-attr]
            _, trade = await broker.on_candle(candle(p, 1), T0)
            assert trade is not None and trade.exit_reason == "stop_loss" and trade.pnl < 0
            _assert_ledger_agrees(mx, broker)
            await broker.shutdown("test", T0)

        run(scenario)


@pytest.mark.parametrize("fault", [
    {"rest_error_next": 1, "rest_fault_phase": "after"},  # 503 after the order was placed
    {"rest_hang_next": 1, "rest_hang_s": 1.5, "rest_fault_phase": "after"},  # response lost: client times out
])  # a 5xx before processing (nothing placed) is an entry that may still land: test_live_entry_in_flight.py
def test_5xx_and_timeouts_on_place_order_never_duplicate(fault: dict) -> None:
    with running_mock_exchange(**MX) as mx:
        async def scenario() -> None:
            broker = make_broker(mx, timeout_sec=0.5)
            await broker.start(T0)
            mx.admin.set_faults(rest_fault_paths=["trade/place_order"], **fault)
            p = price_of(mx)
            events = await broker.submit(intent(Side.LONG, p), candle(p), T0)
            assert _names(events) == [EventName.ORDER_SUBMITTED, EventName.EXECUTION_FILL]
            assert len(accepted_orders(mx)) == 1
            assert len(ledger_fills(mx)) == 1
            account = mx.admin.account()
            assert len(account["positions"]) == 1 and Decimal(account["positions"][0]["qty"]) == Decimal("0.01")
            # placed-but-unanswered orders are found by the clientId lookup, never sent a second time
            assert not [r for r in mx.admin.events("order_request") if r["duplicate"]]
            await broker.shutdown("test", T0)
            assert len(accepted_orders(mx)) == 2  # entry + one close

        run(scenario)


def test_rate_limits_back_off_and_recover() -> None:
    with running_mock_exchange(**MX) as mx:
        async def scenario() -> None:
            broker = make_broker(mx)
            await broker.start(T0)
            mx.admin.set_faults(rate_limit_next=3)
            p = price_of(mx)
            events = await broker.submit(intent(Side.LONG, p), candle(p), T0)
            assert EventName.EXECUTION_FILL in _names(events)
            assert len(accepted_orders(mx)) == 1
            assert broker.client.transport.stats.retries >= 3
            await broker.shutdown("test", T0)

        run(scenario)


def test_insufficient_balance_and_rejects_are_events_not_crashes() -> None:
    with running_mock_exchange(**MX) as mx:
        async def scenario() -> None:
            broker = make_broker(mx)
            await broker.start(T0)
            p = price_of(mx)
            mx.admin.set_faults(reject_orders_next=1)
            events = await broker.submit(intent(Side.LONG, p), candle(p), T0)
            assert _names(events) == [ORDER_REJECTED]
            assert events[0].data["reason"] == "insufficient_balance" and events[0].data["code"] == 20003
            assert broker.position is None
            events = await broker.submit(intent(Side.LONG, p, qty="5"), candle(p), T0)  # 5 BTC: far beyond 10k USDT
            assert events[0].data["reason"] == "insufficient_balance"
            mx.admin.set_faults(reject_orders_next=1, reject_orders_code=30016)
            events = await broker.submit(intent(Side.LONG, p), candle(p), T0)
            assert events[0].data["reason"] == "rejected" and events[0].data["code"] == 30016
            events = await broker.submit(intent(Side.LONG, p), candle(p), T0)
            assert EventName.EXECUTION_FILL in _names(events)
            await broker.shutdown("test", T0)
            assert broker.position is None

        run(scenario)


def test_checks_before_sending_refuse_without_a_request() -> None:
    with running_mock_exchange(**MX) as mx:
        async def scenario() -> None:
            broker = make_broker(mx)
            await broker.start(T0)
            p = price_of(mx)
            cases = {
                "qty_below_min": intent(Side.LONG, p, qty="0.00004"),
                "qty_above_max": intent(Side.LONG, p, qty="60000"),
                "price_protection": intent(Side.LONG, p, reference=p * Decimal("1.05")),
                "tpsl_invalid": intent(Side.SHORT, p).__class__(Side.LONG, Decimal("0.01"), p + 10, p + 20, p),
            }
            for code, it in cases.items():
                events = await broker.submit(it, candle(p), T0)
                assert _names(events) == [ORDER_REJECTED], code
                assert events[0].data["reason"] == code and events[0].data["sent"] is False
            assert mx.admin.events("order_request") == []
            await broker.shutdown("test", T0)

        run(scenario)


def test_close_all_leaves_the_account_flat_with_no_open_orders() -> None:
    with running_mock_exchange(**MX) as mx:
        async def scenario() -> None:
            broker = make_broker(mx)
            await broker.start(T0)
            p = price_of(mx)
            await broker.submit(intent(Side.LONG, p), candle(p), T0)
            stray = PlaceOrderRequest("BTCUSDT", OrderSide.BUY, Decimal("0.01"), OrderType.LIMIT,
                                      price=(p * Decimal("0.8")).quantize(Decimal("0.1")), client_id="la-stray-1")
            await broker.client.place_order(stray)
            assert mx.admin.account()["openOrders"]
            _, trade = await broker.shutdown("kill_switch", T0)
            assert trade is not None and trade.exit_reason == "kill_switch"
            account = mx.admin.account()
            assert account["positions"] == [] and account["openOrders"] == []
            _assert_ledger_agrees(mx, broker)

        run(scenario)


@pytest.mark.slow
def test_restart_adopts_the_exchange_position_without_duplicate_orders() -> None:
    with running_mock_exchange(**MX) as mx:
        async def scenario() -> None:
            first = make_broker(mx)
            await first.start(T0)
            p = price_of(mx)
            await first.submit(intent(Side.LONG, p), candle(p), T0)
            state = first.to_state()
            await first.client.close()  # "kill -9": no shutdown, position left open
            orders_before = len(mx.admin.events("order_request"))

            second = make_broker(mx)
            second.restore(state)
            events = await second.start(T0)
            assert events[-1].data.get("resumed_position") == state["positions"][0]["position_id"]
            assert second.position is not None and second.position.stop_loss == first.position.stop_loss  # type: ignore[union-attr]
            assert len(mx.admin.events("order_request")) == orders_before

            third = make_broker(mx)  # no local state: an la-opened position is another session's, never adopted
            with pytest.raises(OtherInstanceError, match="another la instance"):
                await third.start(T0)
            assert len(mx.admin.events("order_request")) == orders_before
            await third.client.close()

            fourth = make_broker(mx)  # the same instance after losing only the position from its state: adopt it
            fourth.restore({**state, "positions": [], "entry_order_id": None,
                            "equity": str(Decimal(state["equity"]) + Decimal(state["positions"][0]["entry_fee"]))})
            events = await fourth.start(T0)
            assert events[-1].data.get("adopted_position") == state["positions"][0]["position_id"]
            assert fourth.position is not None and fourth.position.qty == Decimal("0.01")
            assert len(mx.admin.events("order_request")) == orders_before
            await fourth.client.close()

            _, trade = await second.shutdown("session_end", T0)
            assert trade is not None
            account = mx.admin.account()
            assert account["positions"] == [] and account["openOrders"] == []
            assert len(accepted_orders(mx)) == 2
            _assert_ledger_agrees(mx, second)

        run(scenario)


def test_position_closed_while_offline_is_booked_at_restart() -> None:
    with running_mock_exchange(**MX) as mx:
        async def scenario() -> None:
            first = make_broker(mx)
            await first.start(T0)
            p = price_of(mx)
            await first.submit(intent(Side.LONG, p), candle(p), T0)
            state = first.to_state()
            await first.client.close()
            mx.admin.set_price(str(first.position.stop_loss - 5))  # type: ignore[union-attr]
            second = make_broker(mx)
            second.restore(state)
            events = await second.start(T0)
            assert EventName.EXECUTION_EXIT in _names(events)
            assert second.trades[-1].exit_reason == "stop_loss" and second.position is None
            _assert_ledger_agrees(mx, second)
            await second.shutdown("test", T0)

        run(scenario)


def test_a_failed_query_at_start_is_an_error_never_flat() -> None:
    with running_mock_exchange(**MX) as mx:
        mx.admin.set_faults(rest_error_share=1.0, rest_fault_paths=["position/get_pending_positions"])

        async def scenario() -> None:
            broker = make_broker(mx)
            try:
                with pytest.raises(TransportError):
                    await broker.start(T0)
                assert not broker.started
            finally:
                await broker.client.close()

        run(scenario)


def test_foreign_open_orders_refuse_start() -> None:
    with running_mock_exchange(**MX) as mx:
        async def scenario() -> None:
            broker = make_broker(mx)
            p = price_of(mx)
            await broker.client.place_order(PlaceOrderRequest(
                "BTCUSDT", OrderSide.BUY, Decimal("0.01"), OrderType.LIMIT,
                price=(p * Decimal("0.8")).quantize(Decimal("0.1")), client_id="manual-order-1"))
            try:
                with pytest.raises(ReconcileError, match="not placed by la"):
                    await broker.start(T0)
            finally:
                await broker.client.close()

        run(scenario)


@pytest.mark.slow
def test_api_circuit_opens_skips_entries_and_recovers() -> None:
    with running_mock_exchange(**MX) as mx:
        async def scenario() -> None:
            broker = make_broker(mx, circuit_failure_threshold=3, circuit_reset_timeout_sec=0.3)
            await broker.start(T0)
            p = price_of(mx)
            mx.admin.set_faults(rest_error_share=1.0)
            events = await broker.submit(intent(Side.LONG, p), candle(p), T0)
            assert _names(events) == [ORDER_REJECTED] and events[0].data["sent"] is False
            events = await broker.submit(intent(Side.LONG, p), candle(p), T0)
            assert events[0].data["reason"] == "exchange_unavailable"
            assert broker.client.transport.breaker.state.value == "open"
            assert accepted_orders(mx) == []
            mx.admin.set_faults(rest_error_share=0.0)
            await asyncio.sleep(0.35)
            events = await broker.submit(intent(Side.LONG, p), candle(p), T0)
            assert EventName.EXECUTION_FILL in _names(events)
            assert broker.client.transport.breaker.state.value == "closed"
            await broker.shutdown("test", T0)

        run(scenario)


@pytest.mark.slow
def test_shutdown_raises_not_flat_when_the_exchange_will_not_close() -> None:
    with running_mock_exchange(**MX) as mx:
        async def scenario() -> None:
            broker = make_broker(mx, retry=RetryPolicy(max_attempts=2, base_delay_sec=0.01, max_delay_sec=0.02))
            await broker.start(T0)
            p = price_of(mx)
            await broker.submit(intent(Side.LONG, p), candle(p), T0)
            mx.admin.set_faults(rest_error_share=1.0, rest_fault_paths=["trade/place_order", "trade/close_all_position"])
            with pytest.raises(NotFlatError, match="NOT flat") as err:
                await broker.shutdown("sigterm", T0)
            assert err.value.exit_code == 10
            mx.admin.set_faults(rest_error_share=0.0)
            broker2 = make_broker(mx)
            broker2.restore(broker.to_state())  # the same workspace's next session adopts what is left
            await broker2.start(T0)
            await broker2.shutdown("sigterm", T0)
            assert mx.admin.account()["positions"] == []

        run(scenario)


def test_close_all_blocking_flattens_from_a_thread_without_the_loop() -> None:
    with running_mock_exchange(**MX) as mx:
        broker = make_broker(mx)

        async def open_position() -> None:
            await broker.start(T0)
            p = price_of(mx)
            await broker.submit(intent(Side.LONG, p), candle(p), T0)
            await broker.client.close()

        run(open_position)
        result: list = []
        worker = threading.Thread(target=lambda: result.append(broker.close_all_blocking("watchdog", T0)))
        worker.start()
        worker.join(30)
        _, trade = result[0]
        assert trade is not None and trade.exit_reason == "watchdog"
        account = mx.admin.account()
        assert account["positions"] == [] and account["openOrders"] == []
        _assert_ledger_agrees(mx, broker)


def test_stale_la_orders_are_cancelled_at_start() -> None:
    with running_mock_exchange(**MX) as mx:
        async def scenario() -> None:
            broker = make_broker(mx)
            p = price_of(mx)
            stale = f"la{broker._tag}old00000001"  # left by this instance's previous (killed) session
            await broker.client.place_order(PlaceOrderRequest(
                "BTCUSDT", OrderSide.BUY, Decimal("0.01"), OrderType.LIMIT,
                price=(p * Decimal("0.8")).quantize(Decimal("0.1")), client_id=stale))
            events = await broker.start(T0)
            assert events[-1].data["cancelled_stale_orders"] == [stale]
            assert mx.admin.account()["openOrders"] == []
            await broker.shutdown("test", T0)

        run(scenario)


def test_live_state_round_trips_through_the_live_workspace_only(tmp_path: Path) -> None:
    from laptop_agents.core.state import StateManager
    from laptop_agents.execution.bitunix_broker import STATE_KIND
    from laptop_agents.session.live_gate import load_live_state
    from laptop_agents.session.workspace import BROKER_STATE_NAME, Workspace

    live = Workspace(tmp_path, "live")
    assert load_live_state(live) is None
    with running_mock_exchange(**MX) as mx:
        async def scenario() -> dict:
            broker = make_broker(mx)
            await broker.start(T0)
            state = broker.to_state()
            await broker.shutdown("test", T0)
            return state

        state = run(scenario)
    StateManager(live.state_dir).save(BROKER_STATE_NAME, STATE_KIND, state, saved_at=SAVED_AT)
    assert load_live_state(live) == state
    assert not (tmp_path / "paper").exists()
    with pytest.raises(ValueError, match="live workspace"):
        load_live_state(Workspace(tmp_path, "paper"))
