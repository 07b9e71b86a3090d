"""The live view of a running session: /status JSON, /healthz, /readyz.

Every answer renders the session's read model (session/read_model.py: one
frozen snapshot the runner publishes each heartbeat), never runner internals.
`status_payload` is a superset of `la status --json` (same keys, same
meaning), plus what only the running process knows: data and heartbeat ages,
breaker and kill-switch state, broker health, readiness and the most recent
domain events.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from laptop_agents.core.events import Event, EventName
from laptop_agents.session.read_model import SessionSnapshot, Thresholds
from laptop_agents.session.read_model import status_payload as render_status

__all__ = ["RECENT_EVENTS", "RecentEvents", "Thresholds", "health", "readiness", "status_payload"]

RECENT_EVENTS = 50
_QUIET = {EventName.CANDLE_PROCESSED}


class RecentEvents:
    """Bus subscriber keeping the last N events (candles are summarised elsewhere: too chatty)."""

    def __init__(self, size: int = RECENT_EVENTS) -> None:
        self._events: deque[dict[str, Any]] = deque(maxlen=size)

    def __call__(self, event: Event) -> None:
        if event.name not in _QUIET:
            self._events.append(event.to_record())

    def snapshot(self) -> list[dict[str, Any]]:
        return list(self._events)


def health(snapshot: SessionSnapshot, now: float | None = None) -> tuple[bool, dict[str, Any]]:
    """/healthz from the session's read model, ages measured now."""
    return snapshot.health(time.monotonic() if now is None else now)


def readiness(snapshot: SessionSnapshot, now: float | None = None) -> tuple[bool, dict[str, Any]]:
    """/readyz from the session's read model, ages measured now."""
    return snapshot.readiness(time.monotonic() if now is None else now)


def status_payload(snapshot: SessionSnapshot, recent: RecentEvents | None = None,
                   extra: dict[str, Any] | None = None, now: float | None = None) -> dict[str, Any]:
    """/status: the read model's payload plus the recent events and the service's own extras."""
    out = render_status(snapshot, time.monotonic() if now is None else now)
    out["recent_events"] = [] if recent is None else recent.snapshot()
    if extra:
        out.update(extra)
    return out
