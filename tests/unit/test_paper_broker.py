from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from laptop_agents.core.config_models import PaperSettings
from laptop_agents.core.models import OrderIntent, Side
from laptop_agents.paper.broker import PaperBroker
from tests.unit.helpers import T0, candle, flat

D = Decimal
SETTINGS = PaperSettings(starting_equity=D("10000"), maker_fee_bps=D("2"), taker_fee_bps=D("6"), slippage_bps=D("1"))


def long_intent(qty: str = "0.1", stop: str = "99000", tp: str = "101000") -> OrderIntent:
    return OrderIntent(Side.LONG, D(qty), D(stop), D(tp), D("100000"))


def test_market_entry_fills_at_close_with_adverse_slippage_and_taker_fee() -> None:
    b = PaperBroker(SETTINGS)
    events = b.submit(long_intent(), flat(0, "100000"), T0)
    assert [e.name for e in events] == ["OrderSubmitted", "ExecutionFill"]
    # 1 bp of 100000 = 10 → buy at 100010.0 (tick-rounded up)
    assert b.position is not None and b.position.entry_price == D("100010.0")
    assert b.position.entry_fee == D("6.00060000")  # 0.1 * 100010 * 6 / 10000
    assert b.equity == D("10000") - D("6.00060000")


def test_short_entry_slips_down() -> None:
    b = PaperBroker(SETTINGS)
    b.submit(OrderIntent(Side.SHORT, D("0.1"), D("101000"), D("99000"), D("100000")), flat(0, "100000.05"), T0)
    assert b.position is not None and b.position.entry_price == D("99990.0")


def test_take_profit_fills_at_target_with_maker_fee() -> None:
    b = PaperBroker(SETTINGS)
    b.submit(long_intent(), flat(0, "100000"), T0)
    events, trade = b.on_candle(candle(1, "100100", "101500", "100050", "101200"), T0)
    assert trade is not None and trade.exit_reason == "take_profit" and trade.exit_price == D("101000")
    assert trade.gross_pnl == D("99.00000000")  # (101000 - 100010) * 0.1
    assert trade.fees == D("6.00060000") + D("2.02000000")
    assert trade.pnl == trade.gross_pnl - trade.fees
    assert b.equity == D("10000") + trade.pnl
    assert events[0].name == "ExecutionExit" and events[0].data["reason"] == "take_profit"


def test_both_touched_in_one_candle_assumes_the_stop() -> None:
    b = PaperBroker(SETTINGS)
    b.submit(long_intent(), flat(0, "100000"), T0)
    _, trade = b.on_candle(candle(1, "100000", "101500", "98500", "100000"), T0)
    assert trade is not None and trade.exit_reason == "stop_loss"
    assert trade.exit_price == D("98990.1")  # the stop 99000 less 1 bp slippage (9.9), already on the tick

def test_gap_through_stop_fills_at_open() -> None:
    b = PaperBroker(SETTINGS)
    b.submit(long_intent(), flat(0, "100000"), T0)
    _, trade = b.on_candle(candle(1, "98000", "98100", "97900", "98050"), T0)
    assert trade is not None and trade.exit_reason == "stop_loss"
    assert trade.exit_price == D("97990.2")  # 98000 - 9.8 slippage → floor to tick


def test_short_stop_and_target() -> None:
    b = PaperBroker(SETTINGS)
    b.submit(OrderIntent(Side.SHORT, D("0.1"), D("101000"), D("99000"), D("100000")), flat(0, "100000"), T0)
    _, trade = b.on_candle(candle(1, "100000", "100500", "98900", "99000"), T0)
    assert trade is not None and trade.exit_reason == "take_profit" and trade.exit_price == D("99000")
    b.submit(OrderIntent(Side.SHORT, D("0.1"), D("101000"), D("99000"), D("100000")), flat(2, "100000"), T0)
    _, trade = b.on_candle(candle(3, "100000", "101200", "98800", "100000"), T0)
    assert trade is not None and trade.exit_reason == "stop_loss"


