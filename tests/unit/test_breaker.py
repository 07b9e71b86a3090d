from __future__ import annotations

from decimal import Decimal

from laptop_agents.core.config_models import CircuitBreakerConfig
from laptop_agents.core.hard_limits import HardLimits
from laptop_agents.core.models import Side, Trade
from laptop_agents.resilience.trading_circuit_breaker import BreakerState, TradingCircuitBreaker
from tests.unit.helpers import T0

D = Decimal


def trade(pnl: str) -> Trade:
    return Trade("T1", Side.LONG, D("0.01"), T0, T0, D("100"), D("100"), D(pnl), D(0), D(pnl), "stop_loss")


def breaker(**cfg) -> TradingCircuitBreaker:  # type: ignore[no-untyped-def]
    b = TradingCircuitBreaker(CircuitBreakerConfig(**cfg), HardLimits())
    b.roll_day("2026-01-01", T0)
    b.observe_equity(D("10000"), T0)
    return b


def test_five_consecutive_losses_trip_once() -> None:
    b = breaker()
    equity = D("10000")
    events = []
    for _ in range(4):
        equity -= 1
        events += b.record_trade(trade("-1"), equity, T0)
    assert not events and b.allows_entries and b.state.consecutive_losses == 4
    events = b.record_trade(trade("-1"), equity - 1, T0)
    assert [e.name for e in events] == ["CircuitBreakerTripped"]
    assert events[0].data["reason"] == "consecutive_losses" and events[0].data["code"] == "CIRCUIT_BREAKER_TRIPPED"
    assert not b.allows_entries
    assert b.record_trade(trade("-1"), equity - 2, T0) == []  # already tripped: no second event


def test_a_win_resets_the_loss_streak() -> None:
    b = breaker()
    for _ in range(4):
        b.record_trade(trade("-1"), D("9999"), T0)
    b.record_trade(trade("2"), D("10001"), T0)
    assert b.state.consecutive_losses == 0 and b.allows_entries


def test_daily_loss_trips_and_a_new_day_lifts_it() -> None:
    b = breaker()
    events = b.record_trade(trade("-50"), D("9950"), T0)
    assert events and events[0].data["reason"] == "daily_loss"
    assert not b.allows_entries
    events = b.roll_day("2026-01-02", T0)
    assert [e.name for e in events] == ["CircuitBreakerReset"] and b.allows_entries
    assert b.state.daily_realized_pnl == 0


def test_drawdown_trips_but_new_day_does_not_lift_it() -> None:
    b = breaker(max_drawdown_pct=D("5"))
    b.observe_equity(D("12000"), T0)
    events = b.observe_equity(D("11400"), T0)  # exactly 5% below the peak
    assert events and events[0].data["reason"] == "max_drawdown"
    assert b.roll_day("2026-01-02", T0) == [] and not b.allows_entries


def test_state_round_trips() -> None:
    b = breaker()
    b.record_trade(trade("-3"), D("9997"), T0)
    again = BreakerState.from_dict(b.state.to_dict())
    assert again == b.state
