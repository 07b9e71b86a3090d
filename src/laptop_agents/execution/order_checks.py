"""Exchange rules an order must satisfy, checked *before* it is sent.

Why locally: a rejected order costs a rate-limit token, feeds nobody useful
information, and on a real exchange a malformed request may still partially
succeed (an entry placed while its TP/SL is refused). Checking min/max quantity,
precision, TP/SL sides and price protection here turns each problem into one
clear, named rejection and keeps the exchange's ledger clean.

Pure: no I/O, no clock. Inputs are the contract spec and prices the caller read.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal

from laptop_agents.bitunix import SymbolStatus, TradingPair
from laptop_agents.core.models import OrderIntent, Side

DEFAULT_PRICE_PROTECT_SCOPE = Decimal("0.02")


@dataclass(frozen=True, slots=True)
class SymbolRules:
    """The parts of ``market/trading_pairs`` that constrain our orders."""

    symbol: str
    min_qty: Decimal
    max_market_qty: Decimal | None
    qty_step: Decimal
    price_tick: Decimal
    price_protect_scope: Decimal
    min_leverage: int
    max_leverage: int
    tradable: bool

    @classmethod
    def from_pair(cls, pair: TradingPair) -> SymbolRules:
        return cls(
            symbol=pair.symbol,
            min_qty=pair.min_trade_volume,
            max_market_qty=pair.max_market_order_volume,
            qty_step=pair.qty_step,
            price_tick=pair.price_tick,
            price_protect_scope=pair.price_protect_scope if pair.price_protect_scope is not None else DEFAULT_PRICE_PROTECT_SCOPE,
            min_leverage=pair.min_leverage or 1,
            max_leverage=pair.max_leverage or 125,
            tradable=pair.status in (None, SymbolStatus.OPEN),
        )

    def round_qty(self, qty: Decimal) -> Decimal:
        """Down to the lot step: never more exposure than the risk layer sized."""
        return (qty / self.qty_step).to_integral_value(rounding=ROUND_DOWN) * self.qty_step

    def round_price(self, price: Decimal) -> Decimal:
        return (price / self.price_tick).to_integral_value(rounding=ROUND_HALF_EVEN) * self.price_tick


@dataclass(frozen=True, slots=True)
class CheckedEntry:
    """An intent that passed every check, with exchange-ready quantity and prices."""

    qty: Decimal
    stop_loss: Decimal
    take_profit: Decimal


class OrderCheckFailed(Exception):
    """``code`` names the rule (stable, for events/metrics); ``str()`` is one line for humans."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def check_entry(rules: SymbolRules, intent: OrderIntent, last_price: Decimal) -> CheckedEntry:
    """Validate a market entry against the contract rules and the current price.

    ``last_price`` is the exchange's last traded price just before sending: price
    protection refuses an entry when the market moved more than the exchange's
    ``priceProtectScope`` away from the price the decision was made at, and TP/SL
    must be on the right side of where the fill will actually happen.
    """
    if not rules.tradable:
        raise OrderCheckFailed("symbol_not_tradable", f"{rules.symbol} is not open for trading")
    qty = rules.round_qty(intent.qty)
    if qty < rules.min_qty:
        raise OrderCheckFailed(
            "qty_below_min", f"qty {intent.qty} (rounded to {qty}) is below the minimum {rules.min_qty} for {rules.symbol}"
        )
    if rules.max_market_qty is not None and qty > rules.max_market_qty:
        raise OrderCheckFailed("qty_above_max", f"qty {qty} is above the market-order maximum {rules.max_market_qty}")
    if last_price <= 0 or intent.reference_price <= 0:
        raise OrderCheckFailed("bad_price", "reference and last price must be positive")
    moved = abs(last_price - intent.reference_price) / intent.reference_price
    if moved > rules.price_protect_scope:
        raise OrderCheckFailed(
            "price_protection",
            f"price moved {moved * 100:.2f}% since the signal ({intent.reference_price} -> {last_price}); "
            f"protection scope is {rules.price_protect_scope * 100}%",
        )
    sl = rules.round_price(intent.stop_loss)
    tp = rules.round_price(intent.take_profit)
    if intent.side is Side.LONG:
        if not sl < last_price < tp:
            raise OrderCheckFailed(
                "tpsl_invalid", f"long entry needs stop {sl} < price {last_price} < take-profit {tp}"
            )
    elif not tp < last_price < sl:
        raise OrderCheckFailed("tpsl_invalid", f"short entry needs take-profit {tp} < price {last_price} < stop {sl}")
    return CheckedEntry(qty=qty, stop_loss=sl, take_profit=tp)
