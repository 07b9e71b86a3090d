"""Parsing at the edge: tolerant where the contract is unsure, strict elsewhere."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from laptop_agents.bitunix.enums import (
    MarginMode,
    OrderSide,
    OrderStatus,
    OrderType,
    PositionMode,
    PositionSide,
    RoleType,
    SymbolStatus,
    TimeInForce,
    TradeSide,
)
from laptop_agents.bitunix.errors import MalformedMessage
from laptop_agents.bitunix.schemas import (
    PlaceOrderRequest,
    WsBalancePush,
    WsConnect,
    WsKline,
    WsLoginAck,
    WsOrderPush,
    WsPong,
    WsPositionPush,
    WsUnhandled,
    parse_account,
    parse_cancel_result,
    parse_klines,
    parse_order,
    parse_order_ack,
    parse_order_page,
    parse_positions,
    parse_tickers,
    parse_trade_page,
    parse_trading_pairs,
    parse_ws_message,
)

T0 = 1732178880000


# -- klines ------------------------------------------------------------------------


def test_klines_accept_numbers_or_strings_and_are_sorted_by_time() -> None:
    data = [
        {"open": 101.5, "high": 103, "low": 100, "close": 102, "time": T0 + 60_000,
         "quoteVol": 1000.5, "baseVol": 10, "type": "LAST_PRICE"},
        {"open": "100.0", "high": "101.9", "low": "99.5", "close": "101.5", "time": str(T0),
         "quoteVol": "900", "baseVol": "9"},
    ]
    klines = parse_klines(data)
    assert [k.open_ms for k in klines] == [T0, T0 + 60_000]
    first, second = klines
    assert first.open == Decimal("100.0") and first.high == Decimal("101.9")
    assert second.open == Decimal("101.5") and second.quote_volume == Decimal("1000.5")
    candle = first.to_candle("BTCUSDT")
    assert candle.ts == datetime(2024, 11, 21, 8, 48, tzinfo=UTC)
    assert candle.volume == Decimal("9") and candle.symbol == "BTCUSDT"


def test_klines_duplicate_times_keep_the_last_snapshot() -> None:
    bar = {"open": "1", "high": "2", "low": "1", "close": "1.5", "time": T0}
    later = dict(bar, close="1.9")
    (only,) = parse_klines([bar, later])
    assert only.close == Decimal("1.9")


def test_kline_time_in_seconds_or_iso_is_tolerated() -> None:
    bar = {"open": "1", "high": "2", "low": "1", "close": "1.5"}
    assert parse_klines([dict(bar, time=T0 // 1000)])[0].open_ms == T0
    assert parse_klines([dict(bar, time="2024-11-21T08:48:00Z")])[0].open_ms == T0


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"high": "2", "low": "1", "close": "1", "time": T0}, "open"),
        ({"open": "x", "high": "2", "low": "1", "close": "1", "time": T0}, "open"),
        ({"open": "NaN", "high": "2", "low": "1", "close": "1", "time": T0}, "open"),
        ({"open": True, "high": "2", "low": "1", "close": "1", "time": T0}, "open"),
        ({"open": "1", "high": "2", "low": "1", "close": "1", "time": -5}, "time"),
        ({"open": "3", "high": "2", "low": "1", "close": "1", "time": T0}, "ohlc"),
        ({"open": "1", "high": "2", "low": "1", "close": "1", "time": T0 * 10**9}, "time"),
        ({"open": "1e999999", "high": "2", "low": "1", "close": "1", "time": T0}, "open"),
    ],
)
def test_bad_kline_is_malformed_with_context(bad: dict, field: str) -> None:
    with pytest.raises(MalformedMessage) as info:
        parse_klines([bad])
    assert info.value.kind == "rest.kline"
    assert info.value.field == field


def test_kline_list_must_be_a_list() -> None:
    with pytest.raises(MalformedMessage):
        parse_klines({"open": 1})


# -- trading pairs, tickers ----------------------------------------------------------


def test_trading_pair_with_btcusdt_example_values() -> None:
    (pair,) = parse_trading_pairs([{
        "symbol": "BTCUSDT", "base": "BTC", "quote": "USDT", "minTradeVolume": "0.0001",
        "minBuyPriceOffset": "-0.1", "maxSellPriceOffset": "0.1",
        "maxLimitOrderVolume": "100000", "maxMarketOrderVolume": "50000",
        "basePrecision": 4, "quotePrecision": "1", "minLeverage": 1, "maxLeverage": 125,
        "defaultLeverage": 20, "defaultMarginMode": "Cross", "priceProtectScope": "0.02",
        "symbolStatus": "open",
    }])
    assert pair.min_trade_volume == Decimal("0.0001")
    assert pair.qty_step == Decimal("0.0001") and pair.price_tick == Decimal("0.1")
    assert (pair.min_leverage, pair.max_leverage, pair.default_leverage) == (1, 125, 20)
    assert pair.status is SymbolStatus.OPEN
    assert pair.default_margin_mode is MarginMode.CROSS


def test_ticker_accepts_last_or_last_price() -> None:
    a, b = parse_tickers([
        {"symbol": "BTCUSDT", "markPrice": "60000.1", "lastPrice": "60000.5"},
        {"symbol": "ETHUSDT", "last": 3000},
    ])
    assert a.last_price == Decimal("60000.5") and a.mark_price == Decimal("60000.1")
    assert b.last_price == Decimal("3000") and b.mark_price is None


# -- account ----------------------------------------------------------------------------

ACCOUNT = {
    "marginCoin": "USDT", "available": "1000.5", "frozen": "0", "margin": "10",
    "transfer": "990", "positionMode": "ONE_WAY", "crossUnrealizedPNL": "1.5",
    "isolationUnrealizedPNL": 0, "bonus": "0",
}


def test_account_as_object_or_list() -> None:
    as_object = parse_account(ACCOUNT, "USDT")
    as_list = parse_account([ACCOUNT], "USDT")
    assert as_object == as_list
    assert as_object.available == Decimal("1000.5")
    assert as_object.position_mode is PositionMode.ONE_WAY
    assert parse_account([ACCOUNT]).margin_coin == "USDT"


def test_account_list_picks_the_requested_coin() -> None:
    other = dict(ACCOUNT, marginCoin="USDC", available="5")
    assert parse_account([other, ACCOUNT], "usdt").available == Decimal("1000.5")


def test_account_list_without_the_coin_or_empty_is_malformed() -> None:
    with pytest.raises(MalformedMessage):
        parse_account([], "USDT")
    with pytest.raises(MalformedMessage):
        parse_account([dict(ACCOUNT, marginCoin="USDC")], "USDT")


# -- orders, positions, trades ------------------------------------------------------------

ORDER = {
    "orderId": "11111", "symbol": "BTCUSDT", "qty": "0.0010", "tradeQty": "0.001",
    "positionMode": "HEDGE", "marginMode": "ISOLATION", "leverage": 20, "price": "60000",
    "side": "Buy", "orderType": "limit", "effect": "GTC", "clientId": "c1", "reduceOnly": False,
    "status": "FILLED", "fee": "-0.036", "realizedPNL": "0", "tpPrice": "65000",
    "tpStopType": "MARK_PRICE", "slPrice": None, "ctime": 1732178880000,
    "mtime": "2024-11-21T08:48:05.250Z",
}


def test_order_parses_with_case_insensitive_enums_and_mixed_times() -> None:
    order = parse_order(ORDER)
    assert order.side is OrderSide.BUY and order.order_type is OrderType.LIMIT
    assert order.status is OrderStatus.FILLED and not order.status.is_open
    assert order.effect is TimeInForce.GTC and order.margin_mode is MarginMode.ISOLATION
    assert order.qty == Decimal("0.001") and order.filled_qty == Decimal("0.001")
    assert order.sl_price is None and order.tp_price == Decimal("65000")
    assert order.created == datetime(2024, 11, 21, 8, 48, tzinfo=UTC)
    assert order.updated == datetime(2024, 11, 21, 8, 48, 5, 250000, tzinfo=UTC)


def test_order_with_unknown_status_is_malformed() -> None:
    with pytest.raises(MalformedMessage) as info:
        parse_order(dict(ORDER, status="WHATEVER"))
    assert info.value.field == "status"


def test_order_page_and_ack_and_cancel_result() -> None:
    page = parse_order_page({"orderList": [ORDER], "total": "1"})
    assert page.total == 1 and page.orders[0].client_id == "c1"
    assert parse_order_page({"orderList": None}).orders == ()
    assert parse_order_ack({"orderId": 123, "clientId": "c1"}).order_id == "123"
    result = parse_cancel_result({
        "successList": [{"orderId": "1", "clientId": "a"}],
        "failureList": [{"orderId": "2", "errorMsg": "not found", "errorCode": "20007"}],
    })
    assert [s.order_id for s in result.succeeded] == ["1"]
    assert result.failed[0].error_code == 20007


def test_positions_and_trades() -> None:
    (pos,) = parse_positions([{
        "positionId": "p1", "symbol": "BTCUSDT", "qty": "0.5", "entryValue": "30000",
        "side": "long", "marginMode": "CROSS", "positionMode": "ONE_WAY", "leverage": "10",
        "fee": "1", "funding": "0", "realizedPNL": "0", "margin": "3000",
        "unrealizedPNL": "12.5", "liqPrice": "40000", "marginRate": "0.01",
        "avgOpenPrice": "60000", "ctime": T0, "mtime": T0,
    }])
    assert pos.side is PositionSide.LONG and pos.leverage == 10
    assert parse_positions(None) == []
    trades = parse_trade_page({"tradeList": [{
        "tradeId": "t1", "orderId": "11111", "symbol": "BTCUSDT", "qty": "0.001",
        "price": "60000", "side": "SELL", "orderType": "MARKET", "fee": "0.036",
        "realizedPNL": "1.2", "ctime": T0, "roleType": "taker", "reduceOnly": "true",
    }], "total": 1})
    (trade,) = trades.trades
    assert trade.role is RoleType.TAKER and trade.reduce_only is True


# -- outbound ------------------------------------------------------------------------------


def test_place_order_body_is_wire_ready() -> None:
    req = PlaceOrderRequest(
        symbol="BTCUSDT", side=OrderSide.BUY, qty=Decimal("0.0010"), order_type=OrderType.LIMIT,
        price=Decimal("60000.0"), effect=TimeInForce.POST_ONLY, client_id="c1",
        sl_price=Decimal("59000"),
    )
    assert req.to_body() == {
        "symbol": "BTCUSDT", "side": "BUY", "tradeSide": "OPEN", "qty": "0.0010",
        "orderType": "LIMIT", "price": "60000.0", "effect": "POST_ONLY", "clientId": "c1",
        "slPrice": "59000",
    }


def test_place_order_request_validation() -> None:
    with pytest.raises(ValueError):
        PlaceOrderRequest("BTCUSDT", OrderSide.BUY, Decimal("0"), OrderType.MARKET)
    with pytest.raises(ValueError):
        PlaceOrderRequest("BTCUSDT", OrderSide.BUY, Decimal("1"), OrderType.LIMIT)
    with pytest.raises(ValueError):
        PlaceOrderRequest("BTCUSDT", OrderSide.SELL, Decimal("1"), OrderType.MARKET,
                          trade_side=TradeSide.CLOSE)


# -- websocket -------------------------------------------------------------------------------

KLINE_PUSH = (
    '{"ch":"market_kline_1min","symbol":"BTCUSDT","ts":1732178884994,'
    '"data":{"o":"0.0010","c":"0.0020","h":"0.0025","l":"0.0015","b":"1.01","q":"1"}}'
)


def test_ws_kline_push_from_the_contract() -> None:
    push = parse_ws_message(KLINE_PUSH.replace('"l":"0.0015"', '"l":"0.0005"'))
    assert isinstance(push, WsKline)
    assert push.open_ms == 1732178880000 and push.ts_ms == 1732178884994
    assert push.close == Decimal("0.0020") and push.base_volume == Decimal("1.01")
    assert push.interval.rest == "1m" and push.price_type == "market"


def test_ws_kline_with_inconsistent_ohlc_is_malformed() -> None:
    with pytest.raises(MalformedMessage) as info:
        parse_ws_message(KLINE_PUSH)  # low 0.0015 above open 0.0010
    assert info.value.kind == "ws.kline.data"


def test_ws_control_messages() -> None:
    assert isinstance(parse_ws_message('{"op":"connect","data":{"result":true}}'), WsConnect)
    pong = parse_ws_message('{"op":"ping","pong":1732178884,"ping":1732178885}')
    assert pong == WsPong(pong=1732178884, server_time=1732178885)
    assert parse_ws_message('{"op":"login","data":{"result":true}}') == WsLoginAck(True)
    assert parse_ws_message('{"op":"login","data":{"result":false}}') == WsLoginAck(False)
    assert parse_ws_message('{"op":"login","code":10007}') == WsLoginAck(False)
    assert parse_ws_message('{"op":"subscribe","args":[]}') == WsUnhandled("op:subscribe")
    assert parse_ws_message('{"ch":"depth_book1","data":{}}') == WsUnhandled("ch:depth_book1")


@pytest.mark.parametrize(
    "raw",
    ["", "not json", "[]", "42", '{"x":1}', '{"op":5}', '{"ch":null}', b"\xff\xfe",
     '{"ch":"market_kline_1min","symbol":"BTCUSDT","ts":1,"data":"oops"}',
     '{"ch":"market_kline_1min","symbol":"BTCUSDT","data":{"o":1,"h":1,"l":1,"c":1}}',
     '{"op":"login"}', "[" * 5000 + "]" * 5000, '{"ts":' + "9" * 5000 + "}"],
)
def test_garbage_frames_raise_malformed(raw: str | bytes) -> None:
    with pytest.raises(MalformedMessage):
        parse_ws_message(raw)


def test_private_pushes() -> None:
    order = parse_ws_message({"ch": "order", "ts": T0, "data": {
        "event": "create", "orderId": "1", "symbol": "BTCUSDT", "side": "Sell", "type": "Market",
        "qty": "0.01", "reductionOnly": True, "orderStatus": "NEW", "ctime": "2024-11-21T08:48:00Z",
        "dealAmount": "0", "clientId": "c9",
    }})
    assert isinstance(order, WsOrderPush)
    assert order.side is OrderSide.SELL and order.order_type is OrderType.MARKET
    assert order.reduce_only and order.ts_ms == T0
    position = parse_ws_message({"ch": "position", "data": {
        "event": "OPEN", "positionId": "p", "symbol": "BTCUSDT", "side": "SHORT", "qty": "1"}})
    assert isinstance(position, WsPositionPush) and position.side is PositionSide.SHORT
    balance = parse_ws_message({"ch": "balance", "data": {"coin": "USDT", "available": 5}})
    assert isinstance(balance, WsBalancePush) and balance.available == Decimal("5")


def test_market_order_price_literal_means_no_price() -> None:
    order = parse_order(dict(ORDER, price="MARKET", orderType="MARKET"))
    assert order.price is None
    with pytest.raises(MalformedMessage):
        parse_order(dict(ORDER, price="LIMIT"))
