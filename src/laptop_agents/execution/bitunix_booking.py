"""Booking a live Bitunix account's fills into the ledger, each exactly once.

Why its own module: the live broker learns what happened from several places (the entry's order detail, the
position table, the trade history read at start-up, after a TP/SL race, after a flatten), and more than one of
them can see the same round trip. Whatever path sees it, booking goes through :class:`LiveBooks`, which holds
the one registry of fills already booked, so a round trip is never booked twice and never lost. It is pure
(no requests, no clock): the broker and the reconciliation read the exchange and hand the fills over.

Money comes from the exchange's own fills (price, fee, realized PnL), rounded once as it enters the
:class:`~laptop_agents.core.ledger.Ledger`, so ``equity == starting_equity + sum(trade.pnl) + adjustments``; the
exchange's wallet wins any difference, which is logged and booked as an adjustment, never silently absorbed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from laptop_agents.bitunix import AccountInfo, OrderSide, TradeInfo, TradeSide
from laptop_agents.core.events import Event
from laptop_agents.core.ledger import (
    EXIT_STOP_LOSS,
    EXIT_TAKE_PROFIT,
    Ledger,
    execution_exit,
    money,
    position_opened,
)
from laptop_agents.core.models import ZERO, Position, Side, Trade

log = logging.getLogger("laptop_agents.execution.bitunix_broker")

EXIT_WHILE_DOWN = "exchange_while_down"
"""Exit reason of a round trip the exchange opened and closed while la was down (booked at the next start)."""
EXIT_EXCHANGE_CLOSE = "exchange_close"
"""Exit reason when the exchange closed the position for a reason we cannot attribute (liquidation, manual)."""
BOOKED_FILLS_KEPT = 2000
"""How many booked fill/entry ids the state keeps (oldest dropped): far more than a restart's history page."""


