"""Domain types shared by every layer.

Prices and quantities are `Decimal` so that equity never drifts from the sum of
trade PnL. These types carry no behaviour that touches the outside world.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Literal

ZERO = Decimal(0)

Timeframe = Literal["1m", "3m", "5m", "15m", "30m", "1h"]
"""A strategy's bar length, as the config names it (and the venue's kline interval of the same name)."""
TIMEFRAME_SEC: dict[str, int] = {"1m": 60, "3m": 180, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600}
"""Seconds per bar of each :data:`Timeframe` (the one table: config, backtest bar spacing, expected cadence)."""


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


@dataclass(frozen=True, slots=True, init=False)
class Candle:
    """One closed OHLCV bar. `ts` is the bar's open time in UTC."""

    ts: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal = ZERO
    symbol: str = "BTCUSDT"

    # Hand-written (one is made per candle, so it is on every replay's hot path): validates first, then
    # stores through the slot descriptors, which is what the generated frozen __init__ does via
    # object.__setattr__, at half the cost. Same signature, same errors.
    def __init__(self, ts: datetime, open: Decimal, high: Decimal, low: Decimal, close: Decimal,
                 volume: Decimal = ZERO, symbol: str = "BTCUSDT") -> None:
        if ts.tzinfo is None:
            raise ValueError("Candle.ts must be timezone-aware (UTC)")
        if not (low <= open <= high and low <= close <= high):
            raise ValueError(f"inconsistent OHLC at {ts.isoformat()}: o={open} h={high} l={low} c={close}")
        _set_ts(self, ts)
        _set_open(self, open)
        _set_high(self, high)
        _set_low(self, low)
        _set_close(self, close)
        _set_volume(self, volume)
        _set_symbol(self, symbol)


_set_ts, _set_open, _set_high, _set_low, _set_close, _set_volume, _set_symbol = (
    getattr(Candle, name).__set__ for name in ("ts", "open", "high", "low", "close", "volume", "symbol")
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
    """What the decision logic may know about the account at one instant: the broker's side only. The peak
    equity and the day's realized PnL are the trading breaker's, which the supervisor owns and reads itself."""

    equity: Decimal
    position: Position | None


_UTC = UTC
# utc_iso's pieces, so that a timestamp is a few lookups and one concatenation, not a strftime
_HH_MM = tuple(f"{h:02d}:{m:02d}:" for h in range(24) for m in range(60))
_SS = tuple(f"{s:02d}." for s in range(60))
_MMM_Z = tuple(f"{ms:03d}Z" for ms in range(1000))
_day: tuple[date | None, str] = (None, "")  # the last day's "YYYY-MM-DDT", replaced whole (thread-safe)


def utc_iso(ts: datetime) -> str:
    """ISO 8601 in UTC with a `Z` suffix and millisecond precision (truncated, as isoformat does)."""
    global _day
    if ts.tzinfo is not _UTC:
        ts = ts.astimezone(_UTC)
    if type(ts) is not datetime:  # a subclass formats itself
        return ts.isoformat(timespec="milliseconds")[:-6] + "Z"
    day = ts.date()
    cached = _day
    if day == cached[0]:
        prefix = cached[1]
    else:
        prefix = day.isoformat() + "T"
        _day = (day, prefix)
    return prefix + _HH_MM[ts.hour * 60 + ts.minute] + _SS[ts.second] + _MMM_Z[ts.microsecond // 1000]


def parse_utc(text: str) -> datetime:
    """Parse an ISO 8601 timestamp (with `Z` or an offset) into an aware UTC datetime."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)
