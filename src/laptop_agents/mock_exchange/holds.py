"""Held requests: park a chosen REST call at a chosen moment until the test says what happens to it.

Chaos tests need to kill a client at an exact point of an exchange conversation (the order reached the
exchange but the answer did not reach the client; the fill happened but the follow-up query is in flight).
Sleeping and hoping is not precise, so the mock parks the request instead: the fault settings
``rest_hold_next`` / ``rest_hold_skip`` / ``rest_hold_paths`` / ``rest_hold_phase`` choose which call, the
test waits until it is parked (``GET /admin/holds?wait_s=``), acts (e.g. ``kill -9`` the client), then
releases it (``POST /admin/holds/release``) with an action:

* ``proceed``: phase ``before``: the exchange processes the request now and answers it; phase ``after``:
  the (already processed) answer is sent.
* ``drop``: answer HTTP 504; with phase ``before`` the exchange never processes the request.

A held request that nobody releases is dropped after ``rest_hold_s`` seconds, and every hold is dropped
when the exchange stops, so a forgotten hold can neither hang a test nor leak a task.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import Any, Literal

HoldAction = Literal["proceed", "drop"]
HOLD_ACTIONS: tuple[HoldAction, ...] = ("proceed", "drop")


@dataclass
class HeldRequest:
    """One parked REST call; ``decision`` resolves to the action chosen by the test (or ``drop``)."""

    hold_id: int
    path: str
    phase: Literal["before", "after"]
    account: str | None
    body: Any
    held_at_ms: int
    decision: asyncio.Future[HoldAction] = field(repr=False)

    def view(self) -> dict[str, Any]:
        return {"id": self.hold_id, "path": self.path, "phase": self.phase, "account": self.account,
                "body": self.body, "heldAt": self.held_at_ms}


class HoldRegistry:
    """The requests parked right now (one event loop: no locks needed)."""

    def __init__(self) -> None:
        self._held: dict[int, HeldRequest] = {}
        self._ids = itertools.count(1)
        self._changed = asyncio.Event()
        self.total = 0
        """How many requests were ever held (lets a test wait for "a new hold since I last looked")."""

    def park(self, path: str, phase: Literal["before", "after"], account: str | None, body: Any) -> HeldRequest:
        held = HeldRequest(next(self._ids), path, phase, account, body, int(time.time() * 1000),
                           asyncio.get_running_loop().create_future())
        self._held[held.hold_id] = held
        self.total += 1
        self._changed.set()
        return held

    async def wait_decision(self, held: HeldRequest, timeout_s: float) -> HoldAction:
        """The test's decision, or ``drop`` after ``timeout_s``; the hold is forgotten either way."""
        try:
            return await asyncio.wait_for(asyncio.shield(held.decision), timeout_s)
        except TimeoutError:
            return "drop"
        finally:
            self._held.pop(held.hold_id, None)

    def current(self) -> list[HeldRequest]:
        return list(self._held.values())

    async def wait_any(self, wait_s: float, min_total: int = 0) -> list[HeldRequest]:
        """Held requests now, waiting up to ``wait_s`` for one to exist (and for ``total > min_total``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while not (self._held and self.total > min_total):
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                break
        return self.current()

    def release(self, action: HoldAction, hold_id: int | None = None) -> int:
        """Resolve one hold (or all of them) with ``action``; returns how many were released."""
        if action not in HOLD_ACTIONS:
            raise ValueError(f"action must be one of {', '.join(HOLD_ACTIONS)}")
        released = 0
        for held in list(self._held.values()):
            if hold_id is not None and held.hold_id != hold_id:
                continue
            if not held.decision.done():
                held.decision.set_result(action)
                released += 1
            self._held.pop(held.hold_id, None)
        return released
