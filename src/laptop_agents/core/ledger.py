"""The account ledger both brokers keep: one symbol's books, free of any fill model and of any venue.

Why one module: PaperBroker and BitunixBroker differ in where fills come from (a simulated fill model; the
exchange's own fills), not in how an account is booked. Booking in one place keeps the invariant that the
reports, the trading circuit breaker and the state-file checks (core/state_schema.py) rely on true for both:

    equity == starting_equity + sum(trade.pnl) + adjustments - entry fee of the open position

Every change of ``cash`` is one of: an entry fee (:meth:`Ledger.open`), a close's gross PnL minus its exit fee
(:meth:`Ledger.close`), a whole round trip (:meth:`Ledger.book_round_trip`), an entry fee given back
(:meth:`Ledger.refund_entry_fee`) or the exchange's wallet adopted (:meth:`Ledger.adopt_wallet`, kept apart in
``adjustments``). The arithmetic is exact Decimal: amounts are rounded to 1e-8 USDT (:func:`money`) once, where
they enter the books (a fee the fill model computes, the exchange's wallet), never inside the sums, so the
invariant holds to the last digit, not up to rounding.

Also here: the state-file (de)serialization of positions and trades (Decimals as strings, times as ISO 8601
with ``Z``; the on-disk format of ``async_broker_state.json`` in both modes), and the typed constructors of the
ExecutionFill and ExecutionExit events, whose fields the journal, metrics, reports and trail recovery read.

Pure: no clock, no files, no environment.
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from laptop_agents.core.events import Event, EventName
from laptop_agents.core.models import ZERO, Position, Side, Trade, parse_utc, utc_iso

MONEY_STEP = Decimal("0.00000001")

EXIT_TAKE_PROFIT = "take_profit"
"""Exit reason: the take-profit filled (paper: the candle reached it; live: inferred from the exit price)."""
EXIT_STOP_LOSS = "stop_loss"
"""Exit reason: the stop-loss filled."""


def money(value: Decimal) -> Decimal:
    """Round a cash amount to 1e-8 USDT; every amount entering the books goes through here once."""
    return value.quantize(MONEY_STEP, rounding=ROUND_HALF_EVEN)


class LedgerError(ValueError):
    """The books cannot be what they claim (equity disagrees with the trades, more than one open position)."""


class Ledger:
    """Starting equity, cash (realized equity after every fee), the open position, the closed trades and (for an
    exchange account) the wallet adjustments booked apart. One symbol, one-way mode: at most one position."""

    __slots__ = ("adjustments", "cash", "position", "starting_equity", "trades", "wallet_adjustments")

    def __init__(self, starting_equity: Decimal, *, wallet_adjustments: bool = False) -> None:
        self.starting_equity = starting_equity
        self.cash = starting_equity
        self.adjustments = ZERO
        """Wallet moves no trade explains (funding, transfers, manual trades): the exchange's wallet wins."""
        self.position: Position | None = None
        self.trades: list[Trade] = []
        self.wallet_adjustments = wallet_adjustments
        """True for an exchange account, whose wallet can move outside our trades; a paper account's cannot
        (its state file has no ``adjustments`` field)."""

    def __repr__(self) -> str:
        pos = f"{self.position.side.value} {self.position.qty}" if self.position else "flat"
        return f"Ledger(equity={self.cash}, {pos}, trades={len(self.trades)})"

    # ------------------------------------------------------------------ booking
    def open(self, position: Position, *, charge_fee: bool = True) -> None:
        """A position is open: its entry fee leaves cash now (the trade's pnl carries it at the close).

        ``charge_fee=False`` for a position adopted from the exchange before the books start: its fee is already
        out of the wallet the books then start from (:meth:`start_from_wallet` counts it into starting equity).
        """
        if charge_fee:
            self.cash -= position.entry_fee
        self.position = position

    def close(self, position: Position, *, trade_id: str, exit_ts: datetime, exit_price: Decimal,
              gross_pnl: Decimal, exit_fee: Decimal, reason: str) -> Trade:
        """Close ``position`` (the open one): cash moves by gross PnL minus the exit fee; the trade's pnl is net
        of both fees, so equity moves by exactly the pnl over the round trip."""
        self.cash += gross_pnl - exit_fee
        trade = Trade(
            trade_id=trade_id, side=position.side, qty=position.qty, entry_ts=position.entry_ts, exit_ts=exit_ts,
            entry_price=position.entry_price, exit_price=exit_price, gross_pnl=gross_pnl,
            fees=position.entry_fee + exit_fee, pnl=gross_pnl - position.entry_fee - exit_fee, exit_reason=reason,
        )
        self.trades.append(trade)
        self.position = None
        return trade

    def book_round_trip(self, trade: Trade) -> None:
        """A round trip opened and closed while nobody watched (booked whole): cash moves by its pnl."""
        self.cash += trade.pnl
        self.trades.append(trade)

    def refund_entry_fee(self, position: Position) -> None:
        """Drop ``position`` because another path booked its round trip already: its entry fee was charged when
        it was opened and again inside that trade's pnl, so one charge is given back."""
        self.cash += position.entry_fee
        if self.position is position:
            self.position = None

    def start_from_wallet(self, wallet: Decimal) -> None:
        """Fresh books on an exchange account: equity is its wallet; an open (adopted) position's entry fee is
        already out of that wallet, so equity "before" it, the starting equity, is wallet + fee."""
        self.cash = money(wallet)
        self.starting_equity = money(wallet + (self.position.entry_fee if self.position else ZERO))

    def adopt_wallet(self, wallet: Decimal) -> Decimal:
        """The exchange's wallet wins: book the difference (if any) as an adjustment; returns the difference."""
        if not self.wallet_adjustments:
            raise LedgerError("a paper account has no wallet outside its trades")
        wallet = money(wallet)
        diff = wallet - self.cash
        if diff:
            self.adjustments += diff
            self.cash = wallet
        return diff

    # ------------------------------------------------------------------ checks
    def expected_equity(self) -> Decimal:
        open_fee = self.position.entry_fee if self.position else ZERO
        return self.starting_equity + sum((t.pnl for t in self.trades), ZERO) + self.adjustments - open_fee

    def verify(self) -> None:
        """Raise :class:`LedgerError` unless equity == starting + sum(trade pnl) + adjustments - open entry fee."""
        expected = self.expected_equity()
        if expected != self.cash:
            raise LedgerError(f"equity {self.cash} disagrees with trades (expected {expected})")

    # ------------------------------------------------------------------ state
    def to_state(self) -> dict[str, Any]:
        """The books' part of a broker's state file, in file order (adjustments only for an exchange account)."""
        state: dict[str, Any] = {"starting_equity": str(self.starting_equity), "equity": str(self.cash)}
        if self.wallet_adjustments:
            state["adjustments"] = str(self.adjustments)
        state["positions"] = [] if self.position is None else [position_to_state(self.position)]
        state["trades"] = [trade_to_state(t) for t in self.trades]
        return state

    @classmethod
    def from_state(cls, data: dict[str, Any], *, wallet_adjustments: bool = False) -> Ledger:
        """Rebuild from :meth:`to_state` output (older live files may lack ``adjustments``: zero). Raises
        KeyError/TypeError/ValueError/ArithmeticError on a malformed field; does not :meth:`verify` (the caller
        decides when the books must balance)."""
        ledger = cls(Decimal(data["starting_equity"]), wallet_adjustments=wallet_adjustments)
        ledger.cash = Decimal(data["equity"])
        if wallet_adjustments:
            ledger.adjustments = Decimal(data.get("adjustments", "0"))
        positions = data["positions"]
        if len(positions) > 1:
            raise LedgerError("more than one open position in a one-way account")
        ledger.position = position_from_state(positions[0]) if positions else None
        ledger.trades = [trade_from_state(t) for t in data["trades"]]
        return ledger


