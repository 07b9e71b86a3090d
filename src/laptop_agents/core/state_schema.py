"""Semantic validation of the state files: valid JSON is not enough, the values must be possible.

Why: a state file is restored without question on start-up, so a file with equity −10000, Infinity or 1e30, a
position of qty −5 or with entry price 0, a breaker with ``consecutive_losses: -50`` or a daily PnL nobody made
would silently switch off the guards (the daily-loss limit, the drawdown check) or invent money. Every value is
checked for its type (a boolean is a boolean, a count an integer), finiteness, sign and sane bounds, and the files
for consistency with each other (equity = start + Σ trade pnl, the breaker's day PnL = the sum of the latest
trades, peak ≥ equity). The first problem found is raised as :class:`StateInvalid` (field, value, why); the shell
turns it into a one-line :class:`~laptop_agents.core.errors.StateError` (exit 8) that names the file, and leaves
the file untouched.

Pure: plain dicts in, an exception out; no files, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from laptop_agents.core import hard_limits as hl
from laptop_agents.core.errors import StateError
from laptop_agents.core.models import parse_utc

# Sane bounds. An account is a laptop's paper account or one operator's exchange wallet: the config caps the paper
# starting equity at 1e8 USDT, so 1e10 is beyond anything real, yet far below the 1e30 a tamperer might write.
MAX_MONEY = Decimal("1e10")
# Prices: positive and below 1e9 USDT per unit (BTC is ~1e5; any USDT perpetual fits).
MAX_PRICE = Decimal("1e9")
# A position's notional may exceed the hard ceiling only by the adverse fill (slippage is capped at 5%).
PAPER_NOTIONAL_CAP = hl.MAX_POSITION_NOTIONAL_USD * Decimal("1.1")
# Live: the exchange is the truth and a position adopted at reconciliation may be larger than we would open,
# so only an absurd notional is refused.
LIVE_NOTIONAL_CAP = hl.MAX_POSITION_NOTIONAL_USD * 100
MAX_COUNT = 10**9
# Live: a booked trade's fees may be corrected after the breaker counted it; a cent-level slack, not a loophole.
LIVE_PNL_SLACK = Decimal("1")
SIDES = ("LONG", "SHORT")
BREAKER_REASONS = ("max_drawdown", "consecutive_losses", "daily_loss")
PAPER_BROKER_KIND = "paper_broker"
"""The ``kind`` of the paper broker's state file (core/state.py's envelope); its content: :func:`check_paper_state`."""
LIVE_BROKER_KIND = "bitunix_broker"
"""The ``kind`` of the live broker's state file; its content: :func:`check_live_state`."""
_SYMBOL = re.compile(r"^[A-Z0-9]{2,20}USDT$")
_HINT = "move it aside or restore a backup (`la clean --all` starts from scratch); it was left untouched"


class StateInvalid(ValueError):
    """One impossible value: which field, what it holds, why it cannot be."""

    def __init__(self, field: str, value: Any, why: str) -> None:
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(f"{field} = {shown}: {why}")
        self.field = field
        self.value = value
        self.why = why


def state_error(path: Path, exc: StateInvalid) -> StateError:
    """The one line the operator sees (exit 8)."""
    return StateError(f"invalid state file {path}: {exc}; {_HINT}")


# --------------------------------------------------------------------------- value checks
def _decimal(data: dict[str, Any], key: str, where: str, *, optional: bool = False) -> Decimal | None:
    field = f"{where}{key}"
    if key not in data:
        if optional:
            return None
        raise StateInvalid(field, None, "missing")
    raw = data[key]
    if raw is None and optional:
        return None
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise StateInvalid(field, raw, "must be a decimal number")
    try:
        value = Decimal(str(raw).strip()) if isinstance(raw, str) else Decimal(str(raw))
    except InvalidOperation:
        raise StateInvalid(field, raw, "not a decimal number") from None
    if not value.is_finite():
        raise StateInvalid(field, raw, "must be finite")
    return value


def _money(data: dict[str, Any], key: str, where: str = "", *, minimum: str = "any",
           optional: bool = False) -> Decimal | None:
    """A USDT amount: finite, |x| <= MAX_MONEY, and > 0 / >= 0 as ``minimum`` says."""
    value = _decimal(data, key, where, optional=optional)
    if value is None:
        return None
    field = f"{where}{key}"
    if minimum == "positive" and value <= 0:
        raise StateInvalid(field, data[key], "must be > 0")
    if minimum == "non_negative" and value < 0:
        raise StateInvalid(field, data[key], "must be >= 0")
    if abs(value) > MAX_MONEY:
        raise StateInvalid(field, data[key], f"beyond the sane bound of {MAX_MONEY:,.0f} USDT")
    return value


