"""A seeded, deterministic BTC-like price path, organised in 1-minute bars by market time. Pure: no I/O.

Shape of the walk
    Log-price random walk sampled once per tick (``tick_ms`` of market time, 1 s by default) with volatility
    ``annual_volatility`` (60 % a year ≈ BTC: about $10 per second and $80 per minute at 95,000). A hidden
    regime (range, trend up, trend down, volatile) switches every ~45 market minutes on average: ranges
    mean-revert around where they started, trends drift ~0.8 % an hour, volatile phases have twice the
    noise and more volume. A weak pull towards the start price (half-life 14 days) keeps long fast-forward
    runs near realistic levels.

Exact arithmetic
    Prices are integers of the tick size (0.1 USDT for quotePrecision 1), volumes integers of the lot size
    (0.0001 BTC), quote volume the exact product, so candle strings derived from bars never drift.

History without start-up cost
    The path is anchored at the start time with the start price. Ticks after it are generated forwards as
    the market clock advances (never ahead of it, so a test can move the price by hand without rewriting
    anything already published). Ticks before it are generated *backwards* by a second, independent walk,
    lazily, only as far as someone asks for history. Both streams are seeded, so the path is a pure function
    of (seed, symbol, start time, parameters), whatever order requests come in.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from statistics import NormalDist
from typing import NamedTuple

MINUTE_MS = 60_000
YEAR_MS = 365 * 24 * 3600 * 1000


# Shocks and volumes come from quantile tables indexed by random bits: about five times faster than
# random.gauss/expovariate, which matters when a day of 1-second ticks is generated on demand, and just as
# reproducible (Mersenne Twister bit streams are stable across Python versions).
_TABLE_BITS = 12
_TABLE_SIZE = 1 << _TABLE_BITS
_NORMAL: tuple[float, ...] = tuple(NormalDist().inv_cdf((i + 0.5) / _TABLE_SIZE) for i in range(_TABLE_SIZE))
_EXPONENTIAL: tuple[float, ...] = tuple(-math.log(1 - (i + 0.5) / _TABLE_SIZE) for i in range(_TABLE_SIZE))


class Bar(NamedTuple):
    """OHLC in price units, base volume in lot units, quote volume in price*lot units."""

    open: int
    high: int
    low: int
    close: int
    base_vol: int
    quote_vol: int

    @staticmethod
    def of_tick(price: int, volume: int) -> Bar:
        return Bar(price, price, price, price, volume, price * volume)

    def then_tick(self, price: int, volume: int) -> Bar:
        """This bar extended by one later tick."""
        return Bar(
            self.open,
            max(self.high, price),
            min(self.low, price),
            price,
            self.base_vol + volume,
            self.quote_vol + price * volume,
        )

    def then(self, later: Bar) -> Bar:
        """This bar followed by a later bar."""
        return Bar(
            self.open,
            max(self.high, later.high),
            min(self.low, later.low),
            later.close,
            self.base_vol + later.base_vol,
            self.quote_vol + later.quote_vol,
        )


class Tick(NamedTuple):
    ts: int
    price: int
    volume: int


@dataclass(frozen=True, slots=True)
class _Regime:
    name: str
    drift_sign: int
    vol_mult: float
    volume_mult: float
    weight: float


REGIMES = (
    _Regime("range", 0, 0.7, 0.8, 0.4),
    _Regime("trend_up", 1, 1.0, 1.1, 0.2),
    _Regime("trend_down", -1, 1.0, 1.1, 0.2),
    _Regime("volatile", 0, 2.0, 1.8, 0.2),
)
_REGIME_WEIGHTS = [r.weight for r in REGIMES]


@dataclass(frozen=True, slots=True)
class PathParams:
    """Tunables of the walk. Defaults give BTC-like behaviour; see the module docstring."""

    tick_ms: int = 1000
    price_decimals: int = 1
    volume_decimals: int = 4
    annual_volatility: float = 0.6
    mean_regime_minutes: float = 45.0
    trend_per_hour: float = 0.008
    range_half_life_minutes: float = 15.0
    anchor_half_life_days: float = 14.0
    mean_volume_per_second: float = 2.0


class _Walker:
    """One direction of the walk: a sequential generator of ``(price_units, volume_units)`` per tick."""

    def __init__(self, rng: random.Random, start_price: float, params: PathParams) -> None:
        self._rng = rng
        self._p = params
        self._scale = 10**params.price_decimals
        self._log_anchor = math.log(start_price)
        self.log_price = self._log_anchor
        per_tick_minutes = params.tick_ms / MINUTE_MS
        self._sigma = params.annual_volatility * math.sqrt(params.tick_ms / YEAR_MS)
        self._switch_p = min(1.0, per_tick_minutes / params.mean_regime_minutes)
        self._trend = params.trend_per_hour * params.tick_ms / 3_600_000
        self._k_range = 1 - 0.5 ** (per_tick_minutes / params.range_half_life_minutes)
        self._k_anchor = 1 - 0.5 ** (params.tick_ms / (params.anchor_half_life_days * 86_400_000))
        self._mean_volume = params.mean_volume_per_second * params.tick_ms / 1000 * 10**params.volume_decimals
        self.override: int | None = None
        self._rand = rng.random
        self._bits = rng.getrandbits
        self._enter(REGIMES[0])

    @property
    def regime(self) -> str:
        return self._regime.name

    def _enter(self, regime: _Regime) -> None:
        self._regime = regime
        self._range_anchor = self.log_price
        # Per-regime constants folded once, so the per-tick step is a handful of float operations.
        self._drift = regime.drift_sign * self._trend
        self._noise = self._sigma * regime.vol_mult
        self._volume = self._mean_volume * regime.volume_mult
        self._revert = self._k_range if regime.drift_sign == 0 and regime.vol_mult < 1 else 0.0

    def step(self) -> tuple[int, int]:
        bits = self._bits
        if self._rand() < self._switch_p:
            self._enter(self._rng.choices(REGIMES, weights=_REGIME_WEIGHTS)[0])
        noise = _NORMAL[bits(_TABLE_BITS)]
        volume = int(_EXPONENTIAL[bits(_TABLE_BITS)] * self._volume) or 1
        if self.override is not None:
            price = self.override
            self.override = None
            self.log_price = math.log(price / self._scale)
            self._range_anchor = self.log_price
            return price, volume
        lp = self.log_price + self._drift + self._noise * noise
        lp -= self._k_anchor * (lp - self._log_anchor) + self._revert * (lp - self._range_anchor)
        self.log_price = lp
        return round(math.exp(lp) * self._scale) or 1, volume


class PricePath:
    """Ticks and 1-minute bars of one symbol; see the module docstring for the model."""

    def __init__(
        self,
        *,
        seed: int,
        symbol: str,
        start_ms: int,
        start_price: float,
        history_ms: int,
        params: PathParams | None = None,
        recent_ticks: int = 4096,
    ) -> None:
        self.params = params or PathParams()
        tick_ms = self.params.tick_ms
        if MINUTE_MS % tick_ms:
            raise ValueError("tick_ms must divide 60000")
        self.symbol = symbol
        self.tick_ms = tick_ms
        self._tpm = MINUTE_MS // tick_ms
        self._price_scale = 10**self.params.price_decimals
        self._fwd = _Walker(random.Random(f"{seed}:{symbol}:forward"), start_price, self.params)
        self._bwd = _Walker(random.Random(f"{seed}:{symbol}:backward"), start_price, self.params)
        self._fwd.override = round(start_price * self._price_scale)
        anchor_tick = start_ms // tick_ms
        anchor_minute = anchor_tick * tick_ms // MINUTE_MS
        self.listing_minute = min(anchor_minute, (start_ms - history_ms) // MINUTE_MS)
        self._bars: dict[int, Bar] = {}
        self._recent: deque[Tick] = deque(maxlen=recent_ticks)
        # Backward part of the anchor minute (ticks before the anchor tick), oldest first.
        prefix: list[tuple[int, int]] = [self._bwd.step() for _ in range(anchor_tick - anchor_minute * self._tpm)]
        prefix.reverse()
        bar: Bar | None = None
        for price, volume in prefix:
            bar = Bar.of_tick(price, volume) if bar is None else bar.then_tick(price, volume)
        self._cur_minute = anchor_minute
        self._cur_bar: Bar | None = bar
        self._oldest_complete = anchor_minute
        self._next_tick = anchor_tick
        self._last: Tick | None = None
        self.advance_to(start_ms)

    # --- forward ----------------------------------------------------------------------------------------

    def advance_to(self, market_ms: int) -> list[Tick]:
        """Generate every tick up to ``market_ms`` (inclusive); return the new ticks, oldest first."""
        target = market_ms // self.tick_ms
        out: list[Tick] = []
        tick_ms, tpm = self.tick_ms, self._tpm
        while self._next_tick <= target:
            k = self._next_tick
            price, volume = self._fwd.step()
            minute = k // tpm
            if minute != self._cur_minute:
                if self._cur_bar is not None:
                    self._bars[self._cur_minute] = self._cur_bar
                self._cur_minute = minute
                self._cur_bar = None
            cur = self._cur_bar
            self._cur_bar = Bar.of_tick(price, volume) if cur is None else cur.then_tick(price, volume)
            tick = Tick(k * tick_ms, price, volume)
            out.append(tick)
            self._recent.append(tick)
            self._next_tick = k + 1
        if out:
            self._last = out[-1]
        return out

    def set_next_price(self, price_units: int) -> None:
        """Make the next generated tick exactly ``price_units``; the walk continues from there."""
        if price_units <= 0:
            raise ValueError("price must be positive")
        self._fwd.override = price_units

    @property
    def last_tick(self) -> Tick:
        assert self._last is not None  # the constructor generates the anchor tick
        return self._last

    @property
    def last_price(self) -> Decimal:
        return self.to_price(self.last_tick.price)

    @property
    def regime(self) -> str:
        return self._fwd.regime

    @property
    def current_minute(self) -> int:
        return self._cur_minute

    @property
    def listing_ms(self) -> int:
        return self.listing_minute * MINUTE_MS

    def to_price(self, units: int) -> Decimal:
        return Decimal(units).scaleb(-self.params.price_decimals)

    def ticks_since(self, ts_exclusive: int) -> list[Tick]:
        """Recently generated ticks newer than ``ts_exclusive`` (bounded by the recent-tick buffer)."""
        out: list[Tick] = []
        for tick in reversed(self._recent):
            if tick.ts <= ts_exclusive:
                break
            out.append(tick)
        out.reverse()
        return out

    # --- bars -------------------------------------------------------------------------------------------

    def bar(self, minute: int) -> Bar | None:
        """The 1-minute bar of ``minute`` (epoch minutes): complete, or partial for the current minute."""
        if minute < self.listing_minute or minute > self._cur_minute:
            return None
        if minute == self._cur_minute:
            return self._cur_bar
        if minute < self._oldest_complete:
            self._extend_back(minute)
        return self._bars.get(minute)

    def bars(self, first: int, last: int) -> Iterator[Bar]:
        """Bars of minutes ``first..last`` inclusive that exist, oldest first."""
        first = max(first, self.listing_minute)
        last = min(last, self._cur_minute)
        if first <= last and first < self._oldest_complete:
            self._extend_back(first)
        for minute in range(first, last + 1):
            bar = self._cur_bar if minute == self._cur_minute else self._bars.get(minute)
            if bar is not None:
                yield bar

    def _extend_back(self, minute: int) -> None:
        target = max(minute, self.listing_minute)
        step = self._bwd.step
        while self._oldest_complete > target:
            m = self._oldest_complete - 1
            price, volume = step()  # the minute's last tick comes first when walking backwards
            bar_close = price
            high = low = price
            base = volume
            quote = price * volume
            for _ in range(self._tpm - 1):
                price, volume = step()
                if price > high:
                    high = price
                elif price < low:
                    low = price
                base += volume
                quote += price * volume
            self._bars[m] = Bar(price, high, low, bar_close, base, quote)
            self._oldest_complete = m
