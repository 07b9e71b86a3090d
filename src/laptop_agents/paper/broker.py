"""PaperBroker: a simulated exchange account with a realistic fill model.

- Market entries fill at the deciding candle's close, moved against us by
  `slippage_bps` and rounded to the tick adversely; taker fee.
- Stop-loss and take-profit are evaluated on each later candle's high/low. When
  one candle touches both, the stop is assumed (the worse outcome). A candle
  that opens beyond the stop fills at the open (gap), with slippage.
- Take-profit is a resting limit order: fills at its price, maker fee.
- Trade times are the session clock's `now` (the moment the fill is decided), never
  the candle's own time: a mock or replayed candle carries simulated times while
  forced exits (session end, kill switch, shutdown) happen on the session clock,
  and one trade must never mix the two (see core/clock.py).
- Money is Decimal and the books are the shared :class:`~laptop_agents.core.ledger.Ledger`
  (the live broker keeps the same): cash moves by exactly -entry_fee at entry and
  gross_pnl - exit_fee at exit, so ending equity == starting equity + sum(trade pnl).

Pure and synchronous: no clock, no files. `to_state()`/`from_state()` give the
shell a plain dict to persist atomically after every change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from laptop_agents.core.account import CashAccountView
from laptop_agents.core.config_models import PaperSettings
from laptop_agents.core.events import Event, EventName
from laptop_agents.core.ledger import (
    EXIT_STOP_LOSS,
    EXIT_TAKE_PROFIT,
    Ledger,
    execution_exit,
    money,
    position_opened,
)
from laptop_agents.core.models import Candle, OrderIntent, Position, Side, Trade
from laptop_agents.core.state_schema import PAPER_BROKER_KIND, check_paper_state

BPS = Decimal(10000)
STATE_KIND = PAPER_BROKER_KIND


@dataclass(frozen=True, slots=True)
class _Exit:
    price: Decimal
    reason: str
    fee_bps: Decimal


class PaperBroker(CashAccountView):
    """One symbol, one-way mode, at most one open position."""

    def __init__(self, settings: PaperSettings, symbol: str = "BTCUSDT") -> None:
        self.settings = settings
        self.symbol = symbol
        self.ledger = Ledger(money(settings.starting_equity))
        self.last_price: Decimal | None = None
        self._seq = 0

    # ------------------------------------------------------------------ fills
    def _next_id(self, prefix: str) -> str:
        self._seq += 1
        return f"{prefix}{self._seq:07d}"

    def _fee(self, qty: Decimal, price: Decimal, bps: Decimal) -> Decimal:
        return money(qty * price * bps / BPS)

    def _slipped(self, price: Decimal, order_side: str) -> Decimal:
        """Move a market fill against us and round to the tick adversely."""
        slip = price * self.settings.slippage_bps / BPS
        tick = self.settings.tick_size
        if order_side == "BUY":
            return ((price + slip) / tick).to_integral_value(rounding=ROUND_CEILING) * tick
        return ((price - slip) / tick).to_integral_value(rounding=ROUND_FLOOR) * tick

    def submit(self, intent: OrderIntent, candle: Candle, now: datetime) -> list[Event]:
        """Fill a market entry at this candle's close. Refuses if a position is open."""
        if self.position is not None:
            raise RuntimeError("PaperBroker.submit called with a position already open")
        order_side = intent.side.entry_order_side
        order_id = self._next_id("O")
        client_id = f"la-paper-{order_id}"
        events = [
            Event(
                EventName.ORDER_SUBMITTED, now, order_id=order_id, client_id=client_id, symbol=self.symbol,
                side=order_side, position_side=intent.side, order_type="MARKET", qty=intent.qty,
                reference_price=intent.reference_price, stop_loss=intent.stop_loss, take_profit=intent.take_profit,
            )
        ]
        price = self._slipped(candle.close, order_side)
        fee = self._fee(intent.qty, price, self.settings.taker_fee_bps)
        position = Position(
            position_id=self._next_id("P"), side=intent.side, qty=intent.qty, entry_price=price,
            entry_ts=now, entry_fee=fee, stop_loss=intent.stop_loss, take_profit=intent.take_profit,
        )
        self.ledger.open(position)
        self.last_price = candle.close
        events.append(position_opened(now, position, order_id=order_id, client_id=client_id, symbol=self.symbol,
                                      equity=self.ledger.cash))
        return events

    def on_candle(self, candle: Candle, now: datetime) -> tuple[list[Event], Trade | None]:
        """Age the open position by one bar and fill its stop or target if touched."""
        self.last_price = candle.close
        pos = self.ledger.position
        if pos is None:
            return [], None
        pos.bars_held += 1
        hit = self._exit_on(pos, candle)
        if hit is None:
            return [], None
        return self._close(hit.price, hit.reason, hit.fee_bps, now, now)

    def _exit_on(self, pos: Position, c: Candle) -> _Exit | None:
        taker, maker = self.settings.taker_fee_bps, self.settings.maker_fee_bps
        exit_side = pos.side.exit_order_side
        if pos.side is Side.LONG:
            if c.open <= pos.stop_loss:
                return _Exit(self._slipped(c.open, exit_side), EXIT_STOP_LOSS, taker)
            if c.low <= pos.stop_loss:  # includes the both-touched case: assume the worse
                return _Exit(self._slipped(pos.stop_loss, exit_side), EXIT_STOP_LOSS, taker)
            if c.high >= pos.take_profit:
                return _Exit(pos.take_profit, EXIT_TAKE_PROFIT, maker)
        else:
            if c.open >= pos.stop_loss:
                return _Exit(self._slipped(c.open, exit_side), EXIT_STOP_LOSS, taker)
            if c.high >= pos.stop_loss:
                return _Exit(self._slipped(pos.stop_loss, exit_side), EXIT_STOP_LOSS, taker)
            if c.low <= pos.take_profit:
                return _Exit(pos.take_profit, EXIT_TAKE_PROFIT, maker)
        return None

    def close_position(self, reason: str, price: Decimal, exit_ts: datetime, now: datetime) -> tuple[list[Event], Trade | None]:
        """Close the open position with a market order at `price` (slipped, taker)."""
        pos = self.position
        if pos is None:
            return [], None
        fill = self._slipped(price, pos.side.exit_order_side)
        return self._close(fill, reason, self.settings.taker_fee_bps, exit_ts, now)

    def close_all(self, reason: str, now: datetime, exit_ts: datetime | None = None) -> tuple[list[Event], Trade | None]:
        """Flatten at the last known price. With no price ever seen, the entry price is used."""
        pos = self.position
        if pos is None:
            return [], None
        price = self.last_price if self.last_price is not None else pos.entry_price
        return self.close_position(reason, price, exit_ts or now, now)

    def _close(self, price: Decimal, reason: str, fee_bps: Decimal, exit_ts: datetime, now: datetime) -> tuple[list[Event], Trade]:
        pos = self.position
        assert pos is not None
        gross = money((price - pos.entry_price) * pos.qty * pos.side.sign)
        exit_fee = self._fee(pos.qty, price, fee_bps)
        trade = self.ledger.close(pos, trade_id=self._next_id("T"), exit_ts=exit_ts, exit_price=price,
                                  gross_pnl=gross, exit_fee=exit_fee, reason=reason)
        event = execution_exit(now, trade, position_id=pos.position_id, symbol=self.symbol, bars_held=pos.bars_held,
                               equity=self.ledger.cash)
        return [event], trade

    # ------------------------------------------------------------------ persistence
    def to_state(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            **self.ledger.to_state(),
            "last_price": None if self.last_price is None else str(self.last_price),
            "seq": self._seq,
        }

    @classmethod
    def from_state(cls, settings: PaperSettings, data: dict[str, Any]) -> PaperBroker:
        """Rebuild from `to_state()` output; raises StateInvalid (a ValueError naming the field) on an impossible
        value (core/state_schema.py), KeyError/ValueError on anything else malformed."""
        check_paper_state(data)
        broker = cls(settings, symbol=data["symbol"])
        broker.ledger = Ledger.from_state(data)
        broker.last_price = None if data.get("last_price") is None else Decimal(data["last_price"])
        broker._seq = int(data["seq"])
        broker.verify_accounting()
        return broker

    def verify_accounting(self) -> None:
        """equity == starting equity + sum(closed trade pnl) - entry fee of the open position (LedgerError, a
        ValueError, if not)."""
        self.ledger.verify()
