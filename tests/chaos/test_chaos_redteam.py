"""Variations on the fixed faults: other counts, moments and paths than the cases the fixes were written for."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.chaos.harness import CLOSE_PATHS, ENTRY, Chaos
from tests.live.conftest import KEY

pytestmark = pytest.mark.slow


def test_close_answer_hangs_past_the_client_timeout_during_shutdown(chaos: Chaos) -> None:
    """SIGTERM with a position open; the first close request hangs (the exchange never answers it)."""
    chaos.setup()
    proc = chaos.start("5")
    chaos.la_env.wait_for_event("ExecutionFill", timeout=90)
    chaos.mx.admin.set_faults(rest_hang_next=1, rest_hang_s=30, rest_fault_paths=CLOSE_PATHS,
                              rest_fault_phase="before")
    proc.terminate()
    chaos.finish(proc, "shutdown whose first close hung")
    chaos.assert_invariants()


def test_exchange_clock_steps_back_mid_session(chaos: Chaos) -> None:
    chaos.setup()
    proc = chaos.start("5")
    chaos.la_env.wait_for_event("ExecutionFill", timeout=90)
    chaos.mx.admin.set_faults(clock_skew_ms=-9000)
    # trade on for a while under the new clock (position polls are signed), then stop
    n = len(chaos.mx.admin.events("request", account=KEY))
    chaos.wait(lambda: proc.poll() is not None or len(chaos.mx.admin.ledger(type="none")["events"]) > n, timeout=3)
    proc.terminate()
    chaos.finish(proc, "session whose exchange clock stepped back 9 s")
    chaos.assert_invariants()


def test_skew_just_inside_the_receive_window_at_start(chaos: Chaos) -> None:
    chaos.setup()
    chaos.mx.admin.set_faults(clock_skew_ms=4700)
    proc = chaos.start("5")
    chaos.wait(lambda: proc.poll() is not None or bool(chaos.mx.admin.events("fill", account=KEY)), timeout=90)
    proc.terminate()
    outcome = chaos.finish(proc, "session under 4.7 s skew")
    if chaos.audit().fills:
        chaos.assert_invariants()
    else:
        assert outcome.returncode not in (0, 1) and "Traceback" not in outcome.stderr, outcome.stderr[-3000:]


def test_kill_switch_while_the_fill_cannot_be_booked(chaos: Chaos) -> None:
    """The entry fills, the position query fails past its retries, and the kill switch is set meanwhile."""
    chaos.setup()
    proc = chaos.start("5")
    chaos.fault_after_entry_fills(rest_error_next=6, rest_fault_paths=["position/get_pending_positions"])
    (chaos.la_env.workspace / "kill.txt").write_text("stop\n")
    outcome = chaos.finish(proc, "kill switch while the fill is unbooked")
    chaos.assert_invariants(allowed_codes=(4,))
    assert outcome.returncode == 4


def test_exchange_side_stop_whose_history_query_fails(chaos: Chaos) -> None:
    """The exchange's stop closes the position while the trade-history query that books the exit fails past
    one call's retries; when history answers again the exit is booked once."""
    chaos.setup()
    proc = chaos.start("5")
    fill = chaos.la_env.wait_for_event("ExecutionFill", timeout=90)
    chaos.mx.admin.set_faults(rest_error_next=8, rest_fault_paths=["trade/get_history_trades"])
    stop = Decimal(str(fill["stop_loss"]))
    chaos.mx.admin.set_price(str(stop - 50 if str(fill["position_side"]).lower() == "long" else stop + 50))
    chaos.wait(lambda: proc.poll() is not None or chaos.mx.admin.faults()["rest_error_next"] <= 4, timeout=30)
    chaos.mx.admin.set_faults(rest_error_next=0)
    chaos.wait(lambda: proc.poll() is not None or any(e["event"] == "ExecutionExit" for e in chaos.la_env.events()),
               timeout=20)
    proc.terminate()
    chaos.finish(proc, "exchange stop whose history query failed")
    chaos.assert_invariants()


def test_rate_limit_storm_at_start(chaos: Chaos) -> None:
    """12 forced 429s from the first request: the session either rides them out or stops with exit 12."""
    chaos.setup()
    chaos.mx.admin.set_faults(rate_limit_next=12)
    proc = chaos.start("5")
    chaos.wait(lambda: proc.poll() is not None or bool(chaos.mx.admin.events("fill", account=KEY)), timeout=90)
    proc.terminate()
    outcome = chaos.finish(proc, "session started into 12 429s")
    if chaos.audit().fills:
        chaos.assert_invariants()
    else:
        assert outcome.returncode == 12 and "Traceback" not in outcome.stderr, outcome.stderr[-3000:]
def test_entry_answer_lost_and_its_lookup_fails_too(chaos: Chaos) -> None:
    """The entry is placed but answered 503, and the clientId lookups fail as well: never a second entry."""
    chaos.setup()
    chaos.mx.admin.set_faults(rest_error_next=7, rest_fault_paths=[*ENTRY, "trade/get_order_detail"],
                              rest_fault_phase="after")
    proc = chaos.start("5")
    chaos.wait(lambda: proc.poll() is not None or chaos.mx.admin.faults()["rest_error_next"] == 0, timeout=90)
    chaos.wait(lambda: proc.poll() is not None or any(e["event"] == "ExecutionFill" for e in chaos.la_env.events()),
               timeout=20)
    proc.terminate()
    chaos.finish(proc, "session whose entry and lookups failed")
    result = chaos.assert_invariants(allowed_codes=(0, 8, 12))
    entries = [r for r in chaos.mx.admin.events("order_request", account=KEY)
               if r["accepted"] and not (r["request"] or {}).get("reduceOnly")]
    assert len({r["clientId"] for r in entries}) == len(entries) and result.orders_accepted <= 2




def test_sigterm_while_an_exchange_side_exit_is_being_booked(chaos: Chaos) -> None:
    """The exchange's stop closes the position; la books the exit and re-reads the wallet, and SIGTERM lands
    while that read is in flight: the exit must still reach events.jsonl (and trades.csv) exactly once."""
    chaos.setup()
    proc = chaos.start("5")
    fill = chaos.la_env.wait_for_event("ExecutionFill", timeout=90)
    chaos.mx.admin.set_faults(rest_hold_next=1, rest_hold_paths=["/account"], rest_hold_phase="before")
    stop = Decimal(str(fill["stop_loss"]))
    chaos.mx.admin.set_price(str(stop - 50 if str(fill["position_side"]).lower() == "long" else stop + 50))
    chaos.mx.admin.wait_hold(30)
    proc.terminate()
    chaos.wait(lambda: proc.poll() is not None, timeout=1)  # let the stop request reach the session first
    chaos.mx.admin.release_holds("proceed")
    chaos.finish(proc, "SIGTERM while the exit's wallet read was held")
    chaos.assert_invariants()
