"""LiveBooks (execution/bitunix_booking.py): exchange fills booked exactly once, whichever path sees them.

Pure: fills are built here; the paths that read them from the mock exchange are proven by tests/live and
tests/chaos. These pin the booking rules those paths share.
"""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

from laptop_agents.bitunix import OrderSide, TradeInfo
from laptop_agents.core.models import Position, Side
from laptop_agents.execution.bitunix_booking import BOOKED_FILLS_KEPT, EXIT_WHILE_DOWN, LiveBooks
from tests.unit.helpers import T0

D = Decimal


def fill(trade_id: str, order_id: str, side: OrderSide, qty: str, price: str, fee: str, pnl: str = "0", *,
         minute: int = 0, client_id: str | None = None, reduce_only: bool = False) -> TradeInfo:
    return TradeInfo(trade_id=trade_id, order_id=order_id, symbol="BTCUSDT", side=side, qty=D(qty), price=D(price),
                     fee=D(fee), realized_pnl=D(pnl), role=None, client_id=client_id, reduce_only=reduce_only,
                     order_type=None, created=T0 + timedelta(minutes=minute), position_id="P1")


def fresh_books() -> LiveBooks:
    books = LiveBooks("BTCUSDT")
    books.ledger.start_from_wallet(D("1000"))
    return books


def test_a_round_trip_seen_by_two_paths_is_booked_once_and_the_registry_survives_a_restart() -> None:
    books = fresh_books()
    opening = [fill("11", "E1", OrderSide.BUY, "0.01", "100000", "0.6", minute=1, client_id="laab")]
    closing = [fill("12", "X1", OrderSide.SELL, "0.01", "101000", "0.4", "10", minute=2, reduce_only=True)]
    event = books.book_round_trip(opening, closing, T0)
    assert event is not None and event.data["reason"] == EXIT_WHILE_DOWN and event.data["pnl"] == D("9.0")
    assert books.ledger.cash == D("1009") and [t.trade_id for t in books.unreported] == ["P1"]
    # the exit path reads the same closing fill from history afterwards: nothing new to book
    assert books.split_booked(closing) == ([], True)
    again = LiveBooks.from_state("BTCUSDT", json.loads(json.dumps(books.to_state())))
    assert again.book_round_trip(opening, closing, T0) is None and again.ledger.cash == D("1009")
    assert [t.trade_id for t in again.unreported] == ["P1"]
    again.ledger.verify()


def test_an_exit_books_the_exchange_fills_names_what_fired_and_forgetting_a_booked_one_refunds_its_fee() -> None:
    books = fresh_books()
    pos = Position("P1", Side.LONG, D("0.02"), D("100000"), T0, D("1.2"), D("99000"), D("101000"))
    books.book_entry(pos, order_id="E1", client_id="laab01", now=T0)
    closing = [fill("21", "TP", OrderSide.SELL, "0.01", "101000", "0.2", "10", minute=3),
               fill("22", "TP", OrderSide.SELL, "0.01", "101002", "0.2", "10.02", minute=3)]
    trade = books.book_exit(pos, closing, close_order_id=None, reason=None, exit_ts=T0)
    assert trade.exit_reason == "take_profit" and trade.exit_price == D("101001") and trade.pnl == D("18.42")
    assert books.ledger.position is None and books.entry_order_id is None
    assert all(books.is_booked(i) for i in ("21", "22", "E1"))
    books.ledger.verify()
    adopted = Position("P2", Side.SHORT, D("0.01"), D("100000"), T0, D("0.6"), D(0), D(0))
    books.adopt(adopted, charge_fee=True)
    books.forget(adopted)  # its round trip was booked by the walk (whose pnl carries the fee): one charge back
    assert books.ledger.position is None and books.ledger.cash == D("1018.42")
    books.mark_booked(str(i) for i in range(BOOKED_FILLS_KEPT + 5))
    assert len(books.booked) == BOOKED_FILLS_KEPT and not books.is_booked("21")
