"""Test-only kill points, inert unless their environment variable is set (never in a config file or unit).

``LA_TEST_SIGKILL_AFTER_EXIT_SAVED=N``: the session SIGKILLs itself right after the state save of its N-th
ExecutionExit, before that trade's trades.csv row is appended: the exact window a real kill -9 can hit, so the
end-to-end tests prove the next start puts the row back (reporting/trail_recovery.py) instead of hoping for a
lucky timing.

``LA_TEST_SIGKILL_BEFORE_EXIT_SAVED=N``: the same, right *before* that state save (its journal line written):
the trade is not booked yet, so no trades.csv may hold it (a restart books it again, once).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

from laptop_agents.core.events import Event, EventName

SIGKILL_AFTER_EXIT_SAVED = "LA_TEST_SIGKILL_AFTER_EXIT_SAVED"
SIGKILL_BEFORE_EXIT_SAVED = "LA_TEST_SIGKILL_BEFORE_EXIT_SAVED"


def sigkill_after_exit_saved(variable: str = SIGKILL_AFTER_EXIT_SAVED) -> Callable[[Event], None] | None:
    """A bus observer to subscribe right after the state store (or right before it, for
    SIGKILL_BEFORE_EXIT_SAVED), or None when the variable is unset/invalid."""
    raw = os.environ.get(variable, "").strip()
    if not raw.isdigit() or int(raw) < 1:
        return None
    target = int(raw)
    seen = 0

    def observer(event: Event) -> None:
        nonlocal seen
        if event.name == EventName.EXECUTION_EXIT:
            seen += 1
            if seen == target:
                os.kill(os.getpid(), signal.SIGKILL)

    return observer
