"""A seeded, deterministic mock market: realistic BTC 1m bars at a chosen cadence.

Price model: each bar is built from sub-steps of a geometric random walk whose
drift and volatility follow a small Markov chain of regimes (calm range, trend
up, trend down, volatile), which gives the clustering and trends real BTC
minute bars show. Same seed → same bars, whatever the cadence.

Fault injection for safety tests: a data gap (no bars for N seconds) at a given
time into the run, and a loop freeze (the event loop is blocked) that the
watchdog must catch. The `losing_streak` scenario is a price path built to stop
out a trend-following breakout entry again and again (circuit-breaker tests).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from decimal import Decimal

from laptop_agents.core.config_models import MockSettings
from laptop_agents.core.models import Candle, parse_utc

_SUBSTEPS = 12

# regime: (drift per bar, volatility per bar) as fractions of price
_REGIMES = {
    "range": (0.0, 0.0005),
    "trend_up": (0.00012, 0.0006),
    "trend_down": (-0.00012, 0.0006),
    "volatile": (0.0, 0.0012),
}
_REGIME_NAMES = list(_REGIMES)
_REGIME_STAY = 0.97  # probability of staying in the current regime each bar


def _dec(x: float) -> Decimal:
    return Decimal(f"{x:.1f}")


class MockBarGenerator:
    """Pure generator of bars: no clock, no sleeping. Used by the provider and by replays."""

    def __init__(self, settings: MockSettings, symbol: str = "BTCUSDT") -> None:
        self.settings = settings
        self.symbol = symbol
        self._rng = random.Random(settings.seed)
        self._price = float(settings.start_price)
        self._start = parse_utc(settings.start_time)
        self._step = timedelta(seconds=settings.timeframe_sec)
        self._regime = "range"
        self._base: float | None = None  # the losing-streak range's level, set by its first bar
        self.index = 0

    def __iter__(self) -> Iterator[Candle]:
        return self

    def __next__(self) -> Candle:
        if self.settings.scenario == "losing_streak":
            o, h, lo, c = self._losing_streak_bar()
        else:
            o, h, lo, c = self._random_walk_bar()
        ts = self._start + self._step * self.index
        self.index += 1
        vol = Decimal(f"{abs(self._rng.gauss(12.0, 6.0)) + 0.5:.4f}")
        return Candle(ts=ts, open=_dec(o), high=_dec(h), low=_dec(lo), close=_dec(c), volume=vol, symbol=self.symbol)

    def _random_walk_bar(self) -> tuple[float, float, float, float]:
        rng = self._rng
        if rng.random() > _REGIME_STAY:
            self._regime = rng.choice(_REGIME_NAMES)
        drift, vol = _REGIMES[self._regime]
        step_drift = drift / _SUBSTEPS
        step_vol = vol / math.sqrt(_SUBSTEPS)
        base = step_drift - 0.5 * step_vol * step_vol  # the same left-to-right sum as before, hoisted
        gauss, exp = rng.gauss, math.exp
        o = self._price
        hi = lo = o
        p = o
        for _ in range(_SUBSTEPS):
            p *= exp(base + step_vol * gauss(0.0, 1.0))
            hi = max(hi, p)
            lo = min(lo, p)
        self._price = p
        return self._rounded(o, hi, lo, p)

    def _losing_streak_bar(self) -> tuple[float, float, float, float]:
        """A range, a one-bar breakout up, then a crash through any ATR stop; repeat.

        50 bars oscillate between two closes (no new highs or lows, so no entry),
        bar 50 breaks out +0.3% (a trend-following long enters at its close),
        bar 51 crashes 0.6% below the breakout (the stop fills). Every cycle is
        one losing trade, deterministically, for the circuit-breaker tests.
        """
        phase = self.index % 52
        o = self._price
        base = self._base if self._base is not None else o
        if phase < 50:
            c = base * (1.0001 if phase % 2 == 0 else 1.0)
            hi, lo = max(o, c) + 0.5, min(o, c) - 0.5
        elif phase == 50:
            c = base * 1.003
            hi, lo = c, min(o, base) - 0.5
        else:
            c = base * 0.997
            hi, lo = o, o * 0.994
            self._base = c
        self._base = base if phase < 51 else c
        self._price = c
        return self._rounded(o, hi, lo, c)

    @staticmethod
    def _rounded(o: float, h: float, lo: float, c: float) -> tuple[float, float, float, float]:
        o, h, lo, c = round(o, 1), round(h, 1), round(lo, 1), round(c, 1)
        return o, max(o, h, lo, c), min(o, h, lo, c), c


class MockProvider:
    """Emits the generator's bars in real time, one every `candle_interval_sec`."""

    name = "mock"

    def __init__(self, settings: MockSettings, symbol: str = "BTCUSDT", max_candles: int | None = None) -> None:
        self.settings = settings
        self._bars = MockBarGenerator(settings, symbol)
        self._max = max_candles
        self._last_data: float | None = None
        self._closed = False
        self._gap_done = False
        self._freeze_done = False
        self.gaps_injected = 0

    @property
    def last_data_monotonic(self) -> float | None:
        return self._last_data

    @property
    def progress_monotonic(self) -> float | None:
        """Every mock frame is a closed candle, due one `candle_interval_sec` after the previous one."""
        return self._last_data

    async def candles(self) -> AsyncIterator[Candle]:
        s = self.settings
        started = time.monotonic()
        next_at = started
        emitted = 0
        while not self._closed and (self._max is None or emitted < self._max):
            now = time.monotonic()
            elapsed = now - started
            if s.gap_at_sec is not None and not self._gap_done and elapsed >= s.gap_at_sec:
                self._gap_done = True
                self.gaps_injected += 1
                await asyncio.sleep(s.gap_duration_sec)  # no data at all: the feed went quiet
                next_at = time.monotonic()
            if s.freeze_at_sec is not None and not self._freeze_done and elapsed >= s.freeze_at_sec:
                self._freeze_done = True
                time.sleep(s.freeze_duration_sec)  # deliberately blocks the event loop (watchdog test)
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                await asyncio.sleep(0)
            if self._closed:
                break
            candle = next(self._bars)
            self._last_data = time.monotonic()
            emitted += 1
            next_at += s.candle_interval_sec
            yield candle

    async def close(self) -> None:
        self._closed = True
