"""The contract every market data source fulfils for the session loop.

The session loop consumes *closed* candles from `candles()` and separately
watches `last_data_monotonic` to detect stale data: a live feed pushes partial
updates many times per candle, so "no closed candle for a while" is not the
same thing as "no data for a while".
"""

from __future__ import annotations

from collections.abc import AsyncIterator
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
        """`time.monotonic()` of the last market data message received, or None before any."""

    def candles(self) -> AsyncIterator[Candle]:
        """Yield closed candles in time order, without gaps or duplicates, until closed."""

    async def close(self) -> None:
        """Release sockets and tasks; idempotent."""
