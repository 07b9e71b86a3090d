"""API circuit breaker state machine, driven by a fake monotonic clock."""

from __future__ import annotations

import pytest

from laptop_agents.resilience.circuit import CircuitBreaker, CircuitOpenError, CircuitState


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(clock: FakeClock, **kw) -> tuple[CircuitBreaker, list[tuple[str, str]]]:
    changes: list[tuple[str, str]] = []
    breaker = CircuitBreaker(
        "api",
        failure_threshold=kw.pop("failure_threshold", 3),
        reset_timeout_sec=kw.pop("reset_timeout_sec", 10.0),
        half_open_max_calls=kw.pop("half_open_max_calls", 1),
        clock=clock,
        on_state_change=lambda old, new: changes.append((old.value, new.value)),
    )
    return breaker, changes


def fail(breaker: CircuitBreaker, n: int) -> None:
    for _ in range(n):
        breaker.acquire()
        breaker.record_failure()


def test_opens_after_threshold_consecutive_failures() -> None:
    clock = FakeClock()
    breaker, changes = make(clock)
    fail(breaker, 2)
    assert breaker.state is CircuitState.CLOSED
    fail(breaker, 1)
    assert breaker.state is CircuitState.OPEN
    assert changes == [("closed", "open")]
    assert breaker.times_opened == 1
    with pytest.raises(CircuitOpenError) as info:
        breaker.acquire()
    assert info.value.retry_after_sec == pytest.approx(10.0)


def test_success_resets_the_consecutive_count() -> None:
    clock = FakeClock()
    breaker, _ = make(clock)
    fail(breaker, 2)
    breaker.acquire()
    breaker.record_success()
    fail(breaker, 2)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.consecutive_failures == 2


def test_half_open_after_cooldown_and_closes_on_probe_success() -> None:
    clock = FakeClock()
    breaker, changes = make(clock)
    fail(breaker, 3)
    clock.now += 9.99
    assert breaker.state is CircuitState.OPEN
    assert breaker.retry_after_sec() == pytest.approx(0.01)
    clock.now += 0.01
    assert breaker.state is CircuitState.HALF_OPEN
    breaker.acquire()  # the probe
    breaker.record_success()
    assert breaker.state is CircuitState.CLOSED
    assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_half_open_limits_concurrent_probes() -> None:
    clock = FakeClock()
    breaker, _ = make(clock, half_open_max_calls=2)
    fail(breaker, 3)
    clock.now += 10
    breaker.acquire()
    breaker.acquire()
    with pytest.raises(CircuitOpenError) as info:
        breaker.acquire()
    assert info.value.retry_after_sec == 0.0
    breaker.release()  # a probe ended without verdict frees its slot
    breaker.acquire()


def test_failed_probe_reopens_with_a_fresh_cooldown() -> None:
    clock = FakeClock()
    breaker, _ = make(clock)
    fail(breaker, 3)
    clock.now += 10
    breaker.acquire()
    breaker.record_failure()
    assert breaker.state is CircuitState.OPEN
    assert breaker.times_opened == 2
    clock.now += 5
    assert breaker.state is CircuitState.OPEN
    clock.now += 5
    assert breaker.state is CircuitState.HALF_OPEN


def test_late_failure_while_open_does_not_extend_cooldown() -> None:
    clock = FakeClock()
    breaker, _ = make(clock)
    fail(breaker, 3)
    clock.now += 6
    breaker.record_failure()  # a call admitted before the trip finishing late
    clock.now += 4
    assert breaker.state is CircuitState.HALF_OPEN


def test_reset_forces_closed() -> None:
    clock = FakeClock()
    breaker, _ = make(clock)
    fail(breaker, 3)
    breaker.reset()
    assert breaker.state is CircuitState.CLOSED
    breaker.acquire()


def test_parameter_validation() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker("x", failure_threshold=0)
    with pytest.raises(ValueError):
        CircuitBreaker("x", reset_timeout_sec=-1)
    with pytest.raises(ValueError):
        CircuitBreaker("x", half_open_max_calls=0)