class LiveBooks:
    """The live account's books: the shared ledger, plus what makes booking exchange fills idempotent."""

    def __init__(self, symbol: str, ledger: Ledger | None = None) -> None:
        self.symbol = symbol
        self.ledger = ledger if ledger is not None else Ledger(ZERO, wallet_adjustments=True)
        self.booked: dict[str, None] = {}
        """Every exchange fill (tradeId) and entry orderId already in a booked trade, oldest first, persisted.

        The one registry every booking path consults (while-down walk, adoption then close, TP/SL race,
        pending entry, close_all): a round trip whose fills are in it is booked already, never again."""
        self.entry_order_id: str | None = None
        """The orderId that opened the open position (its fills are not closing fills)."""
        self.unreported: list[Trade] = []
        """Round trips booked outside on_candle (TP/SL fired at once, while-down walk): handed to the session's
        risk checks by the next on_candle/close_all."""

    # ------------------------------------------------------------------ registry
    def is_booked(self, fill_or_order_id: str) -> bool:
        return fill_or_order_id in self.booked

    def mark_booked(self, ids: Iterable[str | None]) -> None:
        for i in ids:
            if i:
                self.booked[i] = None
        excess = len(self.booked) - BOOKED_FILLS_KEPT
        if excess > 0:  # oldest first; far older than any history page a restart walks
            for old in list(self.booked)[:excess]:
                del self.booked[old]

    def split_booked(self, fills: list[TradeInfo]) -> tuple[list[TradeInfo], bool]:
        """``fills`` minus those booked already, and whether any of them was booked already."""
        fresh = [t for t in fills if t.trade_id not in self.booked]
        return fresh, len(fresh) < len(fills)

    # ------------------------------------------------------------------ entries
    def book_entry(self, position: Position, *, order_id: str, client_id: str, now: datetime) -> Event:
        """An entry order filled and opened ``position``: its fee leaves equity; the ExecutionFill to publish."""
        self.ledger.open(position)
        self.entry_order_id = order_id
        return position_opened(now, position, order_id=order_id, client_id=client_id, symbol=self.symbol,
                               equity=self.ledger.cash)

    def adopt(self, position: Position, *, charge_fee: bool) -> None:
        """A position found on the exchange that la did not open (or no longer knows): held, not entered.
        Restored books charge its entry fee (already out of the wallet); fresh books start from the wallet."""
        self.ledger.open(position, charge_fee=charge_fee)
        self.entry_order_id = None

    # ------------------------------------------------------------------ exits
    def book_exit(self, pos: Position, closing: list[TradeInfo], *, close_order_id: str | None, reason: str | None,
                  exit_ts: datetime) -> Trade:
        """Close ``pos`` from its closing fills (none booked yet, at least one): VWAP exit price, the exchange's
        fees and realized PnL. ``reason`` is ours when our close order is among the fills; otherwise the
        exchange closed it (TP/SL, liquidation, by hand) and the prices name what fired when they can."""
        qty = sum((t.qty for t in closing), ZERO)
        exit_price = money(sum((t.price * t.qty for t in closing), ZERO) / qty) if qty else ZERO
        exit_fee = money(sum((t.fee or ZERO for t in closing), ZERO))
        gross = money(sum((t.realized_pnl or ZERO for t in closing), ZERO))
        ours = close_order_id is not None and any(t.order_id == close_order_id for t in closing)
        if not ours:
            inferred = infer_exit_reason(pos, exit_price)
            reason = inferred if inferred != EXIT_EXCHANGE_CLOSE or reason is None else reason
        assert reason is not None
        self.mark_booked([*(t.trade_id for t in closing), self.entry_order_id])
        trade = self.ledger.close(pos, trade_id=pos.position_id, exit_ts=exit_ts, exit_price=exit_price,
                                  gross_pnl=gross, exit_fee=exit_fee, reason=reason)
        self.entry_order_id = None
        return trade

    def exit_event(self, trade: Trade, pos: Position, now: datetime) -> Event:
        """The ExecutionExit of ``trade`` (closing ``pos``), with equity as booked now (after any wallet read)."""
        return execution_exit(now, trade, position_id=pos.position_id, symbol=self.symbol, bars_held=pos.bars_held,
                              equity=self.ledger.cash)

    def forget(self, pos: Position) -> None:
        """Drop a position whose round trip another path already booked. Its entry fee was charged when the
        Position was made (fill or adoption) and again by that booking: give the second charge back."""
        log.warning("position %s closed and its round trip is booked already; not booking it again",
                    pos.position_id)
        if self.ledger.position is pos:
            self.entry_order_id = None
        self.ledger.refund_entry_fee(pos)

    def book_round_trip(self, opening: list[TradeInfo], closing: list[TradeInfo], now: datetime) -> Event | None:
        """A round trip the exchange opened and closed while la was down, booked whole (``exchange_while_down``);
        None when any of its fills (or its entry order, or its trade id) is booked already."""
        side = Side.LONG if opening[0].side is OrderSide.BUY else Side.SHORT
        qty = sum((t.qty for t in opening), ZERO)
        entry_fee = money(sum((t.fee or ZERO for t in opening), ZERO))
        exit_fee = money(sum((t.fee or ZERO for t in closing), ZERO))
        gross = money(sum((t.realized_pnl or ZERO for t in closing), ZERO))
        ids = {t.position_id for t in opening + closing if t.position_id}
        trade_id = ids.pop() if len(ids) == 1 else f"order-{opening[0].order_id}"
        fills = [t.trade_id for t in opening + closing]
        if any(f in self.booked for f in fills) or opening[0].order_id in self.booked \
                or any(t.trade_id == trade_id for t in self.ledger.trades):
            log.warning("round trip %s is booked already; not booking it again", trade_id)
            return None
        self.mark_booked([*fills, opening[0].order_id])
        trade = Trade(
            trade_id=trade_id, side=side, qty=qty, entry_ts=opening[0].created or now,
            exit_ts=closing[-1].created or now, entry_price=vwap(opening), exit_price=vwap(closing), gross_pnl=gross,
            fees=entry_fee + exit_fee, pnl=gross - entry_fee - exit_fee, exit_reason=EXIT_WHILE_DOWN,
        )
        self.ledger.book_round_trip(trade)
        self.unreported.append(trade)  # the breaker hears of it like any other trade
        return execution_exit(now, trade, position_id=trade_id, symbol=self.symbol, bars_held=0,
                              equity=self.ledger.cash, entry_order_id=opening[0].order_id,
                              client_id=opening[0].client_id)

    # ------------------------------------------------------------------ wallet
    def adopt_wallet(self, wallet: Decimal, when: str) -> None:
        """The exchange's wallet wins; a difference (funding, manual trades) is logged and kept apart."""
        booked = self.ledger.cash
        diff = self.ledger.adopt_wallet(wallet)
        if diff:
            log.warning("exchange wallet %s differs from booked equity %s by %s (%s); adopting the exchange's",
                        self.ledger.cash, booked, diff, when)

    # ------------------------------------------------------------------ state
    def to_state(self) -> dict[str, Any]:
        """The books' fields of the live state file, in file order (the entry order between position and
        trades, the booked registry written last by the broker)."""
        books = self.ledger.to_state()  # starting_equity, equity, adjustments, positions, trades
        trades = books.pop("trades")
        return {**books, "entry_order_id": self.entry_order_id, "trades": trades,
                "unreported_trades": [t.trade_id for t in self.unreported]}

    @classmethod
    def from_state(cls, symbol: str, data: dict[str, Any]) -> LiveBooks:
        """Rebuild from the live state file; KeyError/TypeError/ValueError/ArithmeticError when malformed."""
        books = cls(symbol, Ledger.from_state(data, wallet_adjustments=True))
        books.entry_order_id = data.get("entry_order_id")
        unreported = set(data.get("unreported_trades") or [])
        books.unreported = [t for t in books.ledger.trades if t.trade_id in unreported]
        booked = data.get("booked_fills") or []  # older state files: none recorded
        if not isinstance(booked, list) or not all(isinstance(b, str) for b in booked):
            raise ValueError("booked_fills must be a list of strings")
        books.booked = dict.fromkeys(booked)
        return books


