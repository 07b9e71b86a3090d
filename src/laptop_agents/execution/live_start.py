"""Opening the live broker once the live gate has granted the start: venue (client, stream), then broker.

Nothing here decides *whether* live trading may start: the signed opt-in, the preflight record, the
credentials and the account lock are checked by the session (session/live_gate.py, wired by
session/compose.py) before :func:`open_live_broker` is called, so a refused start never reaches this module
and cannot have sent a single request. This module only turns granted credentials and settings into a
started :class:`BitunixBroker` (and closes what it opened if start-up fails).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from laptop_agents.bitunix import Credentials, LastPrice, RestConfig, open_live_venue
from laptop_agents.core.config_models import AppConfig
from laptop_agents.core.events import Event
from laptop_agents.execution.bitunix_broker import BitunixBroker, LiveBrokerSettings


def broker_settings_for(config: AppConfig, leverage: int | None = None, **overrides: Any) -> LiveBrokerSettings:
    """Broker settings bound to the config: symbol from the strategy, leverage capped by the risk limits."""
    cap = int(config.risk.hard_limits().max_leverage)
    chosen = min(leverage or cap, cap)
    return LiveBrokerSettings(symbol=config.strategy.symbol, leverage=max(1, chosen), **overrides)


async def open_live_broker(
    credentials: Credentials,
    settings: LiveBrokerSettings,
    rest: RestConfig,
    now: datetime,
    *,
    state: dict[str, Any] | None = None,
    private_ws_url: str | None = None,
    last_price: LastPrice | None = None,
) -> tuple[BitunixBroker, list[Event]]:
    """Venue (client, client factory, private stream) → broker (restored from ``state``) → ``broker.start(now)``
    → stream start; the start-up events.

    ``credentials`` are the granted exchange credentials (the gate's ``LiveGrant.credentials``). On any start-up
    failure the stream and the client are closed before the error propagates.
    """
    venue = open_live_venue(rest, credentials, private_ws_url)
    broker = BitunixBroker(venue.client, settings, client_factory=venue.client_factory, stream=venue.stream,
                           last_price=last_price)
    try:
        if state is not None:
            broker.restore(state)
        events = await broker.start(now)
        await venue.start_stream()
    except BaseException:
        await venue.close()
        raise
    return broker, events
