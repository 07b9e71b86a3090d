"""Token buckets with a fake clock: pacing, bursts, per-key isolation, wait stats."""

from __future__ import annotations

import asyncio

import pytest

from laptop_agents.resilience.rate_limiter import AsyncRateLimiter, RateLimit, TokenBucket


class FakeTime:
    """A clock that only advances when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_bucket_spaces_calls_at_the_rate_with_burst_one() -> None:
    bucket = TokenBucket(10.0, 1.0, now=0.0)
    assert bucket.reserve(0.0) == 0.0
    assert bucket.reserve(0.0) == pytest.approx(0.1)
    assert bucket.reserve(0.0) == pytest.approx(0.2)  # queued behind the previous one


def test_bucket_allows_a_burst_up_to_capacity_then_paces() -> None:
    bucket = TokenBucket(5.0, 3.0, now=0.0)
    assert [bucket.reserve(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.reserve(0.0) == pytest.approx(0.2)


def test_bucket_refills_over_time_but_not_beyond_capacity() -> None:
    bucket = TokenBucket(2.0, 2.0, now=0.0)
    bucket.reserve(0.0)
    bucket.reserve(0.0)
    assert bucket.available(0.5) == pytest.approx(1.0)
    assert bucket.available(100.0) == pytest.approx(2.0)


def test_bucket_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0)
    with pytest.raises(ValueError):
        TokenBucket(1, 0.5)
    with pytest.raises(ValueError):
        TokenBucket(1, 1).reserve(0.0, 2)


def test_limiter_never_exceeds_the_rate_over_any_one_second_window() -> None:
    fake = FakeTime()
    limiter = AsyncRateLimiter({"market": RateLimit(10.0)}, clock=fake.clock, sleep=fake.sleep)
    times: list[float] = []

    async def main() -> None:
        for _ in range(35):
            await limiter.acquire("market")
            times.append(fake.now)

    asyncio.run(main())
    for i, t in enumerate(times):
        in_window = [u for u in times[i:] if u < t + 1.0 - 1e-9]
        assert len(in_window) <= 10
    assert times[-1] == pytest.approx(3.4)


def test_limiter_reports_waits_per_key_and_keys_are_independent() -> None:
    fake = FakeTime()
    limiter = AsyncRateLimiter(
        {"cancel": RateLimit(5.0), "query": RateLimit(10.0)}, clock=fake.clock, sleep=fake.sleep
    )

    async def main() -> list[float]:
        return [
            await limiter.acquire("cancel"),
            await limiter.acquire("cancel"),
            await limiter.acquire("query"),
        ]

    waits = asyncio.run(main())
    assert waits[0] == 0.0
    assert waits[1] == pytest.approx(0.2)
    assert waits[2] == 0.0  # the query bucket was untouched by cancels
    stats = limiter.stats("cancel")
    assert (stats.acquired, stats.waits) == (2, 1)
    assert stats.waited_sec == pytest.approx(0.2)
    assert limiter.stats("query").waits == 0


def test_concurrent_callers_queue_in_arrival_order() -> None:
    fake = FakeTime()
    slept: list[float] = []

    async def record_only(seconds: float) -> None:  # all arrive at the same instant
        slept.append(seconds)

    limiter = AsyncRateLimiter({"k": RateLimit(4.0)}, clock=fake.clock, sleep=record_only)

    async def main() -> list[float]:
        return list(await asyncio.gather(*(limiter.acquire("k") for _ in range(4))))

    waits = asyncio.run(main())
    assert waits == pytest.approx([0.0, 0.25, 0.5, 0.75])
    assert slept == pytest.approx([0.25, 0.5, 0.75])


def test_unknown_key_is_an_error() -> None:
    limiter = AsyncRateLimiter({"a": RateLimit(1.0)})
    with pytest.raises(KeyError):
        asyncio.run(limiter.acquire("b"))