# ---------------------------------------------------------------------- reading fills
def wallet_balance(account: AccountInfo) -> Decimal:
    """Wallet balance = available + frozen (orders) + margin (positions); unrealized PnL excluded."""
    return account.available + (account.frozen or ZERO) + (account.margin or ZERO)


def fills_covering(fills: Iterable[TradeInfo], qty: Decimal) -> list[TradeInfo]:
    """The leading fills of ``fills`` whose quantities first add up to at least ``qty`` (all of them if short)."""
    taken: list[TradeInfo] = []
    covered = ZERO
    for t in fills:
        if covered >= qty:
            break
        taken.append(t)
        covered += t.qty
    return taken


def is_closing_fill(t: TradeInfo, side: Side, entry_order_id: str | None) -> bool:
    """Did this fill reduce a ``side`` position? Judged by tradeSide and order ids, not by ``side`` alone.

    Sources disagree on the ``side`` a closing fill carries (the position's side with ``tradeSide=CLOSE``,
    as ccxt reads it, or the exit side): an explicit ``tradeSide`` decides; without one, a reduce-only fill
    or an exit-side fill of another order than the entry is a close (one-way mode, one position at a time).
    """
    if entry_order_id is not None and t.order_id == entry_order_id:
        return False
    if t.trade_side is not None:
        return t.trade_side is TradeSide.CLOSE
    return t.reduce_only or t.side is OrderSide(side.exit_order_side)


def trade_key(t: TradeInfo) -> tuple[float, int, str]:
    """Exchange order of fills: time, then the (numeric, increasing) tradeId."""
    ts = t.created.timestamp() if t.created is not None else 0.0
    return ts, int(t.trade_id) if t.trade_id.isdigit() else 0, t.trade_id


def vwap(trades: list[TradeInfo]) -> Decimal:
    qty = sum((t.qty for t in trades), ZERO)
    return money(sum((t.price * t.qty for t in trades), ZERO) / qty) if qty else ZERO


def infer_exit_reason(pos: Position, exit_price: Decimal) -> str:
    """Which exchange-side exit fired, judged from the fill price against the TP/SL we attached."""
    if pos.stop_loss <= 0 or pos.take_profit <= 0:
        return EXIT_EXCHANGE_CLOSE
    if pos.side is Side.LONG:
        if exit_price >= pos.take_profit:
            return EXIT_TAKE_PROFIT
        if exit_price <= pos.stop_loss:
            return EXIT_STOP_LOSS
    else:
        if exit_price <= pos.take_profit:
            return EXIT_TAKE_PROFIT
        if exit_price >= pos.stop_loss:
            return EXIT_STOP_LOSS
    return EXIT_EXCHANGE_CLOSE
