"""The matching engine as pure logic: fills, fees, margin, order rules, TP/SL, liquidation, modes."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from laptop_agents.mock_exchange.config import SymbolSpec
from laptop_agents.mock_exchange.engine import FeeSchedule, MatchingEngine, OrderRef
from laptop_agents.mock_exchange.errors import ApiError
from laptop_agents.mock_exchange.models import (
    CancelEvent,
    Effect,
    FillEvent,
    MarginMode,
    OrderEvent,
    OrderStatus,
    OrderType,
    PlaceOrderRequest,
    PositionEvent,
    PositionSide,
    Role,
    Side,
    TpSl,
    TradeSide,
    TriggerEvent,
)

T0 = 1_736_121_600_000


def make_engine(balance: str = "10000", mode: str = "ONE_WAY", liquidation: bool = True) -> MatchingEngine:
    eng = MatchingEngine([SymbolSpec()], FeeSchedule.from_bps(2, 6), liquidation=liquidation)
    eng.add_account("k", "s", D(balance), mode)
    eng.on_price("BTCUSDT", D("95000"), T0)
    return eng


def order(side: str, qty: str, order_type: str = "MARKET", price: str | None = None, **kw) -> PlaceOrderRequest:
    return PlaceOrderRequest(
        symbol=kw.pop("symbol", "BTCUSDT"),
        side=Side(side),
        qty=D(qty),
        order_type=OrderType(order_type),
        price=D(price) if price else None,
        **kw,
    )


def equity_identity(eng: MatchingEngine) -> None:
    acct = eng.accounts["k"]
    assert acct.available + acct.frozen + acct.margin == acct.wallet
    assert acct.wallet == acct.starting_balance + sum(t.realized_pnl - t.fee for t in acct.trades)


def test_market_buy_fills_at_current_price_with_taker_fee() -> None:
    eng = make_engine()
    o, events = eng.place_order("k", order("BUY", "0.01"), T0)
    assert o.status is OrderStatus.FILLED and o.trade_qty == D("0.01")
    fill = next(e for e in events if isinstance(e, FillEvent))
    assert fill.trade.price == D("95000") and fill.trade.role is Role.TAKER
    assert fill.trade.fee == D("0.57")  # 950 notional * 6 bps
    acct = eng.accounts["k"]
    assert acct.wallet == D("9999.43")
    assert acct.margin == D("47.5")  # 950 / 20x
    assert acct.available == D("9999.43") - D("47.5")
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["OrderEvent", "FillEvent", "OrderEvent", "PositionEvent", "BalanceEvent"]
    equity_identity(eng)


def test_round_trip_changes_wallet_by_exactly_pnl_minus_fees() -> None:
    eng = make_engine()
    eng.place_order("k", order("BUY", "0.02"), T0)
    eng.on_price("BTCUSDT", D("95500.5"), T0 + 1000)
    _, events = eng.place_order("k", order("SELL", "0.02"), T0 + 1000)
    close = next(e for e in events if isinstance(e, FillEvent)).trade
    assert close.realized_pnl == D("0.02") * D("500.5")
    acct = eng.accounts["k"]
    assert not acct.positions
    assert acct.wallet == D("10000") + close.realized_pnl - close.fee - D("1.14")
    equity_identity(eng)


def test_limit_order_rests_freezes_margin_and_fills_when_crossed_as_maker() -> None:
    eng = make_engine()
    o, events = eng.place_order("k", order("BUY", "0.1", "LIMIT", "94000"), T0)
    assert o.status is OrderStatus.NEW and o.frozen == D("470")
    assert eng.accounts["k"].frozen == D("470")
    assert not eng.on_price("BTCUSDT", D("94000.1"), T0 + 1000)
    events = eng.on_price("BTCUSDT", D("93990"), T0 + 2000)
    fill = next(e for e in events if isinstance(e, FillEvent)).trade
    assert fill.price == D("94000") and fill.role is Role.MAKER and fill.fee == D("1.88")
    assert o.status is OrderStatus.FILLED and eng.accounts["k"].frozen == 0
    equity_identity(eng)


def test_marketable_limit_takes_at_current_price() -> None:
    eng = make_engine()
    _, events = eng.place_order("k", order("BUY", "0.01", "LIMIT", "96000"), T0)
    fill = next(e for e in events if isinstance(e, FillEvent)).trade
    assert fill.price == D("95000") and fill.role is Role.TAKER


@pytest.mark.parametrize(
    ("effect", "reason"),
    [(Effect.IOC, "not_marketable_ioc"), (Effect.FOK, "not_marketable_fok")],
)
def test_ioc_fok_not_marketable_are_cancelled(effect: Effect, reason: str) -> None:
    eng = make_engine()
    o, events = eng.place_order("k", order("BUY", "0.01", "LIMIT", "90000", effect=effect), T0)
    assert o.status is OrderStatus.SYSTEM_CANCELED  # the exchange cancelled it, not the user
    assert next(e for e in events if isinstance(e, CancelEvent)).reason == reason


def test_post_only_that_would_take_is_cancelled_not_filled() -> None:
    eng = make_engine()
    o, _ = eng.place_order("k", order("SELL", "0.01", "LIMIT", "94000", effect=Effect.POST_ONLY), T0)
    assert o.status is OrderStatus.SYSTEM_CANCELED and not eng.accounts["k"].trades


@pytest.mark.parametrize(
    ("req", "code"),
    [
        (order("BUY", "0.00009"), 30016),
        (order("BUY", "0.00015"), 10008),
        (order("BUY", "0"), 10002),
        (order("BUY", "-1"), 10002),
        (order("BUY", "50001"), 30039),
        (order("BUY", "100001", "LIMIT", "90000"), 30013),
        (order("BUY", "0.01", "LIMIT"), 10002),
        (order("BUY", "0.01", "LIMIT", "90000.05"), 10008),
        (order("BUY", "0.01", symbol="ETHUSDT"), 20001),
        (order("BUY", "100"), 20003),
        (order("SELL", "0.01", reduce_only=True), 30018),
        (order("SELL", "0.01", trade_side=TradeSide.CLOSE), 30004),
        (order("SELL", "0.01", trade_side=TradeSide.CLOSE, position_id="nope"), 30004),
        (order("BUY", "0.01", tpsl=TpSl(tp_price=D("94000"))), 30020),
        (order("BUY", "0.01", tpsl=TpSl(sl_price=D("96000"))), 30021),
        (order("SELL", "0.01", tpsl=TpSl(tp_price=D("96000"))), 30020),
        (order("BUY", "0.01", tpsl=TpSl(sl_price=D("-1"))), 30041),
    ],
)
def test_order_rules(req: PlaceOrderRequest, code: int) -> None:
    eng = make_engine()
    with pytest.raises(ApiError) as info:
        eng.place_order("k", req, T0)
    assert info.value.code == code
    assert not eng.accounts["k"].orders  # refused orders leave no trace in the book


def test_insufficient_balance_counts_margin_and_fee() -> None:
    eng = make_engine(balance="100")
    # 0.0210 BTC = 1995 notional -> 99.75 margin + 1.197 fee > 100
    with pytest.raises(ApiError) as info:
        eng.place_order("k", order("BUY", "0.021"), T0)
    assert info.value.code == 20003
    eng.place_order("k", order("BUY", "0.02"), T0)  # 95 margin + 1.14 fee fits


def test_duplicate_client_id_is_30042_even_when_the_retry_would_fail_otherwise() -> None:
    eng = make_engine()
    eng.place_order("k", order("BUY", "0.01", client_id="abc"), T0)
    with pytest.raises(ApiError) as info:
        eng.place_order("k", order("BUY", "1000", client_id="abc"), T0)
    assert info.value.code == 30042
    # A refused order does not burn its clientId.
    with pytest.raises(ApiError):
        eng.place_order("k", order("BUY", "1000", client_id="fresh"), T0)
    eng.place_order("k", order("BUY", "0.01", client_id="fresh"), T0)


def test_one_way_netting_reduces_then_flips() -> None:
    eng = make_engine()
    eng.place_order("k", order("BUY", "0.03"), T0)
    _, events = eng.place_order("k", order("SELL", "0.05"), T0)
    pos_events = [e for e in events if isinstance(e, PositionEvent)]
    assert [e.event for e in pos_events] == ["CLOSE", "OPEN"]
    acct = eng.accounts["k"]
    (pos,) = acct.positions.values()
    assert pos.side is PositionSide.SHORT and pos.qty == D("0.02")
    equity_identity(eng)


def test_reduce_only_rules_in_one_way_mode() -> None:
    eng = make_engine()
    eng.place_order("k", order("BUY", "0.03"), T0)
    with pytest.raises(ApiError) as info:
        eng.place_order("k", order("BUY", "0.01", reduce_only=True), T0)
    assert info.value.code == 30019
    o, _ = eng.place_order("k", order("SELL", "0.05", reduce_only=True), T0)
    assert o.trade_qty == D("0.03") and o.status is OrderStatus.PART_FILLED_CANCELED
    assert not eng.accounts["k"].positions


@pytest.mark.parametrize(
    ("convention", "accepted", "refused"),
    [("position", "BUY", "SELL"), ("exit", "SELL", "BUY"), ("either", "SELL", None)],
)
@pytest.mark.parametrize("mode", ["ONE_WAY", "HEDGE"])
def test_close_side_dialect_accepts_only_its_reading(mode: str, convention: str, accepted: str, refused) -> None:
    eng = make_engine(mode=mode)
    eng.close_side = convention
    eng.place_order("k", order("BUY", "0.03"), T0)
    pos_id = next(iter(eng.accounts["k"].positions.values())).position_id
    if refused is not None:
        with pytest.raises(ApiError) as exc:
            eng.place_order("k", order(refused, "0.03", trade_side=TradeSide.CLOSE, position_id=pos_id), T0)
        assert exc.value.code == 30004 and eng.accounts["k"].positions  # refused, nothing traded
    o, _ = eng.place_order("k", order(accepted, "0.03", trade_side=TradeSide.CLOSE, position_id=pos_id), T0)
    assert o.status is OrderStatus.FILLED and not eng.accounts["k"].positions
    trade = eng.accounts["k"].trades[-1]
    assert trade.trade_side is TradeSide.CLOSE and trade.reduced is PositionSide.LONG


def test_reduce_only_exit_side_closes_in_one_way_mode_under_every_convention() -> None:
    for convention in ("position", "exit", "either"):
        eng = make_engine()
        eng.close_side = convention
        eng.place_order("k", order("BUY", "0.03"), T0)
        o, _ = eng.place_order("k", order("SELL", "0.03", reduce_only=True), T0)
        assert o.status is OrderStatus.FILLED and not eng.accounts["k"].positions, convention


@pytest.mark.parametrize(("scope", "second_code"), [("forever", 30042), ("open_only", None)])
def test_duplicate_client_id_scope_dialect(scope: str, second_code) -> None:
    eng = make_engine()
    eng.duplicate_client_id = scope
    eng.place_order("k", order("SELL", "0.01", "LIMIT", "99000", client_id="c1"), T0)
    with pytest.raises(ApiError) as exc:  # while the first is open, every reading refuses
        eng.place_order("k", order("SELL", "0.01", "LIMIT", "99000", client_id="c1"), T0)
    assert exc.value.code == 30042
    eng.place_order("k", order("BUY", "0.01", client_id="c2"), T0)  # filled at once
    if second_code is None:
        eng.place_order("k", order("BUY", "0.01", client_id="c2"), T0)  # placed AGAIN: the danger
        assert len([t for t in eng.accounts["k"].trades if t.client_id == "c2"]) == 2
    else:
        with pytest.raises(ApiError) as exc:
            eng.place_order("k", order("BUY", "0.01", client_id="c2"), T0)
        assert exc.value.code == second_code


def test_hedge_mode_keeps_both_sides_and_closes_with_the_positions_side() -> None:
    eng = make_engine(mode="HEDGE")
    eng.place_order("k", order("BUY", "0.02"), T0)
    eng.place_order("k", order("SELL", "0.01"), T0)
    acct = eng.accounts["k"]
    assert {p.side for p in acct.positions.values()} == {PositionSide.LONG, PositionSide.SHORT}
    long_id = acct.positions[("BTCUSDT", PositionSide.LONG)].position_id
    # Page: close a long with side=BUY, tradeSide=CLOSE, positionId.
    o, _ = eng.place_order("k", order("BUY", "0.02", trade_side=TradeSide.CLOSE, position_id=long_id), T0)
    assert o.status is OrderStatus.FILLED
    assert set(acct.positions) == {("BTCUSDT", PositionSide.SHORT)}
    # Without positionId, side names the position (SELL closes the short).
    eng.place_order("k", order("SELL", "0.01", trade_side=TradeSide.CLOSE), T0)
    assert not acct.positions
    equity_identity(eng)


def test_attached_take_profit_closes_the_position() -> None:
    eng = make_engine()
    eng.place_order("k", order("BUY", "0.01", tpsl=TpSl(tp_price=D("96000"), sl_price=D("94000"))), T0)
    assert not eng.on_price("BTCUSDT", D("95999.9"), T0 + 1000)
    events = eng.on_price("BTCUSDT", D("96000.5"), T0 + 2000)
    trigger = next(e for e in events if isinstance(e, TriggerEvent))
    fill = next(e for e in events if isinstance(e, FillEvent))
    assert trigger.kind == "tp" and fill.reason == "tp" and fill.trade.price == D("96000.5")
    assert fill.trade.realized_pnl == D("10.005")
    assert not eng.accounts["k"].positions
    equity_identity(eng)


def test_stop_loss_on_short_and_limit_tp_order_type() -> None:
    eng = make_engine()
    eng.place_order("k", order("SELL", "0.01", tpsl=TpSl(sl_price=D("95500"))), T0)
    events = eng.on_price("BTCUSDT", D("95600"), T0 + 1000)
    assert next(e for e in events if isinstance(e, TriggerEvent)).kind == "sl"
    assert not eng.accounts["k"].positions

    eng.place_order("k", order("BUY", "0.01", tpsl=TpSl(tp_price=D("96000"), tp_order_type=OrderType.LIMIT,
                                                        tp_order_price=D("96100"))), T0 + 2000)
    events = eng.on_price("BTCUSDT", D("96000"), T0 + 3000)
    assert any(isinstance(e, TriggerEvent) for e in events)
    assert eng.accounts["k"].positions  # the LIMIT close rests at 96100
    events = eng.on_price("BTCUSDT", D("96100"), T0 + 4000)
    fill = next(e for e in events if isinstance(e, FillEvent)).trade
    assert fill.price == D("96100") and fill.role is Role.MAKER
    assert not eng.accounts["k"].positions


def test_limit_order_attaches_tpsl_when_it_fills() -> None:
    eng = make_engine()
    eng.place_order("k", order("BUY", "0.01", "LIMIT", "94000", tpsl=TpSl(sl_price=D("93000"))), T0)
    eng.on_price("BTCUSDT", D("94000"), T0 + 1000)
    (pos,) = eng.accounts["k"].positions.values()
    (tpsl,) = eng.accounts["k"].tpsl_orders.values()  # the order's TP/SL became the position's TP/SL order
    assert tpsl.position_id == pos.position_id and tpsl.tpsl.sl_price == D("93000") and tpsl.sl_qty is None
    events = eng.on_price("BTCUSDT", D("92999"), T0 + 2000)
    assert any(isinstance(e, TriggerEvent) and e.kind == "sl" for e in events)


def test_isolated_liquidation() -> None:
    eng = make_engine()
    eng.change_margin_mode("k", "BTCUSDT", MarginMode.ISOLATION)
    eng.place_order("k", order("BUY", "0.1"), T0)
    pos = next(iter(eng.accounts["k"].positions.values()))
    liq = eng.liquidation_price(eng.accounts["k"], pos)
    assert liq is not None and D("90000") < liq < D("95000")
    assert not any(isinstance(e, TriggerEvent) for e in eng.on_price("BTCUSDT", liq + 1, T0 + 1000))
    events = eng.on_price("BTCUSDT", liq - D("0.1"), T0 + 2000)
    assert any(isinstance(e, TriggerEvent) and e.kind == "liquidation" for e in events)
    assert not eng.accounts["k"].positions
    equity_identity(eng)


def test_cancel_orders_reports_success_and_failure() -> None:
    eng = make_engine()
    a, _ = eng.place_order("k", order("BUY", "0.01", "LIMIT", "90000", client_id="a"), T0)
    filled, _ = eng.place_order("k", order("BUY", "0.01"), T0)
    done, failed, _ = eng.cancel_orders(
        "k", "BTCUSDT", [OrderRef(client_id="a"), OrderRef(order_id="404"), OrderRef(order_id=filled.order_id)], T0
    )
    assert [o.order_id for o in done] == [a.order_id] and a.status is OrderStatus.CANCELED
    assert [(f.order_id, f.code) for f in failed] == [("404", 20007), (filled.order_id, 30011)]
    assert eng.accounts["k"].frozen == 0


def test_close_all_and_flash_close() -> None:
    eng = make_engine(mode="HEDGE")
    eng.place_order("k", order("BUY", "0.01"), T0)
    eng.place_order("k", order("SELL", "0.02"), T0)
    closed, _ = eng.close_all_positions("k", "BTCUSDT", T0)
    assert len(closed) == 2 and not eng.accounts["k"].positions
    eng.place_order("k", order("BUY", "0.01"), T0)
    pid = next(iter(eng.accounts["k"].positions.values())).position_id
    pos, o, _ = eng.flash_close_position("k", pid, T0)
    assert pos.position_id == pid and o.status is OrderStatus.FILLED
    with pytest.raises(ApiError) as info:
        eng.flash_close_position("k", pid, T0)
    assert info.value.code == 30004


def test_leverage_and_mode_changes() -> None:
    eng = make_engine()
    with pytest.raises(ApiError) as info:
        eng.change_leverage("k", "BTCUSDT", 126, T0)
    assert info.value.code == 20005
    eng.change_leverage("k", "BTCUSDT", 10, T0)
    eng.place_order("k", order("BUY", "0.01"), T0)
    assert eng.accounts["k"].margin == D("95")
    eng.place_order("k", order("BUY", "0.01", "LIMIT", "90000"), T0)
    with pytest.raises(ApiError) as info:
        eng.change_leverage("k", "BTCUSDT", 5, T0)
    assert info.value.code == 20006
    with pytest.raises(ApiError):
        eng.change_position_mode("k", eng.accounts["k"].position_mode)


def test_order_events_follow_the_page_lifecycle() -> None:
    eng = make_engine()
    _, events = eng.place_order("k", order("BUY", "0.01", "LIMIT", "90000"), T0)
    assert [e.event for e in events if isinstance(e, OrderEvent)] == ["CREATE"]
    events = eng.on_price("BTCUSDT", D("89999"), T0 + 1)
    assert [e.event for e in events if isinstance(e, OrderEvent)] == ["CLOSE"]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["BUY", "SELL"]),
            st.integers(min_value=1, max_value=500),  # qty in lots of 0.0001
            st.integers(min_value=-3000, max_value=3000),  # price move in 0.1 steps
            st.booleans(),  # limit or market
        ),
        min_size=1,
        max_size=25,
    ),
    st.sampled_from(["ONE_WAY", "HEDGE"]),
)
def test_money_is_conserved_whatever_the_order_flow(flow, mode) -> None:
    eng = make_engine(mode=mode, liquidation=False)
    price = D("95000")
    ts = T0
    for side, lots, move, limit in flow:
        ts += 1000
        price = max(D("1000"), price + D(move) / 10)
        eng.on_price("BTCUSDT", price, ts)
        req = order(side, str(D(lots) / 10000), "LIMIT" if limit else "MARKET",
                    str((price - D(move) / 20).quantize(D("0.1"))) if limit else None)
        try:
            eng.place_order("k", req, ts)
        except ApiError as exc:
            assert exc.code == 20003
        equity_identity(eng)
    eng.cancel_all_orders("k", None, ts)
    eng.close_all_positions("k", None, ts)
    acct = eng.accounts["k"]
    assert not acct.positions and acct.frozen == 0 and acct.margin == 0
    assert acct.available == acct.wallet
    equity_identity(eng)
