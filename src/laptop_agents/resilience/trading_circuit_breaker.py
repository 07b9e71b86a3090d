"""The trading circuit breaker: stops new risk after losses pile up.

Rules (each a ceiling config may tighten): max drawdown (5%) of the
mark-to-market equity from its peak (the peak starts at the starting equity and
follows mark-to-market equity every candle), consecutive losing trades (5), and
realized loss today ($50).
Pure: the caller passes trades, equity, the trading day and the time; the
state (`tripped`, `reason`, `consecutive_losses`, ...) round-trips through a
plain dict that the shell persists with StateManager.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from laptop_agents.core.config_models import CircuitBreakerConfig
from laptop_agents.core.events import Event, EventName
from laptop_agents.core.hard_limits import HardLimits
from laptop_agents.core.models import Trade, utc_iso
from laptop_agents.core.state_schema import check_breaker_state

REASON_DRAWDOWN = "max_drawdown"
REASON_CONSECUTIVE = "consecutive_losses"
REASON_DAILY_LOSS = "daily_loss"


@dataclass(slots=True)
class BreakerState:
    tripped: bool = False
    reason: str | None = None
    detail: str | None = None
    tripped_at: str | None = None
    consecutive_losses: int = 0
    peak_equity: Decimal | None = None
    trading_day: str | None = None
    daily_realized_pnl: Decimal = Decimal(0)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["peak_equity"] = None if self.peak_equity is None else str(self.peak_equity)
        data["daily_realized_pnl"] = str(self.daily_realized_pnl)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BreakerState:
        """Rebuild from `to_dict()` output; StateInvalid (core/state_schema.py) on an impossible value."""
        check_breaker_state(data)
        peak = data.get("peak_equity")
        return cls(
            tripped=data["tripped"],
            reason=data.get("reason"),
            detail=data.get("detail"),
            tripped_at=data.get("tripped_at"),
            consecutive_losses=int(data["consecutive_losses"]),
            peak_equity=None if peak is None else Decimal(peak),
            trading_day=data.get("trading_day"),
            daily_realized_pnl=Decimal(data.get("daily_realized_pnl", "0")),
        )


class TradingCircuitBreaker:
    """Decides whether new entries are allowed; emits CircuitBreakerTripped when it trips."""

    def __init__(self, config: CircuitBreakerConfig, limits: HardLimits, state: BreakerState | None = None) -> None:
        self.config = config
        self.limits = limits
        self.state = state or BreakerState()

    @property
    def allows_entries(self) -> bool:
        return not self.state.tripped

    def drawdown_pct(self, equity: Decimal) -> Decimal:
        peak = self.state.peak_equity
        if not peak or peak <= 0 or equity >= peak:
            return Decimal(0)
        return (peak - equity) / peak * 100

    def roll_day(self, day: str, now: datetime) -> list[Event]:
        """A new UTC trading day resets the daily PnL and lifts a daily-loss trip."""
        if self.state.trading_day == day:
            return []
        self.state.trading_day = day
        self.state.daily_realized_pnl = Decimal(0)
        if self.state.tripped and self.state.reason == REASON_DAILY_LOSS:
            return self.reset(now, why=f"new trading day {day}")
        return []

    def anchor_peak(self, starting_equity: Decimal, equity: Decimal) -> None:
        """A breaker without history measures drawdown from the account's starting equity (or today's equity if
        higher), not from whatever equity it first happens to see: a session that starts with a losing position
        already counts that loss. A restored peak is kept."""
        anchor = max(starting_equity, equity)
        if self.state.peak_equity is None and anchor > 0:
            self.state.peak_equity = anchor

    def observe_equity(self, equity: Decimal, now: datetime) -> list[Event]:
        """Follow the account's equity (mark-to-market on every candle, realized after every trade): raise the
        peak, trip on a drawdown from it. Unrealized loss counts: a loser that never closes still trips."""
        if equity > 0 and (self.state.peak_equity is None or equity > self.state.peak_equity):
            self.state.peak_equity = equity  # never a non-positive peak: no drawdown can be measured from it
        dd = self.drawdown_pct(equity)
        if dd >= self.config.max_drawdown_pct:
            return self._trip(REASON_DRAWDOWN, f"drawdown {dd:.2f}% >= {self.config.max_drawdown_pct}%", now, equity)
        return []

    def record_trade(self, trade: Trade, equity_after: Decimal, now: datetime) -> list[Event]:
        """Account for one closed trade and trip if any rule is now broken."""
        self.state.daily_realized_pnl += trade.pnl
        self.state.consecutive_losses = self.state.consecutive_losses + 1 if trade.pnl < 0 else 0
        events: list[Event] = []
        if -self.state.daily_realized_pnl >= self.limits.max_daily_loss_usd:
            events += self._trip(
                REASON_DAILY_LOSS,
                f"daily realized loss {-self.state.daily_realized_pnl:.2f} >= {self.limits.max_daily_loss_usd} USD",
                now,
                equity_after,
            )
        if self.state.consecutive_losses >= self.config.max_consecutive_losses:
            events += self._trip(
                REASON_CONSECUTIVE,
                f"{self.state.consecutive_losses} consecutive losing trades >= {self.config.max_consecutive_losses}",
                now,
                equity_after,
            )
        events += self.observe_equity(equity_after, now)
        return events

    def reset(self, now: datetime, why: str = "manual reset") -> list[Event]:
        was = self.state.reason
        if was == REASON_DRAWDOWN:
            # the operator has acknowledged the loss: measure drawdown afresh from the equity seen next, or the
            # next candle's mark-to-market check would trip again at once
            self.state.peak_equity = None
        self.state.tripped = False
        self.state.reason = None
        self.state.detail = None
        self.state.tripped_at = None
        self.state.consecutive_losses = 0
        return [Event(EventName.CIRCUIT_BREAKER_RESET, now, previous_reason=was, why=why)]

    def _trip(self, reason: str, detail: str, now: datetime, equity: Decimal) -> list[Event]:
        if self.state.tripped:
            return []
        self.state.tripped = True
        self.state.reason = reason
        self.state.detail = detail
        self.state.tripped_at = utc_iso(now)
        return [
            Event(
                EventName.CIRCUIT_BREAKER_TRIPPED,
                now,
                code="CIRCUIT_BREAKER_TRIPPED",
                reason=reason,
                detail=detail,
                action=self.config.action,
                consecutive_losses=self.state.consecutive_losses,
                daily_realized_pnl=self.state.daily_realized_pnl,
                drawdown_pct=self.drawdown_pct(equity).quantize(Decimal("0.0001")),
                equity=equity,
            )
        ]
