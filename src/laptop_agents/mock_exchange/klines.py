"""Kline intervals and candle aggregation over a :class:`~.pricepath.PricePath`. Pure: no I/O.

REST (``market/kline``) and WebSocket (``market_kline_*``) read candles from the same :class:`CandleBook`,
which is what guarantees a client backfilling over REST gets exactly the candles the WebSocket published.
Closed candles never change, so they are cached; the open candle is the cached aggregate of its complete
minutes plus the current partial minute, so pushing a weekly candle every 500 ms stays cheap.

Alignment: fixed intervals are aligned to the Unix epoch (UTC), weeks start on Monday 00:00 UTC, months on
the 1st 00:00 UTC.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, NamedTuple

from .pricepath import MINUTE_MS, Bar, PricePath

_WEEK_MS = 7 * 24 * 3600 * 1000
_MONDAY_OFFSET_MS = 4 * 24 * 3600 * 1000  # 1970-01-05 was the first Monday after the epoch


@dataclass(frozen=True, slots=True)
class Interval:
    """A kline interval with its REST name (``1m``) and WebSocket channel suffix (``1min``)."""

    rest: str
    ws: str
    minutes: int
    kind: Literal["fixed", "week", "month"] = "fixed"

    def start_of(self, ts_ms: int) -> int:
        if self.kind == "fixed":
            size = self.minutes * MINUTE_MS
            return ts_ms // size * size
        if self.kind == "week":
            return (ts_ms - _MONDAY_OFFSET_MS) // _WEEK_MS * _WEEK_MS + _MONDAY_OFFSET_MS
        dt = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
        return _ms(datetime(dt.year, dt.month, 1, tzinfo=UTC))

    def next_start(self, start_ms: int) -> int:
        if self.kind == "fixed":
            return start_ms + self.minutes * MINUTE_MS
        if self.kind == "week":
            return start_ms + _WEEK_MS
        dt = datetime.fromtimestamp(start_ms / 1000, tz=UTC)
        year, month = (dt.year + 1, 1) if dt.month == 12 else (dt.year, dt.month + 1)
        return _ms(datetime(year, month, 1, tzinfo=UTC))

    def prev_start(self, start_ms: int) -> int:
        return self.start_of(start_ms - 1)


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


INTERVALS: tuple[Interval, ...] = (
    Interval("1m", "1min", 1),
    Interval("3m", "3min", 3),
    Interval("5m", "5min", 5),
    Interval("15m", "15min", 15),
    Interval("30m", "30min", 30),
    Interval("1h", "60min", 60),
    Interval("2h", "2h", 120),
    Interval("4h", "4h", 240),
    Interval("6h", "6h", 360),
    Interval("8h", "8h", 480),
    Interval("12h", "12h", 720),
    Interval("1d", "1day", 1440),
    Interval("3d", "3day", 4320),
    Interval("1w", "1week", 10080, "week"),
    Interval("1M", "1month", 0, "month"),
)
BY_REST: dict[str, Interval] = {i.rest: i for i in INTERVALS}
BY_WS: dict[str, Interval] = {i.ws: i for i in INTERVALS}


class Candle(NamedTuple):
    """A candle in the path's integer units; ``time`` is the interval's open time (epoch ms)."""

    time: int
    bar: Bar


class CandleBook:
    """Candles of any interval for one price path."""

    def __init__(self, path: PricePath) -> None:
        self.path = path
        self._closed: dict[tuple[str, int], Candle] = {}
        self._prefix: dict[tuple[str, int], tuple[int, Bar | None]] = {}

    def candle(self, interval: Interval, start_ms: int) -> Candle | None:
        """The candle opening at ``start_ms`` (must be aligned), final if closed, else up to now."""
        key = (interval.rest, start_ms)
        cached = self._closed.get(key)
        if cached is not None:
            return cached
        path = self.path
        end_ms = interval.next_start(start_ms)
        first = start_ms // MINUTE_MS
        last = end_ms // MINUTE_MS - 1
        cur = path.current_minute
        if last < cur:
            bar = _merge(path.bars(first, last))
            if bar is None:
                return None
            candle = Candle(start_ms, bar)
            self._closed[key] = candle
            self._prefix.pop(key, None)
            return candle
        if first > cur:
            return None
        # Open candle: cached aggregate of complete minutes [first, cur) plus the current minute.
        upto, agg = self._prefix.get(key, (first, None))
        if upto < cur:
            more = _merge(path.bars(upto, cur - 1))
            agg = more if agg is None else (agg if more is None else agg.then(more))
            self._prefix[key] = (cur, agg)
        current = path.bar(cur)
        bar = agg if current is None else (current if agg is None else agg.then(current))
        return None if bar is None else Candle(start_ms, bar)

    def current(self, interval: Interval, now_ms: int) -> Candle | None:
        return self.candle(interval, interval.start_of(now_ms))

    def candles(
        self,
        interval: Interval,
        now_ms: int,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 100,
    ) -> list[Candle]:
        """Candles with open time in ``[start_ms, end_ms]`` and not after ``now_ms``, oldest first.

        With ``start_ms`` the *earliest* ``limit`` candles from there are returned (so a client pages forward
        by asking again from the last time + 1); without it the *latest* ``limit`` candles up to ``end_ms``.
        The open (current) candle is included, as real exchanges do.
        """
        hi = now_ms if end_ms is None else min(end_ms, now_ms)
        lo_data = self.path.listing_ms
        out: list[Candle] = []
        if limit <= 0 or interval.next_start(interval.start_of(hi)) <= lo_data:
            return out
        if start_ms is not None:
            t = interval.start_of(max(start_ms, interval.start_of(lo_data)))
            if t < start_ms:
                t = interval.next_start(t)
            while t <= hi and len(out) < limit:
                candle = self.candle(interval, t)
                if candle is not None:
                    out.append(candle)
                t = interval.next_start(t)
            return out
        t = interval.start_of(hi)
        while len(out) < limit and interval.next_start(t) > lo_data:
            candle = self.candle(interval, t)
            if candle is not None:
                out.append(candle)
            t = interval.prev_start(t)
        out.reverse()
        return out


def _merge(bars: Iterable[Bar]) -> Bar | None:
    agg: Bar | None = None
    for bar in bars:
        agg = bar if agg is None else agg.then(bar)
    return agg
