"""Client-side token buckets, one per key (e.g. per exchange endpoint group).

Why client-side: the exchange answers excess requests with a rate-limit error
(Bitunix 10005/10006) and may ban an IP that keeps doing it. Pacing ourselves
below the documented rate is cheaper than recovering from refusals.

Design: *reservation*, not polling. ``TokenBucket.reserve`` takes the tokens
immediately (the balance may go negative) and returns how long the caller must
wait for them to have existed. Concurrent callers therefore queue up in arrival
order without a lock or a wake-up loop, and the pure bucket is trivially
testable with a fake clock. ``AsyncRateLimiter.acquire`` returns the time it
waited so the caller can count waits in metrics.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
Clock = Callable[[], float]
SleepFn = Callable[[float], Awaitable[None]]


class TokenBucket:
    """A token bucket refilling at ``rate_per_sec`` up to ``capacity`` tokens.

    ``capacity`` bounds the burst. With ``capacity=1`` the bucket spaces calls
    evenly (1/rate apart), which is the safest reading of an exchange limit such
    as "10 requests per second" whose window is not documented.
    """

    def __init__(self, rate_per_sec: float, capacity: float = 1.0, *, now: float = 0.0) -> None:
        if rate_per_sec <= 0:
            raise ValueError("rate_per_sec must be > 0")
        if capacity < 1:
            raise ValueError("capacity must be >= 1 (a bucket must hold one whole request)")
        self.rate_per_sec = rate_per_sec
        self.capacity = capacity
        self._tokens = capacity
        self._updated = now

    def _refill(self, now: float) -> None:
        if now > self._updated:
            self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate_per_sec)
            self._updated = now

    def reserve(self, now: float, tokens: float = 1.0) -> float:
        """Take ``tokens`` now; return seconds to wait before using them (0 = go)."""
        if tokens <= 0:
            raise ValueError("tokens must be > 0")
        if tokens > self.capacity:
            raise ValueError("cannot reserve more tokens than the bucket holds")
        self._refill(now)
        self._tokens -= tokens
        if self._tokens >= 0:
            return 0.0
        return -self._tokens / self.rate_per_sec

    def available(self, now: float) -> float:
        """Tokens available at ``now`` (negative while reservations are pending)."""
        self._refill(now)
        return self._tokens


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A documented rate: ``rate_per_sec`` sustained, ``burst`` at once."""

    rate_per_sec: float
    burst: float = 1.0


@dataclass(slots=True)
class RateLimitStats:
    """Counters per key for metrics: how often and how long callers waited."""

    acquired: int = 0
    waits: int = 0
    waited_sec: float = 0.0


@dataclass(slots=True)
class _Entry:
    bucket: TokenBucket
    stats: RateLimitStats = field(default_factory=RateLimitStats)


class AsyncRateLimiter(Generic[K]):
    """Async front-end over one ``TokenBucket`` per key."""

    def __init__(
        self,
        limits: Mapping[K, RateLimit],
        *,
        clock: Clock = time.monotonic,
        sleep: SleepFn = asyncio.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        now = clock()
        self._entries: dict[K, _Entry] = {
            key: _Entry(TokenBucket(limit.rate_per_sec, limit.burst, now=now))
            for key, limit in limits.items()
        }

    def keys(self) -> list[K]:
        return list(self._entries)

    def stats(self, key: K) -> RateLimitStats:
        return self._entries[key].stats

    async def acquire(self, key: K, tokens: float = 1.0) -> float:
        """Wait until ``tokens`` may be spent under ``key``; return seconds waited.

        Raises ``KeyError`` for an unknown key: an unconfigured endpoint group
        is a programming error, not something to let through unpaced.
        """
        entry = self._entries[key]
        wait = entry.bucket.reserve(self._clock(), tokens)
        entry.stats.acquired += 1
        if wait > 0:
            entry.stats.waits += 1
            entry.stats.waited_sec += wait
            await self._sleep(wait)
        return wait
