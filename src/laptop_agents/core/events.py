"""The one vocabulary of domain events, and the bus that carries them.

The trading logic returns events; the shell publishes them on the bus, where
observers (journal → events.jsonl, state store, later metrics and alerts) hang.
The logic never knows who listens.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from laptop_agents.core.models import utc_iso

log = logging.getLogger("laptop_agents.events")


class EventName:
    """Event names as they appear in events.jsonl (the seed's names)."""

    SESSION_START = "SessionStart"
    WARMUP_COMPLETED = "WarmupCompleted"
    CANDLE_PROCESSED = "CandleProcessed"
    SIGNAL_GENERATED = "SignalGenerated"
    RISK_REJECTED = "RiskRejected"
    ORDER_SUBMITTED = "OrderSubmitted"
    ORDER_REJECTED = "OrderRejected"
    EXECUTION_FILL = "ExecutionFill"
    EXECUTION_EXIT = "ExecutionExit"
    CIRCUIT_BREAKER_TRIPPED = "CircuitBreakerTripped"
    CIRCUIT_BREAKER_RESET = "CircuitBreakerReset"
    KILL_SWITCH_ACTIVATED = "KillSwitchActivated"
    STALE_DATA_DETECTED = "StaleDataDetected"
    WATCHDOG_TRIGGERED = "WatchdogTriggered"
    STATE_RESTORED = "StateRestored"
    LOCK_RECOVERED = "LockRecovered"
    SHUTDOWN_REQUESTED = "ShutdownRequested"
    SESSION_END = "SessionEnd"


class Event:
    """One domain event: a name, when it happened, and flat fields."""

    __slots__ = ("name", "timestamp", "data")

    def __init__(self, name: str, timestamp: datetime, **data: Any) -> None:
        self.name = name
        self.timestamp = timestamp
        self.data = data

    def to_record(self) -> dict[str, Any]:
        """The JSON-ready record: `event` and `timestamp` first, Decimals as numbers."""
        record: dict[str, Any] = {"event": self.name, "timestamp": utc_iso(self.timestamp)}
        for key, value in self.data.items():
            record[key] = _jsonable(value)
        return record

    def __repr__(self) -> str:
        return f"Event({self.name}, {utc_iso(self.timestamp)}, {self.data})"


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        # float repr of a Decimal with <= 15 significant digits prints the same digits
        return float(value)
    if isinstance(value, datetime):
        return utc_iso(value)
    if hasattr(value, "value") and isinstance(getattr(value, "value"), str):  # enums
        return value.value
    return value


Handler = Callable[[Event], None]


class EventBus:
    """Synchronous fan-out. A failing observer is logged and counted, never fatal to trading."""

    def __init__(self) -> None:
        self._handlers: list[Handler] = []
        self.handler_errors = 0

    def subscribe(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def publish(self, event: Event) -> None:
        for handler in self._handlers:
            try:
                handler(event)
            except Exception:  # noqa: BLE001 - observers must not break the trading loop
                self.handler_errors += 1
                log.exception("event observer %r failed on %s", handler, event.name)

    def publish_all(self, events: list[Event]) -> None:
        for event in events:
            self.publish(event)
