"""TP/SL orders (tpsl/*): our client against the mock exchange in every dialect preset, asserted from the
mock's ledger (its ``tpsl`` records, fills and the account's pending TP/SL orders), not from our own books.

One round trip per preset covers place → pending → modify → read back → cancel → gone, the documented
refusals with their Bitunix codes, a partial TP/SL that really triggers on price and closes only its quantity,
and the single position TP/SL that closes the whole position.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from laptop_agents.bitunix import (
    BitunixRestClient,
    Credentials,
    InvalidRequestError,
    OrderNotFoundError,
    OrderRejectedError,
    OrderSide,
    OrderType,
    PlaceOrderRequest,
    PositionNotFoundError,
    PositionTpslRequest,
    StopType,
    TpslLeg,
    TpslModifyRequest,
    TpslOrderRequest,
    new_client_id,
)
from laptop_agents.mock_exchange.testing import running_mock_exchange
from tests.live.conftest import KEY, SECRET, price_of, rest_config, run

pytestmark = pytest.mark.dialects  # once per mock dialect preset (docs/bitunix-dialects.md)

QTY = Decimal("0.01")
SYMBOL = "BTCUSDT"


def _legs(price: Decimal, qty: Decimal, shift: Decimal = Decimal(0)) -> tuple[TpslLeg, TpslLeg]:
    tp = TpslLeg((price * Decimal("1.05")).quantize(Decimal("0.1")) + shift, StopType.MARK_PRICE, qty=qty)
    sl = TpslLeg((price * Decimal("0.95")).quantize(Decimal("0.1")) + shift, StopType.LAST_PRICE, qty=qty)
    return tp, sl


def test_tpsl_orders_round_trip_refusals_and_triggers_on_the_mock(mock_dialect) -> None:
    with running_mock_exchange(seed=7, time_scale=0) as mx:
        cfg = mx.config
        price = price_of(mx)

        async def scenario() -> tuple[int, Decimal]:
            async with BitunixRestClient(rest_config(mx), Credentials(KEY, SECRET)) as c:
                await c.place_order(PlaceOrderRequest(symbol=SYMBOL, side=OrderSide.BUY, qty=QTY,
                                                      order_type=OrderType.MARKET, client_id=new_client_id()))
                (pos,) = await c.get_pending_positions(SYMBOL)
                tp, sl = _legs(price, QTY)
                ack = await c.place_tpsl_order(TpslOrderRequest(SYMBOL, pos.position_id, tp=tp, sl=sl))
                pending = await c.get_pending_tpsl_orders(SYMBOL, position_id=pos.position_id)
                # what the exchange holds, whatever the answer said (one id, or one per leg)
                assert {o.order_id for o in pending} >= set(ack.order_ids)
                assert len(pending) == (2 if cfg.tpsl_legs == "split" else 1)
                assert [o.tp for o in pending if o.tp] == [tp] and [o.sl for o in pending if o.sl] == [sl]
                assert len(ack.order_ids) == (len(pending) if cfg.tpsl_place_response == "list" else 1)

                # modify: a full statement of each order's own legs (valid under merge and replace)
                tp2, sl2 = _legs(price, QTY, shift=Decimal("3.0"))
                for o in pending:
                    done = await c.modify_tpsl_order(TpslModifyRequest(o.order_id, tp=tp2 if o.tp else None,
                                                                       sl=sl2 if o.sl else None))
                    assert done.order_id == o.order_id
                after = await c.get_pending_tpsl_orders(SYMBOL, position_id=pos.position_id)
                assert sorted(o.order_id for o in after) == sorted(o.order_id for o in pending)
                assert [o.tp for o in after if o.tp] == [tp2] and [o.sl for o in after if o.sl] == [sl2]

                # refusals carry Bitunix's codes
                with pytest.raises(OrderNotFoundError):  # 20007
                    await c.modify_tpsl_order(TpslModifyRequest("999", tp=tp2))
                with pytest.raises(OrderRejectedError) as bad:  # a long's TP below the price
                    await c.place_tpsl_order(TpslOrderRequest(SYMBOL, pos.position_id,
                                                              tp=TpslLeg(price - 100, qty=QTY)))
                assert bad.value.code == 30020
                with pytest.raises(OrderRejectedError) as bad:  # more than the position
                    await c.place_tpsl_order(TpslOrderRequest(SYMBOL, pos.position_id, sl=TpslLeg(sl.price, qty=QTY * 2)))
                assert bad.value.code == 30038
                with pytest.raises(PositionNotFoundError):  # 30004
                    await c.place_tpsl_order(TpslOrderRequest(SYMBOL, "123", tp=tp))

                for o in after:
                    assert (await c.cancel_tpsl_order(SYMBOL, o.order_id)).order_id == o.order_id
                assert await c.get_pending_tpsl_orders(SYMBOL) == []
                with pytest.raises(OrderNotFoundError):  # cancelled means gone
                    await c.cancel_tpsl_order(SYMBOL, after[0].order_id)

                # a partial TP/SL fires on price and closes only its quantity
                part = TpslLeg(price + 50, qty=Decimal("0.004"))
                await c.place_tpsl_order(TpslOrderRequest(SYMBOL, pos.position_id, tp=part))
                return len(pending), tp2.price

        n_pending, tp2_price = run(scenario)
        ledger_tpsl = mx.admin.events("tpsl", account=KEY)
        assert [r["reason"] for r in ledger_tpsl if r["event"] == "CLOSE"] == ["cancel"] * n_pending
        assert [Decimal(r["tpPrice"]) for r in ledger_tpsl if r["event"] == "UPDATE" and r["tpPrice"]] == [tp2_price]
        mx.admin.set_price(price + 60)
        fills = [f for f in mx.admin.events("fill", account=KEY) if f["reason"] == "tp"]
        assert [(f["qty"], f["side"]) for f in fills] == [("0.004", "SELL")]
        account = mx.admin.account(KEY)
        assert account["positions"][0]["qty"] == "0.006" and account["tpslOrders"] == []

        # the position TP/SL: one per position, whole position, at market
        async def position_tpsl() -> str:
            async with BitunixRestClient(rest_config(mx), Credentials(KEY, SECRET)) as c:
                (pos,) = await c.get_pending_positions(SYMBOL)
                now = price_of(mx)
                req = PositionTpslRequest(SYMBOL, pos.position_id, sl=TpslLeg(now - 40, StopType.MARK_PRICE))
                await c.place_position_tpsl(req)
                with pytest.raises(InvalidRequestError):  # a second one on the same position
                    await c.place_position_tpsl(req)
                moved = PositionTpslRequest(SYMBOL, pos.position_id, sl=TpslLeg(now - 20, StopType.MARK_PRICE))
                await c.modify_position_tpsl(moved)
                (held,) = await c.get_pending_tpsl_orders(SYMBOL)
                assert held.sl is not None and held.sl.price == now - 20 and held.tp is None
                return str(now - 25)

        mx.admin.set_price(run(position_tpsl))
        account = mx.admin.account(KEY)
        assert account["positions"] == [] and account["tpslOrders"] == []
        (trigger,) = [t for t in mx.admin.events("trigger", account=KEY) if t["kind"] == "sl"]
        assert trigger["qty"] == "0.006"