def position_to_state(p: Position) -> dict[str, Any]:
    return {
        "position_id": p.position_id, "side": p.side.value, "qty": str(p.qty), "entry_price": str(p.entry_price),
        "entry_ts": utc_iso(p.entry_ts), "entry_fee": str(p.entry_fee), "stop_loss": str(p.stop_loss),
        "take_profit": str(p.take_profit), "bars_held": p.bars_held,
    }


def position_from_state(d: dict[str, Any]) -> Position:
    return Position(
        position_id=d["position_id"], side=Side(d["side"]), qty=Decimal(d["qty"]), entry_price=Decimal(d["entry_price"]),
        entry_ts=parse_utc(d["entry_ts"]), entry_fee=Decimal(d["entry_fee"]), stop_loss=Decimal(d["stop_loss"]),
        take_profit=Decimal(d["take_profit"]), bars_held=int(d["bars_held"]),
    )


def trade_to_state(t: Trade) -> dict[str, Any]:
    return {
        "trade_id": t.trade_id, "side": t.side.value, "qty": str(t.qty), "entry_ts": utc_iso(t.entry_ts),
        "exit_ts": utc_iso(t.exit_ts), "entry_price": str(t.entry_price), "exit_price": str(t.exit_price),
        "gross_pnl": str(t.gross_pnl), "fees": str(t.fees), "pnl": str(t.pnl), "exit_reason": t.exit_reason,
    }


