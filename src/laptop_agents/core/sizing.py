"""Position sizing that honours every limit at once.

The quantity is the smallest of what each limit allows: the per-trade risk
budget (config %, capped by the hard 1%), the daily loss budget still left,
the max notional, and max leverage. Risk per unit counts the stop distance plus
fees and slippage on both legs, so a stop-out costs at most the budget (barring
gaps, which the daily-loss breaker catches).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from laptop_agents.core.hard_limits import HardLimits

BPS = Decimal(10000)
HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class SizingResult:
    qty: Decimal
    risk_budget_usd: Decimal
    binding_limit: str
    rejected_reason: str | None = None
    rejected_code: str | None = None
    """The rejection as a bounded code (equity | stop_distance | daily_loss_budget | below_min_qty): metrics and
    alerts label by it, never by parsing ``rejected_reason``."""

    @property
    def ok(self) -> bool:
        return self.rejected_reason is None


def floor_to_step(value: Decimal, step: Decimal) -> Decimal:
    """Round down to a multiple of `step` (never size up past a limit)."""
    return (value / step).to_integral_value(rounding=ROUND_DOWN) * step


def size_position(
    *,
    equity: Decimal,
    entry_price: Decimal,
    stop_price: Decimal,
    risk_per_trade_pct: Decimal,
    limits: HardLimits,
    daily_realized_pnl: Decimal,
    taker_fee_bps: Decimal,
    slippage_bps: Decimal,
    lot_size: Decimal,
    min_qty: Decimal,
) -> SizingResult:
    """Return the largest lot-rounded qty every limit allows, or a rejection reason."""
    if equity <= 0:
        return SizingResult(Decimal(0), Decimal(0), "equity", "equity is not positive", "equity")
    stop_distance = abs(entry_price - stop_price)
    if stop_distance <= 0:
        return SizingResult(Decimal(0), Decimal(0), "stop", "stop price equals entry price", "stop_distance")
    pct = min(risk_per_trade_pct, limits.max_risk_per_trade_pct)
    per_trade_budget = equity * pct / HUNDRED
    daily_left = limits.remaining_daily_loss(daily_realized_pnl)
    budget, budget_limit = (
        (per_trade_budget, "risk_per_trade") if per_trade_budget <= daily_left else (daily_left, "daily_loss_budget")
    )
    if budget <= 0:
        return SizingResult(Decimal(0), budget, budget_limit, "daily loss budget exhausted", "daily_loss_budget")
    cost_rate = (2 * taker_fee_bps + 2 * slippage_bps) / BPS
    risk_per_unit = stop_distance + entry_price * cost_rate
    candidates = {
        budget_limit: budget / risk_per_unit,
        "max_position_notional": limits.max_position_notional_usd / entry_price,
        "max_leverage": equity * limits.max_leverage / entry_price,
    }
    binding = min(candidates, key=lambda k: candidates[k])
    qty = floor_to_step(candidates[binding], lot_size)
    if qty < min_qty:
        return SizingResult(qty, budget, binding, f"size {qty} below exchange minimum {min_qty} ({binding} binds)",
                            "below_min_qty")
    return SizingResult(qty, budget, binding)
