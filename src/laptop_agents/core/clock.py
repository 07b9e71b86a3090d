"""Clocks are injected so logic never reads time itself.

Real-time sessions use `SystemClock`; replays use `SimulatedClock`, which the
runner advances to each candle's time. That is the only difference between a
live session and a fast-forward replay.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Current time, timezone-aware UTC."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (for timeouts)."""


class SystemClock:
    """Wall clock for real-time sessions."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


class SimulatedClock:
    """A clock that moves only when told to (replay, tests)."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._mono = 0.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance_to(self, ts: datetime) -> None:
        delta = (ts - self._now).total_seconds()
        if delta > 0:
            self._mono += delta
            self._now = ts