def test_no_exit_on_the_entry_candle_and_bars_held_counts() -> None:
    b = PaperBroker(SETTINGS)
    b.submit(long_intent(), flat(0, "100000"), T0)
    _, trade = b.on_candle(flat(1, "100000"), T0)
    assert trade is None and b.position is not None and b.position.bars_held == 1


def test_close_all_uses_last_price_and_refuses_double_entry() -> None:
    b = PaperBroker(SETTINGS)
    b.submit(long_intent(), flat(0, "100000"), T0)
    with pytest.raises(RuntimeError):
        b.submit(long_intent(), flat(0, "100000"), T0)
    b.on_candle(flat(1, "100500"), T0)
    events, trade = b.close_all("shutdown", T0)
    assert trade is not None and trade.exit_reason == "shutdown" and trade.exit_price == D("100489.9")
    assert b.position is None
    assert b.close_all("shutdown", T0) == ([], None)


def test_state_round_trip_and_tamper_detection() -> None:
    b = PaperBroker(SETTINGS)
    b.submit(long_intent(), flat(0, "100000"), T0)
    b.on_candle(candle(1, "100100", "101500", "100050", "101200"), T0)
    b.submit(long_intent(), flat(2, "100000"), T0)
    restored = PaperBroker.from_state(SETTINGS, b.to_state())
    assert restored.to_state() == b.to_state()
    assert restored.position == b.position and restored.trades == b.trades
    data = b.to_state()
    data["equity"] = str(D(data["equity"]) + D("0.00000001"))
    with pytest.raises(ValueError, match="disagrees"):
        PaperBroker.from_state(SETTINGS, data)


prices = st.integers(min_value=90000, max_value=110000)


@st.composite
def bars(draw: st.DrawFn) -> tuple[int, int, int, int]:
    a, b2, c, d = (draw(prices) for _ in range(4))
    lo, hi = min(a, b2, c, d), max(a, b2, c, d)
    return a, hi, lo, d


@settings(max_examples=150, deadline=None)
@given(
    steps=st.lists(
        st.tuples(bars(), st.sampled_from(["none", "long", "short", "close"]), st.integers(1, 50),
                  st.integers(100, 3000), st.integers(100, 6000)),
        min_size=1, max_size=40,
    ),
    fees=st.tuples(st.integers(0, 20), st.integers(0, 20), st.integers(0, 50)),
)
def test_equity_always_equals_start_plus_trade_pnl(steps, fees) -> None:  # type: ignore[no-untyped-def]
    """The accounting invariant holds after every step, with exact Decimal equality."""
    maker, taker, slip = fees
    b = PaperBroker(PaperSettings(maker_fee_bps=D(maker), taker_fee_bps=D(taker), slippage_bps=D(slip)))
    for i, ((o, h, low, c), action, qty, sl_dist, tp_dist) in enumerate(steps):
        bar = candle(i, str(o), str(h), str(low), str(c))
        b.on_candle(bar, T0)
        if action in ("long", "short") and b.position is None:
            side = Side.LONG if action == "long" else Side.SHORT
            sign = side.sign
            intent = OrderIntent(side, D(qty) / 10000, D(c - sign * sl_dist), D(c + sign * tp_dist), D(c))
            b.submit(intent, bar, T0)
        elif action == "close":
            b.close_position("manual", bar.close, bar.ts, T0)
        b.verify_accounting()
        open_fee = b.position.entry_fee if b.position else D(0)
        assert b.equity == b.starting_equity + sum((t.pnl for t in b.trades), D(0)) - open_fee
        for t in b.trades:
            assert t.pnl == t.gross_pnl - t.fees
    b.close_all("end", T0)
    assert b.equity == b.starting_equity + sum((t.pnl for t in b.trades), D(0))
    assert PaperBroker.from_state(b.settings, b.to_state()).equity == b.equity
