"""Pure pre-send order checks (no exchange needed)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from laptop_agents.core.models import OrderIntent, Side
from laptop_agents.execution.order_checks import (
    OrderCheckFailed,
    SymbolRules,
    check_entry,
)

RULES = SymbolRules(
    symbol="BTCUSDT", min_qty=Decimal("0.0001"), max_market_qty=Decimal(50000), qty_step=Decimal("0.0001"),
    price_tick=Decimal("0.1"), price_protect_scope=Decimal("0.02"), min_leverage=1, max_leverage=125, tradable=True,
)
P = Decimal(95000)

pytestmark = pytest.mark.single_dialect("pure pre-send checks: no exchange is involved")


def _intent(side: Side = Side.LONG, qty: str = "0.01", sl: str = "94000", tp: str = "97000",
            ref: Decimal = P) -> OrderIntent:
    return OrderIntent(side, Decimal(qty), Decimal(sl), Decimal(tp), ref)


def test_valid_entry_is_rounded_to_the_exchange_grid() -> None:
    checked = check_entry(RULES, _intent(qty="0.012345", sl="94000.04", tp="97000.06"), P)
    assert checked.qty == Decimal("0.0123")
    assert checked.stop_loss == Decimal("94000.0") and checked.take_profit == Decimal("97000.1")


@pytest.mark.parametrize(("intent", "last", "code"), [
    (_intent(qty="0.00009"), P, "qty_below_min"),
    (_intent(qty="50000.5"), P, "qty_above_max"),
    (_intent(), P * Decimal("1.03"), "price_protection"),
    (_intent(sl="95500"), P, "tpsl_invalid"),
    (_intent(side=Side.SHORT), P, "tpsl_invalid"),
    (_intent(ref=Decimal(0)), P, "bad_price"),
])
def test_each_rule_refuses_with_its_code(intent: OrderIntent, last: Decimal, code: str) -> None:
    with pytest.raises(OrderCheckFailed) as err:
        check_entry(RULES, intent, last)
    assert err.value.code == code and "\n" not in str(err.value)


def test_untradable_symbol_is_refused() -> None:
    with pytest.raises(OrderCheckFailed, match="not open"):
        check_entry(replace(RULES, tradable=False), _intent(), P)


@given(qty=st.decimals(min_value=Decimal("0.0001"), max_value=Decimal(100), places=8))
def test_rounded_qty_never_exceeds_the_sized_qty_and_fits_the_step(qty: Decimal) -> None:
    checked = check_entry(RULES, OrderIntent(Side.LONG, qty, Decimal(94000), Decimal(96000), P), P)
    assert checked.qty <= qty
    assert checked.qty % RULES.qty_step == 0
    assert qty - checked.qty < RULES.qty_step
