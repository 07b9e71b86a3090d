"""The account view every broker gives the session: realized equity, mark-to-market, a snapshot.

Shared by PaperBroker and BitunixBroker, which both keep `cash` (realized equity
after fees), `position` and `last_price`; only how those change differs.
"""

from __future__ import annotations

from decimal import Decimal

from laptop_agents.core.models import ZERO, AccountSnapshot, Position


class CashAccountView:
    """Mixin: derives the read side of an account from `cash`, `position` and `last_price`."""

    cash: Decimal
    position: Position | None
    last_price: Decimal | None

    @property
    def equity(self) -> Decimal:
        """Realized equity: cash after every fee, unrealized PnL excluded."""
        return self.cash

    def mark_to_market(self, price: Decimal | None = None) -> Decimal:
        """Equity plus the open position's unrealized PnL at `price` (default: the last close)."""
        price = price if price is not None else self.last_price
        if self.position is None or price is None:
            return self.cash
        return self.cash + self.position.unrealized_pnl(price)

    def snapshot(self, daily_realized_pnl: Decimal = ZERO, peak_equity: Decimal | None = None) -> AccountSnapshot:
        return AccountSnapshot(
            equity=self.cash,
            peak_equity=peak_equity if peak_equity is not None else self.cash,
            position=self.position,
            daily_realized_pnl=daily_realized_pnl,
        )
