"""Fixtures for the mock exchange tests: a fresh exchange per test on 127.0.0.1 with a free port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from laptop_agents.mock_exchange.testing import MockExchangeHandle, running_mock_exchange

# 2025-01-06T00:00:00Z, a Monday: pinning the market start makes candle times identical on every run.
START_MS = 1736121600000


@pytest.fixture
def mx() -> Iterator[MockExchangeHandle]:
    """Manual market clock (time_scale=0): prices move only when a test advances the clock or sets a price."""
    with running_mock_exchange(seed=7, time_scale=0, start_time_ms=START_MS) as handle:
        yield handle


@pytest.fixture
def mx_fast() -> Iterator[MockExchangeHandle]:
    """Market clock at 60x real time with 100 ms pushes, for WebSocket flow tests."""
    with running_mock_exchange(seed=7, time_scale=60, start_time_ms=START_MS, push_interval_ms=100) as handle:
        yield handle
