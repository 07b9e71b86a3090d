"""One read model: the frozen value a running session publishes on every heartbeat.

Why: status used to be rendered three ways (the runner's status.json, the service's /status, the CLI), and
the service read ~25 runner attributes (some private) and getattr-sniffed providers, so each view could
disagree with the others (``mode`` said ``paper`` for a live service; ``broker_healthy`` was always true). Now
the runner builds one :class:`SessionSnapshot` per heartbeat (and before each lifecycle hook) and every view
renders that value: status.json (:func:`status_file`), ``/status``, ``/healthz``, ``/readyz``, the systemd
``STATUS=`` line, the Prometheus gauges, the dashboard (over ``/status``) and ``la status`` (over status.json).

Pure: no I/O and no clock. Times the snapshot carries are the runner's ``time.monotonic()`` readings; a
renderer passes its own ``now`` so an age is measured when it is shown (a scrape between two heartbeats
still sees the true heartbeat age: a frozen loop ages in every view).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from laptop_agents.core.models import utc_iso
from laptop_agents.data.providers.base import FeedStats
from laptop_agents.execution.health import BrokerHealth

__all__ = ["BreakerView", "CandleView", "FeedStats", "HaltView", "PositionView", "SessionSnapshot", "Thresholds",
           "status_file", "status_payload"]

QUANT = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When the loop counts as alive and the data as fresh."""

    heartbeat_max_age_sec: float
    data_max_age_sec: float

    @classmethod
    def from_settings(cls, heartbeat_timeout_sec: float, control_interval_sec: float,
                      stale_data_timeout_sec: float) -> Thresholds:
        # a healthy loop beats every control_interval; allow a few misses, never more than the watchdog's limit
        hb = min(heartbeat_timeout_sec, max(2.0, 8 * control_interval_sec))
        # not ready once data is half-way to the stale-data stop: an operator sees it before the session stops
        return cls(heartbeat_max_age_sec=hb, data_max_age_sec=stale_data_timeout_sec / 2)


@dataclass(frozen=True, slots=True)
class PositionView:
    side: str  # "LONG" | "SHORT"
    qty: Decimal
    entry_price: Decimal
    stop_loss: Decimal
    take_profit: Decimal
    notional: Decimal | None  # at the last price (None before any)
    unrealized_pnl: Decimal | None
    signed_qty: Decimal  # short < 0 (the position-size gauge)
    gauge_notional: Decimal  # at the last price, else the entry price (the notional gauge never reads None)


@dataclass(frozen=True, slots=True)
class CandleView:
    ts: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


@dataclass(frozen=True, slots=True)
class BreakerView:
    """The trading circuit breaker: its persisted state plus the numbers the views derive from it."""

    state: tuple[tuple[str, Any], ...]  # BreakerState.to_dict() items (the status.json / la status shape)
    tripped: bool
    reason: str | None
    consecutive_losses: int
    daily_realized_pnl: Decimal
    drawdown_pct: Decimal  # of mark-to-market equity from the peak (/status)
    realized_drawdown_pct: Decimal  # of realized equity from the peak (the drawdown gauge)
    max_drawdown_pct: Decimal
    max_daily_loss_usd: Decimal
    action: str

    @property
    def allows_entries(self) -> bool:
        return not self.tripped

    def to_dict(self) -> dict[str, Any]:
        return dict(self.state)


@dataclass(frozen=True, slots=True)
class HaltView:
    """Service mode (`la serve`): why the session is halted in place, and how the data source is doing."""

    reasons: tuple[tuple[str, str], ...]  # (cause, detail) in priority order; empty while trading
    halted_since_mono: float | None
    data_source_up: bool
    data_source_failures: int
    next_attempt_mono: float | None
    reconnect_attempts: int

    @property
    def halted(self) -> bool:
        return bool(self.reasons)

    @property
    def primary(self) -> str | None:
        return self.reasons[0][0] if self.reasons else None

    @property
    def active(self) -> frozenset[str]:
        return frozenset(r for r, _ in self.reasons)

    def describe(self) -> list[str]:
        """One line per cause, in priority order (what /readyz and STATUS= show)."""
        return [f"{r}: {d}" for r, d in self.reasons]


