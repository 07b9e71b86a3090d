"""The WebSocket API over real sockets: connect, ping/pong, subscriptions, kline pushes, private channels."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from itertools import pairwise

import aiohttp
import pytest

from laptop_agents.mock_exchange.testing import running_mock_exchange

from .mx_client import recv_json, recv_until, run, signed_client, ws_login

KLINE_1M = {"symbol": "BTCUSDT", "ch": "market_kline_1min"}


def is_kline(msg: dict) -> bool:
    return msg.get("ch") == "market_kline_1min"


async def subscribe(ws: aiohttp.ClientWebSocketResponse, *args: dict) -> None:
    await ws.send_json({"op": "subscribe", "args": list(args)})


@pytest.mark.parametrize("path", ["/public/", "/public", "/private/"])
def test_connect_message_on_open(mx, path: str) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as s, s.ws_connect(mx.rest_url.replace("http", "ws") + path) as ws:
            assert await recv_json(ws) == {"op": "connect", "data": {"result": True}}

    run(scenario())


def test_application_ping_pong_and_protocol_pings(mx) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as s, s.ws_connect(mx.public_ws_url, autoping=False) as ws:
            await recv_json(ws)
            sent = int(time.time())
            await ws.send_json({"op": "ping", "ping": sent})
            pong = await recv_json(ws)
            assert pong["op"] == "ping" and pong["pong"] == sent and abs(pong["ping"] - sent) <= 2
            await ws.ping(b"hi")
            frame = await ws.receive(timeout=2)
            assert frame.type is aiohttp.WSMsgType.PONG and frame.data == b"hi"

    run(scenario())


def test_subscribe_sends_a_snapshot_in_the_page_format(mx) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as s, s.ws_connect(mx.public_ws_url) as ws:
            await recv_json(ws)
            await subscribe(ws, KLINE_1M)
            push = await recv_json(ws, timeout=0.4)  # well before the first 500 ms push tick
            assert set(push) == {"ch", "symbol", "ts", "data"}
            assert push["ch"] == "market_kline_1min" and push["symbol"] == "BTCUSDT"
            assert set(push["data"]) == {"o", "c", "h", "l", "b", "q"}
            assert all(isinstance(v, str) for v in push["data"].values())
            assert push["data"]["c"] == "95000.0"
            assert isinstance(push["ts"], int)
            async with signed_client(mx.rest_url) as c:
                latest = await c.public("market/kline", {"symbol": "BTCUSDT", "interval": "1m", "limit": "1"})
            (rest,) = latest["data"]
            assert push["ts"] // 60_000 * 60_000 == rest["time"]
            assert (push["data"]["o"], push["data"]["c"]) == (rest["open"], rest["close"])

    run(scenario())


def test_pushes_arrive_about_every_500_ms_by_default(mx) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as s, s.ws_connect(mx.public_ws_url) as ws:
            await recv_json(ws)
            await subscribe(ws, KLINE_1M)
            await recv_until(ws, is_kline)  # snapshot
            stamps = []
            for _ in range(3):
                await recv_until(ws, is_kline, timeout=2)
                stamps.append(time.monotonic())
            gaps = [b - a for a, b in pairwise(stamps)]
            assert all(0.35 < g < 0.75 for g in gaps), gaps

    run(scenario())


def test_push_interval_is_configurable(mx_fast) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as s, s.ws_connect(mx_fast.public_ws_url) as ws:
            await recv_json(ws)
            await subscribe(ws, {"symbol": "BTCUSDT", "ch": "market_kline_1week"})
            await recv_until(ws, lambda m: m.get("ch") == "market_kline_1week")
            t0 = time.monotonic()
            count = 0
            while time.monotonic() - t0 < 1.0:
                await recv_until(ws, lambda m: m.get("ch") == "market_kline_1week", timeout=1)
                count += 1
            assert 7 <= count <= 13

    run(scenario())


def test_last_push_of_each_candle_equals_the_rest_candle() -> None:
    """Manual clock: each clock step closes a candle; the closing push must equal REST's candle."""
    with running_mock_exchange(seed=3, time_scale=0, push_interval_ms=100) as mx:
        run(_closing_push_scenario(mx))


