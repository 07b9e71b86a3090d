"""The exchange-side TP/SL fires between the entry's fill and the broker's position query.

The race is forced deterministically: the broker's client is wrapped so that the first position query after
the entry was placed first moves the mock's price through the take profit (or stop loss), which the mock
triggers at once. The position query then finds the account flat, and the broker must rebuild the round trip
from the exchange's trade history instead of failing.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from laptop_agents.core.events import EventName
from laptop_agents.core.models import Side
from laptop_agents.execution.bitunix_broker import BitunixBroker, ReconcileError
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

pytestmark = pytest.mark.dialects  # runs once per mock dialect preset (docs/bitunix-dialects.md)

MX = {"seed": 11, "time_scale": 0}


def _fire_after_entry(broker: BitunixBroker, mx: MockExchangeHandle, price: Decimal) -> list[str]:
    """Arm the race: after place_order, the next position query first sets the mock's price to ``price``."""
    client = broker.client
    place, positions = client.place_order, client.get_pending_positions
    state: list[str] = []

    async def place_order(request: Any, **kwargs: Any) -> Any:
        ack = await place(request, **kwargs)
        state.append("placed")
        return ack

    async def get_pending_positions(*args: Any, **kwargs: Any) -> Any:
        if state == ["placed"]:
            await asyncio.to_thread(mx.admin.set_price, str(price))
            state.append("fired")
        return await positions(*args, **kwargs)

    client.place_order = place_order  # type: ignore[method-assign]
    client.get_pending_positions = get_pending_positions  # type: ignore[method-assign]
    return state


@pytest.mark.parametrize(("side", "target", "reason"), [
    (Side.LONG, "tp", "take_profit"),
    (Side.SHORT, "tp", "take_profit"),
    (Side.LONG, "sl", "stop_loss"),
])
def test_tpsl_between_fill_and_position_query_books_the_round_trip_once(side: Side, target: str, reason: str) -> None:
    with running_mock_exchange(**MX) as mx:
        async def scenario() -> None:
            broker = make_broker(mx)
            await broker.start(T0)
            p = price_of(mx)
            order = intent(side, p)
            level = order.take_profit if target == "tp" else order.stop_loss
            beyond = Decimal(10) if (side is Side.LONG) == (target == "tp") else Decimal(-10)
            state = _fire_after_entry(broker, mx, level + beyond)

            events = await broker.submit(order, candle(p), T0)

            assert state == ["placed", "fired"]
            assert [e.name for e in events] == [
                EventName.ORDER_SUBMITTED, EventName.EXECUTION_FILL, EventName.EXECUTION_EXIT]
            assert broker.position is None and len(broker.trades) == 1
            trade = broker.trades[0]
            assert trade.exit_reason == reason and (trade.pnl > 0) == (target == "tp")
            # the exchange's own fills: one entry, one exchange-side exit; no order of ours beyond the entry
            fills = ledger_fills(mx)
            assert len(fills) == 2 and len(accepted_orders(mx)) == 1
            entry_fill, exit_fill = sorted(fills, key=lambda f: f["seq"])
            assert trade.entry_price == Decimal(entry_fill["price"])
            assert trade.exit_price == Decimal(exit_fill["price"])
            assert trade.fees == Decimal(entry_fill["fee"]) + Decimal(exit_fill["fee"])
            assert trade.gross_pnl == Decimal(exit_fill["realizedPNL"])
            assert events[1].data["price"] == trade.entry_price and events[2].data["pnl"] == trade.pnl
            # equity agrees with the exchange's wallet and with the trades, without adjustments
            account = mx.admin.account()
            assert broker.equity == Decimal(account["balance"]) and broker.adjustments == 0
            assert broker.equity - broker.starting_equity == trade.pnl
            broker.verify_accounting()
            assert account["positions"] == [] and account["openOrders"] == []
            # the session's risk checks hear of the trade once, through the next on_candle
            assert await broker.on_candle(candle(p, 1), T0) == ([], trade)
            assert await broker.on_candle(candle(p, 2), T0) == ([], None)
            # the broker trades on normally afterwards, and the state round-trips
            restored = make_broker(mx)
            restored.restore(broker.to_state())
            assert restored.trades == broker.trades and restored.equity == broker.equity
            await restored.client.close()
            p = price_of(mx)
            assert EventName.EXECUTION_FILL in [e.name for e in await broker.submit(intent(side, p), candle(p, 3), T0)]
            _, closed = await broker.shutdown("test", T0)
            assert closed is not None and len(broker.trades) == 2
            assert len(accepted_orders(mx)) == 3  # entry, second entry, its close: nothing duplicated
            assert mx.admin.account()["positions"] == []
            broker.verify_accounting()
            assert broker.equity == Decimal(mx.admin.account()["balance"])

        run(scenario)


def test_a_failed_history_query_in_the_race_never_books_flat_and_books_once_later() -> None:
    with running_mock_exchange(**MX) as mx:
        async def scenario() -> None:
            broker = make_broker(mx, retry=RetryPolicy(max_attempts=1, base_delay_sec=0.01, max_delay_sec=0.01))
            await broker.start(T0)
            p = price_of(mx)
            order = intent(Side.LONG, p)
            _fire_after_entry(broker, mx, order.take_profit + 10)
            mx.admin.set_faults(rest_error_share=1.0, rest_fault_paths=["trade/get_history_trades"])
            try:
                events = await broker.submit(order, candle(p), T0)
                # sent, not booked, never read as flat: OrderSubmitted now, the round trip once history answers
                assert [e.name for e in events] == [EventName.ORDER_SUBMITTED]
                assert broker.trades == [] and broker.position is None
                mx.admin.set_faults(rest_error_share=0.0)
                booked, trade = await broker.on_candle(candle(p, 1), T0)
                assert [e.name for e in booked] == [EventName.EXECUTION_FILL, EventName.EXECUTION_EXIT]
                assert trade is not None and broker.trades == [trade] and len(ledger_fills(mx)) == 2
            finally:
                await broker.client.close()

        run(scenario)