@dataclass(frozen=True, slots=True)
class SessionSnapshot:
    """Everything any view of a running session shows, as one immutable value."""

    taken_mono: float
    updated_at: datetime
    running: bool
    pid: int
    run_id: str
    mode: str  # paper | live: the broker factory's mode, never assumed
    session_mode: str  # live-session | service | ...
    source: str
    symbol: str
    workspace: str
    started_at: datetime
    started_mono: float
    duration_min: float | None
    heartbeat_mono: float
    data_mono: float | None  # last market progress (None: none yet)
    thresholds: Thresholds
    equity: Decimal
    starting_equity: Decimal
    mark_to_market_equity: Decimal
    position: PositionView | None
    trades: int
    candles_processed: int
    last_candle: CandleView | None
    breaker: BreakerView
    kill_switch_active: bool
    kill_switch: str | None  # why the kill switch is on (file or env), None when off
    stopped_reason: str | None
    stop_detail: str
    exit_code: int | None  # set once finished
    broker: BrokerHealth
    halt: HaltView | None = None  # None unless service mode
    feed: FeedStats = field(default_factory=FeedStats)

    # ------------------------------------------------------------------ ages (measured at render time)
    def heartbeat_age(self, now: float) -> float:
        return max(0.0, now - self.heartbeat_mono)

    def data_age(self, now: float) -> float | None:
        return None if self.data_mono is None else max(0.0, now - self.data_mono)

    def stale_age(self, now: float) -> float:
        """Seconds without market progress, since the session started if none came yet (never a flattering 0)."""
        return max(0.0, now - (self.data_mono if self.data_mono is not None else self.started_mono))

    def uptime(self, now: float) -> float:
        return max(0.0, now - self.started_mono)

    # ------------------------------------------------------------------ verdicts
    @property
    def halted(self) -> bool:
        return self.halt is not None and self.halt.halted

    @property
    def state(self) -> str:
        if self.stopped_reason is not None:
            return "STOPPING"
        return "HALTED" if self.halted else "RUNNING"

    def health(self, now: float) -> tuple[bool, dict[str, Any]]:
        """/healthz: the trading loop beats."""
        age = self.heartbeat_age(now)
        ok = age <= self.thresholds.heartbeat_max_age_sec
        return ok, {"healthy": ok, "heartbeat_age_sec": round(age, 3),
                    "heartbeat_max_age_sec": self.thresholds.heartbeat_max_age_sec}

    def readiness(self, now: float) -> tuple[bool, dict[str, Any]]:
        """/readyz: data fresh, broker healthy, not stopping, not halted, loop alive."""
        problems: list[str] = []
        age = self.data_age(now)
        th = self.thresholds
        if age is None:
            problems.append("no market data yet")
        elif age > th.data_max_age_sec:
            problems.append(f"market data is {age:.1f}s old (limit {th.data_max_age_sec:.1f}s)")
        if self.stopped_reason is not None:
            problems.append(f"stopping: {self.stopped_reason}")
        if self.halt is not None and self.halt.halted:
            problems += [f"halted: {line}" for line in self.halt.describe()]
        elif self.kill_switch_active:
            problems.append("kill switch active")
        breaker = self.breaker
        if breaker.tripped and not (self.halt is not None and "circuit_breaker" in self.halt.active):
            problems.append(f"circuit breaker tripped ({breaker.reason}): no new entries until `la reset-breaker`")
        problems += [f"broker unhealthy: {p}" for p in self.broker.problems]
        if not self.health(now)[0]:
            problems.append("trading loop heartbeat is stale")
        ok = not problems
        return ok, {"ready": ok, "problems": problems, "data_age_sec": None if age is None else round(age, 3),
                    "data_max_age_sec": th.data_max_age_sec, "broker": self.broker.broker,
                    "broker_healthy": self.broker.healthy}

    # ------------------------------------------------------------------ shapes
    def position_dict(self, *, full: bool) -> dict[str, Any] | None:
        pos = self.position
        if pos is None:
            return None
        out: dict[str, Any] = {"side": pos.side, "qty": str(pos.qty), "entry_price": str(pos.entry_price),
                               "stop_loss": str(pos.stop_loss), "take_profit": str(pos.take_profit)}
        if full:
            out["notional"] = None if pos.notional is None else str(pos.notional)
            out["unrealized_pnl"] = None if pos.unrealized_pnl is None else str(pos.unrealized_pnl)
        return out

    def candle_dict(self, *, full: bool) -> dict[str, Any] | None:
        c = self.last_candle
        if c is None:
            return None
        if not full:
            return {"ts": utc_iso(c.ts), "close": str(c.close)}
        return {"ts": utc_iso(c.ts), "open": str(c.open), "high": str(c.high), "low": str(c.low),
                "close": str(c.close), "volume": str(c.volume)}

    def halted_dict(self, now: float) -> dict[str, Any] | None:
        """Service mode: why the session is halted in place and how the data source is doing (None when trading)."""
        h = self.halt
        if h is None or not h.halted:
            return None
        return {"reasons": dict(h.reasons), "primary": h.primary,
                "halted_sec": None if h.halted_since_mono is None else round(now - h.halted_since_mono, 1),
                "data_source_up": h.data_source_up, "data_source_failures": h.data_source_failures,
                "next_reconnect_in_sec": None if h.next_attempt_mono is None
                else round(max(0.0, h.next_attempt_mono - now), 1)}

    def status_line(self, now: float) -> str:
        """One human-readable line: what `systemctl status` shows after ``STATUS=``."""
        pos = self.position
        pos_text = "flat" if pos is None else f"{pos.side} {pos.qty} @ {pos.entry_price}"
        age = self.data_age(now)
        data = "no data yet" if age is None else f"data {age:.1f}s old"
        brk = f"; BREAKER TRIPPED ({self.breaker.reason})" if self.breaker.tripped else ""
        if self.halt is not None and self.halt.halted:
            brk = f"; HALTED ({'; '.join(self.halt.describe())})"
        broker = "" if self.broker.healthy else f"; BROKER UNHEALTHY ({'; '.join(self.broker.problems)})"
        return (f"{self.mode} mode, {self.source} {self.symbol}: {self.candles_processed} candles, {data}, "
                f"equity {self.equity} USDT, {pos_text}{brk}{broker}")


