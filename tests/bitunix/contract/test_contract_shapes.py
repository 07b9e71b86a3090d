"""Contract tests from third-party shapes: fixtures written from the documented (or third-party observed)
request/response/push shapes are (1) parsed by our client to the right meaning and (2) produced by our mock,
field for field and JSON type for JSON type, in the dialect that reading belongs to.

The fixtures under ``fixtures/`` name their source; they were written by hand from the documentation pages
and the third-party clients' fixtures (facts, not code). See docs/bitunix-dialects.md.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from laptop_agents.bitunix.enums import OrderSide, OrderStatus, PositionSide, TradeSide
from laptop_agents.bitunix.market_schemas import parse_klines
from laptop_agents.bitunix.trading_schemas import (
    parse_account,
    parse_cancel_result,
    parse_order_ack,
    parse_order_page,
    parse_positions,
    parse_trade_page,
)
from laptop_agents.bitunix.ws_schemas import WsKline, WsOrderPush, WsPositionPush, parse_ws_message
from laptop_agents.core.models import Side
from laptop_agents.execution.bitunix_booking import is_closing_fill
from laptop_agents.execution.bitunix_broker import close_request
from laptop_agents.mock_exchange.testing import MockExchangeHandle, running_mock_exchange
from tests.mock_exchange.mx_client import run, signed_client

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


# --- (1) our client reads every documented shape to the right meaning -----------------------------------


def test_place_order_request_and_ack() -> None:
    f = fixture("place_order")
    assert parse_order_ack(f["response"]["data"]).order_id == "11111"
    body = close_request("BTCUSDT", Side.LONG, Decimal("0.5"), "c" * 32).to_body()
    # the close we send: no tradeSide/positionId (their side has two readings), reduce-only exit side
    assert body == {"symbol": "BTCUSDT", "side": "SELL", "qty": "0.5", "orderType": "MARKET",
                    "clientId": "c" * 32, "reduceOnly": True}
    doc_keys = set(f["request"])
    assert set(body) <= doc_keys, set(body) - doc_keys  # every field we send is a documented one


@pytest.mark.parametrize("name", ["history_trades_ccxt", "history_trades_docs"])
def test_closing_fills_are_found_by_trade_side_and_order_ids_not_side_alone(name: str) -> None:
    f = fixture(name)
    page = parse_trade_page(f["response"]["data"])
    entry = min(page.trades, key=lambda t: t.trade_id)
    closing = [t.trade_id for t in page.trades if is_closing_fill(t, Side.LONG, entry.order_id)]
    assert closing == f["closing"]
    if name == "history_trades_ccxt":  # the close carries the position's side, BUY: side alone would miss it
        close = next(t for t in page.trades if t.trade_id == "31")
        assert close.side is OrderSide.BUY and close.trade_side is TradeSide.CLOSE


def test_positions_account_orders_cancel_and_klines() -> None:
    (pos,) = parse_positions(fixture("pending_positions")["response"]["data"])
    assert pos.side is PositionSide.LONG and pos.created == datetime(2023, 8, 7, 4, 22, 17, 448000, UTC)
    acc = fixture("account")
    assert parse_account(acc["response_list"]["data"], "USDT").available == Decimal("1000")
    assert parse_account(acc["response_object"]["data"], "USDT").available == Decimal("1000")
    (order,) = parse_order_page(fixture("pending_orders")["response"]["data"]).orders
    assert order.status is OrderStatus.SYSTEM_CANCELED and not order.status.is_open
    cancel = parse_cancel_result(fixture("cancel_orders")["response"]["data"])
    assert [s.order_id for s in cancel.succeeded] == ["11111"] and cancel.failed[0].order_id == "33333"
    k = fixture("kline_rest")
    (kline,) = parse_klines(k["response"]["data"])
    assert kline.base_volume == Decimal(k["expected_base_volume"])  # labels swapped in the docs' example


def test_pushes_with_title_enums_nanosecond_times_and_system_canceled() -> None:
    f = fixture("ws_pushes")
    kline = parse_ws_message(f["kline"])
    assert isinstance(kline, WsKline)
    order = parse_ws_message(f["order"])
    assert isinstance(order, WsOrderPush)
    assert order.side is OrderSide.BUY and order.status is OrderStatus.SYSTEM_CANCELED
    assert order.created == datetime(2024, 12, 8, 6, 23, 48, 123000, UTC)  # kept to the ms
    position = parse_ws_message(f["position"])
    assert isinstance(position, WsPositionPush) and position.side is PositionSide.LONG


# --- (2) our mock produces the same shapes in the matching dialect ---------------------------------------


def json_types(record: dict[str, Any]) -> dict[str, str]:
    return {k: type(v).__name__ for k, v in record.items() if v is not None}


def assert_same_shape(documented: dict[str, Any], produced: dict[str, Any], where: str) -> None:
    missing = set(documented) - set(produced)
    assert not missing, f"{where}: mock lacks documented fields {sorted(missing)}"
    want, got = json_types(documented), json_types(produced)
    differ = {k: (want[k], got.get(k)) for k in want if k in got and got[k] != want[k]}
    assert not differ, f"{where}: JSON types differ (documented, mock): {differ}"


@pytest.fixture(scope="module", params=["docs", "community"])
def produced(request: pytest.FixtureRequest) -> Iterator[tuple[str, dict[str, Any]]]:
    """One round trip on a mock in the given preset, and every answer it gave."""
    with running_mock_exchange(seed=3, time_scale=0, dialect=request.param) as mx:
        yield request.param, run(_round_trip(mx))


async def _round_trip(mx: MockExchangeHandle) -> dict[str, Any]:
    order = {"symbol": "BTCUSDT", "side": "BUY", "qty": "0.5", "orderType": "MARKET", "clientId": "c1"}
    out: dict[str, Any] = {}
    async with signed_client(mx.rest_url) as c:
        out["ack"] = (await c.post("trade/place_order", order))["data"]
        out["positions"] = (await c.get("position/get_pending_positions", {"symbol": "BTCUSDT"}))["data"]
        out["account"] = (await c.get("account", {"marginCoin": "USDT"}))["data"]
        await c.post("trade/place_order", {**order, "side": "SELL", "reduceOnly": True, "clientId": "c2"})
        ioc = {**order, "orderType": "LIMIT", "price": "1000", "effect": "IOC", "clientId": "c5"}
        await c.post("trade/place_order", ioc)
        out["trades"] = (await c.get("trade/get_history_trades", {"symbol": "BTCUSDT"}))["data"]
        out["orders"] = (await c.get("trade/get_history_orders", {"symbol": "BTCUSDT"}))["data"]
        out["cancel"] = (await c.post("trade/cancel_orders", {"symbol": "BTCUSDT",
                                                              "orderList": [{"orderId": "33333"}]}))["data"]
    return out


def test_mock_answers_have_the_documented_shapes(produced) -> None:
    dialect, got = produced
    assert_same_shape(fixture("place_order")["response"]["data"], got["ack"], "place_order")
    assert_same_shape(fixture("pending_positions")["response"]["data"][0], got["positions"][0], "positions")
    account = fixture("account")["response_list" if dialect == "docs" else "response_object"]["data"]
    assert type(account) is type(got["account"])
    assert_same_shape(account[0] if isinstance(account, list) else account,
                      got["account"][0] if isinstance(got["account"], list) else got["account"], "account")
    trades = fixture("history_trades_ccxt" if dialect == "docs" else "history_trades_docs")["response"]["data"]
    close_doc, close_got = trades["tradeList"][0], got["trades"]["tradeList"][0]
    assert_same_shape(close_doc, close_got, f"history trades ({dialect})")
    assert close_got["side"] == close_doc["side"]  # docs: the position's side; community: the exit side
    assert ("tradeSide" in close_got) is ("tradeSide" in close_doc)
    (ioc,) = [o for o in got["orders"]["orderList"] if o["clientId"] == "c5"]
    assert_same_shape(fixture("pending_orders")["response"]["data"]["orderList"][0], ioc, "orders")
    assert ioc["status"] == ("SYSTEM_CANCELED" if dialect == "docs" else "CANCELED")
    failure_doc = fixture("cancel_orders")["response"]["data"]["failureList"][0]
    if dialect == "docs":
        assert_same_shape(failure_doc, got["cancel"]["failureList"][0], "cancel failure")


# --- TP/SL orders (tpsl/*) -------------------------------------------------------------------------------


def test_tpsl_shapes_are_read_and_our_requests_use_documented_fields_only() -> None:
    from laptop_agents.bitunix.enums import OrderType, StopType
    from laptop_agents.bitunix.tpsl_schemas import (
        PositionTpslRequest,
        TpslLeg,
        TpslModifyRequest,
        TpslOrderRequest,
        parse_tpsl_ack,
        parse_tpsl_orders,
    )

    f = fixture("tpsl")
    assert parse_tpsl_ack(f["place_response_docs"]["data"]).order_ids == ("11111",)
    assert parse_tpsl_ack(f["place_response_list"]["data"]).order_ids == ("tp123", "sl123")  # one per leg
    for name in ("modify_response", "cancel_response", "position_response"):
        assert parse_tpsl_ack(f[name]["data"]).order_id == "11111"
    (docs,) = parse_tpsl_orders(f["pending_response_docs"]["data"])
    assert docs.order_id == "123" and docs.position_id == "12345678"
    assert docs.tp == TpslLeg(Decimal("50000"), StopType.LAST_PRICE, OrderType.LIMIT, Decimal("50000"), Decimal("0.01"))
    (tiq,) = parse_tpsl_orders([f["pending_item_tradingiq"]])
    assert tiq.sl == TpslLeg(Decimal("45000"), StopType.MARK_PRICE, OrderType.MARKET, None, Decimal("0.02"))

    tp = TpslLeg(Decimal("12"), StopType.LAST_PRICE, OrderType.LIMIT, Decimal("11"), Decimal("1"))
    sl = TpslLeg(Decimal("9"), StopType.LAST_PRICE, OrderType.LIMIT, Decimal("8"), Decimal("1"))
    assert TpslOrderRequest("BTCUSDT", "111", tp, sl).to_body() == f["place_request"]
    assert TpslModifyRequest("123", tp, sl).to_body() == f["modify_request"]
    position = PositionTpslRequest("BTCUSDT", "111", TpslLeg(Decimal("12"), StopType.LAST_PRICE),
                                   TpslLeg(Decimal("9"), StopType.LAST_PRICE))
    assert position.to_body() == f["position_request"]


@pytest.mark.parametrize("dialect", ["docs", "hostile"])
def test_mock_tpsl_answers_have_the_documented_shapes(dialect: str) -> None:
    f = fixture("tpsl")
    with running_mock_exchange(seed=3, time_scale=0, dialect=dialect) as mx:

        async def scenario() -> dict[str, Any]:
            out: dict[str, Any] = {}
            async with signed_client(mx.rest_url) as c:
                await c.post("trade/place_order", {"symbol": "BTCUSDT", "side": "BUY", "qty": "0.01",
                                                   "orderType": "MARKET"})
                (pos,) = (await c.get("position/get_pending_positions", {"symbol": "BTCUSDT"}))["data"]
                px = float((await c.get("market/tickers", {"symbols": "BTCUSDT"}))["data"][0]["lastPrice"])
                body = {**f["place_request"], "positionId": pos["positionId"], "tpPrice": f"{px + 500:.1f}",
                        "tpOrderPrice": f"{px + 490:.1f}", "slPrice": f"{px - 500:.1f}",
                        "slOrderPrice": f"{px - 510:.1f}", "tpQty": "0.01", "slQty": "0.01"}
                out["place"] = (await c.post("tpsl/place_order", body))["data"]
                out["pending"] = (await c.get("tpsl/get_pending_orders", {"symbol": "BTCUSDT"}))["data"]
                first = out["pending"][0]
                legs = {k: v for k, v in body.items() if k.startswith("tp" if first["tpPrice"] else "sl")}
                out["modify"] = (await c.post("tpsl/modify_order", {"orderId": first["id"], **legs}))["data"]
                out["cancel"] = (await c.post("tpsl/cancel_order", {"symbol": "BTCUSDT",
                                                                    "orderId": first["id"]}))["data"]
                position = {**f["position_request"], "positionId": pos["positionId"],
                            "tpPrice": f"{px + 700:.1f}", "slPrice": f"{px - 700:.1f}"}
                out["position"] = (await c.post("tpsl/position/place_order", position))["data"]
            return out

        got = run(scenario())
    docs_item = f["pending_response_docs"]["data"][0]
    for item in got["pending"]:
        assert_same_shape({k: v for k, v in docs_item.items() if item.get(k) is not None}, item, "tpsl pending")
        assert set(item) == set(docs_item)
    for name in ("modify", "cancel", "position"):
        assert_same_shape(f[name + "_response"]["data"], got[name], name)
    if dialect == "docs":
        assert_same_shape(f["place_response_docs"]["data"], got["place"], "tpsl place")
    else:
        assert isinstance(got["place"], list) and len(got["place"]) == 2
        assert_same_shape(f["place_response_list"]["data"][0], got["place"][0] | {"clientId": ""}, "tpsl place")
