"""One mock exchange per chaos module and dialect preset (reset before each case): ten 1-minute bars per real second.

Its own rate limits are off: at 600x a session polls ten candles' worth of queries per real second, a load no
real session makes; 429s come only from the injected faults (``rate_limit_next``), where a case asks for them.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from laptop_agents.mock_exchange.testing import MockExchangeHandle
from tests.chaos.harness import Chaos
from tests.conftest import LaEnv


class _MockPerPreset:
    """The module's exchange for the current dialect preset: tests are grouped by preset (tests/conftest.py), so
    one exchange runs at a time and a module starts one per preset, not one per case."""

    def __init__(self) -> None:
        self.preset: str | None = None
        self.handle: MockExchangeHandle | None = None

    def get(self, preset: str | None) -> MockExchangeHandle:
        if self.handle is not None and self.preset != preset:
            self.stop()
        if self.handle is None:
            dialect = {} if preset is None else {"dialect": preset}  # None: the default (or LA_MOCK_DIALECT)
            self.handle = MockExchangeHandle(seed=12, time_scale=600, push_interval_ms=50, rate_limits_enabled=False,
                                             **dialect).start()
            self.preset = preset
        return self.handle

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.stop()
        self.handle = self.preset = None


@pytest.fixture(scope="module")
def exchanges() -> Iterator[_MockPerPreset]:
    pool = _MockPerPreset()
    yield pool
    pool.stop()


@pytest.fixture
def mx(exchanges: _MockPerPreset, mock_dialect: str | None) -> Iterator[MockExchangeHandle]:
    """The module's exchange (this case's preset) with fresh accounts, ledger, faults and rate limits (the price
    path runs on)."""
    handle = exchanges.get(mock_dialect)
    handle.admin.reset()
    yield handle
    handle.admin.release_holds("drop")


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
