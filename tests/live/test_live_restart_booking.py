"""Round trips the exchange completed while la was down are booked at the next start as trades
(reason ``exchange_while_down``), once, not as an unexplained wallet adjustment. Against the mock's ledger."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from laptop_agents.core.events import EventName
from laptop_agents.core.models import Side
from laptop_agents.execution.bitunix_broker import EXIT_WHILE_DOWN, BitunixBroker
from laptop_agents.mock_exchange.ledger_audit import RunRecords, audit
from laptop_agents.mock_exchange.testing import running_mock_exchange
from tests.live.conftest import KEY, T0, candle, intent, ledger_fills, make_broker, price_of, run

MX = {"seed": 11, "time_scale": 0}


def test_a_round_trip_closed_by_the_exchange_while_down_is_booked_once_as_a_trade() -> None:
    with running_mock_exchange(**MX) as mx:
        async def scenario() -> tuple[list[Any], BitunixBroker, BitunixBroker]:
            first = make_broker(mx)
            await first.start(T0)
            saved = first.to_state()  # the last save: flat
            mx.admin.advance_clock(60_000)
            p = price_of(mx)
            await first.submit(intent(Side.LONG, p), candle(p), T0)  # kill -9 before the next save
            stop = first.position.stop_loss  # type: ignore[union-attr]
            await first.client.close()
            mx.admin.advance_clock(60_000)
            mx.admin.set_price(str(stop - 5))  # the exchange-side stop fires while la is down
            assert mx.admin.account()["positions"] == []

            second = make_broker(mx)
            second.restore(saved)
            events = await second.start(T0)
            _, handed = await second.on_candle(candle(p, 1), T0)  # the breaker hears of it once
            assert handed is not None and handed.exit_reason == EXIT_WHILE_DOWN
            await second.shutdown("shutdown", T0)

            third = make_broker(mx)  # and a later restart does not book it again
            third.restore(second.to_state())
            again = await third.start(T0)
            assert not [e for e in again if e.name == EventName.EXECUTION_EXIT]
            assert third.trades == second.trades and third.adjustments == second.adjustments
            await third.shutdown("shutdown", T0)
            return events, second, third

        events, second, _ = run(scenario)
        fills = ledger_fills(mx)
        assert len(fills) == 2
        exits = [e for e in events if e.name == EventName.EXECUTION_EXIT]
        assert len(exits) == 1 and exits[0].data["reason"] == EXIT_WHILE_DOWN
        assert exits[0].data["entry_order_id"] == fills[0]["orderId"]
        net = sum(Decimal(f["realizedPNL"]) - Decimal(f["fee"]) for f in fills)
        assert [t.exit_reason for t in second.trades] == [EXIT_WHILE_DOWN] and second.trades[0].pnl == net
        assert second.adjustments == 0, "booked as a trade, not as a wallet adjustment"
        assert second.equity == Decimal(str(mx.admin.account()["balance"]))
        second.verify_accounting()


@pytest.mark.dialects  # once per mock dialect preset: some history answers carry no positionId
@pytest.mark.parametrize("hold_skip", [0, 1], ids=["tp_before_first_history_read", "tp_before_walk_history_read"])
def test_a_take_profit_firing_during_reconciliation_is_booked_once(hold_skip: int) -> None:
    """Trial 15 of the seeded kill -9 campaign: an entry lands after la died (its state never heard of it); on
    restart the position read sees it open, then its exchange-side TP fires before a history read of the same
    reconciliation. The while-down walk books the round trip, so the adopted position must not be booked again
    when it is seen closed. Held requests make the race exact; the mock's ledger judges (ledger_audit)."""
    with running_mock_exchange(**MX) as mx:
        async def scenario() -> BitunixBroker:
            first = make_broker(mx)
            await first.start(T0)
            saved = first.to_state()  # the last save: flat, knows nothing of the entry below
            mx.admin.advance_clock(60_000)
            p = price_of(mx)
            await first.submit(intent(Side.LONG, p), candle(p), T0)  # kill -9 before the next save
            target = first.position.take_profit  # type: ignore[union-attr]
            await first.client.close()
            mx.admin.advance_clock(60_000)

            second = make_broker(mx)
            second.restore(saved)
            mx.admin.set_faults(rest_hold_next=1, rest_hold_skip=hold_skip, rest_hold_paths=["get_history_trades"],
                                rest_hold_phase="before")
            starting = asyncio.ensure_future(second.start(T0))
            await asyncio.to_thread(mx.admin.wait_hold, 30.0)  # the position read is done: it saw the position
            assert mx.admin.account()["positions"], "the position is still open when reconciliation reads it"
            await asyncio.to_thread(mx.admin.set_price, str(target + 5))  # its TP fires now
            assert mx.admin.account()["positions"] == []
            await asyncio.to_thread(mx.admin.release_holds, "proceed")
            events.extend(await starting)
            mx.admin.set_faults(rest_hold_next=0)
            for minute in (1, 2):
                closed, _ = await second.on_candle(candle(p, minute), T0)
                events.extend(closed)
            closed, _ = await second.shutdown("shutdown", T0)
            events.extend(closed)
            return second

        events: list[Any] = []
        second = run(scenario)
        ledger = mx.admin.ledger()
        records = RunRecords(
            trades=[{"trade_id": t.trade_id, "qty": str(t.qty), "pnl": str(t.pnl)} for t in second.trades],
            events=[{"event": str(e.name), **{k: str(v) for k, v in e.data.items()}} for e in events],
        )
        result = audit(ledger["events"], ledger["accounts"][KEY], records)
        assert result.fills == 2
        restored = next(e for e in events if e.name == EventName.STATE_RESTORED)
        assert "adopted_position" not in restored.data, "a position closed during reconciliation is not adopted"
        assert not result.double_booked, result.problems()
        assert result.ok, result.problems()
        assert [t.exit_reason for t in second.trades] == [EXIT_WHILE_DOWN]
        assert second.adjustments == 0, "booked as one trade, no wallet adjustment either way"
        assert second.equity == Decimal(str(mx.admin.account()["balance"]))
        second.verify_accounting()
