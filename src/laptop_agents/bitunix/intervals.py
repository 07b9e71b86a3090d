"""Kline intervals: REST names, WebSocket channel names and bar boundaries.

REST says ``1m``/``1h``/``1d``; WebSocket channels say ``market_kline_1min``/
``market_kline_60min``/``market_kline_1day``. Pushes carry no bar open time, so
the bar a push belongs to is found by flooring its ``ts`` to the interval; this
module is the one place that knows how.

Alignment: intraday and 1d bars are aligned to the UTC epoch (midnight UTC).
⚠ Bitunix does not document 3d/1w/1M alignment; we assume 3d from the epoch
(as Binance does), weeks starting Monday 00:00 UTC and calendar months.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
_MONDAY_OFFSET_MS = 4 * DAY_MS  # 1970-01-01 was a Thursday; the first Monday is 1970-01-05


@dataclass(frozen=True, slots=True)
class Interval:
    """One kline interval. ``duration_ms`` is 0 for calendar months."""

    rest: str
    ws: str
    duration_ms: int

    @property
    def is_monthly(self) -> bool:
        return self.duration_ms == 0

    def ws_channel(self, price_type: str = "market") -> str:
        """``market_kline_1min`` (last price) or ``mark_kline_1min`` (mark price)."""
        return f"{price_type}_kline_{self.ws}"

    def floor(self, ts_ms: int) -> int:
        """Open time (ms) of the bar containing ``ts_ms``."""
        if self.is_monthly:
            dt = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
            start = datetime(dt.year, dt.month, 1, tzinfo=UTC)
            return int(start.timestamp() * 1000)
        if self.rest == "1w":
            return ts_ms - (ts_ms - _MONDAY_OFFSET_MS) % self.duration_ms
        return ts_ms - ts_ms % self.duration_ms

    def next_open(self, open_ms: int) -> int:
        """Open time of the bar after the bar opening at ``open_ms``."""
        if self.is_monthly:
            dt = datetime.fromtimestamp(self.floor(open_ms) / 1000, tz=UTC)
            year, month = (dt.year + 1, 1) if dt.month == 12 else (dt.year, dt.month + 1)
            return int(datetime(year, month, 1, tzinfo=UTC).timestamp() * 1000)
        return open_ms + self.duration_ms

    def close_time(self, open_ms: int) -> int:
        """End (exclusive, ms) of the bar opening at ``open_ms``."""
        return self.next_open(open_ms)


_INTERVALS = (
    Interval("1m", "1min", MINUTE_MS),
    Interval("3m", "3min", 3 * MINUTE_MS),
    Interval("5m", "5min", 5 * MINUTE_MS),
    Interval("15m", "15min", 15 * MINUTE_MS),
    Interval("30m", "30min", 30 * MINUTE_MS),
    Interval("1h", "60min", HOUR_MS),
    Interval("2h", "2h", 2 * HOUR_MS),
    Interval("4h", "4h", 4 * HOUR_MS),
    Interval("6h", "6h", 6 * HOUR_MS),
    Interval("8h", "8h", 8 * HOUR_MS),
    Interval("12h", "12h", 12 * HOUR_MS),
    Interval("1d", "1day", DAY_MS),
    Interval("3d", "3day", 3 * DAY_MS),
    Interval("1w", "1week", 7 * DAY_MS),
    Interval("1M", "1month", 0),
)
_BY_REST = {i.rest: i for i in _INTERVALS}
_BY_WS = {i.ws: i for i in _INTERVALS}


def interval_from_rest(name: str) -> Interval:
    """``'1m'`` → Interval. Case matters: ``1m`` is a minute, ``1M`` a month."""
    try:
        return _BY_REST[name]
    except KeyError:
        raise ValueError(f"unknown kline interval {name!r}; known: {sorted(_BY_REST)}") from None


def interval_from_channel(channel: str) -> tuple[str, Interval] | None:
    """``'market_kline_1min'`` → (``'market'``, Interval); None if not a kline channel."""
    for price_type in ("market", "mark"):
        prefix = f"{price_type}_kline_"
        if channel.startswith(prefix):
            interval = _BY_WS.get(channel[len(prefix) :])
            return (price_type, interval) if interval is not None else None
    return None


def all_intervals() -> tuple[Interval, ...]:
    return _INTERVALS
