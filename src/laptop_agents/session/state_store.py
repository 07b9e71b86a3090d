"""Persists broker and breaker state whenever an event changes them (an event-bus observer)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from laptop_agents.core.events import Event, EventName
from laptop_agents.core.state import StateManager
from laptop_agents.session.workspace import BREAKER_STATE_NAME, BROKER_STATE_NAME

BROKER_KIND = "paper_broker"
BREAKER_KIND = "circuit_breaker"

_BROKER_EVENTS = {EventName.EXECUTION_FILL, EventName.EXECUTION_EXIT}
_BREAKER_EVENTS = {EventName.EXECUTION_EXIT, EventName.CIRCUIT_BREAKER_TRIPPED, EventName.CIRCUIT_BREAKER_RESET}


class StateStore:
    def __init__(
        self,
        manager: StateManager,
        broker_state: Callable[[], dict[str, Any]],
        breaker_state: Callable[[], dict[str, Any]],
        broker_kind: str = BROKER_KIND,
    ) -> None:
        self.manager = manager
        self._broker_state = broker_state
        self._breaker_state = breaker_state
        self.broker_kind = broker_kind
        self.writes = 0

    def __call__(self, event: Event) -> None:
        if event.name in _BROKER_EVENTS:
            self.save_broker()
        if event.name in _BREAKER_EVENTS:
            self.save_breaker()

    def save_broker(self) -> None:
        self.manager.save(BROKER_STATE_NAME, self.broker_kind, self._broker_state())
        self.writes += 1

    def save_breaker(self) -> None:
        self.manager.save(BREAKER_STATE_NAME, BREAKER_KIND, self._breaker_state())
        self.writes += 1

    def save_all(self) -> None:
        self.save_broker()
        self.save_breaker()
