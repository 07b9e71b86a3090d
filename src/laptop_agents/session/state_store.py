"""Persists broker and breaker state whenever an event changes them (an event-bus observer)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from laptop_agents.core.errors import StateError, is_disk_error
from laptop_agents.core.events import Event, EventName
from laptop_agents.core.state import StateManager
from laptop_agents.core.state_schema import (
    LIVE_BROKER_KIND,
    PAPER_BROKER_KIND,
    StateInvalid,
    check_breaker_state,
    check_live_state,
    check_paper_state,
    state_error,
)
from laptop_agents.resilience.trading_circuit_breaker import BreakerState
from laptop_agents.session.workspace import BREAKER_STATE_NAME, BROKER_STATE_NAME, Workspace

BROKER_KIND = PAPER_BROKER_KIND  # the default broker's
BREAKER_KIND = "circuit_breaker"

log = logging.getLogger("laptop_agents.session.state_store")

_BROKER_EVENTS = {EventName.EXECUTION_FILL, EventName.EXECUTION_EXIT, EventName.STATE_RESTORED, EventName.ORDER_SUBMITTED}
"""Also at start (the live broker's instance tag, so a restart knows which la orders are its own) and after each
send (its clientId sequence), not only when money moves."""
_BREAKER_EVENTS = {EventName.EXECUTION_EXIT, EventName.CIRCUIT_BREAKER_TRIPPED, EventName.CIRCUIT_BREAKER_RESET}


class StateStore:
    def __init__(
        self,
        manager: StateManager,
        broker_state: Callable[[], dict[str, Any]],
        breaker_state: Callable[[], dict[str, Any]],
        broker_kind: str = BROKER_KIND,
        *,
        now: Callable[[], datetime],
    ) -> None:
        self.manager = manager
        self._now = now  # the session's clock, for each file's saved_at
        self._broker_state = broker_state
        self._breaker_state = breaker_state
        self.broker_kind = broker_kind
        self.writes = 0
        self.write_error: OSError | None = None
        """The first disk error (full, read-only, I/O) a save met; the session stops with DISK_ERROR on it."""

    def __call__(self, event: Event) -> None:
        try:
            if event.name in _BROKER_EVENTS:
                self.save_broker()
            if event.name in _BREAKER_EVENTS:
                self.save_breaker()
        except OSError as exc:
            if not is_disk_error(exc):
                raise
            # atomic writes: the file on disk keeps its last good version; one line, then the session stops
            if exc.filename is None:
                exc.filename = str(self.manager.path(BROKER_STATE_NAME if event.name in _BROKER_EVENTS
                                                     else BREAKER_STATE_NAME))
            if self.write_error is None:
                log.error("could not save state after %s: %s", event.name, exc)
            self.write_error = exc

    def save_broker(self) -> None:
        self.manager.save(BROKER_STATE_NAME, self.broker_kind, self._broker_state(), saved_at=self._now())
        self.writes += 1

    def write_ahead(self) -> bool:
        """Save the broker now, before it sends an order (no event marks that moment): a kill -9 during the send
        then leaves a state naming the order. A disk error is recorded like an event's save (the session stops)
        and reported (False): the broker must then not send the order."""
        try:
            self.save_broker()
            return True
        except OSError as exc:
            if not is_disk_error(exc):
                raise
            if exc.filename is None:  # the exit-14 line names the file, like an event's save
                exc.filename = str(self.manager.path(BROKER_STATE_NAME))
            if self.write_error is None:
                log.error("could not save state before sending an order: %s", exc)
            self.write_error = exc
            return False

    def save_breaker(self) -> None:
        self.manager.save(BREAKER_STATE_NAME, BREAKER_KIND, self._breaker_state(), saved_at=self._now())
        self.writes += 1

    def save_all(self) -> None:
        self.save_broker()
        self.save_breaker()


def load_breaker_state(
    manager: StateManager,
    *,
    equity: Decimal | None = None,
    trade_pnls: Sequence[Decimal] | None = None,
    booked_pnls: Sequence[Decimal] | None = None,
) -> BreakerState | None:
    """The persisted breaker state (None if there is none), validated on its own and, when the account's
    ``equity`` and closed ``trade_pnls`` are known, against them; StateError (exit 8, one line) otherwise."""
    path: Path = manager.path(BREAKER_STATE_NAME)
    data = manager.load(BREAKER_STATE_NAME, BREAKER_KIND)
    if data is None:
        return None
    try:
        check_breaker_state(data, equity=equity, trade_pnls=trade_pnls, booked_pnls=booked_pnls)
        return BreakerState.from_dict(data)
    except StateInvalid as exc:
        raise state_error(path, exc) from None
    except (KeyError, ValueError, TypeError, ArithmeticError) as exc:
        raise StateError(
            f"corrupted state file {path}: {exc!s}; move it aside or `la clean --all`; it was left untouched"
        ) from None




def check_workspace_state(workspace: Workspace) -> BreakerState | None:
    """Validate a mode's broker and breaker files as a session start would, without starting one (`la doctor`,
    `la status`, `la reset-breaker`); the breaker state, or None if there is none. StateError names the file."""
    manager = StateManager(workspace.state_dir)
    paper = workspace.mode == "paper"
    data = manager.load(BROKER_STATE_NAME, BROKER_KIND if paper else LIVE_BROKER_KIND)
    equity: Decimal | None = None
    pnls: list[Decimal] | None = None
    if data is not None:
        try:
            (check_paper_state if paper else check_live_state)(data)
        except StateInvalid as exc:
            raise state_error(workspace.broker_state_path, exc) from None
        if paper:
            equity = Decimal(str(data["equity"]))
            pnls = [Decimal(str(t["pnl"])) for t in data["trades"]]
    return load_breaker_state(manager, equity=equity, trade_pnls=pnls,
                              booked_pnls=None if paper else live_booked_pnls(data))


def live_booked_pnls(data: dict[str, Any] | None) -> list[Decimal] | None:
    """The closed trades' pnl of a validated live broker state (None without one): the live breaker's bounds."""
    return None if data is None else [Decimal(str(t["pnl"])) for t in data["trades"]]
