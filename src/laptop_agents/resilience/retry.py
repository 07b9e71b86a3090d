"""Retry with exponential backoff and full jitter.

Why full jitter: when many callers (or one caller after a burst) fail at the same
moment, deterministic backoff makes them retry in lock-step and hit the server
together again. Drawing the delay uniformly from ``[0, cap]`` spreads them out
(see AWS Architecture Blog, "Exponential Backoff And Jitter").

Time and randomness are injected (``sleep``, ``random``) so tests run instantly
and deterministically; nothing here reads a clock on its own.
"""

from __future__ import annotations

import asyncio
import random as _random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

SleepFn = Callable[[float], Awaitable[None]]
RandomFn = Callable[[], float]
RetryablePredicate = Callable[[BaseException], bool]
OnRetry = Callable[[int, BaseException, float], None]


def backoff_cap(attempt: int, base: float, maximum: float, multiplier: float = 2.0) -> float:
    """Upper bound of the delay before retry number ``attempt`` (1-based).

    ``base * multiplier**(attempt-1)`` clamped to ``maximum``; computed without
    overflow for large attempt numbers.
    """
    if attempt < 1:
        raise ValueError("attempt is 1-based")
    if base <= 0:
        return 0.0
    cap = base
    for _ in range(attempt - 1):
        cap *= multiplier
        if cap >= maximum:
            return maximum
    return min(cap, maximum)


def full_jitter_delay(
    attempt: int,
    base: float,
    maximum: float,
    rnd: RandomFn,
    multiplier: float = 2.0,
) -> float:
    """A delay drawn uniformly from ``[0, backoff_cap(attempt)]``.

    ``rnd`` must return a float in ``[0, 1)``; out-of-range values are clamped
    so a misbehaving injected source cannot produce negative or huge sleeps.
    """
    fraction = min(max(rnd(), 0.0), 1.0)
    return fraction * backoff_cap(attempt, base, maximum, multiplier)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry.

    ``max_attempts`` counts the first call: ``max_attempts=1`` means no retry.
    """

    max_attempts: int = 4
    base_delay_sec: float = 0.2
    max_delay_sec: float = 5.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if self.base_delay_sec < 0 or self.max_delay_sec < 0:
            raise ValueError("delays must be >= 0")
        if self.multiplier < 1:
            raise ValueError("multiplier must be >= 1")

    def delay(self, retry_number: int, rnd: RandomFn) -> float:
        """Jittered delay before retry ``retry_number`` (1 = first retry)."""
        return full_jitter_delay(
            retry_number, self.base_delay_sec, self.max_delay_sec, rnd, self.multiplier
        )


NO_RETRY = RetryPolicy(max_attempts=1)


async def retry_async(
    operation: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    is_retryable: RetryablePredicate,
    sleep: SleepFn = asyncio.sleep,
    rnd: RandomFn = _random.random,
    on_retry: OnRetry | None = None,
) -> T:
    """Run ``operation`` until it succeeds, fails non-retryably, or attempts run out.

    The last exception is re-raised unchanged, so callers see the real cause and
    not a wrapper. ``asyncio.CancelledError`` is never retried: cancellation must
    always win. ``on_retry(retry_number, error, delay)`` is called before each
    sleep so the caller can log or count retries.
    """
    attempt = 1
    while True:
        try:
            return await operation()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - filtered by the predicate below
            if attempt >= policy.max_attempts or not is_retryable(exc):
                raise
            delay = policy.delay(attempt, rnd)
            if on_retry is not None:
                on_retry(attempt, exc, delay)
            await sleep(delay)
            attempt += 1
