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
from datetime import UTC, datetime, timedelta
from decimal import InvalidOperation

from laptop_agents.bitunix._fields import ms_to_datetime
from laptop_agents.bitunix.intervals import Interval, interval_from_rest
from laptop_agents.bitunix.rest import KLINE_MAX_LIMIT, BitunixRestClient
from laptop_agents.bitunix.schemas import Kline, WsKline
from laptop_agents.core.models import Candle

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class BarTransition:
    """A new bar started at ``until``: every bar in ``[fill_from, until)`` is closed.

    ``closed`` is the bar whose final push we saw live (if any); the others in
    the range must come from REST.
    """

    fill_from: int
    until: int
    closed: Candle | None


#: Why a kline push was refused (a bounded set: it is a metric label).
REJECT_REASONS: tuple[str, ...] = (
    "bad_price",  # a price <= 0 or not finite
    "bad_ohlc",  # high < low, or open/close outside [low, high]
    "bad_volume",  # a volume < 0 or not finite
    "future",  # dated after the market clock (+ tolerance)
    "too_old",  # its bar ended longer ago than the allowed lag
    "out_of_order",  # a bar already closed or delivered, or an older snapshot of the forming bar
    "repeated",  # the same frame again (e.g. an exchange re-pushing its last kline): no progress
)


def kline_defect(push: WsKline) -> str | None:
    """Why ``push`` cannot describe a real bar (a :data:`REJECT_REASONS` entry), or None if it can."""
    o, h, low, c = push.open, push.high, push.low, push.close
    try:
        if low <= o <= h and low <= c <= h:  # the usual case: one chain, then only low and high matter
            if not low > 0 or not h.is_finite():
                return "bad_price"
        elif (not (o > 0 and h > 0 and low > 0 and c > 0) or not (o.is_finite() and c.is_finite())
              or not (h.is_finite() and low.is_finite())):
            return "bad_price"
        else:
            return "bad_ohlc"
        b, q = push.base_volume, push.quote_volume
        if not (b >= 0 and q >= 0) or not (b.is_finite() and q.is_finite()):
            return "bad_volume"
    except InvalidOperation:  # a NaN somewhere
        return "bad_volume" if low.is_finite() and h.is_finite() and o.is_finite() and c.is_finite() else "bad_price"
    return None


def _same(a: WsKline, b: WsKline) -> bool:
    """The same frame again (cheapest field first; symbol and channel are already ours)."""
    return (
        a.ts_ms == b.ts_ms
        and a.close == b.close
        and a.high == b.high
        and a.low == b.low
        and a.open == b.open
        and a.base_volume == b.base_volume
        and a.quote_volume == b.quote_volume
    )


def _continues(later: WsKline, earlier: WsKline) -> bool:
    """``later`` is bar-to-date data of the same bar as ``earlier``: same open, range and volumes only grew."""
    return (
        later.open == earlier.open
        and later.high >= earlier.high
        and later.low <= earlier.low
        and later.base_volume >= earlier.base_volume
        and later.quote_volume >= earlier.quote_volume
    )


