"""Fast-forward replay: the live session's pipeline on a simulated clock.

Same Supervisor, risk layer, PaperBroker and artifacts as `live-session`; the
clock is simulated (each candle is decided at its close time) and candles come
as fast as they can be processed. A replay never reads or writes the paper
account's state or lock: it starts from `starting_equity` every time, so the
same input and seed give byte-identical trades.csv.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from itertools import chain

from laptop_agents.agents.supervisor import Supervisor
from laptop_agents.core.clock import SimulatedClock
from laptop_agents.core.config_models import AppConfig
from laptop_agents.core.errors import ExitCode
from laptop_agents.core.events import Event, EventBus, EventName
from laptop_agents.core.logger import flush_logging, setup_logging
from laptop_agents.core.models import TIMEFRAME_SEC, Candle
from laptop_agents.core.orchestrator import RunDirectory, new_run_id
from laptop_agents.execution.broker import PaperBrokerPort
from laptop_agents.paper.broker import PaperBroker
from laptop_agents.reporting.summary_html import SessionSummary
from laptop_agents.resilience.trading_circuit_breaker import TradingCircuitBreaker
from laptop_agents.session.pipeline import TradingPipeline
from laptop_agents.session.recorder import RunRecorder
from laptop_agents.session.workspace import Workspace

log = logging.getLogger("laptop_agents.session.backtest")


class ProgressBar:
    """A one-line progress bar on a terminal; silent when stderr is not a TTY."""

    def __init__(self, total: int | None, enabled: bool | None = None) -> None:
        self.total = total
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._next = 0
        self._step = max(1, (total or 100_000) // 200)
        self._started = time.monotonic()

    def update(self, done: int) -> None:
        if not self.enabled or done < self._next:
            return
        self._next = done + self._step
        rate = done / max(time.monotonic() - self._started, 1e-9)
        if self.total:
            frac = done / self.total
            bar = "#" * int(frac * 30)
            sys.stderr.write(f"\rreplay [{bar:<30}] {frac:6.1%} {done}/{self.total} candles, {rate:,.0f}/s")
        else:
            sys.stderr.write(f"\rreplay {done} candles, {rate:,.0f}/s")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


class BacktestRunner:
    def __init__(
        self,
        config: AppConfig,
        workspace: Workspace,
        candles: Iterable[Candle],
        *,
        source: str,
        total: int | None = None,
        candle_events: bool = True,
        progress: bool | None = None,
        console_level: int = logging.INFO,
    ) -> None:
        self.config = config
        self.workspace = workspace
        self.candles = candles
        self.source = source
        self.total = total
        self.candle_events = candle_events
        self.progress = ProgressBar(total, progress)
        self.console_level = console_level
        self.stopped_reason = "completed"
        self.exit_code: int = ExitCode.OK

    def run(self) -> int:
        return asyncio.run(self._main())

    async def _main(self) -> int:
        candles = iter(self.candles)
        first = next(candles, None)
        wall_start = time.monotonic()
        clock = SimulatedClock(first.ts if first else self._epoch())
        self.run_id = new_run_id(datetime.now(UTC), "backtest")
        self.workspace.runs_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir = RunDirectory(self.workspace.runs_dir, self.run_id).create()
        setup_logging(self.run_dir.system, self.console_level)
        paper = PaperBroker(self.config.settings.paper, symbol=self.config.strategy.symbol)
        breaker = TradingCircuitBreaker(self.config.risk.circuit_breaker, self.config.risk.hard_limits())
        supervisor = Supervisor(self.config.strategy, self.config.risk, self.config.settings.paper, breaker)
        bus = EventBus()
        pipeline = TradingPipeline(supervisor, PaperBrokerPort(paper), bus, clock)
        self.paper, self.pipeline = paper, pipeline
        recorder = RunRecorder(self.run_dir, bus, paper, self.config, mode="backtest", source=self.source,
                               started_at=clock.now(), candle_events=self.candle_events,
                               extra_snapshot={"candles": self.total}, durable_trades=False)
        bus.subscribe(recorder.trades_observer)
        self.recorder = recorder
        bus.publish(Event(EventName.SESSION_START, clock.now(), run_id=self.run_id, mode="backtest",
                          session_mode="backtest", source=self.source, symbol=self.config.strategy.symbol,
                          duration_min=None, candles=self.total, config_hash=self.config.config_hash,
                          strategy=self.config.strategy.name, starting_equity=paper.equity))
        log.info("replay %s started: source %s, %s candles", self.run_id, self.source, self.total or "all")
        bar_len = timedelta(seconds=TIMEFRAME_SEC[self.config.strategy.timeframe])
        process = pipeline.process
        advance = clock.advance_to
        progress = self.progress.update
        stop: str | None = None
        if first is not None:
            for n, candle in enumerate(chain((first,), candles), 1):
                advance(candle.ts + bar_len)  # decided at the bar's close
                stop = await process(candle)
                if stop:
                    break
                if not n & 1023:
                    progress(n)
        self.progress.close()
        self.stopped_reason = stop or "completed"
        self.exit_code = ExitCode.CIRCUIT_BREAKER if stop == "circuit_breaker" else ExitCode.OK
        await pipeline.flatten("session_end" if stop is None else stop)
        summary: SessionSummary = recorder.finish(
            reason=self.stopped_reason, detail="end of data" if stop is None else stop, exit_code=self.exit_code,
            ended=clock.now(), duration_sec=time.monotonic() - wall_start, candles_processed=pipeline.candles_processed,
            breaker=breaker.state.to_dict(),
        )
        self.wall_seconds = time.monotonic() - wall_start
        log.info("replay %s done: %d candles in %.2fs (%.0f/s), %d trades, equity %s", self.run_id,
                 pipeline.candles_processed, self.wall_seconds,
                 pipeline.candles_processed / max(self.wall_seconds, 1e-9), len(summary.trades), paper.equity)
        flush_logging()
        return self.exit_code

    def _epoch(self) -> datetime:
        from laptop_agents.core.models import parse_utc

        return parse_utc(self.config.settings.mock.start_time)