def status_file(snap: SessionSnapshot) -> dict[str, Any]:
    """status.json (``la status`` reads it from another process): the snapshot at the moment it was taken.

    Keys kept from before the read model (`la status`, its --json, tests and the ops scripts read them), plus
    ``session_mode``, ``symbol``, ``state``, ``broker_healthy`` and ``broker_problems``.
    """
    now = snap.taken_mono
    return {
        "running": snap.running, "pid": snap.pid, "run_id": snap.run_id, "mode": snap.mode,
        "session_mode": snap.session_mode, "source": snap.source, "symbol": snap.symbol,
        "state": snap.state if snap.running else "STOPPED",
        "started_at": utc_iso(snap.started_at), "uptime_sec": round(snap.uptime(now), 1),
        "updated_at": utc_iso(snap.updated_at), "equity": str(snap.equity),
        "mark_to_market_equity": str(snap.mark_to_market_equity),
        "position": snap.position_dict(full=False),
        "candles_processed": snap.candles_processed,
        "last_candle": snap.candle_dict(full=False),
        "breaker": snap.breaker.to_dict(), "stopped_reason": snap.stopped_reason,
        "broker_healthy": snap.broker.healthy, "broker_problems": list(snap.broker.problems),
    }


def status_payload(snap: SessionSnapshot, now: float) -> dict[str, Any]:
    """/status (and the dashboard over it): a superset of `la status --json` (same keys, same meaning), plus
    what only the running process knows. ``recent_events`` and service extras are added by the service."""
    ready, ready_info = snap.readiness(now)
    healthy, _ = snap.health(now)
    b = snap.breaker
    return {
        # the keys of `la status --json`
        "state": snap.state,
        "pid": snap.pid,
        "run_id": snap.run_id,
        "uptime_sec": round(snap.uptime(now), 1),
        "equity": str(snap.equity),
        "position": snap.position_dict(full=True),
        "candles_processed": snap.candles_processed,
        "last_stopped_reason": snap.stopped_reason,
        "stale_lock": False,  # this process holds the lock
        "workspace": snap.workspace,
        # what only the live process knows
        "mode": snap.mode,
        "session_mode": snap.session_mode,
        "source": snap.source,
        "symbol": snap.symbol,
        "started_at": utc_iso(snap.started_at),
        "starting_equity": str(snap.starting_equity),
        "mark_to_market_equity": str(snap.mark_to_market_equity),
        "realized_pnl": str(snap.equity - snap.starting_equity),
        "trades": snap.trades,
        "last_candle": snap.candle_dict(full=True),
        "data_age_sec": ready_info["data_age_sec"],
        "heartbeat_age_sec": round(snap.heartbeat_age(now), 3),
        "healthy": healthy,
        "ready": ready,
        "not_ready_because": ready_info["problems"],
        "broker": snap.broker.to_dict(),
        "broker_healthy": snap.broker.healthy,
        "breaker": {**b.to_dict(), "drawdown_pct": str(b.drawdown_pct.quantize(QUANT)),
                    "max_drawdown_pct": str(b.max_drawdown_pct), "action": b.action},
        "kill_switch_active": snap.kill_switch_active,
        # `la status --json`'s guard keys (session/guard_notices.py): the breaker halts entries / why the kill switch is on
        "entries_halted": not b.allows_entries,
        "kill_switch": snap.kill_switch,
        "halted": snap.halted_dict(now),
        "stop_detail": snap.stop_detail or None,
    }