async def _closing_push_scenario(mx) -> None:
    pushes: list[dict] = []
    async with aiohttp.ClientSession() as s, s.ws_connect(mx.public_ws_url) as ws:
        await recv_json(ws)
        await subscribe(ws, KLINE_1M)
        pushes.append(await recv_until(ws, is_kline))
        for _ in range(4):
            await asyncio.to_thread(mx.admin.advance_clock, 60_000)
            first = await recv_until(ws, is_kline, timeout=2)
            second = await recv_until(ws, is_kline, timeout=2)
            pushes += [first, second]
            assert first["ts"] // 60_000 + 1 == second["ts"] // 60_000  # closing push, then the new candle
        by_interval: dict[int, dict] = {}
        for p in pushes:
            by_interval[p["ts"] // 60_000 * 60_000] = p["data"]
        async with signed_client(mx.rest_url) as c:
            start = min(by_interval)
            rest = (await c.public("market/kline", {"symbol": "BTCUSDT", "interval": "1m",
                                                    "startTime": str(start), "limit": "10"}))["data"]
        closed = sorted(by_interval)[:-1]
        assert len(closed) == 4
        rest_by_time = {k["time"]: k for k in rest}
        for t in closed:
            k = rest_by_time[t]
            assert by_interval[t] == push_of(k, mx.config.kline_volumes)


def push_of(k: dict, volumes: str) -> dict:
    """The push ``data`` a REST kline row corresponds to (dialect ``swapped``: REST volume labels swapped)."""
    base, quote = (k["quoteVol"], k["baseVol"]) if volumes == "swapped" else (k["baseVol"], k["quoteVol"])
    return {"o": k["open"], "c": k["close"], "h": k["high"], "l": k["low"], "b": base, "q": quote}


def test_rest_and_ws_agree_on_a_fast_market_clock() -> None:
    with running_mock_exchange(seed=5, time_scale=120, push_interval_ms=100) as mx_fast:
        run(_fast_clock_scenario(mx_fast))


async def _fast_clock_scenario(mx_fast) -> None:
    last: dict[int, dict] = {}
    async with aiohttp.ClientSession() as s, s.ws_connect(mx_fast.public_ws_url) as ws:
        await recv_json(ws)
        await subscribe(ws, KLINE_1M)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.4:  # about 2.8 market minutes at 120x
            p = await recv_until(ws, is_kline, timeout=2)
            last[p["ts"] // 60_000 * 60_000] = p["data"]
    closed = sorted(last)[:-1]
    assert len(closed) >= 2
    async with signed_client(mx_fast.rest_url) as c:
        rest = (await c.public("market/kline", {"symbol": "BTCUSDT", "interval": "1m",
                                                "startTime": str(closed[0]), "limit": "10"}))["data"]
    rest_by_time = {k["time"]: k for k in rest}
    for t in closed:
        k = rest_by_time[t]
        assert last[t] == push_of(k, mx_fast.config.kline_volumes)


def test_backfill_after_a_disconnect_returns_exactly_the_missed_candles(mx) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(mx.public_ws_url) as ws:
                await recv_json(ws)
                await subscribe(ws, KLINE_1M)
                seen = (await recv_until(ws, is_kline))["ts"] // 60_000 * 60_000
                assert await asyncio.to_thread(mx.admin.drop_ws) == 1
                with pytest.raises((ConnectionError, TimeoutError)):
                    await recv_until(ws, is_kline, timeout=2)
            await asyncio.to_thread(mx.admin.advance_clock, 5 * 60_000)
            async with s.ws_connect(mx.public_ws_url) as ws:
                await recv_json(ws)
                await subscribe(ws, KLINE_1M)
                now_candle = (await recv_until(ws, is_kline))["ts"] // 60_000 * 60_000
            async with signed_client(mx.rest_url) as c:
                missed = (await c.public("market/kline", {"symbol": "BTCUSDT", "interval": "1m",
                                                          "startTime": str(seen + 60_000),
                                                          "endTime": str(now_candle - 1)}))["data"]
            assert [k["time"] for k in missed] == [seen + i * 60_000 for i in range(1, 5)]
            assert now_candle == seen + 5 * 60_000

    run(scenario())


def test_unsubscribe_stops_pushes_and_unknown_channels_are_ignored(mx) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as s, s.ws_connect(mx.public_ws_url) as ws:
            await recv_json(ws)
            await subscribe(ws, {"symbol": "BTCUSDT", "ch": "no_such_channel"}, {"symbol": "NOPE", "ch": "ticker"})
            await subscribe(ws, KLINE_1M)
            await recv_until(ws, is_kline)
            await ws.send_json({"op": "unsubscribe", "args": [KLINE_1M]})
            await asyncio.sleep(0.1)
            while True:  # drain anything already in flight
                try:
                    await ws.receive(timeout=0.05)
                except TimeoutError:
                    break
            with pytest.raises(asyncio.TimeoutError):
                await ws.receive(timeout=1.2)

    run(scenario())


def test_other_public_channels(mx) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as s, s.ws_connect(mx.public_ws_url) as ws:
            await recv_json(ws)
            await subscribe(ws, {"symbol": "BTCUSDT", "ch": "ticker"}, {"symbol": "BTCUSDT", "ch": "depth_book5"},
                            {"symbol": "BTCUSDT", "ch": "price"}, {"symbol": "BTCUSDT", "ch": "trade"},
                            {"symbol": "BTCUSDT", "ch": "mark_kline_5min"})
            got = {}
            while len(got) < 5:
                m = await recv_until(ws, lambda m: "ch" in m)
                got[m["ch"]] = m
            assert set(got["ticker"]["data"]) == {"o", "la", "h", "l", "b", "q", "r"}
            assert len(got["depth_book5"]["data"]["a"]) == 5
            assert set(got["price"]["data"]) == {"ip", "mp", "fr", "ft", "nft"}
            assert set(got["trade"]["data"][0]) == {"t", "p", "v", "s"}
            assert set(got["mark_kline_5min"]["data"]) == {"o", "c", "h", "l", "b", "q"}

    run(scenario())


def test_idle_connections_are_closed_unless_they_ping() -> None:
    with running_mock_exchange(ws_idle_timeout_s=0.4) as mx:
        async def scenario() -> None:
            async with aiohttp.ClientSession() as s:
                async with s.ws_connect(mx.public_ws_url) as quiet:
                    await recv_json(quiet)
                    msg = await quiet.receive(timeout=2)
                    assert msg.type is aiohttp.WSMsgType.CLOSE
                async with s.ws_connect(mx.public_ws_url) as chatty:
                    await recv_json(chatty)
                    for _ in range(5):
                        await asyncio.sleep(0.2)
                        await chatty.send_json({"op": "ping", "ping": int(time.time())})
                        await recv_until(chatty, lambda m: "pong" in m)
                    assert not chatty.closed

        run(scenario())


# --- private ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ts_unit", ["s", "ms"])
def test_private_login(mx, ts_unit: str) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as s, s.ws_connect(mx.private_ws_url) as ws:
            await recv_json(ws)
            ts = int(time.time()) if ts_unit == "s" else int(time.time() * 1000)
            assert await ws_login(ws, timestamp=ts) == {"op": "login", "data": {"result": True}}

    run(scenario())


def test_private_login_refusals(mx) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as s, s.ws_connect(mx.private_ws_url) as ws:
            await recv_json(ws)
            bad = await ws_login(ws, secret="wrong")
            assert bad["data"]["result"] is False and bad["data"]["code"] == 10007
            stale = await ws_login(ws, timestamp=int(time.time()) - 600)
            assert stale["data"]["result"] is False
            unknown = await ws_login(ws, api_key="nobody")
            assert unknown["data"]["code"] == 10003

    run(scenario())


def test_private_pushes_after_trading(mx) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as s, s.ws_connect(mx.private_ws_url) as ws:
            await recv_json(ws)
            await ws_login(ws)
            await subscribe(ws, {"ch": "order"}, {"ch": "position"}, {"ch": "balance"})
            async with signed_client(mx.rest_url) as c:
                placed = (await c.market_order("BUY", "0.01", clientId="p1"))["data"]
            order_events, position, balance = [], None, None
            while len(order_events) < 2 or position is None or balance is None:
                m = await recv_until(ws, lambda m: m.get("ch") in ("order", "position", "balance"))
                assert set(m) == {"ch", "ts", "data"} and isinstance(m["data"], dict)
                if m["ch"] == "order":
                    order_events.append(m["data"])
                elif m["ch"] == "position":
                    position = m["data"]
                else:
                    balance = m["data"]
            assert [o["event"] for o in order_events] == ["CREATE", "CLOSE"]
            closed = order_events[-1]
            assert closed["orderId"] == placed["orderId"] and closed["clientId"] == "p1"
            assert closed["orderStatus"] == "FILLED" and closed["dealAmount"] == "0.01"
            assert closed["averagePrice"] == "95000"
            assert {"event", "orderId", "symbol", "positionType", "positionMode", "side", "effect", "type", "qty",
                    "reductionOnly", "price", "ctime", "mtime", "leverage", "orderStatus", "fee", "averagePrice",
                    "dealAmount", "clientId"} <= set(closed)
            datetime.fromisoformat(closed["ctime"].replace("Z", "+00:00"))
            assert position["event"] == "OPEN" and position["side"] == "LONG" and position["qty"] == "0.01"
            assert {"event", "positionId", "marginMode", "positionMode", "side", "leverage", "margin", "ctime",
                    "qty", "entryValue", "symbol", "realizedPNL", "unrealizedPNL", "funding", "fee"} == set(position)
            assert set(balance) == {"coin", "available", "frozen", "isolationFrozen", "crossFrozen", "margin",
                                    "isolationMargin", "crossMargin", "expMoney"}
            assert balance["margin"] == "47.5"

            await asyncio.to_thread(mx.admin.set_price, "95100")
            async with signed_client(mx.rest_url) as c:
                await c.post("trade/close_all_position", {"symbol": "BTCUSDT"})
            closing = await recv_until(ws, lambda m: m.get("ch") == "position" and m["data"]["event"] == "CLOSE")
            assert closing["data"]["realizedPNL"] == "1"

    run(scenario())


def test_private_pushes_go_only_to_the_logged_in_account(mx) -> None:
    mx.admin.add_account("otherkey", "othersecret", 5000)

    async def scenario() -> None:
        async with aiohttp.ClientSession() as s, s.ws_connect(mx.private_ws_url) as ws:
            await recv_json(ws)
            await ws_login(ws, api_key="otherkey", secret="othersecret")
            async with signed_client(mx.rest_url) as c:
                assert (await c.market_order("BUY", "0.01"))["code"] == 0
            with pytest.raises(asyncio.TimeoutError):
                await recv_until(ws, lambda m: m.get("ch") == "order", timeout=0.8)

    run(scenario())


def test_private_pushes_can_require_a_subscription() -> None:
    with running_mock_exchange(private_requires_subscribe=True, time_scale=0) as mx:
        async def scenario() -> None:
            async with aiohttp.ClientSession() as s, s.ws_connect(mx.private_ws_url) as ws:
                await recv_json(ws)
                await ws_login(ws)
                async with signed_client(mx.rest_url) as c:
                    await c.market_order("BUY", "0.01")
                    with pytest.raises(asyncio.TimeoutError):
                        await recv_until(ws, lambda m: m.get("ch") == "order", timeout=0.6)
                    await subscribe(ws, {"ch": "order"})
                    await asyncio.sleep(0.1)
                    await c.market_order("SELL", "0.01")
                    pushed = await recv_until(ws, lambda m: m.get("ch") == "order")
                    assert pushed["data"]["side"] == "Sell"  # pushes spell enums Title-case by default

        run(scenario())


def test_private_time_and_enum_format_options() -> None:
    with running_mock_exchange(private_time_format="ms", private_enum_style="title", time_scale=0) as mx:
        async def scenario() -> None:
            async with aiohttp.ClientSession() as s, s.ws_connect(mx.private_ws_url) as ws:
                await recv_json(ws)
                await ws_login(ws)
                async with signed_client(mx.rest_url) as c:
                    await c.market_order("BUY", "0.01")
                pushed = await recv_until(ws, lambda m: m.get("ch") == "order")
                assert isinstance(pushed["data"]["ctime"], int)
                assert (pushed["data"]["side"], pushed["data"]["type"]) == ("Buy", "Market")

        run(scenario())


def test_many_subscriptions_share_one_connection(mx) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as s, s.ws_connect(mx.public_ws_url) as ws:
            await recv_json(ws)
            channels = ["market_kline_1min", "market_kline_5min", "market_kline_60min", "market_kline_1day"]
            await subscribe(ws, *({"symbol": "BTCUSDT", "ch": ch} for ch in channels))
            got = set()
            while got != set(channels):  # one snapshot per channel, all on one connection
                got.add((await recv_until(ws, lambda m: m.get("ch") in channels))["ch"])

    run(scenario())
