"""Two la sessions on one exchange account (e.g. on two hosts, where no local lock can see the other): the
exchange-side check refuses the second at start, or pauses its entries mid-session. From the mock's ledger."""

from __future__ import annotations

from typing import Any

import pytest

from laptop_agents.core.models import Side
from laptop_agents.execution.bitunix_broker import ORDER_REJECTED, BitunixBroker, OtherInstanceError
from laptop_agents.mock_exchange.testing import running_mock_exchange
from tests.live.conftest import T0, accepted_orders, candle, intent, make_broker, price_of, run

MX = {"seed": 11, "time_scale": 0}


async def _instance(mx: Any) -> tuple[BitunixBroker, dict[str, Any]]:
    """A session that has run before on this account: it has its own saved state (its own tag)."""
    broker = make_broker(mx)
    await broker.start(T0)
    state = broker.to_state()
    await broker.client.close()
    again = make_broker(mx)
    again.restore(state)
    return again, state


def test_a_second_instance_refuses_to_start_beside_a_position_of_the_first() -> None:
    with running_mock_exchange(**MX) as mx:
        async def scenario() -> str:
            service, _ = await _instance(mx)
            other, _ = await _instance(mx)
            await service.start(T0)
            p = price_of(mx)
            await service.submit(intent(Side.LONG, p), candle(p), T0)
            try:
                with pytest.raises(OtherInstanceError) as info:
                    await other.start(T0)
            finally:
                await other.client.close()
            await service.shutdown("shutdown", T0)
            return str(info.value)

        message = run(scenario)
        assert "another la instance" in message and "stop it first" in message
        assert len(accepted_orders(mx)) == 2  # the service's entry and close; nothing from the second
        assert mx.admin.account()["positions"] == []


def test_a_second_instance_already_running_pauses_its_entries_when_the_first_opens() -> None:
    with running_mock_exchange(**MX) as mx:
        async def scenario() -> list[Any]:
            service, _ = await _instance(mx)
            other, _ = await _instance(mx)
            await service.start(T0)
            await other.start(T0)
            p = price_of(mx)
            await service.submit(intent(Side.LONG, p), candle(p), T0)
            refused = await other.submit(intent(Side.LONG, p), candle(p, 1), T0)
            assert other.paused and other.position is None
            await service.shutdown("shutdown", T0)
            await other.client.close()
            return refused

        refused = run(scenario)
        assert [(e.name, e.data["reason"], e.data["sent"]) for e in refused] == [
            (ORDER_REJECTED, "foreign_position", False)]
        assert len(accepted_orders(mx)) == 2  # one entry and one close, both the service's
        assert mx.admin.account()["positions"] == []
