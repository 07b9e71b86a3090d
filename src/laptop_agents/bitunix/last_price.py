"""The exchange's latest last-traded price, kept fresh by the public WebSocket ``ticker`` channel.

Why: price protection (:func:`~laptop_agents.execution.order_checks.check_entry`) needs the exchange's
current last price right before an entry is sent. Asking REST (``GET market/tickers``) costs a full round
trip on every entry (50–200 ms against the real exchange). The public stream already pushes the ticker
(~every 500 ms) on the connection the kline provider holds open, so the price is usually in hand.

One writer (:class:`~laptop_agents.data.providers.bitunix_ws.BitunixWsProvider`, on each valid ticker frame
of *its* symbol), one reader (:class:`~laptop_agents.execution.bitunix_broker.BitunixBroker`, per entry),
both on the same event loop: no locking. Ages are measured on this object's own monotonic clock, from the
moment the frame was *read* (a frame that sat in the socket buffer is older than that: the max age
budget has to cover it, see ``DEFAULT_TICKER_MAX_AGE_MS``).

:meth:`LastPrice.fresh` returns the price only while it is younger than ``max_age_sec``; otherwise None and
the broker falls back to REST exactly as before. A connection that ends clears the price
(:meth:`LastPrice.clear`): a price from a socket that is gone is not trusted, however young.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

__all__ = ["DEFAULT_TICKER_MAX_AGE_MS", "LastPrice", "PriceSample"]

DEFAULT_TICKER_MAX_AGE_MS = 1000
"""How old a WebSocket last price may be and still replace the REST ``market/tickers`` read.

1 s because: Bitunix pushes the ticker about every 500 ms, so a healthy feed is never older than one push
interval plus jitter, and 1 s tolerates one late or lost push before falling back to REST. It is also the
same order of staleness REST has by the time an order lands (the REST price is already half a round trip
old when it arrives, and the order needs another one, 50–200 ms each way against the real exchange), while
price protection compares against a 2 % scope (``priceProtectScope``): BTC moving 2 % within one second is
exceptional, and if it does the exchange's own price protection still refuses the order (30014/30015).
Longer ages would mostly hide a stalled ticker; shorter ones would fall back to REST on ordinary jitter.
"""


@dataclass(frozen=True, slots=True)
class PriceSample:
    """One accepted last price: ``received`` is on the owning :class:`LastPrice`'s monotonic clock (seconds)."""

    price: Decimal
    received: float
    exchange_ts_ms: int | None = None


class LastPrice:
    """Latest valid last price of one symbol, with its monotonic receive time."""

    def __init__(
        self,
        symbol: str,
        *,
        max_age_sec: float = DEFAULT_TICKER_MAX_AGE_MS / 1000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_age_sec < 0:
            raise ValueError("max_age_sec must be >= 0")
        self.symbol = symbol.upper()
        self.max_age_sec = max_age_sec
        self._monotonic = monotonic
        self._sample: PriceSample | None = None
        # counters for metrics and tests (never reset)
        self.updates = 0
        """Prices accepted."""
        self.refused = 0
        """Updates refused (other symbol, non-positive price): the price did not change."""
        self.clears = 0

    @property
    def sample(self) -> PriceSample | None:
        return self._sample

    def update(self, symbol: str, price: Decimal, exchange_ts_ms: int | None = None) -> bool:
        """Record ``price`` for ``symbol`` received now; False (and no change) if it is not ours or not > 0."""
        if symbol.upper() != self.symbol or not isinstance(price, Decimal) or not price.is_finite() or price <= 0:
            self.refused += 1
            return False
        self._sample = PriceSample(price, self._monotonic(), exchange_ts_ms)
        self.updates += 1
        return True

    def clear(self) -> None:
        """Forget the price (the connection that delivered it ended)."""
        if self._sample is not None:
            self.clears += 1
        self._sample = None

    def age_sec(self) -> float | None:
        sample = self._sample
        return None if sample is None else self._monotonic() - sample.received

    def fresh(self) -> Decimal | None:
        """The price if it is younger than ``max_age_sec`` (0 disables: always None), else None."""
        sample = self._sample
        if sample is None or self.max_age_sec <= 0:
            return None
        if self._monotonic() - sample.received > self.max_age_sec:
            return None
        return sample.price

    def __repr__(self) -> str:
        age = self.age_sec()
        shown = "none" if age is None else f"{self._sample.price if self._sample else '?'} ({age * 1000:.0f} ms old)"
        return f"LastPrice({self.symbol}: {shown}, max age {self.max_age_sec * 1000:.0f} ms)"
