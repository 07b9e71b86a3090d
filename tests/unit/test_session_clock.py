"""One clock per session: every trade and event time comes from the session's clock.

A mock or replayed candle carries simulated times (2026-01-01...) while a live
session runs on the wall clock; forced exits (session_end, kill switch,
shutdown) happen on the session clock. Trades stamped from the candle at entry
and from the clock at a forced exit looked held for months. And an entry that
cannot live to its first candle before the deadline is refused, visibly.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from laptop_agents.agents.supervisor import Supervisor
from laptop_agents.config_loader import load_config
from laptop_agents.core.clock import SimulatedClock
from laptop_agents.core.config_models import MockSettings, PaperSettings, RiskConfig, StrategyConfig
from laptop_agents.core.events import Event, EventBus
from laptop_agents.core.models import Candle
from laptop_agents.data.providers.mock import MockBarGenerator
from laptop_agents.execution.broker import PaperBrokerPort
from laptop_agents.paper.broker import PaperBroker
from laptop_agents.resilience.trading_circuit_breaker import TradingCircuitBreaker
from laptop_agents.session.pipeline import TradingPipeline

REPO = Path(__file__).resolve().parents[2]
WALL = datetime(2026, 11, 29, 13, 0, tzinfo=UTC)  # far from the mock candles' 2026-01-01


def _pipeline(clock: SimulatedClock) -> tuple[TradingPipeline, PaperBroker, list[Event]]:
    risk = RiskConfig()
    breaker = TradingCircuitBreaker(risk.circuit_breaker, risk.hard_limits())
    supervisor = Supervisor(StrategyConfig(), risk, PaperSettings(), breaker)
    paper = PaperBroker(PaperSettings())
    bus = EventBus()
    events: list[Event] = []
    bus.subscribe(events.append)
    return TradingPipeline(supervisor, PaperBrokerPort(paper), bus, clock), paper, events


def test_every_trade_time_is_on_the_session_clock_even_a_forced_exit() -> None:
    clock = SimulatedClock(WALL)
    pipeline, paper, events = _pipeline(clock)

    async def drive() -> None:
        for i, bar in enumerate(MockBarGenerator(MockSettings(seed=26))):  # candles stamped 2026-01-01
            clock.advance_to(WALL + timedelta(seconds=2 * (i + 1)))  # a 2 s mock cadence on the session clock
            await pipeline.process(bar)
            if paper.trades and paper.position is not None:
                break  # at least one TP/SL/time exit done, and a position open for the forced exit
        clock.advance_to(clock.now() + timedelta(seconds=1))
        await pipeline.flatten("session_end")

    asyncio.run(drive())
    assert paper.trades[-1].exit_reason == "session_end" and len(paper.trades) >= 2
    for t in paper.trades:
        assert WALL <= t.entry_ts <= t.exit_ts <= clock.now(), t
    fills = [e for e in events if e.name == "ExecutionFill"]
    exits = [e for e in events if e.name == "ExecutionExit"]
    assert [f.timestamp for f in fills] == [t.entry_ts for t in paper.trades]
    assert [x.timestamp for x in exits] == [t.exit_ts for t in paper.trades]


class _PacedProvider:
    """Warm-up history at once (primes the strategy), then one live bar every `interval_sec`."""

    name = "mock"

    def __init__(self, history: list[Candle], live: list[Candle], interval_sec: float) -> None:
        self._history, self._live, self._interval = history, live, interval_sec
        self._last: float | None = None
        self._closed = asyncio.Event()

    @property
    def last_data_monotonic(self) -> float | None:
        return self._last

    async def warm_up(self, n: int) -> list[Candle]:
        return self._history[-n:]

    async def candles(self) -> AsyncIterator[Candle]:
        import time

        for bar in self._live:
            self._last = time.monotonic()
            yield bar
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._closed.wait(), self._interval)
            if self._closed.is_set():
                return
        await self._closed.wait()

    async def close(self) -> None:
        self._closed.set()


def _paced_session(tmp_path: Path, name: str, minutes: float, interval_sec: float) -> list[dict]:
    """A real AsyncRunner on the losing-streak path: bar 50 is a breakout (a long signal) the moment trading starts."""
    from laptop_agents.session.async_session import AsyncRunner, RunOptions
    from laptop_agents.session.workspace import Workspace

    config = load_config(REPO / "config", env={}, cli_settings={"mock": {"scenario": "losing_streak",
                                                                         "candle_interval_sec": interval_sec}})
    bars = [b for _, b in zip(range(60), MockBarGenerator(config.settings.mock), strict=False)]
    runner = AsyncRunner(config, Workspace.resolve(tmp_path / name), _PacedProvider(bars[:50], bars[50:], interval_sec),
                         RunOptions(duration_min=minutes, source="mock", warmup=True), env={})
    assert runner.run() == 0
    return _events(runner.run_dir.events)


def test_no_entry_that_cannot_live_to_its_next_candle(tmp_path: Path) -> None:
    """Candles 1 s apart: with 0.9 s left the breakout is refused as `session_ending`; with 3 s left it trades."""
    short = _paced_session(tmp_path, "short", 0.015, 1.0)
    names = [e["event"] for e in short]
    assert "SignalGenerated" in names, "the breakout bar must signal for this test to mean anything"
    assert "OrderSubmitted" not in names and "ExecutionFill" not in names
    rejected = [e for e in short if e["event"] == "RiskRejected"]
    assert rejected and {e["reason"] for e in rejected} == {"session_ending"}
    assert all(abs(e["next_candle_in_sec"] - 1.0) < 0.25 and e["session_left_sec"] < 1.0 for e in rejected)

    ample = _paced_session(tmp_path, "ample", 0.05, 1.0)
    assert "session_ending" not in [e["reason"] for e in ample if e["event"] == "RiskRejected"]
    assert any(e["event"] == "ExecutionFill" for e in ample)


def test_the_cadence_is_measured_not_assumed(tmp_path: Path) -> None:
    """A 1m bar arriving every 0.3 s (a time-scaled feed) must not be treated as 60 s away: entries go on."""
    from laptop_agents.session.async_session import AsyncRunner, RunOptions
    from laptop_agents.session.workspace import Workspace

    config = load_config(REPO / "config", env={}, cli_settings={"mock": {"scenario": "losing_streak"}})
    bars = [b for _, b in zip(range(160), MockBarGenerator(config.settings.mock), strict=False)]
    # source "bitunix": no mock cadence in the config, the configured guess is the 60 s bar
    runner = AsyncRunner(config, Workspace.resolve(tmp_path / "ws"), _PacedProvider(bars[:48], bars[48:], 0.02),
                         RunOptions(duration_min=0.05, source="bitunix", warmup=True), env={})
    assert runner.run() == 0
    events = _events(runner.run_dir.events)
    assert any(e["event"] == "ExecutionFill" for e in events), [e for e in events if e["event"] == "RiskRejected"]


def _events(path: Path) -> list[dict]:
    import json

    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
