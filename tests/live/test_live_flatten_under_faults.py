"""Flatten always wins, against the mock exchange: a short 5xx burst or a clock step while a position is open
must not leave it open. Asserted from the mock's ledger and account view."""

from __future__ import annotations

import pytest

from laptop_agents.core.models import Side
from laptop_agents.execution.bitunix_broker import BitunixBroker, ClockSkewError
from laptop_agents.mock_exchange.testing import MockExchangeHandle, running_mock_exchange
from laptop_agents.resilience.circuit import CircuitState
from tests.live.conftest import T0, accepted_orders, candle, intent, ledger_fills, make_broker, price_of, run

pytestmark = pytest.mark.dialects  # runs once per mock dialect preset (docs/bitunix-dialects.md)

MX = {"seed": 11, "time_scale": 0}


def _assert_flat_and_booked_once(mx: MockExchangeHandle, broker: BitunixBroker) -> None:
    account = mx.admin.account()
    assert account["positions"] == [] and account["openOrders"] == [], account
    requests = mx.admin.events("order_request")
    assert not [r for r in requests if r.get("duplicate")]
    ids = [r["clientId"] for r in accepted_orders(mx)]
    assert len(ids) == len(set(ids))
    fills = ledger_fills(mx)
    assert len(fills) == 2 * len(broker.trades) == 2, fills  # one round trip, booked once
    broker.verify_accounting()


async def _open_position(mx: MockExchangeHandle) -> BitunixBroker:
    broker = make_broker(mx)
    await broker.start(T0)
    p = price_of(mx)
    await broker.submit(intent(Side.LONG, p), candle(p), T0)
    assert broker.position is not None and len(mx.admin.account()["positions"]) == 1
    return broker


def test_a_burst_of_503s_at_shutdown_trips_the_api_breaker_but_ends_flat() -> None:
    """12 consecutive 503s on every path (the exchange healthy again right after): the API circuit breaker
    opens (5 failures, 30 s), yet the close, cancel and verification calls go through and book the exit once."""
    with running_mock_exchange(**MX) as mx:
        async def scenario() -> tuple[BitunixBroker, object]:
            broker = await _open_position(mx)
            mx.admin.set_faults(rest_error_next=12)
            events, trade = await broker.shutdown("shutdown", T0)
            assert trade is not None and trade.exit_reason == "shutdown"
            assert [e.name for e in events].count("ExecutionExit") == 1
            return broker, trade

        broker, _ = run(scenario)
        assert broker.client.transport.breaker.times_opened >= 1  # the breaker did trip...
        assert broker.client.transport.stats.circuit_bypassed > 0  # ...and the exits went through anyway
        assert mx.admin.faults()["rest_error_next"] == 0
        _assert_flat_and_booked_once(mx, broker)


def test_an_open_api_breaker_pauses_entries_but_never_exits() -> None:
    with running_mock_exchange(**MX) as mx:
        async def scenario() -> BitunixBroker:
            broker = await _open_position(mx)
            breaker = broker.client.transport.breaker
            for _ in range(breaker.failure_threshold):
                breaker.record_failure()
            assert breaker.state is CircuitState.OPEN
            p = price_of(mx)
            _, trade = await broker.close_all("kill_switch", T0)
            assert trade is not None and trade.exit_reason == "kill_switch"
            assert breaker.state is CircuitState.OPEN  # entries stay paused
            events = await broker.submit(intent(Side.LONG, p), candle(p, 1), T0)
            assert [e.data["reason"] for e in events] == ["exchange_unavailable"]
            await broker.client.close()
            return broker

        broker = run(scenario)
        _assert_flat_and_booked_once(mx, broker)


def test_an_exchange_clock_step_mid_session_is_absorbed() -> None:
    """The exchange's clock jumps 8 s (beyond its 5 s receive window) while a position is open."""
    with running_mock_exchange(**MX) as mx:
        async def scenario() -> BitunixBroker:
            broker = await _open_position(mx)
            mx.admin.set_faults(clock_skew_ms=8000)
            p = price_of(mx)
            await broker.on_candle(candle(p, 1), T0)  # a signed query: rejected once, re-signed, answered
            _, trade = await broker.shutdown("shutdown", T0)
            assert trade is not None and trade.exit_reason == "shutdown"
            return broker

        broker = run(scenario)
        stats = broker.client.transport.stats
        assert stats.signature_retries >= 1 and "AuthError" in stats.errors
        assert abs(broker.client.transport.clock.offset_ms - 8000) < 1500
        _assert_flat_and_booked_once(mx, broker)


def test_a_clock_skew_beyond_the_receive_window_at_start_refuses_with_one_line() -> None:
    with running_mock_exchange(**MX) as mx:
        mx.admin.set_faults(clock_skew_ms=-9000)

        async def scenario() -> str:
            broker = make_broker(mx)
            try:
                await broker.start(T0)
            except ClockSkewError as exc:
                return str(exc)
            finally:
                await broker.client.close()
            raise AssertionError("start-up accepted a 9 s clock skew")

        message = run(scenario)
        assert "ahead of the exchange's" in message and "sync it" in message and "\n" not in message
        assert mx.admin.events("order_request") == []
