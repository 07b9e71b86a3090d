"""The REST API over real HTTP: envelope, shapes, trading behaviour, limits, ledger evidence."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal as D

import aiohttp
import pytest

from laptop_agents.mock_exchange.testing import running_mock_exchange

from .mx_client import API, run, signed_client

ORDER_FIELDS = {
    "orderId", "symbol", "qty", "tradeQty", "positionMode", "marginMode", "leverage", "price", "side",
    "orderType", "effect", "clientId", "reduceOnly", "status", "fee", "realizedPNL", "tpPrice", "tpStopType",
    "tpOrderType", "tpOrderPrice", "slPrice", "slStopType", "slOrderType", "slOrderPrice", "ctime", "mtime",
}
POSITION_FIELDS = {
    "positionId", "symbol", "qty", "entryValue", "side", "marginMode", "positionMode", "leverage", "fee",
    "funding", "realizedPNL", "margin", "unrealizedPNL", "liqPrice", "marginRate", "avgOpenPrice", "ctime", "mtime",
}
TRADE_FIELDS = {
    "tradeId", "orderId", "symbol", "qty", "price", "side", "orderType", "effect", "clientId", "reduceOnly",
    "fee", "realizedPNL", "ctime", "roleType",
}


def wallet(account: dict) -> D:
    return D(account["available"]) + D(account["frozen"]) + D(account["margin"])


# --- market ----------------------------------------------------------------------------------------------


def test_market_endpoints_shapes(mx) -> None:
    async def scenario() -> None:
        async with signed_client(mx.rest_url) as c:
            pairs = await c.public("market/trading_pairs", {"symbols": "BTCUSDT"})
            assert pairs["code"] == 0 and pairs["msg"] == "Success"
            (btc,) = pairs["data"]
            assert btc == {
                "symbol": "BTCUSDT", "base": "BTC", "quote": "USDT", "minTradeVolume": "0.0001",
                "minBuyPriceOffset": "-0.99", "maxSellPriceOffset": "100", "maxLimitOrderVolume": "100000",
                "maxMarketOrderVolume": "50000", "basePrecision": 4, "quotePrecision": 1, "minLeverage": 1,
                "maxLeverage": 125, "defaultLeverage": 20, "defaultMarginMode": "CROSS",
                "priceProtectScope": "0.02", "symbolStatus": "OPEN",
            }
            kl = await c.public("market/kline", {"symbol": "BTCUSDT", "interval": "1m", "limit": "5"})
            assert kl["code"] == 0 and len(kl["data"]) == 5
            assert set(kl["data"][0]) == {"open", "high", "low", "close", "time", "quoteVol", "baseVol", "type"}
            assert all(isinstance(kl["data"][0][k], str) for k in ("open", "high", "low", "close"))
            tick = await c.public("market/tickers", {"symbols": "BTCUSDT"})
            assert set(tick["data"][0]) == {"symbol", "markPrice", "lastPrice", "open", "last", "quoteVol",
                                            "baseVol", "high", "low"}
            assert tick["data"][0]["lastPrice"] == "95000.0"
            depth = await c.public("market/depth", {"symbol": "BTCUSDT", "limit": "5"})
            assert len(depth["data"]["asks"]) == 5 and len(depth["data"]["bids"]) == 5
            assert D(depth["data"]["asks"][0][0]) > D(depth["data"]["bids"][0][0])
            fr = await c.public("market/funding_rate", {"symbol": "BTCUSDT"})
            assert set(fr["data"]) == {"symbol", "markPrice", "lastPrice", "fundingRate"}
            missing = await c.public("market/kline", {"symbol": "DOGEUSDT", "interval": "1m"})
            assert missing == {"code": 20001, "msg": missing["msg"], "data": None}
            bad = await c.public("market/kline", {"symbol": "BTCUSDT", "interval": "7m"})
            assert bad["code"] == 10002

    run(scenario())


def test_kline_history_is_paged_by_time(mx) -> None:
    mx.admin.advance_clock(10 * 60_000)

    async def scenario() -> None:
        async with signed_client(mx.rest_url) as c:
            latest = (await c.public("market/kline", {"symbol": "BTCUSDT", "interval": "1m", "limit": "3"}))["data"]
            times = [k["time"] for k in latest]
            assert times == sorted(times) and times[1] - times[0] == 60_000
            start = times[0] - 5 * 60_000
            page = (await c.public("market/kline", {"symbol": "BTCUSDT", "interval": "1m", "startTime": str(start),
                                                    "limit": "2"}))["data"]
            assert [k["time"] for k in page] == [start, start + 60_000]
            capped = (await c.public("market/kline", {"symbol": "BTCUSDT", "interval": "1m", "limit": "500"}))["data"]
            assert len(capped) == 200

    run(scenario())


def test_response_shape_options_for_unconfirmed_fields() -> None:
    with running_mock_exchange(kline_order="desc", kline_number_format="number", account_response="list") as mx:
        async def scenario() -> None:
            async with signed_client(mx.rest_url) as c:
                kl = (await c.public("market/kline", {"symbol": "BTCUSDT", "interval": "1m", "limit": "3"}))["data"]
                assert [k["time"] for k in kl] == sorted((k["time"] for k in kl), reverse=True)
                assert isinstance(kl[0]["open"], float)
                acct = await c.get("account", {"marginCoin": "USDT"})
                assert isinstance(acct["data"], list) and acct["data"][0]["marginCoin"] == "USDT"

        run(scenario())


# --- trading ---------------------------------------------------------------------------------------------


def test_market_order_changes_balance_by_exactly_fee_plus_realized_pnl(mx) -> None:
    async def scenario() -> None:
        async with signed_client(mx.rest_url) as c:
            before = wallet(await c.account())
            opened = await c.market_order("BUY", "0.05", clientId="open-1")
            assert opened["code"] == 0 and set(opened["data"]) == {"orderId", "clientId"}
            assert opened["data"]["clientId"] == "open-1"
            detail = (await c.get("trade/get_order_detail", {"orderId": opened["data"]["orderId"]}))["data"]
            assert set(detail) == ORDER_FIELDS and detail["status"] == "FILLED" and detail["price"] == "MARKET"
            mid = await c.account()
            assert D(mid["margin"]) == D("0.05") * D("95000") / 20
            assert wallet(mid) == before - D(detail["fee"])
            await asyncio.to_thread(mx.admin.set_price, "95321.7")
            positions = (await c.get("position/get_pending_positions", {"symbol": "BTCUSDT"}))["data"]
            (pos,) = positions
            assert set(pos) == POSITION_FIELDS and pos["side"] == "BUY" and pos["qty"] == "0.05"
            # default dialect (docs): close a long with side=BUY, tradeSide=CLOSE, positionId
            closed = await c.post("trade/place_order", {"symbol": "BTCUSDT", "side": "BUY", "tradeSide": "CLOSE",
                                                         "positionId": pos["positionId"], "qty": "0.05",
                                                         "orderType": "MARKET"})
            assert closed["code"] == 0
            after = await c.account()
            trades = (await c.get("trade/get_history_trades", {"symbol": "BTCUSDT"}))["data"]
            assert trades["total"] == 2 and set(trades["tradeList"][0]) >= TRADE_FIELDS
            delta = sum(D(t["realizedPNL"]) - D(t["fee"]) for t in trades["tradeList"])
            assert wallet(after) - before == delta
            assert D(trades["tradeList"][0]["realizedPNL"]) == D("0.05") * D("321.7")
            assert D(after["margin"]) == 0 and D(after["frozen"]) == 0

    run(scenario())
    fills = mx.admin.events("fill")
    assert [f["side"] for f in fills] == ["BUY", "SELL"] and all(f["role"] == "TAKER" for f in fills)
    assert D(fills[-1]["balance"]) == D(mx.admin.account()["balance"])


def test_limit_order_rests_then_fills_when_the_price_crosses(mx) -> None:
    async def scenario() -> None:
        async with signed_client(mx.rest_url) as c:
            res = await c.post("trade/place_order", {"symbol": "BTCUSDT", "side": "BUY", "qty": "0.01",
                                                      "orderType": "LIMIT", "price": "94500", "effect": "GTC",
                                                      "clientId": "lim-1"})
            assert res["code"] == 0
            pending = (await c.get("trade/get_pending_orders", {"symbol": "BTCUSDT"}))["data"]
            assert pending["total"] == 1 and pending["orderList"][0]["status"] == "NEW"
            assert set(pending["orderList"][0]) == ORDER_FIELDS
            assert D((await c.account())["frozen"]) == D("0.01") * D("94500") / 20
            await asyncio.to_thread(mx.admin.set_price, "94600")
            assert (await c.get("trade/get_pending_orders"))["data"]["total"] == 1
            await asyncio.to_thread(mx.admin.set_price, "94450")
            assert (await c.get("trade/get_pending_orders"))["data"]["total"] == 0
            detail = (await c.get("trade/get_order_detail", {"clientId": "lim-1"}))["data"]
            assert detail["status"] == "FILLED" and detail["tradeQty"] == "0.01"
            history = (await c.get("trade/get_history_orders", {"symbol": "BTCUSDT"}))["data"]
            assert history["total"] == 1 and history["orderList"][0]["orderId"] == res["data"]["orderId"]
            (trade,) = (await c.get("trade/get_history_trades"))["data"]["tradeList"]
            assert trade["price"] == "94500" and trade["roleType"] == "MAKER"
            assert D(trade["fee"]) == D("0.01") * D("94500") * D("0.0002")

    run(scenario())


def test_cancel_orders_success_and_failure_lists(mx) -> None:
    async def scenario() -> None:
        async with signed_client(mx.rest_url) as c:
            a = (await c.post("trade/place_order", {"symbol": "BTCUSDT", "side": "BUY", "qty": "0.01",
                                                     "orderType": "LIMIT", "price": "90000", "clientId": "a"}))["data"]
            b = (await c.post("trade/place_order", {"symbol": "BTCUSDT", "side": "SELL", "qty": "0.01",
                                                     "orderType": "LIMIT", "price": "99000"}))["data"]
            res = await c.post("trade/cancel_orders", {"symbol": "BTCUSDT", "orderList": [
                {"clientId": "a"}, {"orderId": b["orderId"]}, {"orderId": "123"}]})
            assert res["code"] == 0
            assert res["data"]["successList"] == [{"orderId": a["orderId"], "clientId": "a"},
                                                  {"orderId": b["orderId"], "clientId": None}]
            (failure,) = res["data"]["failureList"]
            assert failure["orderId"] == "123" and failure["errorCode"] == 20007 and failure["errorMsg"]
            again = await c.post("trade/cancel_orders", {"symbol": "BTCUSDT", "orderList": [{"clientId": "a"}]})
            assert again["code"] == 0 and again["data"]["failureList"][0]["errorCode"] == 30011
            empty = await c.post("trade/cancel_orders", {"symbol": "BTCUSDT", "orderList": []})
            assert empty["code"] == 10002
            assert D((await c.account())["frozen"]) == 0

    run(scenario())
    cancels = mx.admin.events("cancel")
    assert [c["reason"] for c in cancels] == ["user", "user"]


def test_close_all_position_flattens_and_cancel_all_orders(mx) -> None:
    async def scenario() -> None:
        async with signed_client(mx.rest_url) as c:
            await c.market_order("BUY", "0.02")
            await c.post("trade/place_order", {"symbol": "BTCUSDT", "side": "BUY", "qty": "0.01",
                                               "orderType": "LIMIT", "price": "90000"})
            res = await c.post("trade/cancel_all_orders", {"symbol": "BTCUSDT"})
            assert res["code"] == 0 and len(res["data"]["successList"]) == 1
            res = await c.post("trade/close_all_position", {"symbol": "BTCUSDT"})
            assert res["code"] == 0
            assert (await c.get("position/get_pending_positions"))["data"] == []
            await c.market_order("SELL", "0.01")
            (pos,) = (await c.get("position/get_pending_positions"))["data"]
            flash = await c.post("trade/flash_close_position", {"positionId": pos["positionId"]})
            assert flash["code"] == 0 and flash["data"]["positionId"] == pos["positionId"]
            gone = await c.post("trade/flash_close_position", {"positionId": pos["positionId"]})
            assert gone["code"] == 30004
            acct = await c.account()
            assert D(acct["margin"]) == 0 and D(acct["frozen"]) == 0

    run(scenario())
    assert mx.admin.account()["positions"] == []


def test_attached_tp_sl_close_the_position(mx) -> None:
    async def scenario() -> None:
        async with signed_client(mx.rest_url) as c:
            res = await c.market_order("BUY", "0.01", tpPrice="95500", tpStopType="MARK_PRICE", slPrice="94500")
            assert res["code"] == 0
            (pos,) = (await c.get("position/get_pending_positions"))["data"]
            assert pos["qty"] == "0.01"
            bad = await c.market_order("BUY", "0.01", slPrice="96000")
            assert bad["code"] == 30021
            await asyncio.to_thread(mx.admin.set_price, "94400")
            assert (await c.get("position/get_pending_positions"))["data"] == []

    run(scenario())
    (trigger,) = mx.admin.events("trigger")
    assert trigger["kind"] == "sl" and trigger["triggerPrice"] == "94500" and trigger["marketPrice"] == "94400"
    assert mx.admin.events("fill")[-1]["reason"] == "sl"


def test_hedge_mode_close_with_position_id(mx) -> None:
    async def scenario() -> None:
        async with signed_client(mx.rest_url) as c:
            assert (await c.post("account/change_position_mode", {"positionMode": "HEDGE"}))["code"] == 0
            await c.market_order("BUY", "0.02")
            await c.market_order("SELL", "0.01")
            positions = (await c.get("position/get_pending_positions"))["data"]
            assert {p["side"] for p in positions} == {"BUY", "SELL"}  # REST positions say BUY/SELL
            long = next(p for p in positions if p["side"] == "BUY")
            res = await c.post("trade/place_order", {"symbol": "BTCUSDT", "side": "BUY", "tradeSide": "CLOSE",
                                                      "positionId": long["positionId"], "qty": "0.02",
                                                      "orderType": "MARKET"})
            assert res["code"] == 0
            (left,) = (await c.get("position/get_pending_positions"))["data"]
            assert left["side"] == "SELL"
            blocked = await c.post("account/change_position_mode", {"positionMode": "ONE_WAY"})
            assert blocked["code"] == 20006

    run(scenario())


def test_leverage_and_margin_mode_endpoints(mx) -> None:
    async def scenario() -> None:
        async with signed_client(mx.rest_url) as c:
            q = {"symbol": "BTCUSDT", "marginCoin": "USDT"}
            got = (await c.get("account/get_leverage_margin_mode", q))["data"]
            assert got == {"symbol": "BTCUSDT", "marginCoin": "USDT", "leverage": 20, "marginMode": "CROSS"}
            assert (await c.post("account/change_leverage", {**q, "leverage": 5}))["code"] == 0
            assert (await c.post("account/change_leverage", {**q, "leverage": 200}))["code"] == 20005
            assert (await c.post("account/change_margin_mode", {**q, "marginMode": "ISOLATION"}))["code"] == 0
            got = (await c.get("account/get_leverage_margin_mode", q))["data"]
            assert got["leverage"] == 5 and got["marginMode"] == "ISOLATION"
            await c.market_order("BUY", "0.01")
            acct = await c.account()
            assert D(acct["margin"]) == D("950") / 5
            refused = await c.post("account/change_margin_mode", {**q, "marginMode": "CROSS"})
            assert refused["code"] == 20006

    run(scenario())


# --- refusals --------------------------------------------------------------------------------------------


def test_order_refusals_over_http(mx) -> None:
    async def scenario() -> None:
        async with signed_client(mx.rest_url) as c:
            assert (await c.market_order("BUY", "0.00001"))["code"] == 30016
            assert (await c.market_order("BUY", "0.00012"))["code"] == 10008
            assert (await c.market_order("BUY", "60000"))["code"] == 30039
            assert (await c.market_order("BUY", "5"))["code"] == 20003
            limit_bad_tick = await c.post("trade/place_order", {"symbol": "BTCUSDT", "side": "BUY", "qty": "0.01",
                                                                 "orderType": "LIMIT", "price": "90000.05"})
            assert limit_bad_tick["code"] == 10008
            assert (await c.market_order("HOLD", "0.01"))["code"] == 10002
            assert (await c.get("trade/get_order_detail", {"orderId": "1"}))["code"] == 20007
            assert (await c.get("trade/get_order_detail"))["code"] == 10002
            async with c.session.post(mx.rest_url + API + "trade/place_order", data=b"{not json",
                                      headers=c.headers({}, "{not json")) as resp:
                assert (await resp.json())["code"] == 10002

    run(scenario())
    requests = mx.admin.events("order_request")
    assert [r["code"] for r in requests] == [30016, 10008, 30039, 20003, 10008, 10002, 10002]
    assert not any(r["accepted"] for r in requests)
    assert requests[-1]["request"] == "{not json"


def test_duplicate_client_id_is_30042_and_the_ledger_shows_the_attempt(mx) -> None:
    async def scenario() -> None:
        async with signed_client(mx.rest_url) as c:
            first = await c.market_order("BUY", "0.01", clientId="retry-me")
            second = await c.market_order("BUY", "0.01", clientId="retry-me")
            assert first["code"] == 0
            assert second == {"code": 30042, "msg": second["msg"], "data": None}
            detail = (await c.get("trade/get_order_detail", {"clientId": "retry-me"}))["data"]
            assert detail["orderId"] == first["data"]["orderId"]

    run(scenario())
    attempts = mx.admin.events("order_request")
    assert [(a["clientId"], a["accepted"], a["duplicate"], a["code"]) for a in attempts] == [
        ("retry-me", True, False, 0), ("retry-me", False, True, 30042)]
    assert len(mx.admin.events("fill")) == 1


@pytest.mark.serial  # counts requests per wall-clock window: a loaded machine spreads the burst out
def test_rate_limit_past_the_documented_rate() -> None:
    with running_mock_exchange(seed=1) as mx:
        async def burst(c, n: int) -> list[int]:
            results = await asyncio.gather(*(c.get("account", {"marginCoin": "USDT"}) for _ in range(n)))
            return [r["code"] for r in results]

        async def scenario() -> None:
            async with signed_client(mx.rest_url) as c:
                for _ in range(3):  # a burst must fit in one second to be meaningful
                    t0 = time.monotonic()
                    codes = await burst(c, 14)
                    if time.monotonic() - t0 < 0.8:
                        break
                    await asyncio.sleep(1.1)
                assert codes.count(0) == 10 and codes.count(10006) == 4
                await asyncio.sleep(1.05)
                assert (await c.get("account", {"marginCoin": "USDT"}))["code"] == 0  # the window slides
                orders = await asyncio.gather(*(c.market_order("BUY", "0.001") for _ in range(12)))
                assert [o["code"] for o in orders].count(10006) == 2
                cancels = await asyncio.gather(*(c.post("trade/cancel_all_orders", {"symbol": "BTCUSDT"})
                                                 for _ in range(7)))
                assert [o["code"] for o in cancels].count(10006) == 2

        run(scenario())
        limited = [r for r in mx.admin.events("order_request") if r["code"] == 10006]
        assert len(limited) == 2


@pytest.mark.serial  # counts requests per wall-clock window: a loaded machine spreads the burst out
def test_market_rate_limit_and_alternative_code() -> None:
    with running_mock_exchange(rate_limit_code=10005, rate_limits={"market": 3}) as mx:
        async def scenario() -> None:
            async with aiohttp.ClientSession() as s:
                async def one() -> int:
                    async with s.get(mx.rest_url + API + "market/tickers") as resp:
                        return (await resp.json())["code"]

                codes = await asyncio.gather(*(one() for _ in range(5)))
                assert sorted(codes) == [0, 0, 0, 10005, 10005]

        run(scenario())


def test_rate_limits_can_be_disabled() -> None:
    with running_mock_exchange(rate_limits_enabled=False) as mx:
        async def scenario() -> None:
            async with signed_client(mx.rest_url) as c:
                codes = await asyncio.gather(*(c.get("account", {"marginCoin": "USDT"}) for _ in range(25)))
                assert all(r["code"] == 0 for r in codes)

        run(scenario())


@pytest.mark.parametrize("path", ["/api/v1/futures/does/not/exist", "/nothing"])
def test_unknown_paths_are_http_404(mx, path: str) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as s, s.get(mx.rest_url + path) as resp:
            assert resp.status == 404

    run(scenario())


def test_more_symbols_by_config() -> None:
    eth = {"symbol": "ETHUSDT", "base": "ETH", "start_price": 3300, "base_precision": 3, "quote_precision": 2,
           "min_trade_volume": "0.001"}
    with running_mock_exchange(time_scale=0, symbols=[{}, eth]) as mx:
        async def scenario() -> None:
            async with signed_client(mx.rest_url) as c:
                pairs = (await c.public("market/trading_pairs"))["data"]
                assert [p["symbol"] for p in pairs] == ["BTCUSDT", "ETHUSDT"]
                tick = (await c.public("market/tickers", {"symbols": "ETHUSDT"}))["data"]
                assert tick[0]["lastPrice"] == "3300.00"
                res = await c.post("trade/place_order", {"symbol": "ETHUSDT", "side": "SELL", "qty": "0.5",
                                                          "orderType": "MARKET"})
                assert res["code"] == 0
                assert (await c.post("trade/place_order", {"symbol": "ETHUSDT", "side": "SELL", "qty": "0.0005",
                                                            "orderType": "MARKET"}))["code"] == 30016
                (pos,) = (await c.get("position/get_pending_positions", {"symbol": "ETHUSDT"}))["data"]
                assert pos["side"] == "SELL" and pos["entryValue"] == "1650"

        run(scenario())
