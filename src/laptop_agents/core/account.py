"""The account view every broker gives the session: realized equity, mark-to-market, a snapshot.

Shared by PaperBroker and BitunixBroker, which both keep their books in a :class:`~laptop_agents.core.ledger.Ledger`
(`cash` = realized equity after fees, `position`, `trades`) and a `last_price`; only how those change differs.
The view is read-only: every change goes through the ledger's booking methods, which keep it balanced.
"""

from __future__ import annotations

from decimal import Decimal

from laptop_agents.core.ledger import Ledger
from laptop_agents.core.models import AccountSnapshot, Position, Trade


class CashAccountView:
    """Mixin: derives the read side of an account from its `ledger` and `last_price`."""

    ledger: Ledger
    last_price: Decimal | None
    _last_snapshot: AccountSnapshot | None = None

    @property
    def cash(self) -> Decimal:
        """Realized equity: cash after every fee, unrealized PnL excluded."""
        return self.ledger.cash

    @property
    def equity(self) -> Decimal:
        """Realized equity: cash after every fee, unrealized PnL excluded."""
        return self.ledger.cash

    @property
    def position(self) -> Position | None:
        return self.ledger.position

    @property
    def trades(self) -> list[Trade]:
        """Closed round trips, oldest booked first."""
        return self.ledger.trades

    @property
    def starting_equity(self) -> Decimal:
        return self.ledger.starting_equity

    def mark_to_market(self, price: Decimal | None = None) -> Decimal:
        """Equity plus the open position's unrealized PnL at `price` (default: the last close)."""
        price = price if price is not None else self.last_price
        if self.position is None or price is None:
            return self.cash
        return self.cash + self.position.unrealized_pnl(price)

    def snapshot(self) -> AccountSnapshot:
        """The account as the decision logic sees it. Asked for on every candle; while nothing in it
        changed (the very same objects), the previous snapshot is returned: it is frozen."""
        ledger = self.ledger
        cash, position = ledger.cash, ledger.position
        last = self._last_snapshot
        if last is not None and last.equity is cash and last.position is position:
            return last
        last = self._last_snapshot = AccountSnapshot(equity=cash, position=position)
        return last
