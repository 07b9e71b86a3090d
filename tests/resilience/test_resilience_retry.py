"""Retry policy: backoff bounds, full jitter, predicate, attempt limits."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from laptop_agents.resilience.retry import (
    NO_RETRY,
    RetryPolicy,
    backoff_cap,
    full_jitter_delay,
    retry_async,
)


class Boom(Exception):
    pass


class Fatal(Exception):
    pass


def run(coro):
    return asyncio.run(coro)


def test_backoff_cap_grows_exponentially_and_is_clamped() -> None:
    caps = [backoff_cap(n, 0.5, 5.0) for n in range(1, 7)]
    assert caps == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_backoff_cap_does_not_overflow_for_huge_attempts() -> None:
    assert backoff_cap(10_000, 0.1, 30.0) == 30.0


def test_backoff_cap_rejects_zero_attempt() -> None:
    with pytest.raises(ValueError):
        backoff_cap(0, 1.0, 2.0)


@settings(deadline=None)
@given(
    attempt=st.integers(1, 60),
    base=st.floats(0, 10),
    maximum=st.floats(0, 100),
    r=st.floats(-1, 2),
)
def test_full_jitter_delay_is_within_zero_and_cap(attempt, base, maximum, r) -> None:
    delay = full_jitter_delay(attempt, base, maximum, lambda: r)
    assert 0.0 <= delay <= backoff_cap(attempt, base, maximum) + 1e-12


def test_full_jitter_uses_the_injected_random_source() -> None:
    assert full_jitter_delay(3, 1.0, 100.0, lambda: 0.5) == 2.0
    assert full_jitter_delay(3, 1.0, 100.0, lambda: 0.0) == 0.0


def test_policy_validation() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(base_delay_sec=-1)
    with pytest.raises(ValueError):
        RetryPolicy(multiplier=0.5)


def test_retries_until_success_with_jittered_sleeps() -> None:
    calls = 0
    slept: list[float] = []
    retries: list[tuple[int, str, float]] = []

    async def op() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise Boom(f"fail {calls}")
        return "ok"

    async def sleep(d: float) -> None:
        slept.append(d)

    result = run(
        retry_async(
            op,
            policy=RetryPolicy(max_attempts=5, base_delay_sec=1.0, max_delay_sec=10.0),
            is_retryable=lambda e: isinstance(e, Boom),
            sleep=sleep,
            rnd=lambda: 0.5,
            on_retry=lambda n, e, d: retries.append((n, str(e), d)),
        )
    )
    assert result == "ok"
    assert calls == 3
    assert slept == [0.5, 1.0]
    assert retries == [(1, "fail 1", 0.5), (2, "fail 2", 1.0)]


def test_gives_up_after_max_attempts_and_reraises_last_error() -> None:
    calls = 0

    async def op() -> None:
        nonlocal calls
        calls += 1
        raise Boom(str(calls))

    async def sleep(d: float) -> None:
        pass

    with pytest.raises(Boom, match="4"):
        run(
            retry_async(
                op,
                policy=RetryPolicy(max_attempts=4),
                is_retryable=lambda e: True,
                sleep=sleep,
                rnd=lambda: 0.0,
            )
        )
    assert calls == 4


def test_non_retryable_error_is_raised_immediately() -> None:
    calls = 0

    async def op() -> None:
        nonlocal calls
        calls += 1
        raise Fatal("no")

    async def sleep(d: float) -> None:
        raise AssertionError("must not sleep")

    with pytest.raises(Fatal):
        run(
            retry_async(
                op,
                policy=RetryPolicy(max_attempts=5),
                is_retryable=lambda e: isinstance(e, Boom),
                sleep=sleep,
            )
        )
    assert calls == 1


def test_no_retry_policy_calls_once() -> None:
    calls = 0

    async def op() -> None:
        nonlocal calls
        calls += 1
        raise Boom()

    with pytest.raises(Boom):
        run(retry_async(op, policy=NO_RETRY, is_retryable=lambda e: True))
    assert calls == 1


def test_cancellation_is_never_retried() -> None:
    calls = 0

    async def op() -> None:
        nonlocal calls
        calls += 1
        raise asyncio.CancelledError()

    async def main() -> None:
        await retry_async(op, policy=RetryPolicy(max_attempts=5), is_retryable=lambda e: True)

    with pytest.raises(asyncio.CancelledError):
        run(main())
    assert calls == 1
