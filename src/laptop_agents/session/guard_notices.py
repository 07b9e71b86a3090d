"""Make the guards visible: a tripped circuit breaker or a kill switch is never silent.

A breaker that trips with ``halt_entries`` keeps the session running and opens nothing new; it persists across
sessions until ``la reset-breaker``. Without a word about it, later sessions end ``completed`` with no trade and
the operator cannot tell a quiet market from a halted account. So: the trip is a WARNING (system.jsonl and the
console) in either action, the next session says at start that entries are halted and how to reset, and
``la status`` / ``la doctor`` show it even when no session runs. The same for a kill switch left in place.
(The alert for a trip is sent by alerts/router.py from the same CircuitBreakerTripped event.)
"""

from __future__ import annotations

import logging
from typing import Any

from laptop_agents.core.errors import LaError
from laptop_agents.core.events import Event, EventName
from laptop_agents.resilience.trading_circuit_breaker import BreakerState
from laptop_agents.session.kill_switch import KillSwitch
from laptop_agents.session.state_store import check_workspace_state
from laptop_agents.session.workspace import Workspace

log = logging.getLogger("laptop_agents.session")

RESET_HINT = "review why, then run `la reset-breaker`"
KILL_HINT = "remove the kill file (or unset LA_KILL_SWITCH) to trade again"


def breaker_line(state: BreakerState | dict[str, Any]) -> str:
    """One line for a tripped breaker: when, why, what it means, how to reset."""
    d = state.to_dict() if isinstance(state, BreakerState) else state
    return (f"circuit breaker tripped at {d.get('tripped_at') or '?'} ({d.get('reason')}: {d.get('detail') or 'no detail'}): "
            f"new entries are halted; {RESET_HINT}")


class GuardNotices:
    """Event-bus subscriber: a breaker trip is a WARNING in system.jsonl and on the console, whatever the action."""

    def __call__(self, event: Event) -> None:
        if event.name != EventName.CIRCUIT_BREAKER_TRIPPED:
            return
        d = event.data
        then = "the session flattens and stops" if d.get("action") == "stop_session" else \
            "the session keeps running and opens no new position"
        log.warning("CIRCUIT BREAKER TRIPPED (%s): %s; %s; %s", d.get("reason"), d.get("detail"), then, RESET_HINT)


def announce_at_start(breaker: BreakerState, kill_reason: str | None) -> None:
    """The session's start lines for a guard already active: a WARNING each."""
    if breaker.tripped:
        log.warning("%s", breaker_line(breaker))
    if kill_reason:
        log.warning("kill switch is active (%s): the session will flatten and stop; %s", kill_reason, KILL_HINT)


def guard_status(workspace: Workspace, running_breaker: dict[str, Any] | None = None) -> dict[str, Any]:
    """What `la status` (and --json) and `la doctor` report about the guards, session or not.

    ``breaker``: the breaker's state (the running session's, else the state file's), None if there is none;
    ``entries_halted``: whether the breaker stops new entries; ``kill_switch``: why it is active, or None;
    ``state_error`` (only when there is one): the one-line refusal of impossible state files (the next session
    exits 8).
    """
    out: dict[str, Any] = {"breaker": None, "entries_halted": False,
                           "kill_switch": KillSwitch(workspace.kill_files()).reason()}
    if running_breaker is not None:
        out["breaker"] = running_breaker
    else:
        try:
            state = check_workspace_state(workspace)
        except LaError as err:
            out["state_error"] = str(err)
            return out
        out["breaker"] = None if state is None else state.to_dict()
    out["entries_halted"] = bool(out["breaker"] and out["breaker"].get("tripped") is True)
    return out


def guard_lines(status: dict[str, Any]) -> list[str]:
    """Human lines for `la status`: one WARNING per active guard, nothing when all is clear."""
    lines = []
    if status.get("state_error"):
        lines.append(f"WARNING: {status['state_error']}")
    if status.get("entries_halted"):
        lines.append(f"WARNING: {breaker_line(status['breaker'])}")
    if status.get("kill_switch"):
        lines.append(f"WARNING: kill switch active ({status['kill_switch']}); {KILL_HINT}")
    return lines
