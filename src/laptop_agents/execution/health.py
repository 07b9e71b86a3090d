"""Broker health: one typed value the read model carries to /readyz, /status and the dashboard.

Why a value and not a flag read off the broker: the service used to say ``broker_healthy: true`` whatever
happened. A broker now reports *why* it is (un)healthy as bounded problem lines; the session adds what only it
knows (whether the last state save reached the disk). Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class BrokerHealth:
    """``healthy`` is true exactly when ``problems`` is empty.

    ``broker``: ``paper`` or ``bitunix``. ``detail``: facts an operator reads beside the verdict (circuit state,
    failures in a row, seconds since the last good exchange answer); keys are fixed per broker.
    """

    broker: str
    problems: tuple[str, ...] = ()
    detail: tuple[tuple[str, object], ...] = field(default=())

    @property
    def healthy(self) -> bool:
        return not self.problems

    def with_problem(self, problem: str) -> BrokerHealth:
        return BrokerHealth(self.broker, (*self.problems, problem), self.detail)

    def to_dict(self) -> dict[str, object]:
        return {"broker": self.broker, "healthy": self.healthy, "problems": list(self.problems), **dict(self.detail)}


@runtime_checkable
class ReportsHealth(Protocol):
    """A broker that judges its own health (the live broker); the session adds whether its state persists."""

    def health(self) -> BrokerHealth: ...
