from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from laptop_agents.core.hard_limits import HardLimits
from laptop_agents.core.sizing import size_position

D = Decimal
LIMITS = HardLimits()


def size(**kw):  # type: ignore[no-untyped-def]
    args = dict(equity=D("10000"), entry_price=D("100000"), stop_price=D("99900"), risk_per_trade_pct=D("0.05"),
                limits=LIMITS, daily_realized_pnl=D(0), taker_fee_bps=D("6"), slippage_bps=D("1"),
                lot_size=D("0.0001"), min_qty=D("0.0001"))
    args.update(kw)
    return size_position(**args)


def test_risk_budget_binds_and_counts_fees_and_slippage() -> None:
    r = size()
    # budget 5 USD; per unit 100 + 100000 * 14 / 10000 = 240 → 0.0208 BTC (floored to the lot)
    assert r.ok and r.binding_limit == "risk_per_trade" and r.qty == D("0.0208")


def test_daily_loss_budget_left_binds() -> None:
    r = size(risk_per_trade_pct=D("1"), daily_realized_pnl=D("-45"))
    assert r.ok and r.binding_limit == "daily_loss_budget" and r.risk_budget_usd == D("5")


def test_daily_budget_exhausted_rejects() -> None:
    r = size(daily_realized_pnl=D("-50"))
    assert not r.ok and "daily loss budget exhausted" in (r.rejected_reason or "")


def test_notional_and_leverage_caps() -> None:
    r = size(equity=D("1000000"), risk_per_trade_pct=D("1"), stop_price=D("99999"),
             limits=HardLimits(max_daily_loss_usd=D("50")))
    assert r.ok and r.qty * D("100000") <= D("200000") and r.binding_limit in ("max_position_notional", "daily_loss_budget")
    r = size(equity=D("1000"), risk_per_trade_pct=D("1"), stop_price=D("99999.9"),
             limits=HardLimits(max_leverage=D("2")))
    assert r.ok and r.binding_limit == "max_leverage" and r.qty == D("0.0200")


def test_below_minimum_rejected() -> None:
    r = size(equity=D("10"), stop_price=D("90000"))
    assert not r.ok and "below exchange minimum" in (r.rejected_reason or "")


@settings(max_examples=300, deadline=None)
@given(
    equity=st.integers(100, 1_000_000),
    entry=st.integers(10_000, 200_000),
    stop_dist=st.integers(1, 5_000),
    pct=st.sampled_from(["0.01", "0.05", "0.5", "1"]),
    daily=st.integers(-60, 100),
    long=st.booleans(),
)
def test_no_limit_is_ever_exceeded(equity, entry, stop_dist, pct, daily, long) -> None:  # type: ignore[no-untyped-def]
    stop = entry - stop_dist if long else entry + stop_dist
    r = size(equity=D(equity), entry_price=D(entry), stop_price=D(stop), risk_per_trade_pct=D(pct),
             daily_realized_pnl=D(daily))
    if not r.ok:
        return
    worst_loss = r.qty * (D(stop_dist) + D(entry) * D(14) / D(10000))
    assert worst_loss <= D(equity) * D(pct) / 100 + D("1e-9")
    assert worst_loss <= LIMITS.remaining_daily_loss(D(daily)) + D("1e-9")
    assert r.qty * D(entry) <= LIMITS.max_position_notional_usd
    assert r.qty * D(entry) <= D(equity) * LIMITS.max_leverage
    assert r.qty % D("0.0001") == 0 and r.qty >= D("0.0001")
