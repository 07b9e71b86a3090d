"""Every fill on the exchange is booked and evented, even when the exchange stops answering right after it.

A filled entry whose follow-up position query fails (4 x 503: the transport's retries run out) must still
produce OrderSubmitted at once, and ExecutionFill (and its exit) on the next successful query, exactly once.
Asserted against the mock's ledger.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from laptop_agents.bitunix import BitunixRestClient, Credentials
from laptop_agents.bitunix.errors import ExchangeUnavailableError
from laptop_agents.core.errors import ExitCode
from laptop_agents.core.events import EventName
from laptop_agents.core.models import Side
from laptop_agents.execution.bitunix_broker import BitunixBroker, LiveBrokerSettings
from laptop_agents.mock_exchange.testing import running_mock_exchange
from laptop_agents.session.failures import EXCHANGE_UNAVAILABLE, classify
from tests.live.conftest import KEY, SECRET, T0, candle, intent, ledger_fills, make_broker, price_of, rest_config, run

pytestmark = pytest.mark.dialects  # runs once per mock dialect preset (docs/bitunix-dialects.md)

MX = {"seed": 11, "time_scale": 0}


@pytest.mark.parametrize("then", ["on_candle", "close_all"])
def test_a_fill_whose_position_query_fails_is_booked_on_the_next_successful_query(then: str) -> None:
    with running_mock_exchange(**MX) as mx:
        async def scenario() -> list[Any]:
            broker = make_broker(mx)
            await broker.start(T0)
            p = price_of(mx)
            place = broker.client.place_order

            async def place_then_fail_queries(request: Any, **kwargs: Any) -> Any:
                ack = await place(request, **kwargs)  # filled; from now on the position query fails 4 times
                mx.admin.set_faults(rest_error_next=4, rest_fault_paths=["position/get_pending_positions"])
                return ack

            broker.client.place_order = place_then_fail_queries  # type: ignore[method-assign]
            events = list(await broker.submit(intent(Side.LONG, p), candle(p), T0))
            broker.client.place_order = place  # type: ignore[method-assign]
            assert [e.name for e in events] == [EventName.ORDER_SUBMITTED]
            assert broker.position is None
            again = await broker.submit(intent(Side.LONG, p), candle(p, 1), T0)  # books first, sends nothing
            events += again
            assert [e.name for e in again] == [EventName.EXECUTION_FILL, EventName.ORDER_REJECTED]
            if then == "on_candle":
                more, trade = await broker.on_candle(candle(p, 2), T0)
                events += more
                assert trade is None and broker.position is not None
            more, trade = await broker.shutdown("shutdown", T0)
            events += more
            assert trade is not None and len(broker.trades) == 1
            broker.verify_accounting()
            return events

        events = run(scenario)
        fills = ledger_fills(mx)
        assert len(fills) == 2, fills
        booked = [e for e in events if e.name in (EventName.EXECUTION_FILL, EventName.EXECUTION_EXIT)]
        assert [e.name for e in booked] == [EventName.EXECUTION_FILL, EventName.EXECUTION_EXIT]
        assert booked[0].data["order_id"] == fills[0]["orderId"]
        assert len([r for r in mx.admin.events("order_request") if r["accepted"]]) == 2  # one entry, one close
        assert mx.admin.account()["positions"] == []


@pytest.mark.parametrize("errors", [7, 40], ids=["lookup_recovers", "lookup_keeps_failing"])
def test_an_entry_whose_answer_and_lookups_fail_is_found_and_booked_never_sent_twice(errors: int) -> None:
    """The exchange places the entry but answers 503, and the clientId lookups fail too (the API circuit
    breaker opens on the way): the lookup is never blocked by it; if it keeps failing past the budget the
    entry stays pending (no new entry) and is found, evented and booked once the exchange answers."""
    with running_mock_exchange(**MX) as mx:
        async def scenario() -> list[Any]:
            broker = make_broker(mx)
            broker.settings = replace(broker.settings, stop_budget_sec=2.0 if errors < 10 else 0.3)
            await broker.start(T0)
            p = price_of(mx)
            mx.admin.set_faults(rest_error_next=errors, rest_fault_phase="after",
                                rest_fault_paths=["trade/place_order", "trade/get_order_detail"])
            events = list(await broker.submit(intent(Side.LONG, p), candle(p), T0))
            if errors < 10:  # found within the budget (booked now, or pending if its follow-up failed too)
                assert [e.name for e in events][:1] == [EventName.ORDER_SUBMITTED]
            else:
                assert events == [] and broker.position is None
            if EventName.EXECUTION_FILL not in [e.name for e in events]:
                mx.admin.set_faults(rest_error_next=0)
                more, trade = await broker.on_candle(candle(p, 1), T0)
                assert trade is None and broker.position is not None
                events += more
            assert [e.name for e in events] == [EventName.ORDER_SUBMITTED, EventName.EXECUTION_FILL]
            more, trade = await broker.shutdown("shutdown", T0)
            assert trade is not None
            return events + more

        events = run(scenario)
        fills = ledger_fills(mx)
        assert len(fills) == 2 and len([r for r in mx.admin.events("order_request") if r["accepted"]]) == 2
        booked = [e for e in events if e.name in (EventName.EXECUTION_FILL, EventName.EXECUTION_EXIT)]
        assert [e.name for e in booked] == [EventName.EXECUTION_FILL, EventName.EXECUTION_EXIT]
        assert booked[0].data["order_id"] == fills[0]["orderId"]
        assert mx.admin.account()["positions"] == []


def test_an_exchange_side_exit_whose_history_query_fails_is_booked_on_the_next_candle() -> None:
    with running_mock_exchange(**MX) as mx:
        async def scenario() -> tuple[list[Any], Any]:
            broker = make_broker(mx)
            await broker.start(T0)
            p = price_of(mx)
            await broker.submit(intent(Side.LONG, p), candle(p), T0)
            mx.admin.set_price(str(broker.position.stop_loss - 5))  # type: ignore[union-attr]
            mx.admin.set_faults(rest_error_next=6, rest_fault_paths=["trade/get_history_trades"])
            events, trade = await broker.on_candle(candle(p, 1), T0)  # the read fails: nothing booked, no crash
            assert (events, trade) == ([], None) and broker.position is not None
            events, trade = await broker.on_candle(candle(p, 2), T0)
            await broker.shutdown("shutdown", T0)
            return events, trade

        events, trade = run(scenario)
        assert trade is not None and trade.exit_reason == "stop_loss"
        assert [e.name for e in events] == [EventName.EXECUTION_EXIT]
        assert len(ledger_fills(mx)) == 2 and mx.admin.account()["positions"] == []


def test_failed_position_checks_are_absorbed_as_blips_but_stop_the_session_past_the_blind_bound() -> None:
    """A run of failed candle checks shorter than ``blind_stop_sec`` is weather (asked again next candle; a check
    that works ends the run); one longer is an outage: ExchangeUnavailableError, which the session stops on with
    exit 12 and a flattening shutdown. Timed by the broker's clock (here a hand-moved one), not by candle count."""
    with running_mock_exchange(**MX) as mx:
        async def scenario() -> None:
            cfg = rest_config(mx, circuit_failure_threshold=1000)  # one blip = one check's retries, nothing more
            clock = [0.0]
            broker = BitunixBroker(BitunixRestClient(cfg, Credentials(KEY, SECRET)),
                                   LiveBrokerSettings(leverage=5, blind_stop_sec=30.0),
                                   client_factory=lambda: BitunixRestClient(cfg, Credentials(KEY, SECRET)),
                                   monotonic=lambda: clock[0])
            await broker.start(T0)
            p = price_of(mx)
            await broker.submit(intent(Side.LONG, p), candle(p), T0)
            assert broker.position is not None

            async def check(at: float, i: int, *, fail: bool) -> tuple[list[Any], Any]:
                clock[0] = at
                if fail:  # every attempt of this one check fails (the transport's retries run out)
                    mx.admin.set_faults(rest_error_next=4, rest_fault_paths=["position/get_pending_positions"])
                return await broker.on_candle(candle(p, i), T0)

            assert await check(0, 1, fail=True) == ([], None)
            assert await check(29, 2, fail=True) == ([], None)  # 29 s blind: still a blip
            assert await check(29.5, 3, fail=False) == ([], None)  # answered: the run of failures is over
            assert await check(40, 4, fail=True) == ([], None)
            assert await check(69, 5, fail=True) == ([], None)  # 29 s into the new run, not 69 s
            with pytest.raises(ExchangeUnavailableError) as stopped:
                await check(70.5, 6, fail=True)  # 30.5 s without one answer: an outage
            reason, error = classify(stopped.value)  # type: ignore[misc]
            assert reason == EXCHANGE_UNAVAILABLE and error.exit_code == ExitCode.EXCHANGE_UNAVAILABLE
            assert "30s" in str(error) and "check the exchange's status" in str(error)
            assert broker.position is not None  # still ours: the session's shutdown flattens it
            mx.admin.set_faults(rest_error_next=0)
            _events, trade = await broker.shutdown("exchange_unavailable", T0)
            assert trade is not None

        run(scenario)
        assert len(ledger_fills(mx)) == 2 and mx.admin.account()["positions"] == []
