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
    _last_snapshot: AccountSnapshot | None = None

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
        """The account as the decision logic sees it. Asked for on every candle; while nothing in it
        changed (the very same objects), the previous snapshot is returned: it is frozen."""
        cash, position = self.cash, self.position
        peak = peak_equity if peak_equity is not None else cash
        last = self._last_snapshot
        if (last is not None and last.equity is cash and last.position is position and last.peak_equity is peak
                and last.daily_realized_pnl is daily_realized_pnl):
            return last
        last = self._last_snapshot = AccountSnapshot(
            equity=cash, peak_equity=peak, position=position, daily_realized_pnl=daily_realized_pnl,
        )
        return last
