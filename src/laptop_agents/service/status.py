"""The live view of a running session: /status JSON, /healthz, /readyz.

`status_payload` is a superset of `la status --json` (same keys, same
meaning), plus what only the running process knows: data and heartbeat ages,
breaker and kill-switch state, readiness and the most recent domain events.
"""

from __future__ import annotations

import os
import time
from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from laptop_agents.core.events import Event, EventName
from laptop_agents.core.models import utc_iso
from laptop_agents.session.async_session import AsyncRunner

RECENT_EVENTS = 50
_QUIET = {EventName.CANDLE_PROCESSED}


class RecentEvents:
    """Bus subscriber keeping the last N events (candles are summarised elsewhere: too chatty)."""

    def __init__(self, size: int = RECENT_EVENTS) -> None:
        self._events: deque[dict[str, Any]] = deque(maxlen=size)

    def __call__(self, event: Event) -> None:
        if event.name not in _QUIET:
            self._events.append(event.to_record())

    def snapshot(self) -> list[dict[str, Any]]:
        return list(self._events)


@dataclass(frozen=True)
class Thresholds:
    """When the loop counts as alive and the data as fresh."""

    heartbeat_max_age_sec: float
    data_max_age_sec: float

    @classmethod
    def for_runner(cls, runner: AsyncRunner) -> Thresholds:
        s = runner.settings
        # a healthy loop beats every control_interval; allow a few misses, never more than the watchdog's limit
        hb = min(s.heartbeat_timeout_sec, max(2.0, 8 * s.control_interval_sec))
        # not ready once data is half-way to the stale-data stop: an operator sees it before the session stops
        return cls(heartbeat_max_age_sec=hb, data_max_age_sec=s.stale_data_timeout_sec / 2)


def health(runner: AsyncRunner, th: Thresholds) -> tuple[bool, dict[str, Any]]:
    age = runner.heartbeat_age_sec
    ok = age <= th.heartbeat_max_age_sec
    return ok, {"healthy": ok, "heartbeat_age_sec": round(age, 3), "heartbeat_max_age_sec": th.heartbeat_max_age_sec}


def readiness(runner: AsyncRunner, th: Thresholds) -> tuple[bool, dict[str, Any]]:
    problems: list[str] = []
    age = runner.data_age_sec
    if age is None:
        problems.append("no market data yet")
    elif age > th.data_max_age_sec:
        problems.append(f"market data is {age:.1f}s old (limit {th.data_max_age_sec:.1f}s)")
    if runner.stopped_reason is not None:
        problems.append(f"stopping: {runner.stopped_reason}")
    stay_up = getattr(runner, "stay_up", None)
    if stay_up is not None and stay_up.halted:
        problems += [f"halted: {line}" for line in stay_up.causes.describe()]
    elif runner.pipeline.kill_switch_active:
        problems.append("kill switch active")
    breaker = runner.breaker.state
    if breaker.tripped and not (stay_up is not None and "circuit_breaker" in stay_up.causes.active):
        problems.append(f"circuit breaker tripped ({breaker.reason}): no new entries until `la reset-breaker`")
    hb_ok, _ = health(runner, th)
    if not hb_ok:
        problems.append("trading loop heartbeat is stale")
    ok = not problems
    broker = getattr(getattr(runner, "broker", None), "name", "paper")
    return ok, {"ready": ok, "problems": problems, "data_age_sec": None if age is None else round(age, 3),
                "data_max_age_sec": th.data_max_age_sec, "broker": broker, "broker_healthy": True}


def status_payload(runner: AsyncRunner, th: Thresholds, recent: RecentEvents | None = None,
                   extra: dict[str, Any] | None = None) -> dict[str, Any]:
    paper = runner.paper
    pos = paper.position
    last = runner.pipeline.last_candle
    breaker = runner.breaker
    price = paper.last_price
    ready, ready_info = readiness(runner, th)
    healthy, _ = health(runner, th)
    started = runner._started_at
    out: dict[str, Any] = {
        # the keys of `la status --json`
        "state": _state(runner),
        "pid": os.getpid(),
        "run_id": runner.run_id,
        "uptime_sec": round(time.monotonic() - runner._started_mono, 1),
        "equity": str(paper.equity),
        "position": None if pos is None else {
            "side": pos.side.value, "qty": str(pos.qty), "entry_price": str(pos.entry_price),
            "stop_loss": str(pos.stop_loss), "take_profit": str(pos.take_profit),
            "notional": None if price is None else str(pos.notional(price)),
            "unrealized_pnl": None if price is None else str(pos.unrealized_pnl(price)),
        },
        "candles_processed": runner.pipeline.candles_processed,
        "last_stopped_reason": runner.stopped_reason,
        "stale_lock": False,  # this process holds the lock
        "workspace": str(runner.workspace.root),
        # what only the live process knows
        "mode": runner.mode,  # paper or live: the broker factory's mode, never assumed
        "source": runner.options.source,
        "symbol": runner.config.strategy.symbol,
        "started_at": None if started is None else utc_iso(started),
        "starting_equity": str(paper.starting_equity),
        "mark_to_market_equity": str(paper.mark_to_market()),
        "realized_pnl": str(paper.equity - paper.starting_equity),
        "trades": len(paper.trades),
        "last_candle": None if last is None else {
            "ts": utc_iso(last.ts), "open": str(last.open), "high": str(last.high), "low": str(last.low),
            "close": str(last.close), "volume": str(last.volume),
        },
        "data_age_sec": ready_info["data_age_sec"],
        "heartbeat_age_sec": round(runner.heartbeat_age_sec, 3),
        "healthy": healthy,
        "ready": ready,
        "not_ready_because": ready_info["problems"],
        "breaker": {**breaker.state.to_dict(), "drawdown_pct": str(breaker.drawdown_pct(paper.mark_to_market()).quantize(Decimal("0.0001"))),
            "max_drawdown_pct": str(breaker.config.max_drawdown_pct),
            "action": breaker.config.action},
        "kill_switch_active": runner.pipeline.kill_switch_active,
        # `la status --json`'s guard keys (session/guard_notices.py): the breaker halts entries / why the kill switch is on
        "entries_halted": not breaker.allows_entries,
        "kill_switch": runner.kill_switch.reason(),
        "halted": _halted(runner),
        "stop_detail": runner.stop_detail or None,
        "recent_events": [] if recent is None else recent.snapshot(),
    }
    if extra:
        out.update(extra)
    return out


def _state(runner: AsyncRunner) -> str:
    if runner.stopped_reason is not None:
        return "STOPPING"
    stay_up = getattr(runner, "stay_up", None)
    return "HALTED" if stay_up is not None and stay_up.halted else "RUNNING"


def _halted(runner: AsyncRunner) -> dict[str, Any] | None:
    """Service mode: why the session is halted in place and how the data source is doing (None when trading)."""
    stay_up = getattr(runner, "stay_up", None)
    if stay_up is None or not stay_up.halted:
        return None
    since = stay_up.halted_since
    return {"reasons": dict(stay_up.causes.active), "primary": stay_up.causes.primary,
            "halted_sec": None if since is None else round(time.monotonic() - since, 1),
            "data_source_up": stay_up.data_source_up, "data_source_failures": stay_up.failures,
            "next_reconnect_in_sec": None if stay_up.next_attempt_at is None
            else round(max(0.0, stay_up.next_attempt_at - time.monotonic()), 1)}
