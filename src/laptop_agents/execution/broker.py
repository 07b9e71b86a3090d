"""The broker interface the session loop trades through, and PaperBroker's port to it.

Async because a live exchange is I/O. PaperBroker itself stays pure and
synchronous (fast replays, easy tests); `PaperBrokerPort` adapts it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from laptop_agents.core.events import Event
from laptop_agents.core.models import AccountSnapshot, Candle, OrderIntent, Position, Trade
from laptop_agents.paper.broker import PaperBroker

Closed = tuple[list[Event], Trade | None]


class Broker(Protocol):
    name: str

    @property
    def equity(self) -> Decimal: ...
    @property
    def starting_equity(self) -> Decimal: ...
    @property
    def position(self) -> Position | None: ...
    @property
    def trades(self) -> list[Trade]: ...

    def snapshot(self) -> AccountSnapshot: ...
    async def on_candle(self, candle: Candle, now: datetime) -> Closed: ...
    async def submit(self, intent: OrderIntent, candle: Candle, now: datetime) -> list[Event]: ...
    async def close_position(self, reason: str, price: Decimal, exit_ts: datetime, now: datetime) -> Closed: ...
    async def close_all(self, reason: str, now: datetime) -> Closed: ...
    def to_state(self) -> dict[str, Any]: ...


@runtime_checkable
class WritesAhead(Protocol):
    """A broker that asks the session to save its state before it sends an order (the live broker's write-ahead
    of an entry on its way in). A protocol, not an ``isinstance`` on the live broker's class, so a paper session
    never imports the venue package (aiohttp and the Bitunix schemas: ~150 modules, ~0.4 s and ~13 MB at start)."""

    persist: Callable[[], bool | None] | None


class PaperBrokerPort:
    """Async face of PaperBroker (no I/O happens; the awaits return at once)."""

    name = "paper"

    def __init__(self, paper: PaperBroker) -> None:
        self.paper = paper

    @property
    def equity(self) -> Decimal:
        return self.paper.equity

    @property
    def starting_equity(self) -> Decimal:
        return self.paper.starting_equity

    @property
    def position(self) -> Position | None:
        return self.paper.position

    @property
    def trades(self) -> list[Trade]:
        return self.paper.trades

    def snapshot(self) -> AccountSnapshot:
        return self.paper.snapshot()

    async def on_candle(self, candle: Candle, now: datetime) -> Closed:
        return self.paper.on_candle(candle, now)

    async def submit(self, intent: OrderIntent, candle: Candle, now: datetime) -> list[Event]:
        return self.paper.submit(intent, candle, now)

    async def close_position(self, reason: str, price: Decimal, exit_ts: datetime, now: datetime) -> Closed:
        return self.paper.close_position(reason, price, exit_ts, now)

    async def close_all(self, reason: str, now: datetime) -> Closed:
        return self.paper.close_all(reason, now)

    def close_all_blocking(self, reason: str, now: datetime) -> Closed:
        """For the watchdog thread when the event loop is frozen."""
        return self.paper.close_all(reason, now)

    def to_state(self) -> dict[str, Any]:
        return self.paper.to_state()
