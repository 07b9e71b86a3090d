"""Order identity across crashes, against the mock exchange: a clientId is never reused, and an order found
under our clientId counts as ours only when it is the one we sent.

The crash is modelled exactly as kill -9 leaves things: the state file holds what was saved *before* the last
sends (the sequence is saved on fills/exits, incremented before each send), and a new broker restores it.
Everything is asserted from the mock's ledger.
"""

from __future__ import annotations

from typing import Any

import pytest

from laptop_agents.core.events import EventName
from laptop_agents.core.models import Side
from laptop_agents.execution.bitunix_broker import EXIT_WHILE_DOWN, ORDER_REJECTED, BitunixBroker
from laptop_agents.mock_exchange.testing import MockExchangeHandle, running_mock_exchange
from tests.live.conftest import T0, accepted_orders, candle, intent, ledger_fills, make_broker, price_of, run

pytestmark = pytest.mark.dialects  # runs once per mock dialect preset (docs/bitunix-dialects.md)

MX = {"seed": 11, "time_scale": 0}
FOREVER = {**MX, "duplicate_client_id": "forever"}
"""The collision cases need an exchange that answers 30042 for a finished order's clientId too (under
``open_only`` the exchange simply places a new order, and there is nothing to mistake for ours)."""


def _requests(mx: MockExchangeHandle) -> list[dict[str, Any]]:
    return mx.admin.events("order_request")


async def _round_trip_then_crash(mx: MockExchangeHandle) -> tuple[dict[str, Any], BitunixBroker]:
    """Life 1: save state, trade one round trip, 'crash' (the later sends were never saved)."""
    first = make_broker(mx)
    await first.start(T0)
    saved = first.to_state()
    p = price_of(mx)
    await first.submit(intent(Side.LONG, p), candle(p), T0)
    mx.admin.advance_clock(60_000)  # the position is held a minute on the exchange's clock
    await first.close_position("time", p, T0, T0)
    assert first.position is None and len(first.trades) == 1
    await first.client.close()
    return saved, first


def test_a_restart_from_state_saved_before_the_last_sends_never_reuses_a_client_id() -> None:
    with running_mock_exchange(**MX) as mx:
        async def scenario() -> BitunixBroker:
            saved, _ = await _round_trip_then_crash(mx)
            mx.admin.advance_clock(60_000)
            second = make_broker(mx)
            second.restore(saved)  # the sequence rolled back: same tag, same seq as the first life's entry
            await second.start(T0)
            p = price_of(mx)
            events = await second.submit(intent(Side.LONG, p), candle(p, 1), T0)
            assert [e.name for e in events] == [EventName.ORDER_SUBMITTED, EventName.EXECUTION_FILL], events
            await second.close_all("shutdown", T0)
            return second

        second = run(scenario)
        requests = _requests(mx)
        assert not [r for r in requests if r.get("duplicate")], "a clientId of the first life was sent again"
        ids = [r["clientId"] for r in accepted_orders(mx)]
        assert len(ids) == len(set(ids)) == 4, ids  # two entries, two closes: all placed, none reused
        assert len(ledger_fills(mx)) == 4
        # the first life's unsaved round trip is booked once (as done while down), the second life's once
        assert [t.exit_reason for t in second.trades] == [EXIT_WHILE_DOWN, "shutdown"]
        assert len({t.trade_id for t in second.trades}) == 2
        assert mx.admin.account()["positions"] == []


def test_an_order_under_our_client_id_that_we_did_not_send_halts_entries() -> None:
    """The per-start token cannot collide in practice; force it to, to prove the answer is checked."""
    with running_mock_exchange(**FOREVER) as mx:
        async def scenario() -> tuple[list[Any], list[Any], BitunixBroker]:
            saved, first = await _round_trip_then_crash(mx)
            mx.admin.advance_clock(60_000)
            second = make_broker(mx)
            second.restore(saved)
            second._run = first._run  # a colliding clientId: the first life's entry (a LONG)
            await second.start(T0)
            p = price_of(mx)
            short = await second.submit(intent(Side.SHORT, p), candle(p, 1), T0)  # side differs
            again = await second.submit(intent(Side.LONG, p), candle(p, 2), T0)
            await second.close_all("shutdown", T0)
            return short, again, second

        short, again, second = run(scenario)
        assert [(e.name, e.data["reason"]) for e in short] == [(ORDER_REJECTED, "order_identity")]
        assert "belongs to a different order" in short[0].data["message"]
        assert [(e.name, e.data["reason"], e.data["sent"]) for e in again] == [(ORDER_REJECTED, "entries_halted", False)]
        assert second.halted and [t.exit_reason for t in second.trades] == [EXIT_WHILE_DOWN]
        assert len(accepted_orders(mx)) == 2 and len(ledger_fills(mx)) == 2  # only the first life's round trip
        assert mx.admin.account()["positions"] == []


def test_a_matching_but_older_order_under_our_client_id_is_not_adopted() -> None:
    """Same symbol, side and qty, but created before what the restarted broker had already seen: not ours."""
    with running_mock_exchange(**FOREVER) as mx:
        async def scenario() -> tuple[list[Any], BitunixBroker]:
            saved, first = await _round_trip_then_crash(mx)
            mx.admin.advance_clock(60_000)
            second = make_broker(mx)
            second.restore(saved)
            second._run = first._run
            await second.start(T0)
            p = price_of(mx)
            events = await second.submit(intent(Side.LONG, p), candle(p, 1), T0)
            await second.close_all("shutdown", T0)
            return events, second

        events, second = run(scenario)
        assert [(e.name, e.data["reason"]) for e in events] == [(ORDER_REJECTED, "order_identity")]
        assert "before our send" in events[0].data["message"]
        assert [t.exit_reason for t in second.trades] == [EXIT_WHILE_DOWN], "booked once, not again by the 30042"
        assert len(ledger_fills(mx)) == 2
        assert mx.admin.account()["positions"] == []
