"""Service mode (`la serve`): halt in place instead of exiting.

Why: a service that exits on a kill switch, a breaker stop, stale data or a dead
data source is restarted by its supervisor (systemd, Docker) into a loop, and
while it is down Prometheus cannot see *why* (`kill_switch_active == 1` is never
scraped; only "down" fires). So in service mode those four causes make the
session flatten, refuse entries and report itself not ready (`/readyz` 503 with
the reason, the `halted{reason}` gauges, STATUS=), while the loop, the endpoint
and the watchdog keep running. When every cause is cleared (kill.txt removed,
`la reset-breaker`, data flowing again) it resumes trading by itself. `la run`
keeps the seed's behaviour: stop with exit 4/5/6/9.

`HaltCauses` and `Backoff` are pure; `StayUp` is the shell the control loop
calls once per tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from laptop_agents.core.errors import LaError
from laptop_agents.core.events import Event, EventName
from laptop_agents.data.providers.base import FatalError, MarketDataProvider

if TYPE_CHECKING:  # pragma: no cover
    from laptop_agents.session.async_session import AsyncRunner

log = logging.getLogger("laptop_agents.session.stay_up")

KILL_SWITCH = "kill_switch"
CIRCUIT_BREAKER = "circuit_breaker"
STALE_DATA = "stale_data"
DATA_SOURCE_DOWN = "data_source_down"
# most specific first: the primary reason shown when several causes hold at once
HALT_REASONS = (KILL_SWITCH, CIRCUIT_BREAKER, DATA_SOURCE_DOWN, STALE_DATA)
# the exit reason close_all() records for a flatten caused by each halt (same words as `la run`'s exits)
FLATTEN_REASON = {KILL_SWITCH: "kill_switch", CIRCUIT_BREAKER: "circuit_breaker", STALE_DATA: "stale_data",
                  DATA_SOURCE_DOWN: "data_error"}
RESET_REQUEST_NAME = "reset-breaker.request"
FLATTEN_RETRY_SEC = 5.0


@dataclass(frozen=True)
class Backoff:
    """Capped exponential back-off: base, 2·base, 4·base, … never above max."""

    base_sec: float = 5.0
    max_sec: float = 300.0

    def __post_init__(self) -> None:
        if self.base_sec <= 0 or self.max_sec < self.base_sec:
            raise ValueError(f"back-off needs 0 < base ({self.base_sec}) <= max ({self.max_sec})")

    def delay(self, failures: int) -> float:
        """Wait before the next attempt after `failures` (>= 1) consecutive failures."""
        exponent = min(max(failures, 1) - 1, 62)
        return min(self.max_sec, self.base_sec * (2.0 ** exponent))


class HaltCauses:
    """Which halt causes hold now; `update` says which started and which cleared since the last tick."""

    def __init__(self) -> None:
        self.active: dict[str, str] = {}

    def update(self, now: dict[str, str]) -> tuple[list[str], list[str]]:
        started = [r for r in HALT_REASONS if r in now and r not in self.active]
        cleared = [r for r in HALT_REASONS if r in self.active and r not in now]
        self.active = {r: now[r] for r in HALT_REASONS if r in now}
        return started, cleared

    @property
    def halted(self) -> bool:
        return bool(self.active)

    @property
    def primary(self) -> str | None:
        return next(iter(self.active), None)

    def describe(self) -> list[str]:
        """One line per cause, in priority order (what /readyz and STATUS= show)."""
        return [f"{r}: {d}" for r, d in self.active.items()]


def reset_request_path(state_dir: Any) -> Any:
    """Where `la reset-breaker` asks a running session to reset its breaker."""
    return state_dir / RESET_REQUEST_NAME


class StayUp:
    """The control loop's companion in service mode: detect, halt, reconnect, resume."""

    def __init__(self, runner: AsyncRunner, provider_factory: Callable[[], MarketDataProvider] | None,
                 backoff: Backoff) -> None:
        self.runner = runner
        self.provider_factory = provider_factory
        self.backoff = backoff
        self.causes = HaltCauses()
        self.halted_since: float | None = None
        self.halts = 0
        # data source supervision
        self.down_detail: str | None = None
        self.down_since: float | None = None
        self.failures = 0
        self.next_attempt_at: float | None = None
        self.reconnect_attempts = 0
        self.outages = 0
        self._last_flatten_try = float("-inf")
        self._retry_task: asyncio.Task[None] | None = None
        self._handled: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ queries (endpoint, notify)
    @property
    def halted(self) -> bool:
        return self.causes.halted

    @property
    def data_source_up(self) -> bool:
        return self.down_detail is None

    def absorbs(self, stop_reason: str) -> bool:
        """A stop the pipeline asked for that service mode turns into a halt (the breaker's stop_session)."""
        return stop_reason == CIRCUIT_BREAKER

    # ------------------------------------------------------------------ consumer ended
    def on_consumer_done(self, consumer: asyncio.Task[None], now: float) -> bool:
        """The market-data consumer ended: True if it is a data-source failure we ride out (reconnect later).

        Called once per consumer task; otherwise the control loop ends the session as `la run` would.
        """
        if consumer is self._handled:
            return self.down_detail is not None
        self._handled = consumer
        if consumer.cancelled() or self.provider_factory is None or self.runner.stopped_reason is not None:
            return False
        exc = consumer.exception()
        if not isinstance(exc, FatalError):
            return False  # a bug (stop with exit 1) or a finite source that ended (completed)
        self.failures += 1
        delay = self.backoff.delay(self.failures)
        self.next_attempt_at = now + delay
        r = self.runner
        if self.down_detail is None:  # a new outage: one event (→ one alert) for the whole episode
            self.outages += 1
            self.down_since = now
            self.down_detail = str(exc)
            log.error("market data source down: %s; halting in place, reconnecting with back-off (next try in %.0fs)",
                      exc, delay)
            r.bus.publish(Event(EventName.DATA_SOURCE_DOWN, r.clock.now(), source=r.options.source, detail=str(exc),
                                outage=self.outages, retry_in_sec=round(delay, 3)))
        else:
            self.down_detail = str(exc)
            log.warning("market data source still down (attempt %d failed: %s); next try in %.0fs",
                        self.failures, exc, delay)
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().create_task(r.provider.close(), name="close-failed-provider")
        return True

    def _maybe_reconnect(self, now: float) -> None:
        if self.down_detail is None or self.next_attempt_at is None or now < self.next_attempt_at:
            return
        if not self.runner.consumer_done():
            return  # an attempt is under way
        assert self.provider_factory is not None
        self.next_attempt_at = None
        self.reconnect_attempts += 1
        log.info("reconnecting the market data source (attempt %d)", self.reconnect_attempts)
        self.runner.replace_provider(self.provider_factory())

    def _data_back(self, now: float) -> None:
        r = self.runner
        if self.down_detail is None or r.provider.last_data_monotonic is None or r.consumer_done():
            return
        down_for = now - (self.down_since or now)
        log.warning("market data source back after %.0fs (%d failed attempts)", down_for, self.failures)
        r.bus.publish(Event(EventName.DATA_SOURCE_RESTORED, r.clock.now(), source=r.options.source,
                            down_sec=round(down_for, 3), failed_attempts=self.failures, outage=self.outages))
        self.down_detail = None
        self.down_since = None
        self.failures = 0

    # ------------------------------------------------------------------ per tick
    async def tick(self, now: float) -> None:
        r = self.runner
        consumer = r._consumer
        if consumer is not None and consumer.done():
            self.on_consumer_done(consumer, now)
        self._maybe_reconnect(now)
        self._data_back(now)
        causes: dict[str, str] = {}
        kill = r.kill_switch.reason()
        if kill:
            causes[KILL_SWITCH] = kill
        state = r.breaker.state
        if state.tripped and r.config.risk.circuit_breaker.action == "stop_session":
            causes[CIRCUIT_BREAKER] = f"{state.reason}: {state.detail or 'tripped'}; clear with `la reset-breaker`"
        if self.down_detail is not None:
            causes[DATA_SOURCE_DOWN] = self.down_detail
        timeout = r.settings.stale_data_timeout_sec
        age = r.stale_age(now)
        if age > timeout:
            causes[STALE_DATA] = f"no market data for {age:.1f}s (stale_data_timeout_sec={timeout})"
        was_halted = self.causes.halted
        started, cleared = self.causes.update(causes)
        for reason in started:
            self._announce(reason, causes[reason], age, timeout)
        r.pipeline.kill_switch_active = KILL_SWITCH in self.causes.active
        if started and not was_halted:
            self.halts += 1
            self.halted_since = now
            r.pipeline.halted_reason = self.causes.primary
            log.warning("HALTED in place (%s): flat, no new entries, not ready; the service keeps running",
                        "; ".join(self.causes.describe()))
        if self.causes.halted:
            r.pipeline.halted_reason = self.causes.primary
            await self._keep_flat(now, started)
        elif cleared:
            halted_for = now - (self.halted_since or now)
            r.pipeline.halted_reason = None
            self.halted_since = None
            log.warning("RESUMED trading: %s cleared after %.0fs halted", ", ".join(cleared), halted_for)
            r.bus.publish(Event(EventName.SERVICE_RESUMED, r.clock.now(), cleared=",".join(cleared),
                                halted_sec=round(halted_for, 3)))

    def _announce(self, reason: str, detail: str, age: float, timeout: float) -> None:
        r = self.runner
        now = r.clock.now()
        if reason == KILL_SWITCH:
            log.warning("KILL SWITCH: %s", detail)
            r.bus.publish(Event(EventName.KILL_SWITCH_ACTIVATED, now, code="KILL_SWITCH", detail=detail))
        elif reason == STALE_DATA:
            r.bus.publish(Event(EventName.STALE_DATA_DETECTED, now, data_age_sec=round(age, 3),
                                stale_data_timeout_sec=timeout, source=r.options.source))
        r.bus.publish(Event(EventName.SERVICE_HALTED, now, reason=reason, detail=detail,
                            causes=",".join(self.causes.active)))

    async def _keep_flat(self, now: float, started: list[str]) -> None:
        """Flatten when a halt starts (inline: halting means flat); while halted and still not flat (a live close
        the exchange refused), retry every few seconds in the background, so that the control loop keeps beating
        (heartbeat, WATCHDOG=1, /healthz) during a retry that may take the broker's whole exit budget."""
        r = self.runner
        if r.account.position is None:
            return
        if started:
            await self._flatten(FLATTEN_REASON[started[0]])
            return
        busy = self._retry_task is not None and not self._retry_task.done()
        if busy or time.monotonic() - self._last_flatten_try < FLATTEN_RETRY_SEC:
            return
        self._retry_task = asyncio.get_running_loop().create_task(
            self._flatten(FLATTEN_REASON[self.causes.primary or STALE_DATA]), name="halted-flatten-retry")

    async def _flatten(self, reason: str) -> None:
        r = self.runner
        try:
            trade = await r.pipeline.flatten(reason)
        except Exception as exc:  # noqa: BLE001 - stay up, stay halted, try again; the gauges show the position
            log.critical("halted but could not flatten (%s); retrying every %.0fs", exc, FLATTEN_RETRY_SEC,
                         exc_info=not isinstance(exc, LaError))
        else:
            if trade is not None:
                log.warning("halted: closed %s %s at %s (pnl %s)", trade.side.value, trade.qty, trade.exit_price,
                            trade.pnl)
        finally:
            self._last_flatten_try = time.monotonic()


def take_reset_request(runner: AsyncRunner) -> None:
    """`la reset-breaker` while a session runs: the session (the only writer of its breaker state) resets it.

    Every session honours the request (a `la run` whose breaker halts entries, a halted service); the
    request file is removed once handled, which is what `la reset-breaker` waits for.
    """
    path = reset_request_path(runner.workspace.state_dir)
    if not path.exists():
        return
    try:
        request = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        request = {}
    if runner.breaker.state.tripped:
        runner.bus.publish_all(runner.breaker.reset(runner.clock.now(), why="la reset-breaker"))
        log.warning("circuit breaker reset at the request of `la reset-breaker` (pid %s)", request.get("pid"))
        try:
            runner.store.save_all()
        except Exception:  # noqa: BLE001 - the reset holds in memory; the next save persists it
            log.error("could not persist the breaker reset", exc_info=True)
    with contextlib.suppress(OSError):
        path.unlink()