def test_history_that_does_not_explain_the_missing_position_is_a_reconcile_error() -> None:
    with running_mock_exchange(**MX) as mx:
        async def scenario() -> None:
            broker = make_broker(mx)
            await broker.start(T0)
            p = price_of(mx)
            order = intent(Side.LONG, p)
            _fire_after_entry(broker, mx, order.take_profit + 10)
            history = broker.client.get_history_trades

            async def entry_only(*args: Any, **kwargs: Any) -> Any:
                page = await history(*args, **kwargs)
                if kwargs.get("order_id") is None:
                    return type(page)(trades=(), total=0)  # the close is not (yet) in the history
                return page

            broker.client.get_history_trades = entry_only  # type: ignore[method-assign]
            sleeps: list[float] = []

            async def no_sleep(sec: float) -> None:
                sleeps.append(sec)

            broker._sleep = no_sleep
            try:
                with pytest.raises(ReconcileError, match="does not explain"):
                    await broker.submit(order, candle(p), T0)
                assert len(sleeps) == broker.settings.flat_verify_attempts - 1  # re-read before giving up
                assert broker.trades == []
            finally:
                await broker.client.close()

        run(scenario)


def test_a_round_trip_not_yet_reported_is_handed_over_by_close_all() -> None:
    """The session ends right after the racing entry: shutdown's close_all reports the trade (once)."""
    with running_mock_exchange(**MX) as mx:
        async def scenario() -> None:
            broker = make_broker(mx)
            await broker.start(T0)
            p = price_of(mx)
            order = intent(Side.SHORT, p)
            _fire_after_entry(broker, mx, order.stop_loss + 10)
            await broker.submit(order, candle(p), T0)
            trade = broker.trades[0]
            assert trade.exit_reason == "stop_loss"
            assert broker.to_state()["unreported_trades"] == [trade.trade_id]
            assert await broker.close_all("session_end", T0) == ([], trade)
            assert broker.to_state()["unreported_trades"] == []
            assert await broker.shutdown("session_end", T0) == ([], None)
            assert len(accepted_orders(mx)) == 1 and len(ledger_fills(mx)) == 2
            assert broker.equity == Decimal(mx.admin.account()["balance"])

        run(scenario)


def test_an_entry_cancelled_mid_flight_is_followed_booked_and_closed_by_close_all() -> None:
    """The session stops (the consumer task is cancelled) after place_order went out: nothing is lost."""
    with running_mock_exchange(**MX) as mx:
        async def scenario() -> None:
            broker = make_broker(mx)
            await broker.start(T0)
            p = price_of(mx)
            place = broker.client.place_order
            sent = asyncio.Event()

            async def place_order(request: Any, **kwargs: Any) -> Any:
                ack = await place(request, **kwargs)
                sent.set()
                await asyncio.sleep(0)  # the caller's cancellation lands here, after the order is on the exchange
                return ack

            broker.client.place_order = place_order  # type: ignore[method-assign]
            caller = asyncio.create_task(broker.submit(intent(Side.LONG, p), candle(p), T0))
            await sent.wait()
            caller.cancel()
            with pytest.raises(asyncio.CancelledError):
                await caller
            events, trade = await broker.close_all("session_end", T0)
            assert [e.name for e in events] == [
                EventName.ORDER_SUBMITTED, EventName.EXECUTION_FILL, EventName.EXECUTION_EXIT]
            assert trade is not None and trade.exit_reason == "session_end" and broker.trades == [trade]
            assert len(accepted_orders(mx)) == 2 and len(ledger_fills(mx)) == 2  # the entry and our close only
            account = mx.admin.account()
            assert account["positions"] == [] and account["openOrders"] == []
            assert broker.equity == Decimal(account["balance"]) and broker.adjustments == 0
            broker.verify_accounting()
            await broker.shutdown("session_end", T0)

        run(scenario)


def test_history_filter_ignored_by_the_exchange_books_only_this_positions_close() -> None:
    """The reference documents no history-trade filters; if the exchange ignores `positionId`, the second round
    trip's exit must still be its own fill, not the first one's as well."""
    with running_mock_exchange(**MX) as mx:
        async def scenario() -> None:
            broker = make_broker(mx)
            await broker.start(T0)
            history = broker.client.get_history_trades

            async def unfiltered(symbol: Any = None, **kwargs: Any) -> Any:
                kwargs.pop("position_id", None)
                return await history(symbol, **kwargs)

            broker.client.get_history_trades = unfiltered  # type: ignore[method-assign]
            for minute in (0, 2):
                p = price_of(mx)
                await broker.submit(intent(Side.LONG, p), candle(p, minute), T0)
                await broker.close_position("test", p, T0, T0)
            assert len(broker.trades) == 2
            fills = sorted(ledger_fills(mx), key=lambda f: f["seq"])
            assert len(fills) == 4
            for trade, (entry, exit_) in zip(broker.trades, [fills[0:2], fills[2:4]], strict=True):
                assert trade.entry_price == Decimal(entry["price"]) and trade.exit_price == Decimal(exit_["price"])
                assert trade.fees == Decimal(entry["fee"]) + Decimal(exit_["fee"])
            assert broker.equity == Decimal(mx.admin.account()["balance"]) and broker.adjustments == 0
            broker.verify_accounting()
            await broker.shutdown("test", T0)

        run(scenario)
