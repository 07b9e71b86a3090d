"""One candle through the whole trading pipeline; shared by live sessions and replays.

MarketData → CandleProcessed → broker exits (TP/SL) → Supervisor decision
(signal, risk gate, intent) → broker execution → events on the bus. The clock
is injected: wall clock in a live session, simulated in a replay. That is the
only difference between the two.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import datetime

from laptop_agents.agents.supervisor import EntryWindow, Supervisor
from laptop_agents.core.clock import Clock
from laptop_agents.core.events import Event, EventBus, EventName, new_event
from laptop_agents.core.models import Candle, Trade
from laptop_agents.execution.broker import Broker


class TradingPipeline:
    def __init__(self, supervisor: Supervisor, broker: Broker, bus: EventBus, clock: Clock) -> None:
        self.supervisor = supervisor
        self.broker = broker
        self.bus = bus
        self.clock = clock
        self.kill_switch_active = False
        # a session with a deadline sets this (the shell measures time left and candle cadence); None: no deadline
        self.entry_window: Callable[[], EntryWindow | None] | None = None
        # service mode: set while the session is halted in place (session/stay_up.py); no new entries then
        self.halted_reason: str | None = None
        self.candles_processed = 0
        self.last_candle: Candle | None = None
        # held while the broker is being changed, so the watchdog thread never flattens mid-update
        self.mutation_lock = threading.Lock()
        # one coroutine at a time in process()/flatten(): both await the broker while holding mutation_lock,
        # and a second coroutine blocking on that threading lock would freeze the loop that must release it
        # (a halted service flattens while candles keep arriving: session/stay_up.py)
        self._turn: asyncio.Lock | None = None

    def _coroutine_turn(self) -> asyncio.Lock:
        if self._turn is None:
            self._turn = asyncio.Lock()
        return self._turn

    async def process(self, candle: Candle) -> str | None:
        """Run one closed candle; return a stop reason if the session must end."""
        async with self._coroutine_turn():
            return await self._process(candle)

    async def _process(self, candle: Candle) -> str | None:
        now = self.clock.now()
        bus = self.bus
        broker = self.broker
        with self.mutation_lock:
            self.candles_processed += 1
            self.last_candle = candle
            bus.publish(new_event(EventName.CANDLE_PROCESSED, now, {
                "symbol": candle.symbol, "candle_ts": candle.ts, "open": candle.open, "high": candle.high,
                "low": candle.low, "close": candle.close, "volume": candle.volume,
            }))
            stop: str | None = None
            events, trade = await broker.on_candle(candle, now)
            if trade is not None:
                stop = self._after_trade(trade, events, now)
            elif events:
                bus.publish_all(events)
            snapshot = broker.snapshot()  # the breaker's numbers: the supervisor reads its own breaker
            window = None if self.entry_window is None else self.entry_window()
            decision = self.supervisor.on_candle(candle, snapshot, now, kill_switch=self.kill_switch_active,
                                                 window=window)
            if decision.events:
                bus.publish_all(decision.events)
            if decision.close_reason is not None:
                events, trade = await broker.close_position(decision.close_reason, candle.close, now, now)
                if trade is not None:
                    stop = self._after_trade(trade, events, now) or stop
                else:
                    bus.publish_all(events)
            if decision.intent is not None and stop is None:
                if self.halted_reason is not None:
                    bus.publish(Event(EventName.RISK_REJECTED, now, signal=decision.intent.side.value,
                                      reason=f"service_halted:{self.halted_reason}", code="service_halted"))
                else:
                    bus.publish_all(await broker.submit(decision.intent, candle, now))
            return stop or decision.stop_reason

    def _after_trade(self, trade: Trade, events: list[Event], now: datetime) -> str | None:
        """Account for a closed trade in the breaker *before* publishing the broker's events (the exit), then
        publish both in order: the state store persists broker and breaker on the exit, so both files then
        already include this trade (a crash right after cannot leave the breaker a trade behind)."""
        decision = self.supervisor.on_trade_closed(trade, self.broker.equity, now)
        self.bus.publish_all(events)
        self.bus.publish_all(decision.events)
        return decision.stop_reason

    def warm_up(self, candles: list[Candle]) -> None:
        """Feed history to the strategy's indicators only: no signals, no orders."""
        for candle in candles:
            self.supervisor.strategy.update(candle)
        if candles:
            self.bus.publish(Event(
                EventName.WARMUP_COMPLETED, self.clock.now(), candles=len(candles), first_candle_ts=candles[0].ts,
                last_candle_ts=candles[-1].ts,
            ))

    async def flatten(self, reason: str) -> Trade | None:
        """Close any open position (close_all) and account for it."""
        async with self._coroutine_turn():
            now = self.clock.now()
            with self.mutation_lock:
                events, trade = await self.broker.close_all(reason, now)
                if trade is not None:
                    self._after_trade(trade, events, now)
                else:
                    self.bus.publish_all(events)
                return trade
