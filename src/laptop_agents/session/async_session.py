"""AsyncRunner: the composition root and lifecycle of one trading session.

Start-up: PID lock → load and verify persisted state (refuse if corrupted) →
open the broker (session/brokers.py: paper by default; live = signed opt-in gate,
exchange client, reconciliation) → run directory, logging, journal → SessionStart
→ watchdog thread → signal handlers → market data consumer + control loop.
Paper and live differ only in the broker factory and the workspace mode.

The control loop ticks every `control_interval_sec`: it beats the heartbeat the
watchdog watches, and stops the session on its deadline (`completed`), the kill
switch, stale market data, a provider failure, a breaker stop or a signal.

Every stop goes through one shutdown path: stop market data, `close_all()`
the position, release the broker (live: cancel all, close all, verify flat, or
exit 10), persist state, SessionEnd, trades.csv and summary.html, then
release the lock. The watchdog thread has its own emergency version of that
path for when the event loop itself is frozen.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psutil

from laptop_agents.agents.supervisor import EntryWindow, Supervisor
from laptop_agents.core.clock import Clock, SystemClock
from laptop_agents.core.config_models import AppConfig
from laptop_agents.core.errors import DiskError, ExitCode, LaError, is_disk_error
from laptop_agents.core.events import Event, EventBus, EventName
from laptop_agents.core.logger import flush_logging, setup_logging
from laptop_agents.core.models import TIMEFRAME_SEC, utc_iso
from laptop_agents.core.orchestrator import RunDirectory, new_run_id
from laptop_agents.core.state import StateManager, atomic_write_text
from laptop_agents.data.providers.base import FatalError, MarketDataProvider
from laptop_agents.execution.broker import WritesAhead
from laptop_agents.resilience.trading_circuit_breaker import BreakerState, TradingCircuitBreaker
from laptop_agents.session.brokers import BrokerFactory, PaperBrokerFactory
from laptop_agents.session.failures import CREDENTIALS_REJECTED, DISK_ERROR, EXCHANGE_UNAVAILABLE, classify
from laptop_agents.session.guard_notices import GuardNotices, announce_at_start
from laptop_agents.session.kill_switch import KillSwitch
from laptop_agents.session.lock import AccountLock, PidLock, SessionLock, resolve_lock_dir
from laptop_agents.session.pipeline import TradingPipeline
from laptop_agents.session.read_model import SessionSnapshot, status_file
from laptop_agents.session.recorder import RunRecorder
from laptop_agents.session.snapshot import build_snapshot
from laptop_agents.session.state_store import StateStore, live_booked_pnls, load_breaker_state
from laptop_agents.session.stay_up import Backoff, StayUp, take_reset_request
from laptop_agents.session.test_hooks import SIGKILL_BEFORE_EXIT_SAVED, sigkill_after_exit_saved
from laptop_agents.session.workspace import Workspace

log = logging.getLogger("laptop_agents.session")

# stopped_reason -> (exit code, exit reason given to close_all)
STOP_REASONS: dict[str, tuple[ExitCode, str]] = {
    "completed": (ExitCode.OK, "session_end"),
    "sigterm": (ExitCode.OK, "shutdown"),
    "sigint": (ExitCode.OK, "shutdown"),
    "kill_switch": (ExitCode.KILL_SWITCH, "kill_switch"),
    "circuit_breaker": (ExitCode.CIRCUIT_BREAKER, "circuit_breaker"),
    "stale_data": (ExitCode.STALE_DATA, "stale_data"),
    "watchdog_heartbeat": (ExitCode.WATCHDOG, "watchdog"),
    "watchdog_memory": (ExitCode.WATCHDOG, "watchdog"),
    "data_error": (ExitCode.DATA_ERROR, "data_error"),
    "data_exhausted": (ExitCode.OK, "session_end"),
    "error": (ExitCode.INTERNAL_ERROR, "error"),
    "optin_expired": (ExitCode.USAGE, "optin_expired"),
    "order_identity": (ExitCode.STATE_ERROR, "order_identity"),
    EXCHANGE_UNAVAILABLE: (ExitCode.EXCHANGE_UNAVAILABLE, EXCHANGE_UNAVAILABLE),
    CREDENTIALS_REJECTED: (ExitCode.CREDENTIALS_REJECTED, CREDENTIALS_REJECTED),
    DISK_ERROR: (ExitCode.DISK_ERROR, DISK_ERROR),
}
ORDINARY_FAILURES = frozenset({EXCHANGE_UNAVAILABLE, CREDENTIALS_REJECTED, DISK_ERROR})
"""Stop reasons that are not bugs: the CLI prints their detail (cause and fix) as the error line."""


class SessionHooks:
    """Extension points for the shell around a session (service mode: systemd notify, HTTP, alerts).

    Called on the loop thread. Override what you need; every method is a no-op
    by default. A hook that raises is logged and ignored: observers never stop trading.
    """

    def on_started(self, runner: AsyncRunner) -> None:
        """After SessionStart, before the first candle."""

    def on_heartbeat(self, runner: AsyncRunner) -> None:
        """Every control tick (`control_interval_sec`) while the loop is healthy."""

    def on_first_candle(self, runner: AsyncRunner) -> None:
        """Once, when market data first flows."""

    def on_stopping(self, runner: AsyncRunner) -> None:
        """When shutdown begins (before close_all)."""

    def on_finished(self, runner: AsyncRunner) -> None:
        """After SessionEnd and the reports, before the lock is released."""


@dataclass(frozen=True)
class RunOptions:
    duration_min: float | None  # None: run until stopped (service mode)
    source: str = "mock"
    mode: str = "live-session"
    warmup: bool = False  # feed the provider's recent history (warm_up) to the strategy before trading
    # service mode (`la serve`): kill switch, breaker stop, stale data and a dead data source halt in place
    # (flat, no entries, not ready) until cleared, instead of exiting 4/5/6/9 (session/stay_up.py)
    stay_up: bool = False
    data_retry_base_sec: float = 5.0  # stay_up: capped exponential back-off between data-source reconnects
    data_retry_max_sec: float = 300.0


class AsyncRunner:
    """Runs one session from lock to SessionEnd; `run()` returns the process exit code."""

    def __init__(
        self,
        config: AppConfig,
        workspace: Workspace,
        provider: MarketDataProvider,
        options: RunOptions,
        clock: Clock | None = None,
        env: dict[str, str] | None = None,
        hooks: list[SessionHooks] | None = None,
        broker_factory: BrokerFactory | None = None,
        provider_factory: Callable[[], MarketDataProvider] | None = None,
    ) -> None:
        self.factory: BrokerFactory = broker_factory or PaperBrokerFactory(config)
        if workspace.mode != self.factory.mode:
            raise ValueError(f"a {self.factory.mode} session needs the {self.factory.mode} workspace, "
                             f"got {workspace.mode}")
        self.mode = self.factory.mode
        self.config = config
        self.workspace = workspace
        self.provider = provider
        self.options = options
        self.clock = clock or SystemClock()
        self.settings = config.settings.session
        self.kill_switch = KillSwitch(workspace.kill_files(), env)
        self.lock = SessionLock(PidLock(workspace.lock_path), None)  # + the account lock, at _setup
        self.state = StateManager(workspace.state_dir)
        self.bus = EventBus()
        self.hooks = list(hooks or [])
        self.stopped_reason: str | None = None
        self.stop_detail: str = ""
        self._stop_event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._heartbeat = time.monotonic()
        self._finished = threading.Event()
        self._shutdown_started = threading.Event()
        self._watchdog_stop = threading.Event()
        self._started_mono = time.monotonic()
        self._started_at: datetime = self.clock.now()  # set again when _setup starts the session
        self._deadline_mono: float | None = None
        self._candle_arrivals: deque[float] = deque(maxlen=6)  # monotonic arrival times: the measured cadence
        self.exit_code: int = ExitCode.INTERNAL_ERROR
        self._consumer: asyncio.Task[None] | None = None
        self._data_before_replace: float | None = None
        self.stay_up: StayUp | None = None
        if options.stay_up:
            self.stay_up = StayUp(self, provider_factory,
                                  Backoff(options.data_retry_base_sec, options.data_retry_max_sec))
        self._fresh_breaker = False
        self._ended = False
        self._snapshot_failed = False
        self.read_model: SessionSnapshot | None = None
        """The session's one read model, republished every heartbeat and before each hook (session/read_model.py);
        every view (status.json, /status, STATUS=, metrics, dashboard, la status) renders it."""

    # ------------------------------------------------------------------ start-up
    @property
    def paper(self) -> Any:
        """The account the session reports on (PaperBroker, or BitunixBroker when live); name kept for callers."""
        return self.account

    def _load_state(self) -> tuple[TradingCircuitBreaker, bool]:
        restored = self.factory.load(self.state, self.workspace)
        account = self.factory.account if restored and self.mode == "paper" else None  # live: built in open()
        breaker_state = load_breaker_state(
            self.state, equity=account.equity if account else None,
            trade_pnls=[t.pnl for t in account.trades] if account else None,
            booked_pnls=live_booked_pnls(getattr(self.factory, "state", None)) if self.mode == "live" else None,
        )
        self._fresh_breaker = breaker_state is None
        breaker = TradingCircuitBreaker(self.config.risk.circuit_breaker, self.config.risk.hard_limits(),
                                        breaker_state or BreakerState())
        return breaker, restored

    def _account_lock(self) -> AccountLock | None:
        """The host-wide lock of the account this session trades (None if the factory cannot name it)."""
        key_of = getattr(self.factory, "account_key", None)
        key = key_of(self.workspace) if key_of is not None else None
        if key is None:
            return None
        return AccountLock(resolve_lock_dir(self.settings.lock_dir), key)

    def _lock_info(self, run_id: str | None) -> dict[str, Any]:
        return {"run_id": run_id, "started_at": utc_iso(self._started_at), "mode": self.mode,
                "workspace": str(self.workspace.root), "source": self.options.source}

    def _setup(self) -> None:
        self._started_at = self.clock.now()
        self.lock.account = self._account_lock()
        self.lock.acquire(self._lock_info(None))
        try:
            self._loaded = self._load_state()
        except BaseException as exc:
            self.lock.release()
            _raise_ordinary(exc)
            raise

    async def _open(self) -> None:
        """Open the broker (live: gate, client, reconciliation) and build the session; release the lock on failure."""
        breaker, restored = self._loaded
        try:
            broker, start_events = await self.factory.open(self.clock.now())
            self._build(broker, start_events, breaker, restored, self.mode)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await self.factory.shutdown("start_failed", self.clock.now())
            self.lock.release()
            _raise_ordinary(exc)  # the exchange down, credentials refused, disk full: one line, its own code
            raise

    def _build(self, broker: Any, start_events: list[Event], breaker: TradingCircuitBreaker, restored: bool,
               mode: str) -> None:
        self.run_id = new_run_id(self._started_at, mode)
        self.lock.update(self._lock_info(self.run_id))
        self.run_dir = RunDirectory(self.workspace.runs_dir, self.run_id).create()
        setup_logging(self.run_dir.system)
        self.account = account = self.factory.account
        self.broker = broker
        self.breaker = breaker
        if self._fresh_breaker:  # drawdown from the starting equity; a restored peak is kept
            breaker.anchor_peak(account.starting_equity, account.equity)
        self.supervisor = Supervisor(self.config.strategy, self.config.risk, self.config.settings.paper, breaker)
        self.pipeline = TradingPipeline(self.supervisor, self.broker, self.bus, self.clock)
        self.recorder = RunRecorder(
            self.run_dir, self.bus, account, self.config, mode=mode, source=self.options.source,
            started_at=self._started_at, extra_snapshot={"duration_min": self.options.duration_min},
            carried_trades=_booked_at_start(account.trades, start_events),
        )
        self.journal = self.recorder.journal
        self.store = StateStore(self.state, self.broker.to_state, lambda: self.breaker.state.to_dict(),
                                broker_kind=self.factory.state_kind, now=self.clock.now)
        if isinstance(broker, WritesAhead):
            broker.persist = self.store.write_ahead  # an entry on its way in is on disk before it is sent
        if (kill_point := sigkill_after_exit_saved(SIGKILL_BEFORE_EXIT_SAVED)) is not None:  # test-only, inert
            self.bus.subscribe(kill_point)
        self.bus.subscribe(self.store)
        if (kill_point := sigkill_after_exit_saved()) is not None:  # test-only, inert unless its env var is set
            self.bus.subscribe(kill_point)
        self.bus.subscribe(GuardNotices())
        self.bus.subscribe(self.recorder.trades_observer)  # after the store: state first, then the csv row
        if self.lock.recovered_from is not None:
            prev = self.lock.recovered_from
            log.warning("recovered a stale lock left by pid %s (run %s): that session is not running", prev.pid, prev.run_id)
            self.bus.publish(Event(EventName.LOCK_RECOVERED, self.clock.now(), previous_pid=prev.pid, previous_run_id=prev.run_id))
        self.bus.publish_all(start_events)
        if restored and mode == "paper":
            paper = account
            pos = paper.position
            log.info(
                "restored paper state: equity %s, %d trades, open position %s",
                paper.equity, len(paper.trades), pos.position_id if pos else "none",
            )
            self.bus.publish(Event(
                EventName.STATE_RESTORED, self.clock.now(), equity=paper.equity, trades=len(paper.trades),
                position_id=pos.position_id if pos else None, position_side=pos.side if pos else None,
                position_qty=pos.qty if pos else None, breaker_tripped=breaker.state.tripped,
            ))

    def publish_snapshot(self) -> SessionSnapshot | None:
        """Take and publish the read model now; a failure keeps the previous value (views never stop trading)."""
        try:
            self.read_model = build_snapshot(self, time.monotonic(), running=not self._ended)
        except Exception:  # noqa: BLE001 - observers never stop trading
            # once with its traceback, then quietly: a bug here must not flood the log every heartbeat
            log.log(logging.DEBUG if self._snapshot_failed else logging.ERROR, "could not build the session "
                    "snapshot; the views show the previous one", exc_info=not self._snapshot_failed)
            self._snapshot_failed = True
        return self.read_model

    def _call_hooks(self, name: str) -> None:
        self.publish_snapshot()
        for hook in self.hooks:
            try:
                getattr(hook, name)(self)
            except Exception:  # noqa: BLE001 - observers never stop trading
                log.exception("session hook %s.%s failed", type(hook).__name__, name)

    @property
    def heartbeat_age_sec(self) -> float:
        return time.monotonic() - self._heartbeat

    @property
    def heartbeat_mono(self) -> float:
        return self._heartbeat

    @property
    def started_mono(self) -> float:
        return self._started_mono

    @property
    def started_at(self) -> datetime:
        return self._started_at

    def last_progress_monotonic(self) -> float | None:
        """Monotonic time of the last market progress (None before any), across replaced providers."""
        return self._last_data_monotonic()

    @property
    def uptime_sec(self) -> float:
        return time.monotonic() - self._started_mono

    @property
    def data_age_sec(self) -> float | None:
        """Seconds since the market data last made progress (what stale_data, /readyz and the metric use)."""
        last = self._last_data_monotonic()
        return None if last is None else time.monotonic() - last

    def _last_data_monotonic(self) -> float | None:
        """The last market progress of this session, across providers replaced by a reconnect (service mode)."""
        last = progress_monotonic(self.provider)
        return last if last is not None else self._data_before_replace

    # ------------------------------------------------------------------ run
    def run(self) -> int:
        """Blocking entry point: set up, run the loop, shut down. Returns the exit code."""
        self._setup()
        try:
            asyncio.run(self._main())
        finally:
            self._watchdog_stop.set()
        return self.exit_code

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self._open()
        self._stop_event = asyncio.Event()
        self._started_mono = time.monotonic()
        if self.options.duration_min is not None:
            self._deadline_mono = self._started_mono + self.options.duration_min * 60
            self.pipeline.entry_window = self._entry_window
        for sig, name in ((signal.SIGTERM, "sigterm"), (signal.SIGINT, "sigint")):
            self._loop.add_signal_handler(sig, self.request_stop, name, f"received {name.upper()}")
        threading.Thread(target=self._threaded_watchdog, name="la-watchdog", daemon=True).start()
        pos = self.account.position
        self.bus.publish(Event(
            EventName.SESSION_START, self.clock.now(), run_id=self.run_id, mode=self.mode, session_mode=self.options.mode,
            source=self.options.source, symbol=self.config.strategy.symbol, duration_min=self.options.duration_min,
            pid=os.getpid(), config_hash=self.config.config_hash, strategy=self.config.strategy.name,
            starting_equity=self.account.equity, open_position=pos.position_id if pos else None,
        ))
        log.info("session %s started: %s, source %s, duration %s min", self.run_id, self.mode, self.options.source,
                 self.options.duration_min if self.options.duration_min is not None else "unlimited")
        announce_at_start(self.breaker.state, self.kill_switch.reason())
        self._call_hooks("on_started")
        if self.options.warmup:
            await self._warm_up()
        self._consumer = asyncio.create_task(self._consume(), name="market-data")
        try:
            await self._control_loop()
        except Exception as exc:  # noqa: BLE001 - any bug still goes through the shutdown path
            ordinary = classify(exc)
            if ordinary is not None:
                log.error("stopping: %s", ordinary[1])
                self.request_stop(ordinary[0], str(ordinary[1]))
            else:
                log.critical("session loop failed", exc_info=True)
                self.request_stop("error", "unhandled exception in the control loop")
        await self._shutdown(self._consumer)

    def consumer_done(self) -> bool:
        return self._consumer is None or self._consumer.done()

    def replace_provider(self, provider: MarketDataProvider) -> None:
        """Service mode: consume a fresh provider after the previous one gave up (stay_up reconnects)."""
        previous = progress_monotonic(self.provider)
        if previous is not None:
            self._data_before_replace = previous
        self.provider = provider
        self._consumer = asyncio.create_task(self._consume(), name="market-data")

    def stale_age(self, now: float) -> float:
        """Seconds without market progress (since the session started if none came yet)."""
        last = self._last_data_monotonic()
        return now - (last if last is not None else self._started_mono)

    async def _warm_up(self) -> None:
        """Prime the strategy's indicators with recent closed candles (no trading on them)."""
        warm_up = getattr(self.provider, "warm_up", None)
        if warm_up is None:
            return
        need = self.config.strategy.warmup_candles
        try:
            candles = await asyncio.wait_for(warm_up(need), timeout=self.settings.stale_data_timeout_sec)
        except Exception as exc:  # noqa: BLE001 - a cold start is safe, just slower to trade
            log.warning("warm-up failed (%s: %s); the strategy warms up on live data instead", type(exc).__name__, exc)
            return
        self.pipeline.warm_up(candles)
        log.info("warm-up: %d closed candles from %s", len(candles), self.options.source)

    async def _consume(self) -> None:
        async for candle in self.provider.candles():
            self._candle_arrivals.append(time.monotonic())
            stop = await self.pipeline.process(candle)
            if self.pipeline.candles_processed == 1:
                self._call_hooks("on_first_candle")
            self.journal.flush()
            if stop and not (self.stay_up is not None and self.stay_up.absorbs(stop)):
                self.request_stop(stop, self.breaker.state.detail or stop)
                return

    def candle_interval_sec(self) -> float:
        """Real seconds until the next closed candle is expected: the median of the last few gaps between candle
        arrivals once there are some (a time-scaled mock exchange's bar is not 60 real seconds), else the
        configured cadence (mock: candle_interval_sec; else the bar length)."""
        arrivals = self._candle_arrivals
        if len(arrivals) >= 2:
            gaps = sorted(b - a for a, b in zip(arrivals, list(arrivals)[1:], strict=False))
            return gaps[len(gaps) // 2]
        if self.options.source == "mock":
            return float(self.config.settings.mock.candle_interval_sec)
        return float(TIMEFRAME_SEC[self.config.strategy.timeframe])

    def _entry_window(self) -> EntryWindow | None:
        if self._deadline_mono is None:
            return None
        return EntryWindow(self._deadline_mono - time.monotonic(), self.candle_interval_sec())

    def request_stop(self, reason: str, detail: str = "") -> None:
        """Ask the session to stop (first reason wins). Loop-thread only; see _request_stop_threadsafe."""
        if self.stopped_reason is not None:
            log.info("already stopping (%s); ignoring %s", self.stopped_reason, reason)
            return
        self.stopped_reason = reason
        self.stop_detail = detail
        level = logging.INFO if reason in ("completed", "sigterm", "sigint", "data_exhausted") else logging.WARNING
        log.log(level, "stopping: %s%s", reason, f" ({detail})" if detail else "")
        if self._stop_event is not None:
            self._stop_event.set()

    async def _control_loop(self) -> None:
        assert self._stop_event is not None and self._consumer is not None
        s = self.settings
        deadline = self._deadline_mono
        next_status = 0.0
        gap_warned = False
        while not self._stop_event.is_set():
            now = time.monotonic()
            self._heartbeat = now
            take_reset_request(self)
            if self.stay_up is not None:
                # service mode: kill switch, breaker stop, stale data, dead data source → halt in place
                await self.stay_up.tick(now)
            reason = None if self.stay_up is not None else self.kill_switch.reason()
            if reason:
                self.pipeline.kill_switch_active = True
                self.bus.publish(Event(EventName.KILL_SWITCH_ACTIVATED, self.clock.now(), code="KILL_SWITCH", detail=reason))
                log.warning("KILL SWITCH: %s", reason)
                self.request_stop("kill_switch", reason)
                break
            broker_stop = self.factory.check(self.clock.now())
            if broker_stop is not None:
                self.request_stop(*broker_stop)
                break
            if deadline is not None and now >= deadline:
                self.request_stop("completed", f"ran the full {self.options.duration_min} min")
                break
            age = self.stale_age(now)
            if age > s.stale_data_timeout_sec / 2:
                if not gap_warned:  # once per gap
                    gap_warned = True
                    log.warning("market data gap: no progress for %.1fs (over half of stale_data_timeout_sec=%s)",
                                age, s.stale_data_timeout_sec)
            else:
                gap_warned = False
            if self.stay_up is None and age > s.stale_data_timeout_sec:
                self.bus.publish(Event(
                    EventName.STALE_DATA_DETECTED, self.clock.now(), data_age_sec=round(age, 3),
                    stale_data_timeout_sec=s.stale_data_timeout_sec, source=self.options.source,
                ))
                self.request_stop("stale_data", f"no market data for {age:.1f}s (stale_data_timeout_sec={s.stale_data_timeout_sec})")
                break
            consumer = self._consumer
            if consumer.done() and not (self.stay_up is not None and self.stay_up.down_detail is not None):
                self._consumer_finished(consumer)
                break
            write_error = self.store.write_error or self.recorder.write_error
            if write_error is not None:
                self.request_stop(DISK_ERROR, str(DiskError.from_os_error(write_error, action="write")))
                break
            if now >= next_status:
                self.lock.verify()  # a deleted or replaced lock file is taken back (and said so)
                self._write_status()
                next_status = now + s.status_interval_sec
            self.journal.flush()
            self._call_hooks("on_heartbeat")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop_event.wait(), timeout=s.control_interval_sec)

    def _consumer_finished(self, consumer: asyncio.Task[None]) -> None:
        if self.stopped_reason is not None:
            return
        exc = consumer.exception()
        if exc is None:
            self.request_stop("data_exhausted", "the market data source ended")
        elif isinstance(exc, FatalError):
            log.error("market data failed for good: %s", exc)
            self.request_stop("data_error", str(exc))
        elif (ordinary := classify(exc)) is not None:
            log.error("stopping: %s", ordinary[1])
            self.request_stop(ordinary[0], str(ordinary[1]))
        else:
            log.critical("trading pipeline failed", exc_info=exc)
            self.request_stop("error", f"{type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------ shutdown
    async def _shutdown(self, consumer: asyncio.Task[None]) -> None:
        self._shutdown_started.set()
        reason = self.stopped_reason or "error"
        self._call_hooks("on_stopping")
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await consumer
        with contextlib.suppress(Exception):
            await self.provider.close()
        exit_code, exit_reason = STOP_REASONS.get(reason, (ExitCode.INTERNAL_ERROR, reason))
        try:
            trade = await self.pipeline.flatten(exit_reason)
            if trade is not None:
                log.info("close_all(): closed %s %s at %s (pnl %s)", trade.side.value, trade.qty, trade.exit_price, trade.pnl)
            else:
                log.info("close_all(): no open position")
        except LaError as exc:  # e.g. NotFlatError: the broker's shutdown below tries again and gives the verdict
            log.error("close_all() failed during shutdown (%s); the broker's shutdown verifies again", type(exc).__name__)
            if getattr(self.factory, "mode", None) != "live":  # only the live broker's shutdown re-verifies flat
                exit_code = ExitCode.NOT_FLAT
        except Exception:  # noqa: BLE001
            log.critical("close_all() failed during shutdown", exc_info=True)
            exit_code = ExitCode.NOT_FLAT
        try:
            events, trade = await self.factory.shutdown(exit_reason, self.clock.now())
            self.bus.publish_all(events)
            if trade is not None:
                self.bus.publish_all(self.supervisor.on_trade_closed(trade, self.account.equity, self.clock.now()).events)
        except Exception as exc:  # noqa: BLE001 - NotFlatError above all: the operator must act now
            # a LaError's message is the one line the operator needs; anything else is a bug: keep its traceback
            log.critical("shutdown could not verify the account is flat: %s", exc, exc_info=not isinstance(exc, LaError))
            exit_code = ExitCode.NOT_FLAT
        self._finish(reason, exit_code)

    def _finish(self, reason: str, exit_code: int) -> None:
        """Persist, SessionEnd, reports, lock release. Safe to call from the watchdog thread."""
        self.exit_code = int(exit_code)
        try:
            self.store.save_all()
        except Exception as exc:  # noqa: BLE001
            if is_disk_error(exc):  # the file on disk is the last good state (atomic writes): say so, no traceback
                log.critical("could not persist state at shutdown: %s; the state files keep their last saved "
                             "version", DiskError.from_os_error(exc, exc.filename or self.workspace.state_dir))
            else:
                log.critical("could not persist state at shutdown", exc_info=True)
        ended = self.clock.now()
        try:
            summary = self.recorder.finish(
                reason=reason, detail=self.stop_detail, exit_code=self.exit_code, ended=ended,
                duration_sec=time.monotonic() - self._started_mono, candles_processed=self.pipeline.candles_processed,
                breaker=self.breaker.state.to_dict(),
            )
            trade_count = len(summary.trades)
        except Exception as exc:  # noqa: BLE001
            if is_disk_error(exc):
                log.critical("could not write the run's reports: %s",
                             DiskError.from_os_error(exc, exc.filename or self.run_dir.path))
            else:
                log.critical("could not write the run's reports", exc_info=True)
            trade_count = len(self.recorder.run_trades)
        self._write_status(running=False)
        log.info("session %s ended: %s (exit code %d), %d trades, equity %s", self.run_id, reason, self.exit_code,
                 trade_count, self.account.equity)
        self._call_hooks("on_finished")
        flush_logging()
        self.lock.release()
        self._finished.set()

    def _write_status(self, running: bool = True) -> None:
        """status.json: the read model as `la status` (another process) reads it."""
        self._ended = not running
        snapshot = self.publish_snapshot()
        if snapshot is None:
            return
        status = status_file(snapshot)
        try:
            atomic_write_text(self.workspace.status_path, _json(status))
        except OSError as exc:  # status is informational: trading goes on (a full disk is caught by the state saves)
            log.warning("could not write %s: %s", self.workspace.status_path, exc,
                        exc_info=not is_disk_error(exc))

    # ------------------------------------------------------------------ watchdog
    def _threaded_watchdog(self) -> None:
        """Own thread: catches a frozen loop (heartbeat) or runaway memory (RSS).

        First it asks the loop to stop gracefully; if the loop does not finish
        within `shutdown_grace_sec` (it is frozen), the thread flattens, writes
        the artifacts and releases the lock itself, then exits the process.
        """
        s = self.settings
        proc = psutil.Process()
        limit = s.max_memory_mb * 1024 * 1024
        while not self._watchdog_stop.wait(s.watchdog_interval_sec):
            if self._shutdown_started.is_set():
                continue
            hb_age = time.monotonic() - self._heartbeat
            rss = proc.memory_info().rss
            if hb_age > s.heartbeat_timeout_sec:
                self._watchdog_fire("watchdog_heartbeat", f"event loop heartbeat frozen for {hb_age:.1f}s "
                                    f"(heartbeat_timeout_sec={s.heartbeat_timeout_sec})")
                return
            if rss > limit:
                self._watchdog_fire("watchdog_memory", f"RSS {rss / 1048576:.0f} MB exceeds max_memory_mb={s.max_memory_mb:.0f}")
                return

    def _watchdog_fire(self, reason: str, detail: str) -> None:
        log.critical("WATCHDOG: %s", detail)
        self.bus_publish_threadsafe(Event(EventName.WATCHDOG_TRIGGERED, self.clock.now(), reason=reason, detail=detail))
        loop = self._loop
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(self.request_stop, reason, detail)
        if self._finished.wait(self.settings.shutdown_grace_sec):
            return  # the loop shut down gracefully (it will exit with the watchdog code)
        log.critical("WATCHDOG: event loop did not stop within %.0fs; emergency flatten and exit", self.settings.shutdown_grace_sec)
        acquired = self.pipeline.mutation_lock.acquire(timeout=5)
        code = ExitCode.WATCHDOG
        try:
            if self.stopped_reason is None:
                self.stopped_reason, self.stop_detail = reason, detail
            try:
                events, trade = self.broker.close_all_blocking("watchdog", self.clock.now())
            except Exception as exc:  # noqa: BLE001 - live: NotFlatError; still write the artifacts, free the lock
                log.critical("watchdog could not flatten: %s", exc, exc_info=not isinstance(exc, LaError))
                code = ExitCode.NOT_FLAT
            else:
                self.bus.publish_all(events)
                if trade is not None:
                    self.bus.publish_all(
                        self.supervisor.on_trade_closed(trade, self.account.equity, self.clock.now()).events)
            self._finish(reason, code)
        finally:
            if acquired:
                self.pipeline.mutation_lock.release()
            flush_logging()
            os._exit(code)

    def bus_publish_threadsafe(self, event: Event) -> None:
        """Publish from the watchdog thread, between candles if the loop is alive."""
        acquired = self.pipeline.mutation_lock.acquire(timeout=1)
        try:
            self.bus.publish(event)
        finally:
            if acquired:
                self.pipeline.mutation_lock.release()


def progress_monotonic(provider: MarketDataProvider) -> float | None:
    """Where staleness is measured from: the provider's proof of market progress (accepted closed candles and
    valid pushes, see ``base.MarketDataProvider.progress_monotonic``); bare frame liveness only for a provider
    without it."""
    if hasattr(provider, "progress_monotonic"):
        return provider.progress_monotonic
    return provider.last_data_monotonic


def _booked_at_start(trades: list[Any], start_events: list[Event]) -> int:
    """How many of the account's last trades the broker booked while starting (their ExecutionExit events are
    among the start-up events): round trips the exchange completed while no session ran."""
    ids = {e.data.get("trade_id") for e in start_events if e.name == EventName.EXECUTION_EXIT}
    count = 0
    for trade in reversed(trades):
        if trade.trade_id not in ids:
            break
        count += 1
    return count


def _raise_ordinary(exc: BaseException) -> None:
    """Re-raise an ordinary failure as its one-line LaError (no traceback, its own exit code); else return."""
    ordinary = classify(exc)
    if ordinary is not None and ordinary[1] is not exc:
        raise ordinary[1] from None


def _json(data: Any) -> str:
    return json.dumps(data, indent=2, default=str) + "\n"