def _price(data: dict[str, Any], key: str, where: str = "", *, optional: bool = False) -> Decimal | None:
    value = _decimal(data, key, where, optional=optional)
    if value is None:
        return None
    if value <= 0:
        raise StateInvalid(f"{where}{key}", data[key], "a price must be > 0")
    if value > MAX_PRICE:
        raise StateInvalid(f"{where}{key}", data[key], f"a price beyond the sane bound of {MAX_PRICE:,.0f}")
    return value


def _qty(data: dict[str, Any], key: str, where: str) -> Decimal:
    value = _decimal(data, key, where)
    assert value is not None
    if value <= 0:
        raise StateInvalid(f"{where}{key}", data[key], "a quantity must be > 0")
    return value


def _count(data: dict[str, Any], key: str, where: str = "", *, default: int | None = None) -> int:
    field = f"{where}{key}"
    if key not in data and default is not None:
        return default
    raw = data.get(key)
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise StateInvalid(field, raw, "must be an integer")
    if raw < 0:
        raise StateInvalid(field, raw, "must be >= 0")
    if raw > MAX_COUNT:
        raise StateInvalid(field, raw, f"beyond the sane bound of {MAX_COUNT:,}")
    return raw


def _text(data: dict[str, Any], key: str, where: str = "", *, optional: bool = False) -> str | None:
    raw = data.get(key)
    if raw is None and optional:
        return None
    if not isinstance(raw, str) or not raw.strip():
        raise StateInvalid(f"{where}{key}", raw, "must be a non-empty string")
    return raw


def _timestamp(data: dict[str, Any], key: str, where: str = "", *, optional: bool = False) -> Any:
    raw = _text(data, key, where, optional=optional)
    if raw is None:
        return None
    try:
        return parse_utc(raw)
    except ValueError:
        raise StateInvalid(f"{where}{key}", raw, "not an ISO 8601 timestamp") from None


def _side(data: dict[str, Any], where: str) -> str:
    raw = data.get("side")
    if raw not in SIDES:
        raise StateInvalid(f"{where}side", raw, f"must be one of {', '.join(SIDES)}")
    return raw