def _push_to_candle(push: WsKline, open_ms: int) -> Candle:
    return Candle(
        ts=ms_to_datetime(open_ms),
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

    Hostile input: given the market clock (``now_ms`` of :meth:`on_push`), a push
    dated after ``now_ms + future_tolerance_ms`` or whose bar ended more than
    ``max_lag_ms`` before ``now_ms`` is refused, so one frame dated years ahead
    never becomes the "current bar" (the current bar never opens after
    ``now_ms`` + one interval) and normal pushes after it still close bars.
    Impossible OHLCV, repeats and out-of-order snapshots are refused too. Every
    refusal is counted in :attr:`rejected` by reason and leaves the state as it
    was: only :attr:`accepted` frames are evidence that the market moved.

    Which bar a push belongs to: ``floor(ts)``, whether ``ts`` is the bar's open
    or the push time. An exchange that stamps the *previous* bar's final data
    with a push time already in the next bar is recognised by the data itself:
    a push just after a boundary whose OHLCV merely extends the forming bar
    (same open, wider range, more volume) updates that bar instead of starting
    a new one (within ``lag_window_ms`` of the boundary).
    """

    def __init__(
        self,
        interval: Interval,
        *,
        future_tolerance_ms: int | None = None,
        max_lag_ms: int | None = None,
        lag_window_ms: int | None = None,
    ) -> None:
        self.interval = interval
        step = interval.duration_ms if not interval.is_monthly else 28 * 86_400_000
        # strictly below one bar: the current bar can never open after now + one interval
        self.future_tolerance_ms = min(future_tolerance_ms if future_tolerance_ms is not None else 5_000, step - 1)
        self.max_lag_ms = max_lag_ms if max_lag_ms is not None else 30_000
        self.lag_window_ms = min(lag_window_ms if lag_window_ms is not None else 5_000, step - 1)
        self.last_emitted_open: int | None = None
        self._first_owed: int | None = None
        self._pending: WsKline | None = None
        self._pending_open: int | None = None
        self._closed_push: WsKline | None = None  # the last push of the bar closed last
        self._resync = False
        self.stale_pushes = 0
        self.accepted = 0
        self.rejected: dict[str, int] = dict.fromkeys(REJECT_REASONS, 0)
        self.last_rejection: str | None = None

    @property
    def pending_open(self) -> int | None:
        return self._pending_open

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

    def _reject(self, reason: str) -> None:
        self.rejected[reason] += 1
        self.last_rejection = reason
        if reason == "out_of_order":
            self.stale_pushes += 1

    def _set_pending(self, push: WsKline, open_ms: int) -> None:
        self._pending = push
        self._pending_open = open_ms

    def on_push(self, push: WsKline, now_ms: int | None = None) -> BarTransition | None:
        """Feed one push; return a transition when a new bar has started.

        ``now_ms`` is the market clock (exchange time, epoch ms); without it no
        time bound is applied. After the call :attr:`last_rejection` is None if
        the push was accepted, else the reason it was refused.
        """
        self.last_rejection = None
        defect = kline_defect(push)
        if defect is not None:
            self._reject(defect)
            return None
        iv = self.interval
        open_ms = push.open_ms
        if now_ms is not None:
            if push.ts_ms > now_ms + self.future_tolerance_ms:
                self._reject("future")
                return None
            oldest = now_ms - self.max_lag_ms  # a push at or after it is in a bar that ends later
            if push.ts_ms < oldest and iv.next_open(open_ms) < oldest:
                self._reject("too_old")
                return None
        last = self.last_emitted_open
        pending = self._pending
        pending_open = self._pending_open
        if (
            pending is not None
            and pending_open is not None
            and open_ms > pending_open
            and push.ts_ms - open_ms <= self.lag_window_ms
            and _continues(push, pending)
        ):
            # The forming bar's late final data, stamped with a push time in the next bar.
            if _same(push, pending):
                self._reject("repeated")
                return None
            self.accepted += 1
            self._pending = push
            return None
        if last is not None and open_ms <= last:
            self._reject("out_of_order")
            return None
        if pending is None or pending_open is None:
            # First push of the stream: owe bars from here (or from the primed
            # history) on.
            self.accepted += 1
            self._set_pending(push, open_ms)
            self._resync = False
            if last is None:
                self._first_owed = open_ms
                return None
            fill_from = iv.next_open(last)
            return BarTransition(fill_from, open_ms, None) if fill_from < open_ms else None
        if open_ms == pending_open:
            if _same(push, pending):
                self._reject("repeated")
                return None
            if push.ts_ms < pending.ts_ms:
                self._reject("out_of_order")  # reordered or replayed snapshot
                return None
            closed = self._closed_push
            if closed is not None and _continues(push, closed) and not _continues(push, pending):
                # the closed bar's late data, stamped after the new bar's first push: not this bar's
                self._reject("out_of_order")
                return None
            self.accepted += 1
            self._pending = push
            if push.ts_ms > pending.ts_ms:
                # Fresh data for the same bar since reconnecting: its later
                # pushes, final one included, will be seen live again.
                self._resync = False
            return None
        if open_ms < pending_open:
            self._reject("out_of_order")
            return None
        # A later bar started: the pending one is closed.
        self.accepted += 1
        self._closed_push = pending
        self._set_pending(push, open_ms)
        if self._resync:
            # We were away when it closed: its last push we saw may not be final.
            self._resync = False
            return BarTransition(self._fill_from(), open_ms, None)
        return BarTransition(self._fill_from(), open_ms, _push_to_candle(pending, pending_open))


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
