"""API circuit breaker: stop hammering an exchange that is failing.

States:

* ``CLOSED``: calls flow; consecutive failures are counted, a success resets
  the count. ``failure_threshold`` consecutive failures open the circuit.
* ``OPEN``: calls are refused immediately (no network traffic) until
  ``reset_timeout_sec`` has passed since the circuit opened.
* ``HALF_OPEN``: at most ``half_open_max_calls`` probe calls may be in flight.
  A successful probe closes the circuit; a failed probe re-opens it and starts a
  new cool-down.

This is about *transport* health (the API answering at all), not about trading
losses: that is ``trading_circuit_breaker.py``. Which outcomes count as failures
is the caller's decision (an exchange that answers "insufficient balance" is
healthy). The clock is injected so tests can drive the cool-down without
sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import Enum

Clock = Callable[[], float]
StateListener = Callable[["CircuitState", "CircuitState"], None]


class CircuitState(str, Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitOpenError(RuntimeError):
    """A call was refused because the circuit is open (or its probes are busy)."""

    def __init__(self, name: str, retry_after_sec: float) -> None:
        super().__init__(f"circuit '{name}' is open; retry in {retry_after_sec:.2f}s")
        self.name = name
        self.retry_after_sec = retry_after_sec


class CircuitBreaker:
    """Consecutive-failure circuit breaker with a timed half-open probe phase.

    Usage: ``breaker.acquire()`` before the call (raises ``CircuitOpenError``
    when refused), then exactly one of ``record_success()``, ``record_failure()``
    or ``release()`` (the call ended without telling us anything about the
    server's health, e.g. it was cancelled).
    """

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        reset_timeout_sec: float = 30.0,
        half_open_max_calls: int = 1,
        clock: Clock = time.monotonic,
        on_state_change: StateListener | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be >= 1")
        if reset_timeout_sec < 0:
            raise ValueError("reset_timeout_sec must be >= 0")
        if half_open_max_calls < 1:
            raise ValueError("half_open_max_calls must be >= 1")
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout_sec = reset_timeout_sec
        self.half_open_max_calls = half_open_max_calls
        self._clock = clock
        self._on_state_change = on_state_change
        self._state = CircuitState.CLOSED
        self._consecutive_failures = 0
        self._opened_at = 0.0
        self._probes_in_flight = 0
        self.times_opened = 0
        """How many times the circuit has tripped open (a metric)."""

    # -- inspection -------------------------------------------------------------

    @property
    def state(self) -> CircuitState:
        """Current state, moving OPEN → HALF_OPEN once the cool-down is over."""
        if (
            self._state is CircuitState.OPEN
            and self._clock() - self._opened_at >= self.reset_timeout_sec
        ):
            self._transition(CircuitState.HALF_OPEN)
            self._probes_in_flight = 0
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._consecutive_failures

    def retry_after_sec(self) -> float:
        """Seconds until a call may be attempted again (0 when allowed now)."""
        state = self.state
        if state is CircuitState.OPEN:
            return max(0.0, self._opened_at + self.reset_timeout_sec - self._clock())
        return 0.0

    # -- protocol ---------------------------------------------------------------

    def acquire(self) -> None:
        """Ask permission for one call; raise ``CircuitOpenError`` if refused."""
        state = self.state
        if state is CircuitState.CLOSED:
            return
        if state is CircuitState.HALF_OPEN and self._probes_in_flight < self.half_open_max_calls:
            self._probes_in_flight += 1
            return
        # OPEN, or HALF_OPEN with all probe slots taken: probes are short, so
        # suggest a short wait rather than a whole cool-down.
        retry_after = self.retry_after_sec() if state is CircuitState.OPEN else 0.0
        raise CircuitOpenError(self.name, retry_after)

    def record_success(self) -> None:
        """The call reached a healthy API."""
        self._consecutive_failures = 0
        if self._state is CircuitState.HALF_OPEN:
            self._probes_in_flight = 0
            self._transition(CircuitState.CLOSED)

    def record_failure(self) -> None:
        """The call failed in a way that says the API is unhealthy."""
        if self._state is CircuitState.HALF_OPEN:
            self._probes_in_flight = 0
            self._open()
            return
        if self._state is CircuitState.OPEN:
            return  # a call admitted before the trip finished late; nothing new
        self._consecutive_failures += 1
        if self._consecutive_failures >= self.failure_threshold:
            self._open()

    def release(self) -> None:
        """The call ended without a verdict; free its probe slot if it had one."""
        if self._state is CircuitState.HALF_OPEN and self._probes_in_flight > 0:
            self._probes_in_flight -= 1

    def reset(self) -> None:
        """Force the circuit closed (operator action)."""
        self._consecutive_failures = 0
        self._probes_in_flight = 0
        self._transition(CircuitState.CLOSED)

    # -- internals --------------------------------------------------------------

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._consecutive_failures = 0
        self.times_opened += 1
        self._transition(CircuitState.OPEN)

    def _transition(self, new: CircuitState) -> None:
        old = self._state
        self._state = new
        if old is not new and self._on_state_change is not None:
            self._on_state_change(old, new)
