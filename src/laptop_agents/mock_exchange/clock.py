"""The mock's two clocks, kept apart on purpose.

* :class:`WallClock` is real UTC time plus an injectable skew. Request signatures are checked against it,
  exactly as a real exchange checks a client's ``timestamp`` header against its own wall clock.
* :class:`MarketClock` drives the price path. It can run faster than real time (``time_scale``), be
  frozen (the "price paused" fault) or be stepped by hand (``time_scale=0`` plus :meth:`advance`), so tests
  see many 1-minute candles close in a few real seconds. Kline times, push ``ts`` and order times use it.

Both take their time source as a parameter so the logic is testable without sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class WallClock:
    """Real time in epoch milliseconds, shifted by ``skew_ms()`` (the clock-skew fault)."""

    def __init__(
        self,
        time_fn: Callable[[], float] = time.time,
        skew_ms: Callable[[], int] = lambda: 0,
    ) -> None:
        self._time_fn = time_fn
        self._skew_ms = skew_ms

    def now_ms(self) -> int:
        return int(self._time_fn() * 1000) + int(self._skew_ms())


class MarketClock:
    """Scaled, pausable market time in epoch milliseconds.

    ``now_ms = anchor_market + (monotonic - anchor_mono) * time_scale`` while running. Pausing freezes the
    value; resuming continues from the frozen value (market time never jumps backwards and never skips
    the paused span, so there is no hole in the candle history). :meth:`advance` moves it forward by hand.
    """

    def __init__(
        self,
        start_ms: int,
        time_scale: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if time_scale < 0:
            raise ValueError("time_scale must be >= 0")
        self._mono = monotonic
        self._scale = float(time_scale)
        self._anchor_market = float(start_ms)
        self._anchor_mono = monotonic()
        self._paused_at: float | None = None

    @property
    def time_scale(self) -> float:
        return self._scale

    @property
    def paused(self) -> bool:
        return self._paused_at is not None

    def _running_value(self) -> float:
        return self._anchor_market + (self._mono() - self._anchor_mono) * 1000.0 * self._scale

    def now_ms(self) -> int:
        if self._paused_at is not None:
            return int(self._paused_at)
        return int(self._running_value())

    def pause(self) -> None:
        if self._paused_at is None:
            self._paused_at = self._running_value()

    def resume(self) -> None:
        if self._paused_at is not None:
            self._anchor_market = self._paused_at
            self._anchor_mono = self._mono()
            self._paused_at = None

    def advance(self, ms: int) -> None:
        """Move market time forward by ``ms`` (negative values are refused: time never runs back)."""
        if ms < 0:
            raise ValueError("cannot move the market clock backwards")
        if self._paused_at is not None:
            self._paused_at += ms
        else:
            self._anchor_market += ms
