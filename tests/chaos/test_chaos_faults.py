"""Live sessions under exchange faults: 5xx and 429 bursts, a hung answer, clock skew and clock steps.

Every case ends with the shared ledger verdict (tests/chaos/harness.py): no clientId used twice, every fill
booked in trades.csv and events.jsonl, the account flat, the wallet explained by the booked trades, no exit 1
and no traceback. A burst of a few seconds is weather, not a reason to leave a position open.
"""

from __future__ import annotations

from collections import Counter

import pytest

from tests.chaos.harness import ENTRY, Chaos
from tests.live.conftest import KEY

pytestmark = pytest.mark.slow

EXCHANGE_UNAVAILABLE = 12
"""The documented exit for an exchange that kept failing past every retry (README exit codes)."""


def _open_position_then(chaos: Chaos, **faults: object) -> None:
    """A session holding a position; the faults start with the SIGTERM that must flatten it."""
    chaos.setup()
    proc = chaos.start("5")
    chaos.la_env.wait_for_event("ExecutionFill", timeout=90)
    assert chaos.mx.admin.account(KEY)["positions"], "a position is open on the exchange"
    chaos.mx.admin.set_faults(**faults)
    proc.terminate()
    chaos.finish(proc, "SIGTERM under " + ", ".join(f"{k}={v}" for k, v in faults.items()))


@pytest.mark.parametrize("faults", [
    {"rest_error_next": 12, "rest_error_status": 503},
    {"rate_limit_next": 12},
], ids=["12x503", "12x429"])
def test_burst_during_shutdown_still_ends_flat(chaos: Chaos, faults: dict) -> None:
    """A burst that outlasts the per-call retries (4 attempts) but not the shutdown grace: flat, exit 0."""
    _open_position_then(chaos, **faults)
    chaos.assert_invariants()
    ends = [e for e in chaos.la_env.events() if e["event"] == "SessionEnd"]
    assert ends and ends[-1]["open_position"] is False and ends[-1]["stopped_reason"] == "sigterm"


def test_a_stretch_where_half_the_calls_fail_mid_session(chaos: Chaos) -> None:
    """Trading through a stretch where 50% of calls answer 503: entries may be skipped, nothing may be lost,
    and a call whose retries run out is a documented stop (never exit 1), then flat."""
    chaos.setup("trade")
    proc = chaos.start("5")
    chaos.la_env.wait_for_event("ExecutionFill", timeout=90)
    chaos.mx.admin.set_faults(rest_error_share=0.5)
    # the stretch lasts until the exchange has failed 25 of the session's calls (or the session stopped)
    chaos.la_env.wait_for(lambda: proc.poll() is not None or len(chaos.mx.admin.events("fault")) >= 25,
                          timeout=60, what="25 injected 5xx answers")
    chaos.mx.admin.set_faults(rest_error_share=0.0)
    proc.terminate()
    chaos.finish(proc, "session with a 50% 5xx stretch")
    chaos.assert_invariants(allowed_codes=(0, EXCHANGE_UNAVAILABLE))


def test_hung_entry_answer_beyond_the_client_timeout_is_not_doubled(chaos: Chaos) -> None:
    """The exchange fills the entry but its answer hangs past the REST timeout: lookup, never a second order.

    Not "exactly two orders": the hang lasts 10+ s, 100+ market minutes at 600x, so the exchange's stop may close
    the position meanwhile and the strategy enter again (a new order, under a new clientId). What must hold is
    that no order was ever sent twice (each clientId once on the ledger, 30042 answers included) besides the
    shared ledger verdict (this was the "3 orders instead of 2" flake under load: a legitimate second trade)."""
    chaos.setup()
    chaos.mx.admin.set_faults(rest_hang_next=1, rest_hang_s=12, rest_fault_paths=ENTRY, rest_fault_phase="after")
    proc = chaos.start("5")
    chaos.la_env.wait_for_event("ExecutionFill", timeout=90)
    proc.terminate()
    chaos.finish(proc, "session whose entry answer hung")
    chaos.assert_invariants()
    requests = chaos.mx.admin.events("order_request", account=KEY)
    sent = Counter(r["clientId"] for r in requests)
    hung = requests[0]["clientId"]
    assert sent[hung] == 1 and requests[0]["accepted"], f"the hung entry was sent once and placed: {requests}"
    assert all(n == 1 for n in sent.values()), f"an order was sent twice: {sent}\n{chaos.describe()}"


def test_exchange_clock_steps_mid_session(chaos: Chaos) -> None:
    """The exchange's clock jumps 8 s (beyond its 5 s receive window) with a position open: absorbed, flat."""
    _open_position_then(chaos, clock_skew_ms=8000)
    chaos.assert_invariants()


def test_exchange_clock_skewed_at_start(chaos: Chaos) -> None:
    """8 s of skew from the first request: trade on the exchange's time, or refuse with one line (no order)."""
    chaos.setup()
    chaos.mx.admin.set_faults(clock_skew_ms=-8000)
    proc = chaos.start("5")
    chaos.la_env.wait_for(lambda: proc.poll() is not None or bool(chaos.mx.admin.events("fill", account=KEY)),
                          timeout=90, what="a refusal or a fill")
    proc.terminate()
    outcome = chaos.finish(proc, "session started under 8 s skew")
    if chaos.audit().fills:
        chaos.assert_invariants()
    else:
        assert outcome.returncode not in (0, 1), outcome.stderr[-3000:]
        assert "Traceback" not in outcome.stderr
        assert not chaos.mx.admin.events("order_request", account=KEY), "refused before any order"


@pytest.mark.parametrize("path", ["position/get_pending_positions", "trade/get_order_detail"])
def test_fill_is_booked_when_its_follow_up_queries_fail(chaos: Chaos, path: str) -> None:
    """The entry fills; the query that would book it fails past one call's retries (4 attempts), then the
    exchange recovers: the fill must reach the journal and trades.csv all the same."""
    chaos.setup()
    proc = chaos.start("5")
    chaos.fault_after_entry_fills(rest_error_next=8, rest_fault_paths=[path])

    def failed() -> int:
        return sum(1 for e in chaos.mx.admin.events("fault", account=KEY) if e["path"].endswith(path))

    chaos.la_env.wait_for(lambda: proc.poll() is not None or failed() >= 4, timeout=90,
                          what=f"4 failed {path} calls")
    assert failed() >= 4, "the fault never hit the query after the fill"
    chaos.mx.admin.set_faults(rest_error_next=0)
    chaos.wait(lambda: proc.poll() is not None or any(e["event"] == "ExecutionFill" for e in chaos.la_env.events()),
               timeout=30)
    proc.terminate()
    chaos.finish(proc, f"session whose {path} failed after the fill")
    chaos.assert_invariants()
