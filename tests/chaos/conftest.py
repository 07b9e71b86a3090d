"""One mock exchange per chaos module (reset before each case): ten 1-minute bars per real second.

Its own rate limits are off: at 600x a session polls ten candles' worth of queries per real second, a load no
real session makes; 429s come only from the injected faults (``rate_limit_next``), where a case asks for them.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from laptop_agents.mock_exchange.testing import MockExchangeHandle, running_mock_exchange
from tests.chaos.harness import Chaos
from tests.conftest import LaEnv


@pytest.fixture(scope="module")
def shared_mx() -> Iterator[MockExchangeHandle]:
    with running_mock_exchange(seed=12, time_scale=600, push_interval_ms=50,
                               rate_limits_enabled=False) as handle:
        yield handle


@pytest.fixture
def mx(shared_mx: MockExchangeHandle) -> Iterator[MockExchangeHandle]:
    """The module's exchange with fresh accounts, ledger, faults and rate limits (the price path runs on)."""
    shared_mx.admin.reset()
    yield shared_mx
    shared_mx.admin.release_holds("drop")


@pytest.fixture
def chaos(la_env: LaEnv, mx: MockExchangeHandle) -> Iterator[Chaos]:
    """The case; its host-wide lock directory is private to it (shared by every workspace of the case)."""
    la_env.env["LA_LOCK_DIR"] = str(la_env.root / "host-locks")
    case = Chaos(la_env, mx)
    yield case
    for env in case.extra_envs:
        for proc in env.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=10)
