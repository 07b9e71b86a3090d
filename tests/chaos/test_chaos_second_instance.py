"""A second `la run --live` on the same account while the first holds a position.

Same host (the host-wide lock directory is shared): the second is refused by the account-keyed lock.
Another host (its own lock directory, the exchange reached as ``localhost``, so no lock of this machine can
see the first): the exchange-side check must refuse it (the position and its orders were placed under the
first instance's clientId tag); it must never adopt or flatten the first one's position. Either way
the first session keeps its position until its own shutdown, which ends flat.
"""

from __future__ import annotations

import pytest

from tests.chaos.harness import Chaos
from tests.live.conftest import KEY

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("same_host", [True, False], ids=["same_host_lock", "other_host_exchange_check"])
def test_second_instance_on_the_same_account_is_refused(chaos: Chaos, same_host: bool) -> None:
    chaos.setup()
    first = chaos.start("5")
    fill = chaos.la_env.wait_for_event("ExecutionFill", timeout=90)
    orders_before = len(chaos.mx.admin.events("order_request", account=KEY))
    other = chaos.other_workspace("second", same_host=same_host)
    second = chaos.run("0.1", "second instance", env=other)
    assert second.returncode not in (0, 1), f"the second session ran (exit {second.returncode}):\n{second.stderr[-3000:]}"
    assert "Traceback" not in second.stderr
    assert len(chaos.mx.admin.events("order_request", account=KEY)) == orders_before, "the second one sent orders"
    positions = chaos.mx.admin.account(KEY)["positions"]
    assert [p["positionId"] for p in positions] == [fill["position_id"]], "the first one's position is untouched"
    assert first.poll() is None, "the first session still runs"
    first.terminate()
    chaos.finish(first, "first session")
    chaos.assert_invariants(allowed_codes=(0, second.returncode))
