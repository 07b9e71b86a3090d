"""Hard safety ceilings: the code's last word, whatever the config says.

Config (`config/risk.yaml`) may tighten any of these but never loosen them; a
config that tries is refused at start-up. Values are the audit's: $50 max daily
loss, $200K max position notional, 1% max risk per trade.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

MAX_DAILY_LOSS_USD = Decimal("50")
MAX_POSITION_NOTIONAL_USD = Decimal("200000")
MAX_RISK_PER_TRADE_PCT = Decimal("1")
MAX_DRAWDOWN_PCT = Decimal("5")
MAX_CONSECUTIVE_LOSSES = 5
MAX_LEVERAGE = Decimal("20")


@dataclass(frozen=True, slots=True)
class HardLimits:
    """The limits in force for a session: config values clamped to the ceilings."""

    max_daily_loss_usd: Decimal = MAX_DAILY_LOSS_USD
    max_position_notional_usd: Decimal = MAX_POSITION_NOTIONAL_USD
    max_risk_per_trade_pct: Decimal = MAX_RISK_PER_TRADE_PCT
    max_leverage: Decimal = MAX_LEVERAGE

    def __post_init__(self) -> None:
        for name, value, ceiling in (
            ("max_daily_loss_usd", self.max_daily_loss_usd, MAX_DAILY_LOSS_USD),
            ("max_position_notional_usd", self.max_position_notional_usd, MAX_POSITION_NOTIONAL_USD),
            ("max_risk_per_trade_pct", self.max_risk_per_trade_pct, MAX_RISK_PER_TRADE_PCT),
            ("max_leverage", self.max_leverage, MAX_LEVERAGE),
        ):
            if value <= 0 or value > ceiling:
                raise ValueError(f"{name}={value} must be > 0 and <= the hard ceiling {ceiling}")

    def remaining_daily_loss(self, daily_realized_pnl: Decimal) -> Decimal:
        """Loss budget left today; realized profit does not raise it above the cap."""
        lost = -daily_realized_pnl if daily_realized_pnl < 0 else Decimal(0)
        left = self.max_daily_loss_usd - lost
        return left if left > 0 else Decimal(0)
