"""`la serve --source bitunix` against the mock Bitunix exchange (127.0.0.1): ready, metrics, WS reconnects."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from laptop_agents.mock_exchange.testing import (
    MockExchangeHandle,
    running_mock_exchange,
)
from tests.conftest import LaEnv
from tests.service.conftest import start_serve, wait_until
from tests.service.test_alerts import metric


@pytest.fixture
def fast_exchange() -> Iterator[MockExchangeHandle]:
    with running_mock_exchange(seed=5, time_scale=600, push_interval_ms=50) as mx:
        yield mx


def test_serve_on_bitunix_data_counts_ws_reconnects(la_env: LaEnv, fast_exchange: MockExchangeHandle) -> None:
    served = start_serve(la_env, "--source", "bitunix", "--rest-url", fast_exchange.rest_url,
                         "--ws-url", fast_exchange.public_ws_url, source="bitunix")
    wait_until(lambda: served.get("/readyz")[0] == 200, 30, "ready on Bitunix data")
    assert served.status()["source"] == "bitunix"
    assert metric(served, "laptop_agents_ws_reconnects_total") == 0
    fast_exchange.admin.set_faults(ws_drop_every_s=1)
    wait_until(lambda: metric(served, "laptop_agents_ws_reconnects_total") >= 2, 30, "reconnects counted")
    assert metric(served, "laptop_agents_candles_processed_total") > 0
    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(timeout=30) == 0


def test_serve_counts_market_data_api_errors(la_env: LaEnv, fast_exchange: MockExchangeHandle) -> None:
    """REST failures during backfill (the market-data REST client) show up as api_errors_total by kind."""
    served = start_serve(la_env, "--source", "bitunix", "--rest-url", fast_exchange.rest_url,
                         "--ws-url", fast_exchange.public_ws_url, source="bitunix")
    wait_until(lambda: served.get("/readyz")[0] == 200, 30, "ready on Bitunix data")
    # every reconnect backfills over REST and meets a 503 until the faults are lifted
    fast_exchange.admin.set_faults(rest_error_share=1.0, rest_error_status=503, ws_drop_every_s=1,
                                   rest_fault_paths=["/api/v1/futures/market/kline"])
    wait_until(lambda: metric(served, "laptop_agents_api_errors_total", code="network") >= 1, 60, "api errors counted")
    fast_exchange.admin.reset(accounts=False, ledger=False)
    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(timeout=30) == 0
