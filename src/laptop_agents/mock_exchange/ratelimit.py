"""Per-group sliding-window rate limiting, as Bitunix documents it (requests per second per IP or UID).

Pure: the time source is injected. Only admitted requests count towards the window, so a client that keeps
to the documented rate is never refused, and one that bursts past it is refused exactly for the excess.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping


class RateLimiter:
    """Sliding one-second windows keyed by ``(group, client)``."""

    def __init__(
        self,
        limits: Mapping[str, int],
        window_s: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limits = dict(limits)
        self._window = window_s
        self._mono = monotonic
        self._hits: dict[tuple[str, str], deque[float]] = {}

    def limit(self, group: str) -> int | None:
        return self._limits.get(group)

    def allow(self, group: str, client: str) -> bool:
        """Record one request if the group's window has room; return False (not recorded) if it has not."""
        limit = self._limits.get(group)
        if limit is None:
            return True
        now = self._mono()
        hits = self._hits.setdefault((group, client), deque())
        while hits and now - hits[0] >= self._window:
            hits.popleft()
        if len(hits) >= limit:
            return False
        hits.append(now)
        return True

    def reset(self) -> None:
        self._hits.clear()
