"""kill -9 of a live session at a chosen point of its exchange conversation, then a restart that must finish
the job: nothing doubled, nothing unbooked, the account flat, the wallet explained by the booked trades.

The mock parks the chosen request (``rest_hold_*``); the test kills the process while it waits for that
answer, then lets the exchange drop the request. Phase ``before``: the exchange never saw it; ``after``: it
was processed (the order placed and filled) and only the answer was lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pytest

from tests.chaos.harness import CLOSE_PATHS, ENTRY, Chaos
from tests.live.conftest import KEY

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class KillPoint:
    paths: tuple[str, ...]
    phase: str
    after_fill: bool = False
    """Arm the hold only once the entry is booked (ExecutionFill journaled)."""
    sigterm: bool = False
    """Ask the session to stop first: the kill lands inside its shutdown."""
    skip: int = 0
    strategy: str = "hold"
    restart_trades: bool = False
    """The restart must place its own entry (the killed run left nothing on the exchange to finish)."""
    stop_while_down: bool = False
    """While the session is dead, move the price through the held entry's stop: the exchange closes it."""
    restart_killed_at: str | None = None
    """Kill the first restart too, while this request of its start-up reconciliation is in flight."""


KILL_POINTS = {
    # two round trips done (state saved with their clientIds); the third order's answer is lost
    "after_send_before_ack_third_order": KillPoint(tuple(ENTRY), "after", skip=2, strategy="trade"),
    # the entry's answer is lost, and its exchange-side stop fires while la is down: a whole round trip
    # la never saw, to be booked from the exchange's history on restart
    "after_send_before_ack_stop_fires_while_down": KillPoint(tuple(ENTRY), "after", stop_while_down=True),
    # the strategy decided, the order is on its way and never reaches the exchange
    "between_signal_and_order": KillPoint(tuple(ENTRY), "before", restart_trades=True),
    # the exchange placed and filled the entry, the ack never came back; the restart dies too, while it
    # reconciles (its position query in flight), and the second restart must finish the job
    "after_send_before_ack_restart_killed_reconciling": KillPoint(
        tuple(ENTRY), "after", restart_killed_at="position/get_pending_positions"),
    # acked and filled; the follow-up order query that leads to booking is in flight
    "after_fill_before_booking": KillPoint(("trade/get_order_detail",), "before"),
    # SIGTERM with a position open; the close is placed, its answer lost, then kill -9
    "during_shutdown_close_sent": KillPoint(tuple(CLOSE_PATHS), "after", after_fill=True, sigterm=True),
    # SIGTERM; the position closed on the exchange, the exit's trade-history query in flight
    "during_shutdown_before_exit_booked": KillPoint(("trade/get_history_trades",), "before", after_fill=True,
                                                    sigterm=True),
}


@pytest.mark.parametrize("point", list(KILL_POINTS), ids=list(KILL_POINTS))
def test_kill9_at_a_chosen_point_then_restart(chaos: Chaos, point: str) -> None:
    kp = KILL_POINTS[point]
    chaos.setup(kp.strategy)
    arm = {"rest_hold_next": 1, "rest_hold_skip": kp.skip, "rest_hold_paths": list(kp.paths),
           "rest_hold_phase": kp.phase}
    if not kp.after_fill:
        chaos.mx.admin.set_faults(**arm)
    proc = chaos.start("5")
    if kp.after_fill:
        chaos.la_env.wait_for_event("ExecutionFill", timeout=90)
        chaos.mx.admin.set_faults(**arm)
    if kp.sigterm:
        proc.terminate()
    held = chaos.kill_at_hold(proc, f"session killed {point}", timeout=90)
    if kp.stop_while_down:
        stop = Decimal(str(held["body"]["slPrice"]))
        chaos.mx.admin.set_price(stop - 50 if held["body"]["side"] == "BUY" else stop + 50)
        chaos.la_env.wait_for(lambda: not chaos.mx.admin.account(KEY)["positions"], timeout=10,
                              what="the exchange-side stop closed the position")
    if kp.restart_killed_at:
        chaos.mx.admin.set_faults(rest_hold_next=1, rest_hold_skip=0, rest_hold_paths=[kp.restart_killed_at],
                                  rest_hold_phase="before")
        chaos.kill_at_hold(chaos.start("5"), "restart killed while reconciling", timeout=60)
    if kp.restart_trades:
        runs = len(list((chaos.la_env.workspace / "runs").glob("*-live-*")))
        restart = chaos.start("5")
        chaos.la_env.wait_for(lambda: len(list((chaos.la_env.workspace / "runs").glob("*-live-*"))) > runs
                              and any(e["event"] == "ExecutionFill" for e in chaos.la_env.events()),
                              timeout=90, what="the restart's own entry")
        restart.terminate()
        chaos.finish(restart, "restart")
    else:
        chaos.run("0.05", "restart")
    chaos.assert_invariants()
