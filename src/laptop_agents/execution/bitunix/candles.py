"""Bitunix kline pushes → closed candles, and REST warm-up.

Pushes carry no bar open time and arrive every ~500 ms with the bar-to-date
OHLC. A push belongs to bar ``floor(ts, interval)``; a bar is closed when a
push for a later bar arrives, and its last push is its final OHLC. After a
reconnect, the last push seen for the bar that was forming may not be final,
so that bar and every missed bar are owed from REST.

:class:`CandleAssembler` is the pure state machine (no I/O, no clock) that
decides which bars are closed and which are owed; the WebSocket provider does
the I/O around it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from laptop_agents.core.models import Candle
from laptop_agents.execution.bitunix._fields import ms_to_datetime
from laptop_agents.execution.bitunix.intervals import Interval, interval_from_rest
from laptop_agents.execution.bitunix.rest import KLINE_MAX_LIMIT, BitunixRestClient
from laptop_agents.execution.bitunix.schemas import Kline, WsKline

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True, slots=True)
class BarTransition:
    """A new bar started at ``until``: every bar in ``[fill_from, until)`` is closed.

    ``closed`` is the bar whose final push we saw live (if any); the others in
    the range must come from REST.
    """

    fill_from: int
    until: int
    closed: Candle | None


def _push_to_candle(push: WsKline) -> Candle:
    return Candle(
        ts=ms_to_datetime(push.open_ms),
        open=push.open,
        high=push.high,
        low=push.low,
        close=push.close,
        volume=push.base_volume,
        symbol=push.symbol,
    )


class CandleAssembler:
    """Turns a stream of kline pushes into bar transitions. Pure: no I/O, no clock.

    Invariant: :attr:`last_emitted_open` only grows, and the provider yields a
    candle only if its open time is greater, so the output is strictly
    increasing (no duplicates, no reordering) whatever the input. Bars owed
    but not yet delivered (a failed backfill) stay owed: the next transition's
    ``fill_from`` still starts at them.
    """

    def __init__(self, interval: Interval) -> None:
        self.interval = interval
        self.last_emitted_open: int | None = None
        self._first_owed: int | None = None
        self._pending: WsKline | None = None
        self._resync = False
        self.stale_pushes = 0

    @property
    def pending_open(self) -> int | None:
        return None if self._pending is None else self._pending.open_ms

    def prime(self, last_closed_open_ms: int) -> None:
        """Declare bars up to ``last_closed_open_ms`` delivered (e.g. by warm-up)."""
        if self.last_emitted_open is None or last_closed_open_ms > self.last_emitted_open:
            self.last_emitted_open = last_closed_open_ms

    def mark_emitted(self, open_ms: int) -> None:
        self.prime(open_ms)

    def on_reconnect(self) -> None:
        """Pushes may have been missed: the forming bar's latest push is suspect."""
        self._resync = True

    def _fill_from(self) -> int:
        if self.last_emitted_open is not None:
            return self.interval.next_open(self.last_emitted_open)
        assert self._first_owed is not None
        return self._first_owed

    def on_push(self, push: WsKline) -> BarTransition | None:
        """Feed one push; return a transition when a new bar has started."""
        open_ms = push.open_ms
        last = self.last_emitted_open
        if last is not None and open_ms <= last:
            self.stale_pushes += 1
            return None
        pending = self._pending
        if pending is None:
            # First push of the stream: owe bars from here (or from the primed
            # history) on.
            self._pending = push
            self._resync = False
            if last is None:
                self._first_owed = open_ms
                return None
            fill_from = self.interval.next_open(last)
            return BarTransition(fill_from, open_ms, None) if fill_from < open_ms else None
        if open_ms == pending.open_ms:
            if push.ts_ms < pending.ts_ms:
                self.stale_pushes += 1  # reordered or replayed snapshot
                return None
            self._pending = push
            if push.ts_ms > pending.ts_ms:
                # Fresh data for the same bar since reconnecting: its later
                # pushes, final one included, will be seen live again.
                self._resync = False
            return None
        if open_ms < pending.open_ms:
            self.stale_pushes += 1
            return None
        # A later bar started: the pending one is closed.
        self._pending = push
        if self._resync:
            # We were away when it closed: its last push we saw may not be final.
            self._resync = False
            return BarTransition(self._fill_from(), open_ms, None)
        return BarTransition(self._fill_from(), open_ms, _push_to_candle(pending))


def candle_open_ms(candle: Candle) -> int:
    """Exact epoch ms of a candle's open time (no float rounding)."""
    return (candle.ts - _EPOCH) // timedelta(milliseconds=1)


def bar_opens(interval: Interval, start_ms: int, end_ms: int) -> list[int]:
    """Open times of the bars in ``[start_ms, end_ms)``, ``start_ms`` aligned."""
    opens = []
    t = start_ms
    while t < end_ms:
        opens.append(t)
        t = interval.next_open(t)
    return opens


async def fetch_closed_candles(
    rest: BitunixRestClient,
    symbol: str,
    interval: str,
    count: int,
    *,
    now_ms: int | None = None,
    price_type: str | None = None,
) -> list[Candle]:
    """The last ``count`` *closed* candles, oldest first, via REST.

    ⚠ Whether the kline endpoint includes the still-forming bar is undocumented.
    The newest bar returned is treated as forming unless ``now_ms`` (exchange
    time) proves it closed; a provider primed with the result backfills that
    bar later, so nothing is lost by being cautious.
    """
    if count < 1:
        return []
    iv = interval_from_rest(interval)
    page_limit = min(count + 1, KLINE_MAX_LIMIT)
    latest = await rest.kline(symbol, interval, limit=page_limit, price_type=price_type)
    if not latest:
        return []
    newest = latest[-1].open_ms
    newest_closed = now_ms is not None and iv.next_open(newest) <= now_ms
    closed_end = iv.next_open(newest) if newest_closed else newest
    bars: list[Kline] = [k for k in latest if k.open_ms < closed_end]
    if len(bars) < count and len(latest) >= page_limit and not iv.is_monthly:
        # A full page that still falls short: page back over the exact range.
        start = closed_end - count * iv.duration_ms
        bars = await rest.kline_range(symbol, interval, start, closed_end, price_type=price_type)
    return [k.to_candle(symbol) for k in bars[-count:]]
