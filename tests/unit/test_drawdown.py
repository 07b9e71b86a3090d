"""Drawdown from the right base: the peak starts at the starting equity and follows mark-to-market equity every
candle, so an open loser that never closes trips the breaker (issue 13)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest

from laptop_agents.agents.supervisor import Supervisor
from laptop_agents.core.clock import Clock
from laptop_agents.core.config_models import CircuitBreakerConfig, PaperSettings, RiskConfig, StrategyConfig
from laptop_agents.core.events import EventBus
from laptop_agents.core.models import OrderIntent, Side
from laptop_agents.execution.broker import PaperBrokerPort
from laptop_agents.paper.broker import PaperBroker
from laptop_agents.resilience.trading_circuit_breaker import TradingCircuitBreaker
from laptop_agents.session.pipeline import TradingPipeline
from tests.unit.helpers import T0, flat
from tests.unit.test_breaker import trade

D = Decimal


class _Clock(Clock):
    def now(self):  # type: ignore[no-untyped-def]
        return T0


def _session(action: str) -> tuple[TradingPipeline, PaperBroker, EventBus, list]:
    risk = RiskConfig(circuit_breaker=CircuitBreakerConfig(action=action))
    paper = PaperBroker(PaperSettings())
    breaker = TradingCircuitBreaker(risk.circuit_breaker, risk.hard_limits())
    breaker.anchor_peak(paper.starting_equity, paper.equity)
    bus = EventBus()
    seen: list = []
    bus.subscribe(seen.append)
    pipeline = TradingPipeline(Supervisor(StrategyConfig(), risk, PaperSettings(), breaker), PaperBrokerPort(paper), bus,
                               _Clock())
    return pipeline, paper, bus, seen


@pytest.mark.parametrize("action", ["halt_entries", "stop_session"])
def test_an_open_loser_that_never_closes_trips_the_drawdown_limit(action: str) -> None:
    pipeline, paper, bus, seen = _session(action)
    # 0.1 BTC long with a stop and a target far away: it never closes by itself
    bus.publish_all(paper.submit(OrderIntent(Side.LONG, D("0.1"), D("50000"), D("200000"), D("100000")),
                                 flat(0, "100000"), T0))
    stops = []
    for i, price in enumerate(range(100000, 93900, -500), start=1):  # 5% of 10000 is lost near 95000
        stops.append(asyncio.run(pipeline.process(flat(i, str(price)))))
    trips = [e for e in seen if e.name == "CircuitBreakerTripped"]
    assert len(trips) == 1 and trips[0].data["reason"] == "max_drawdown", [e.name for e in seen]
    assert paper.position is not None and paper.trades == [], "the loser never closed: the loss is unrealized"
    assert Decimal(trips[0].data["equity"]) < D("9500")
    assert not pipeline.supervisor.breaker.allows_entries
    assert ("circuit_breaker" in stops) is (action == "stop_session")


def test_peak_starts_at_the_starting_equity_not_after_the_first_loss() -> None:
    b = TradingCircuitBreaker(CircuitBreakerConfig(), RiskConfig().hard_limits())
    b.anchor_peak(D("1000"), D("1000"))
    assert b.record_trade(trade("-40"), D("960"), T0) == []  # under the $50 daily limit
    assert b.state.peak_equity == D("1000") and b.drawdown_pct(D("960")) == D(4)
    events = b.observe_equity(D("945"), T0 + timedelta(minutes=1))  # 5.5% below the start, 1.6% below 960
    assert [e.data["reason"] for e in events] == ["max_drawdown"]


def test_a_restored_peak_is_kept_and_never_non_positive() -> None:
    b = TradingCircuitBreaker(CircuitBreakerConfig(), RiskConfig().hard_limits())
    b.state.peak_equity = D("12000")
    b.anchor_peak(D("10000"), D("11000"))
    assert b.state.peak_equity == D("12000")
    empty = TradingCircuitBreaker(CircuitBreakerConfig(), RiskConfig().hard_limits())
    empty.anchor_peak(D("0"), D("0"))
    empty.observe_equity(D("0"), T0)
    assert empty.state.peak_equity is None


def test_resetting_a_drawdown_trip_measures_afresh_instead_of_tripping_again() -> None:
    b = TradingCircuitBreaker(CircuitBreakerConfig(), RiskConfig().hard_limits())
    b.anchor_peak(D("1000"), D("1000"))
    assert b.observe_equity(D("940"), T0)[0].data["reason"] == "max_drawdown"
    b.reset(T0, why="la reset-breaker")
    assert b.observe_equity(D("939"), T0) == [] and b.allows_entries and b.state.peak_equity == D("939")
    assert b.observe_equity(D("890"), T0)[0].data["reason"] == "max_drawdown"  # 5.2% below the new base
