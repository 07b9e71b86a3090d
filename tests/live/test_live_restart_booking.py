"""Round trips the exchange completed while la was down are booked at the next start as trades
(reason ``exchange_while_down``), once, not as an unexplained wallet adjustment. Against the mock's ledger."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from laptop_agents.core.events import EventName
from laptop_agents.core.models import Side
from laptop_agents.execution.bitunix_broker import EXIT_WHILE_DOWN, BitunixBroker
from laptop_agents.mock_exchange.testing import running_mock_exchange
from tests.live.conftest import T0, candle, intent, ledger_fills, make_broker, price_of, run

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
