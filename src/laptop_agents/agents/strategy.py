"""The default strategy: EMA trend filter + breakout entry, ATR-based exits.

Incremental indicators (O(1) per candle) in floats: they decide *whether* to
trade, never how much money changes hands, so float is fine here. Pure: no
clock, no I/O; the same candles always give the same signals.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from laptop_agents.core.config_models import StrategyConfig
from laptop_agents.core.models import Candle, Side


@dataclass(frozen=True, slots=True)
class Signal:
    side: Side
    atr: float
    reason: str


class _Ema:
    __slots__ = ("_seed_sum", "alpha", "count", "period", "value")

    def __init__(self, period: int) -> None:
        self.period = period
        self.alpha = 2.0 / (period + 1)
        self.value: float | None = None
        self.count = 0
        self._seed_sum = 0.0

    def update(self, x: float) -> float | None:
        self.count += 1
        if self.value is None:
            # seed with the simple average of the first `period` values
            self._seed_sum += x
            if self.count == self.period:
                self.value = self._seed_sum / self.period
            return self.value
        self.value += self.alpha * (x - self.value)
        return self.value


class _Atr:
    """Wilder's average true range."""

    __slots__ = ("_count", "_prev_close", "_sum", "period", "value")

    def __init__(self, period: int) -> None:
        self.period = period
        self.value: float | None = None
        self._prev_close: float | None = None
        self._count = 0
        self._sum = 0.0

    def update(self, high: float, low: float, close: float) -> float | None:
        if self._prev_close is None:
            self._prev_close = close
            return None
        tr = max(high - low, abs(high - self._prev_close), abs(low - self._prev_close))
        self._prev_close = close
        if self.value is None:
            self._count += 1
            self._sum += tr
            if self._count == self.period:
                self.value = self._sum / self.period
            return self.value
        self.value = (self.value * (self.period - 1) + tr) / self.period
        return self.value


class EmaTrendBreakout:
    """LONG when fast EMA > slow EMA and the close breaks the prior N-bar high; SHORT mirrored."""

    def __init__(self, config: StrategyConfig) -> None:
        self.config = config
        self._fast = _Ema(config.trend.fast_ema)
        self._slow = _Ema(config.trend.slow_ema)
        self._atr = _Atr(config.exits.atr_period)
        lookback = config.entry.breakout_lookback
        self._highs: deque[float] = deque(maxlen=lookback)
        self._lows: deque[float] = deque(maxlen=lookback)
        self._lookback = lookback
        self._allow_long = config.entry.allow_long
        self._allow_short = config.entry.allow_short
        self.candles_seen = 0

    @property
    def atr(self) -> float | None:
        return self._atr.value

    @property
    def warmed_up(self) -> bool:
        return self.candles_seen >= self.config.warmup_candles

    def update(self, candle: Candle) -> Signal | None:
        """Feed one closed candle; return an entry signal or None."""
        high, low, close = float(candle.high), float(candle.low), float(candle.close)
        fast = self._fast.update(close)
        slow = self._slow.update(close)
        atr = self._atr.update(high, low, close)
        highs, lows = self._highs, self._lows
        signal = None
        # the prior N-bar high/low (before this candle) are computed only when a side's trend filter passes
        if len(highs) == self._lookback and fast is not None and slow is not None and atr is not None and atr > 0:
            if fast > slow:
                if self._allow_long:
                    prior_high = max(highs)
                    if close > prior_high:
                        signal = Signal(Side.LONG, atr, f"close {close:.1f} > {self._lookback}-bar high {prior_high:.1f}, ema{self._fast.period}>ema{self._slow.period}")
            elif fast < slow and self._allow_short:
                prior_low = min(lows)
                if close < prior_low:
                    signal = Signal(Side.SHORT, atr, f"close {close:.1f} < {self._lookback}-bar low {prior_low:.1f}, ema{self._fast.period}<ema{self._slow.period}")
        highs.append(high)
        lows.append(low)
        self.candles_seen += 1
        return signal
