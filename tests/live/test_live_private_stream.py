"""Fills noticed through the private WebSocket, with REST polling as the fallback when it is silent or down."""

from __future__ import annotations

import asyncio

import pytest

from laptop_agents.bitunix import Credentials
from laptop_agents.bitunix.private_stream import PrivateStream
from laptop_agents.core.events import EventName
from laptop_agents.core.models import Side
from laptop_agents.mock_exchange.testing import running_mock_exchange
from tests.live.conftest import (
    KEY,
    SECRET,
    T0,
    accepted_orders,
    candle,
    intent,
    make_broker,
    price_of,
    run,
)

pytestmark = pytest.mark.dialects  # runs once per mock dialect preset (docs/bitunix-dialects.md)

def test_fills_arrive_by_push_and_fall_back_to_polling_when_the_stream_stalls() -> None:
    with running_mock_exchange(seed=4, time_scale=0) as mx:
        async def scenario() -> None:
            broker = make_broker(mx)
            broker.stream = PrivateStream(mx.private_ws_url, Credentials(KEY, SECRET), reconnect_delay_sec=0.05)
            await broker.start(T0)
            assert await broker.stream.start(wait_sec=5)
            p = price_of(mx)
            events = await broker.submit(intent(Side.LONG, p), candle(p), T0)
            assert EventName.EXECUTION_FILL in [e.name for e in events]
            assert broker.fill_notices["ws"] == 1
            assert broker.stream.stats.pushes > 0
            mx.admin.set_faults(ws_stall=True)  # connected but silent: the doorbell never rings
            broker.settings = broker.settings.__class__(fill_timeout_sec=0.6, leverage=5)
            _, trade = await broker.close_position("max_hold", p, T0, T0)
            assert trade is not None and broker.fill_notices["poll"] == 1
            mx.admin.set_faults(ws_stall=False)
            mx.admin.drop_ws()  # the stream reconnects and logs in again
            for _ in range(100):
                if broker.stream.stats.connects >= 2 and broker.stream.connected:
                    break
                await asyncio.sleep(0.05)
            assert broker.stream.connected and broker.stream.stats.connects >= 2
            await broker.shutdown("test", T0)
            assert len(accepted_orders(mx)) == 2
            assert mx.admin.account()["positions"] == []

        run(scenario)


def test_wrong_secret_never_logs_in_and_the_broker_still_polls() -> None:
    with running_mock_exchange(seed=4, time_scale=0) as mx:
        async def scenario() -> None:
            stream = PrivateStream(mx.private_ws_url, Credentials(KEY, SECRET + "-wrong"), reconnect_delay_sec=0.05)
            assert not await stream.start(wait_sec=0.5)
            assert stream.stats.login_failures >= 1
            await stream.close()

        run(scenario)