def _object(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise StateInvalid(field, value, "must be a JSON object")
    return value


def _list(data: dict[str, Any], key: str, *, optional: bool = False) -> list[Any]:
    raw = data.get(key)
    if raw is None and optional:
        return []
    if not isinstance(raw, list):
        raise StateInvalid(key, raw, "must be a list")
    return raw


def _symbol(data: dict[str, Any]) -> str:
    raw = data.get("symbol")
    if not isinstance(raw, str) or not _SYMBOL.match(raw):
        raise StateInvalid("symbol", raw, "must be a USDT perpetual symbol such as BTCUSDT")
    return raw


def _notional(qty: Decimal, price: Decimal, cap: Decimal, field: str, raw: Any) -> None:
    if qty * price > cap:
        raise StateInvalid(field, raw, f"notional {qty * price:,.2f} USDT exceeds the sane bound of {cap:,.0f} USDT")


# --------------------------------------------------------------------------- positions and trades
def check_position(d: Any, where: str, notional_cap: Decimal, *, rebates: bool = False,
                   protected: bool = False) -> Decimal:
    """An open position; returns its entry fee (never negative on paper; an exchange may pay a maker rebate).
    ``protected`` (paper): every position was opened with a stop on its losing side and a take profit, so 0
    ("none attached", for positions adopted from the exchange) or a stop past the entry is impossible; a long
    whose stop is 0 would never be stopped out."""
    d = _object(d, where.rstrip("."))
    _text(d, "position_id", where)
    _side(d, where)
    qty = _qty(d, "qty", where)
    price = _price(d, "entry_price", where)
    assert price is not None
    _notional(qty, price, notional_cap, f"{where}qty", d["qty"])
    _timestamp(d, "entry_ts", where)
    fee = _money(d, "entry_fee", where, minimum="any" if rebates else "non_negative")
    assert fee is not None
    # 0 = no exchange-side TP/SL attached (live, adopted positions); never negative
    for key in ("stop_loss", "take_profit"):
        value = _decimal(d, key, where)
        assert value is not None
        if value < 0 or value > MAX_PRICE:
            raise StateInvalid(f"{where}{key}", d[key], f"must be between 0 and {MAX_PRICE:,.0f}")
        if protected and value == 0:
            raise StateInvalid(f"{where}{key}", d[key], "a paper position always has one (> 0)")
    if protected:
        stop = Decimal(str(d["stop_loss"]).strip())
        if (stop >= price) if d["side"] == "LONG" else (stop <= price):
            raise StateInvalid(f"{where}stop_loss", d["stop_loss"],
                               f"on the wrong side of the {d['side']} entry price {price}")
    _count(d, "bars_held", where, default=0)
    return fee


def check_trade(d: Any, where: str, notional_cap: Decimal, *, rebates: bool = False) -> Decimal:
    """A closed trade; returns its pnl (checked: pnl = gross_pnl − fees)."""
    d = _object(d, where.rstrip("."))
    _text(d, "trade_id", where)
    _side(d, where)
    qty = _qty(d, "qty", where)
    entry = _price(d, "entry_price", where)
    _price(d, "exit_price", where)
    assert entry is not None
    _notional(qty, entry, notional_cap, f"{where}qty", d["qty"])
    # not ordered against each other: an entry is stamped with its candle's bar time, a shutdown exit may be
    # stamped with the wall clock, and a replayed or mock market's bars need not be near the wall clock
    _timestamp(d, "entry_ts", where)
    _timestamp(d, "exit_ts", where)
    gross = _money(d, "gross_pnl", where)
    fees = _money(d, "fees", where, minimum="any" if rebates else "non_negative")
    pnl = _money(d, "pnl", where)
    assert gross is not None and fees is not None and pnl is not None
    if pnl != gross - fees:
        raise StateInvalid(f"{where}pnl", d["pnl"], f"must equal gross_pnl − fees = {gross - fees}")
    _text(d, "exit_reason", where)
    return pnl


def _trades(data: dict[str, Any], notional_cap: Decimal, *, rebates: bool = False) -> list[Decimal]:
    trades = _list(data, "trades")
    pnls = []
    seen: set[str] = set()
    for i, t in enumerate(trades):
        pnls.append(check_trade(t, f"trades[{i}].", notional_cap, rebates=rebates))
        if t["trade_id"] in seen:
            raise StateInvalid(f"trades[{i}].trade_id", t["trade_id"], "duplicate trade id")
        seen.add(t["trade_id"])
    return pnls


def _positions(data: dict[str, Any], notional_cap: Decimal, *, rebates: bool = False,
               protected: bool = False) -> Decimal:
    """The open position's entry fee (0 when flat); at most one position (one-way mode)."""
    positions = _list(data, "positions")
    if len(positions) > 1:
        raise StateInvalid("positions", f"{len(positions)} positions", "more than one open position in one-way mode")
    if not positions:
        return Decimal(0)
    return check_position(positions[0], "positions[0].", notional_cap, rebates=rebates, protected=protected)


# --------------------------------------------------------------------------- the files
def check_paper_state(data: Any) -> None:
    """``async_broker_state.json`` of the paper account (PaperBroker.to_state())."""
    data = _object(data, "(file)")
    _symbol(data)
    start = _money(data, "starting_equity", minimum="positive")
    equity = _money(data, "equity", minimum="positive")
    assert start is not None and equity is not None
    open_fee = _positions(data, PAPER_NOTIONAL_CAP, protected=True)
    pnls = _trades(data, PAPER_NOTIONAL_CAP)
    _price(data, "last_price", optional=True)
    seq = _count(data, "seq")
    # every trade used three ids (order, position, trade), an open position two
    floor = 3 * len(pnls) + (2 if open_fee or data["positions"] else 0)
    if seq < floor:
        raise StateInvalid("seq", data["seq"], f"below the {floor} ids its trades and position used")
    expected = start + sum(pnls, Decimal(0)) - open_fee
    if equity != expected:
        raise StateInvalid("equity", data["equity"], f"disagrees with trades (expected {expected})")


def check_live_state(data: Any) -> None:
    """``live/async_broker_state.json`` (BitunixBroker.to_state()): equity is the exchange wallet, so >= 0."""
    data = _object(data, "(file)")
    _symbol(data)
    start = _money(data, "starting_equity", minimum="non_negative")
    equity = _money(data, "equity", minimum="non_negative")
    adjustments = _money(data, "adjustments", optional=True) or Decimal(0)
    assert start is not None and equity is not None
    open_fee = _positions(data, LIVE_NOTIONAL_CAP, rebates=True)  # the exchange's fees, as it charged them
    pnls = _trades(data, LIVE_NOTIONAL_CAP, rebates=True)
    unreported = _list(data, "unreported_trades", optional=True)
    known = {t["trade_id"] for t in data["trades"]}
    for i, trade_id in enumerate(unreported):
        if trade_id not in known:
            raise StateInvalid(f"unreported_trades[{i}]", trade_id, "names no trade in trades")
    _price(data, "last_price", optional=True)
    _count(data, "seq")
    _text(data, "client_tag")
    entry_order = data.get("entry_order_id")
    if entry_order is not None and not isinstance(entry_order, str):
        raise StateInvalid("entry_order_id", entry_order, "must be a string or null")
    expected = start + sum(pnls, Decimal(0)) + adjustments - open_fee
    if equity != expected:
        raise StateInvalid("equity", data["equity"], f"disagrees with trades (expected {expected})")


def check_breaker_state(data: Any, *, equity: Decimal | None = None, trade_pnls: Sequence[Decimal] | None = None,
                        booked_pnls: Sequence[Decimal] | None = None) -> None:
    """``circuit_breaker_state.json``; with the account's realized ``equity`` and closed ``trade_pnls`` (oldest
    first) when they are known, also its consistency with them. ``booked_pnls`` (live) are the account's closed
    trades in no trusted order (round trips closed while we were down are booked late): only order-free bounds
    then, the day's PnL at most what all of them made or lost, the losing streak at most the losing trades.

    The breaker file is written right after the broker file, so a crash between the two can leave it one trade
    behind: the consistency rules accept the state as of the last trade or the one before.
    """
    data = _object(data, "(file)")
    tripped = data.get("tripped")
    if not isinstance(tripped, bool):
        raise StateInvalid("tripped", tripped, "must be true or false")
    reason = data.get("reason")
    if tripped and reason not in BREAKER_REASONS:
        raise StateInvalid("reason", reason, f"a tripped breaker needs one of {', '.join(BREAKER_REASONS)}")
    if not tripped and reason is not None:
        raise StateInvalid("reason", reason, "an untripped breaker has no reason")
    detail = data.get("detail")
    if detail is not None and not isinstance(detail, str):
        raise StateInvalid("detail", detail, "must be a string or null")
    _timestamp(data, "tripped_at", optional=True)
    losses = _count(data, "consecutive_losses")
    peak = _money(data, "peak_equity", minimum="positive", optional=True)
    day = data.get("trading_day")
    if day is not None and not _is_iso_date(day):
        raise StateInvalid("trading_day", day, "must be a YYYY-MM-DD date or null")
    daily = _money(data, "daily_realized_pnl")
    assert daily is not None
    if booked_pnls is not None:
        budget = sum((abs(p) for p in booked_pnls), Decimal(0)) + LIVE_PNL_SLACK
        if abs(daily) > budget:
            raise StateInvalid("daily_realized_pnl", data["daily_realized_pnl"],
                               f"more than the {budget} USDT all the account's trades made or lost")
        losers = sum(1 for p in booked_pnls if p < 0)
        if losses > losers:
            raise StateInvalid("consecutive_losses", losses, f"more than the {losers} losing trades the account booked")
    if trade_pnls is None:
        if equity is not None and peak is not None and peak < equity:
            raise StateInvalid("peak_equity", data["peak_equity"], f"below the account's equity {equity}")
        return
    pnls = list(trade_pnls)
    views = [pnls] + ([pnls[:-1]] if pnls else [])  # as of the last trade, or one behind (crash between writes)
    if not any(_is_suffix_sum(daily, v) for v in views):
        raise StateInvalid("daily_realized_pnl", data["daily_realized_pnl"],
                           "is not the sum of the account's latest trades")
    if not any(losses <= _trailing_losses(v) for v in views):
        raise StateInvalid("consecutive_losses", losses,
                           f"more than the {_trailing_losses(pnls)} losing trades the account ended with")
    if equity is not None and peak is not None:
        floor = equity - (pnls[-1] if pnls and pnls[-1] > 0 else Decimal(0))
        if peak < floor:
            raise StateInvalid("peak_equity", data["peak_equity"], f"below the account's equity {equity}")


def _is_iso_date(value: Any) -> bool:
    if not isinstance(value, str) or len(value) != 10:
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_suffix_sum(total: Decimal, pnls: Sequence[Decimal]) -> bool:
    running = Decimal(0)
    if total == running:
        return True
    for pnl in reversed(pnls):
        running += pnl
        if running == total:
            return True
    return False


def _trailing_losses(pnls: Sequence[Decimal]) -> int:
    n = 0
    for pnl in reversed(pnls):
        if pnl >= 0:
            break
        n += 1
    return n
