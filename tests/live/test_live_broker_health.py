"""The live broker's health (what /readyz, /status and STATUS= report as broker_healthy) follows the exchange.

Against the mock exchange over loopback: healthy after start, unhealthy while its position checks fail (last
answer failed, API circuit open), healthy again once the exchange answers; never a constant.
"""

from __future__ import annotations

import asyncio

from laptop_agents.core.models import Side
from laptop_agents.mock_exchange.testing import running_mock_exchange
from tests.live.conftest import T0, candle, intent, make_broker, price_of, run


def test_broker_health_follows_the_exchange() -> None:
    with running_mock_exchange(seed=11, time_scale=0) as mx:
        async def scenario() -> None:
            broker = make_broker(mx, circuit_failure_threshold=3, circuit_reset_timeout_sec=0.3)
            try:
                assert broker.health().problems == ("not started: the account is not reconciled with the exchange",)
                await broker.start(T0)
                assert broker.health().healthy, broker.health()
                p = price_of(mx)
                await broker.submit(intent(Side.LONG, p), candle(p), T0)
                assert broker.position is not None, "a position the candle checks ask the exchange about"
                mx.admin.set_faults(rest_error_share=1.0, rest_fault_paths=["position/get_pending_positions"])
                await broker.on_candle(candle(p, 1), T0)  # the check fails past its retries (absorbed: a blip)
                sick = broker.health()
                assert not sick.healthy
                assert sick.problems == ("exchange API circuit breaker is open",
                                         "position check failing (1 candle(s) in a row)"), sick
                assert dict(sick.detail)["api_circuit"] == "open"
                mx.admin.set_faults(rest_error_share=0.0)
                await asyncio.sleep(0.35)  # the circuit's cool-down: half-open, the next check is its probe
                await broker.on_candle(candle(p, 2), T0)
                assert broker.health().healthy, broker.health()
            finally:
                await broker.shutdown("test", T0)

        run(scenario)