def trade_from_state(d: dict[str, Any]) -> Trade:
    return Trade(
        trade_id=d["trade_id"], side=Side(d["side"]), qty=Decimal(d["qty"]), entry_ts=parse_utc(d["entry_ts"]),
        exit_ts=parse_utc(d["exit_ts"]), entry_price=Decimal(d["entry_price"]), exit_price=Decimal(d["exit_price"]),
        gross_pnl=Decimal(d["gross_pnl"]), fees=Decimal(d["fees"]), pnl=Decimal(d["pnl"]), exit_reason=d["exit_reason"],
    )


# ---------------------------------------------------------------------- events
def execution_fill(
    now: datetime, *, order_id: str | None, client_id: str | None, symbol: str | None, position_side: Side,
    qty: Decimal, price: Decimal, fee: Decimal | None, position_id: str, stop_loss: Decimal | None,
    take_profit: Decimal | None, equity: Decimal | None, liquidity: str = "taker", **extra: Any,
) -> Event:
    """An ExecutionFill with every field the observers read, in journal order; ``extra`` fields go last."""
    return Event(
        EventName.EXECUTION_FILL, now, order_id=order_id, client_id=client_id, symbol=symbol,
        side=position_side.entry_order_side, position_side=position_side, qty=qty, price=price, fee=fee,
        liquidity=liquidity, position_id=position_id, stop_loss=stop_loss, take_profit=take_profit, equity=equity,
        **extra,
    )


def position_opened(now: datetime, position: Position, *, order_id: str | None, client_id: str | None,
                    symbol: str, equity: Decimal) -> Event:
    """The ExecutionFill of an entry that opened ``position`` (its qty, price, fee, TP/SL are the fill's)."""
    return execution_fill(
        now, order_id=order_id, client_id=client_id, symbol=symbol, position_side=position.side, qty=position.qty,
        price=position.entry_price, fee=position.entry_fee, position_id=position.position_id,
        stop_loss=position.stop_loss, take_profit=position.take_profit, equity=equity,
    )


def execution_exit(now: datetime, trade: Trade, *, position_id: str, symbol: str | None, bars_held: int | None,
                   equity: Decimal | None, **extra: Any) -> Event:
    """The ExecutionExit of a booked ``trade``, in journal order; ``extra`` fields (e.g. ``recovered``) go last."""
    return Event(
        EventName.EXECUTION_EXIT, now, trade_id=trade.trade_id, position_id=position_id, symbol=symbol,
        side=trade.side.exit_order_side, position_side=trade.side, reason=trade.exit_reason, qty=trade.qty,
        entry_price=trade.entry_price, exit_price=trade.exit_price, gross_pnl=trade.gross_pnl, fees=trade.fees,
        pnl=trade.pnl, bars_held=bars_held, equity=equity, **extra,
    )
