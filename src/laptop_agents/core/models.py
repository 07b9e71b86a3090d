"""Domain types shared by every layer.

Prices and quantities are `Decimal` so that equity never drifts from the sum of
trade PnL. These types carry no behaviour that touches the outside world.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from enum import Enum

ZERO = Decimal(0)


class Side(str, Enum):
    """Direction of a position."""

    LONG = "LONG"
    SHORT = "SHORT"

    @property
    def entry_order_side(self) -> str:
        """Exchange order side that opens this position (BUY opens a long)."""
        return "BUY" if self is Side.LONG else "SELL"

    @property
    def exit_order_side(self) -> str:
        """Exchange order side that closes this position."""
        return "SELL" if self is Side.LONG else "BUY"

    @property
    def sign(self) -> int:
        return 1 if self is Side.LONG else -1


@dataclass(frozen=True, slots=True)
class Candle:
    """One closed OHLCV bar. `ts` is the bar's open time in UTC."""

    ts: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal = ZERO
    symbol: str = "BTCUSDT"

    def __post_init__(self) -> None:
        if self.ts.tzinfo is None:
            raise ValueError("Candle.ts must be timezone-aware (UTC)")
        if not (self.low <= self.open <= self.high and self.low <= self.close <= self.high):
            raise ValueError(
                f"inconsistent OHLC at {self.ts.isoformat()}: "
                f"o={self.open} h={self.high} l={self.low} c={self.close}"
            )


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """A decision to open a position, sized and bounded by the risk layer."""

    side: Side
    qty: Decimal
    stop_loss: Decimal
    take_profit: Decimal
    reference_price: Decimal
    reason: str = "signal"


@dataclass(slots=True)
class Position:
    """An open position as the broker tracks it."""

    position_id: str
    side: Side
    qty: Decimal
    entry_price: Decimal
    entry_ts: datetime
    entry_fee: Decimal
    stop_loss: Decimal
    take_profit: Decimal
    bars_held: int = 0

    def notional(self, price: Decimal) -> Decimal:
        return self.qty * price

    def unrealized_pnl(self, price: Decimal) -> Decimal:
        return (price - self.entry_price) * self.qty * self.side.sign


@dataclass(frozen=True, slots=True)
class Trade:
    """A closed round trip. `pnl` is net of both fees: equity moves by exactly `pnl`."""

    trade_id: str
    side: Side
    qty: Decimal
    entry_ts: datetime
    exit_ts: datetime
    entry_price: Decimal
    exit_price: Decimal
    gross_pnl: Decimal
    fees: Decimal
    pnl: Decimal
    exit_reason: str


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """What the decision logic may know about the account at one instant."""

    equity: Decimal
    peak_equity: Decimal
    position: Position | None
    daily_realized_pnl: Decimal = ZERO
    extra: dict[str, str] = field(default_factory=dict)


def utc_iso(ts: datetime) -> str:
    """ISO 8601 in UTC with a `Z` suffix and millisecond precision."""
    if ts.tzinfo is not timezone.utc:
        ts = ts.astimezone(timezone.utc)
    return ts.isoformat(timespec="milliseconds")[:-6] + "Z"  # C-fast; strips "+00:00"


def parse_utc(text: str) -> datetime:
    """Parse an ISO 8601 timestamp (with `Z` or an offset) into an aware UTC datetime."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)
