"""The contract every market data source fulfils for the session loop.

The session loop consumes *closed* candles from `candles()` and separately
watches `progress_monotonic` to detect stale data. Freshness is *progress*:
accepted closed candles against the wall clock (the next one overdue counts as
stale from the moment it became due) and, for a live feed that pushes partial
updates many times per candle, pushes that advance the market. A frame that
repeats, is impossible, or is dated too far from the clock never makes the
feed fresh; `last_data_monotonic` (any frame at all) is liveness only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from laptop_agents.core.models import Candle


class FatalError(RuntimeError):
    """The provider gave up (e.g. reconnect attempts exhausted); the session must stop."""


@runtime_checkable
class MarketDataProvider(Protocol):
    """A source of closed candles for one symbol."""

    name: str

    @property
    def last_data_monotonic(self) -> float | None:
        """`time.monotonic()` of the last market data message received, or None before any (liveness only)."""

    @property
    def progress_monotonic(self) -> float | None:
        """`time.monotonic()` staleness is measured from (see the module docstring), or None before any."""

    def candles(self) -> AsyncIterator[Candle]:
        """Yield closed candles in time order, without gaps or duplicates, until closed."""

    async def close(self) -> None:
        """Release sockets and tasks; idempotent."""


@dataclass(frozen=True, slots=True)
class FeedStats:
    """A data source's own counters (monotonic, never reset), carried by the session's read model to the metrics.

    ``rejected_frames``: pushes refused as not advancing the market, by reason (a bounded vocabulary);
    ``api_errors``: REST errors of the source's warm-up/backfill client by exception class name.
    """

    reconnects: int = 0
    rejected_frames: tuple[tuple[str, int], ...] = ()
    api_errors: tuple[tuple[str, int], ...] = ()
    rate_limit_waits: int = 0


@runtime_checkable
class ReportsFeedStats(Protocol):
    """A provider that counts what it went through (bitunix_ws); the others report zeros."""

    def feed_stats(self) -> FeedStats: ...
