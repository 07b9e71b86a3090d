"""Every fault mode, set at run time through the admin API (and at start-up through options)."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

from laptop_agents.mock_exchange.faults import FaultInjector, FaultSettings
from laptop_agents.mock_exchange.testing import AdminError, running_mock_exchange

from .mx_client import API, recv_json, recv_until, run, signed_client

KLINE = {"symbol": "BTCUSDT", "ch": "market_kline_1min"}


def is_kline(msg: dict) -> bool:
    return msg.get("ch") == "market_kline_1min"


async def connect_and_subscribe(s: aiohttp.ClientSession, url: str, **kw) -> aiohttp.ClientWebSocketResponse:
    ws = await s.ws_connect(url, **kw)
    await recv_json(ws)
    await ws.send_json({"op": "subscribe", "args": [KLINE]})
    return ws


async def wait_closed(ws: aiohttp.ClientWebSocketResponse, timeout: float = 3.0) -> aiohttp.WSMessage:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        msg = await ws.receive(timeout=deadline - loop.time())
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            return msg


# --- admin API -------------------------------------------------------------------------------------------


def test_fault_settings_round_trip_validation_and_reset(mx) -> None:
    assert mx.admin.faults() == FaultSettings().model_dump()
    updated = mx.admin.set_faults(rest_error_share=0.25, rest_fault_paths=["trade/place_order"])
    assert updated["rest_error_share"] == 0.25 and mx.admin.faults() == updated
    with pytest.raises(AdminError, match="400"):
        mx.admin.set_faults(no_such_fault=True)
    with pytest.raises(AdminError, match="400"):
        mx.admin.set_faults(ws_push_drop_share=2)
    mx.admin.reset()
    assert mx.admin.faults() == FaultSettings().model_dump()
    assert [e["action"] for e in mx.admin.events("admin")] == ["reset"]


def test_faults_can_be_active_from_start_up() -> None:
    with running_mock_exchange(faults={"rest_error_next": 1, "rest_error_status": 502}) as mx:
        async def scenario() -> None:
            async with aiohttp.ClientSession() as s:
                async with s.get(mx.rest_url + API + "market/tickers") as resp:
                    assert resp.status == 502
                async with s.get(mx.rest_url + API + "market/tickers") as resp:
                    assert resp.status == 200

        run(scenario())


# --- WebSocket faults ------------------------------------------------------------------------------------


def test_drop_all_websockets_now(mx) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as s:
            pub = await connect_and_subscribe(s, mx.public_ws_url)
            priv = await s.ws_connect(mx.private_ws_url)
            await recv_json(priv)
            result = await asyncio.to_thread(mx.admin._call, "POST", "/admin/faults", {"ws_drop_now": True})
            assert result["wsDropped"] == 2
            for ws in (pub, priv):
                msg = await wait_closed(ws)
                assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)  # no close frame
                await ws.close()

    run(scenario())
    (fault,) = mx.admin.events("fault")
    assert fault["fault"] == "ws_drop" and fault["dropped"] == 2


def test_drop_with_close_frame(mx) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as s:
            ws = await connect_and_subscribe(s, mx.public_ws_url)
            assert await asyncio.to_thread(mx.admin.drop_ws, "close") == 1
            msg = await wait_closed(ws)
            assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 1012
            await ws.close()

    run(scenario())


def test_drop_every_n_seconds(mx) -> None:
    mx.admin.set_faults(ws_drop_every_s=0.4)

    async def scenario() -> None:
        async with aiohttp.ClientSession() as s:
            for _ in range(2):  # reconnecting does not help for long
                t0 = time.monotonic()
                ws = await connect_and_subscribe(s, mx.public_ws_url)
                await wait_closed(ws, timeout=2)
                assert time.monotonic() - t0 < 1.0
                await ws.close()

    run(scenario())
    assert len(mx.admin.events("fault")) >= 2


def test_stall_keeps_connections_open_but_silent(mx) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as s:
            ws = await connect_and_subscribe(s, mx.public_ws_url)
            await recv_until(ws, is_kline)
            await asyncio.to_thread(mx.admin.set_faults, ws_stall=True)
            await asyncio.sleep(0.1)
            while True:  # drain what was already in flight
                try:
                    await ws.receive(timeout=0.05)
                except TimeoutError:
                    break
            await ws.send_json({"op": "ping", "ping": 1})
            with pytest.raises(asyncio.TimeoutError):
                await ws.receive(timeout=1.1)  # no push, no pong
            assert not ws.closed
            await asyncio.to_thread(mx.admin.set_faults, ws_stall=False)
            await recv_until(ws, is_kline, timeout=2)
            await ws.close()

    run(scenario())


def test_dropped_pushes_but_pongs_still_flow(mx) -> None:
    mx.admin.set_faults(ws_push_drop_share=1.0)

    async def scenario() -> None:
        async with aiohttp.ClientSession() as s:
            ws = await connect_and_subscribe(s, mx.public_ws_url)
            await ws.send_json({"op": "ping", "ping": 7})
            assert (await recv_json(ws))["pong"] == 7
            with pytest.raises(asyncio.TimeoutError):
                await recv_until(ws, is_kline, timeout=1.1)
            await ws.close()

    run(scenario())


def test_share_of_pushes_dropped() -> None:
    with running_mock_exchange(push_interval_ms=50, faults={"ws_push_drop_share": 0.5}) as mx:
        async def scenario() -> int:
            count = 0
            async with aiohttp.ClientSession() as s:
                ws = await connect_and_subscribe(s, mx.public_ws_url)
                t0 = time.monotonic()
                while time.monotonic() - t0 < 1.0:
                    try:
                        await recv_until(ws, is_kline, timeout=0.3)
                        count += 1
                    except TimeoutError:
                        pass
                await ws.close()
            return count

        count = run(scenario())
        assert 3 <= count <= 17  # about half of ~20 pushes


def test_delayed_pushes(mx) -> None:
    mx.admin.set_faults(ws_push_delay_ms=600)

    async def scenario() -> None:
        async with aiohttp.ClientSession() as s:
            ws = await connect_and_subscribe(s, mx.public_ws_url)
            t0 = time.monotonic()
            await recv_until(ws, is_kline, timeout=3)
            assert time.monotonic() - t0 >= 0.55
            await ws.close()

    run(scenario())


def test_malformed_mode_sends_garbage_but_real_pushes_still_arrive() -> None:
    with running_mock_exchange(push_interval_ms=50, faults={"ws_malformed_share": 1.0}) as mx:
        async def scenario() -> None:
            async with aiohttp.ClientSession() as s:
                ws = await connect_and_subscribe(s, mx.public_ws_url)
                garbage = valid = 0
                while valid < 8:
                    msg = await ws.receive(timeout=2)
                    if msg.type is aiohttp.WSMsgType.BINARY:
                        garbage += 1
                        continue
                    try:
                        data = json.loads(msg.data)
                    except ValueError:
                        garbage += 1
                        continue
                    if isinstance(data, dict) and is_kline(data) and isinstance(data.get("data", {}).get("o"), str) \
                            and isinstance(data.get("ts"), int):
                        valid += 1
                    elif not (isinstance(data, dict) and data.get("op") == "connect"):
                        garbage += 1
                assert garbage >= valid - 1
                await ws.close()

        run(scenario())


# --- REST faults -----------------------------------------------------------------------------------------


def test_next_n_rest_calls_fail_with_5xx_and_are_not_processed(mx) -> None:
    mx.admin.set_faults(rest_error_next=2)

    async def scenario() -> None:
        async with signed_client(mx.rest_url) as c:
            raw = json.dumps({"symbol": "BTCUSDT", "side": "BUY", "qty": "0.01", "orderType": "MARKET"},
                             separators=(",", ":"))
            for expected in (503, 503, 200):
                async with c.session.post(mx.rest_url + API + "trade/place_order", data=raw.encode(),
                                          headers=c.headers({}, raw)) as resp:
                    assert resp.status == expected
                    if expected != 200:
                        assert resp.content_type == "text/html"  # not the envelope: a transport failure

    run(scenario())
    assert [f["fault"] for f in mx.admin.events("fault")] == ["rest_error", "rest_error"]
    assert len(mx.admin.events("order_request")) == 1  # the exchange saw only the third call


def test_rest_faults_can_target_paths(mx) -> None:
    mx.admin.set_faults(rest_error_share=1.0, rest_fault_paths=["trade/place_order"], rest_error_status=500)

    async def scenario() -> None:
        async with signed_client(mx.rest_url) as c:
            assert (await c.public("market/tickers"))["code"] == 0
            assert (await c.account())["marginCoin"] == "USDT"
            raw = '{"symbol":"BTCUSDT","side":"BUY","qty":"0.01","orderType":"MARKET"}'
            async with c.session.post(mx.rest_url + API + "trade/place_order", data=raw.encode(),
                                      headers=c.headers({}, raw)) as resp:
                assert resp.status == 500

    run(scenario())


def test_hanging_rest_call_times_the_client_out(mx) -> None:
    mx.admin.set_faults(rest_hang_next=1, rest_hang_s=10)

    async def scenario() -> None:
        async with aiohttp.ClientSession() as s:
            t0 = time.monotonic()
            with pytest.raises(asyncio.TimeoutError):
                async with s.get(mx.rest_url + API + "market/tickers", timeout=aiohttp.ClientTimeout(total=0.5)):
                    pass
            assert time.monotonic() - t0 < 2
            async with s.get(mx.rest_url + API + "market/tickers") as resp:
                assert resp.status == 200

    run(scenario())
    assert mx.admin.events("fault")[0]["fault"] == "rest_hang"


def test_hang_ends_in_504_when_the_client_waits() -> None:
    with running_mock_exchange(faults={"rest_hang_next": 1, "rest_hang_s": 0.3}) as mx:
        async def scenario() -> None:
            async with aiohttp.ClientSession() as s, s.get(mx.rest_url + API + "market/tickers") as resp:
                assert resp.status == 504

        run(scenario())


def test_lost_response_after_processing_makes_the_retry_meet_30042(mx) -> None:
    mx.admin.set_faults(rest_error_next=1, rest_fault_phase="after", rest_fault_paths=["trade/place_order"])

    async def scenario() -> None:
        async with signed_client(mx.rest_url) as c:
            raw = json.dumps({"symbol": "BTCUSDT", "side": "BUY", "qty": "0.01", "orderType": "MARKET",
                              "clientId": "idem-1"}, separators=(",", ":"))
            async with c.session.post(mx.rest_url + API + "trade/place_order", data=raw.encode(),
                                      headers=c.headers({}, raw)) as resp:
                assert resp.status == 503
            retry = await c.post("trade/place_order", json.loads(raw))
            assert retry["code"] == 30042
            detail = (await c.get("trade/get_order_detail", {"clientId": "idem-1"}))["data"]
            assert detail["status"] == "FILLED"

    run(scenario())
    requests = mx.admin.events("order_request")
    assert [(r["accepted"], r["duplicate"]) for r in requests] == [(True, False), (False, True)]
    assert len(mx.admin.events("fill")) == 1


def test_forced_rate_limiting(mx) -> None:
    mx.admin.set_faults(rate_limit_next=2)

    async def scenario() -> None:
        async with signed_client(mx.rest_url) as c:
            codes = [(await c.public("market/tickers"))["code"] for _ in range(3)]
            assert codes == [10006, 10006, 0]
            await asyncio.to_thread(mx.admin.set_faults, rate_limit_all=True)
            assert (await c.get("account"))["code"] == 10006
            assert (await c.market_order("BUY", "0.01"))["code"] == 10006

    run(scenario())
    assert mx.admin.events("order_request")[0]["code"] == 10006


def test_reject_next_orders_with_a_given_code(mx) -> None:
    mx.admin.set_faults(reject_orders_next=2, reject_orders_code=30001, reject_orders_msg="would liquidate")

    async def scenario() -> None:
        async with signed_client(mx.rest_url) as c:
            first = await c.market_order("BUY", "0.01", clientId="r1")
            assert first == {"code": 30001, "msg": "would liquidate", "data": None}
            assert (await c.market_order("BUY", "0.01", clientId="r1"))["code"] == 30001
            assert (await c.market_order("BUY", "0.01", clientId="r1"))["code"] == 0  # the clientId was not burnt

    run(scenario())
    assert [r["code"] for r in mx.admin.events("order_request")] == [30001, 30001, 0]


def test_clock_skew_makes_fresh_timestamps_stale(mx) -> None:
    mx.admin.set_faults(clock_skew_ms=60_000)

    async def scenario() -> None:
        async with signed_client(mx.rest_url) as c:
            q = {"marginCoin": "USDT"}
            assert (await c.get("account", q))["code"] == 10007
            assert (await c.get("account", q, timestamp=int(time.time() * 1000) + 60_000))["code"] == 0

    run(scenario())


def test_price_pause_freezes_the_market_but_pushes_continue() -> None:
    with running_mock_exchange(time_scale=600, push_interval_ms=100) as mx:
        mx.admin.set_faults(price_paused=True)
        frozen = mx.admin.state()["marketTime"]

        async def scenario() -> None:
            async with aiohttp.ClientSession() as s:
                ws = await connect_and_subscribe(s, mx.public_ws_url)
                pushes = [await recv_until(ws, is_kline, timeout=2) for _ in range(4)]
                assert all(p == pushes[0] for p in pushes)  # same ts, same data: nothing new
                async with signed_client(mx.rest_url) as c:
                    a = await c.public("market/kline", {"symbol": "BTCUSDT", "interval": "1m", "limit": "2"})
                    await asyncio.sleep(0.3)
                    b = await c.public("market/kline", {"symbol": "BTCUSDT", "interval": "1m", "limit": "2"})
                    assert a == b
                await asyncio.to_thread(mx.admin.set_faults, price_paused=False)
                moved = await recv_until(ws, lambda m: is_kline(m) and m["ts"] > pushes[0]["ts"] + 30_000, timeout=2)
                assert moved["ts"] - frozen < 60_000 * 5  # resumes from the frozen time, no jump
                await ws.close()

        run(scenario())
        assert mx.admin.state()["marketTime"] > frozen


# --- determinism -----------------------------------------------------------------------------------------


def _error_pattern(seed: int) -> list[int]:
    with running_mock_exchange(seed=seed, faults={"rest_error_share": 0.5}, rate_limits_enabled=False) as mx:
        async def scenario() -> list[int]:
            async with aiohttp.ClientSession() as s:
                statuses = []
                for _ in range(24):
                    async with s.get(mx.rest_url + API + "market/funding_rate", params={"symbol": "BTCUSDT"}) as r:
                        statuses.append(r.status)
                return statuses

        return run(scenario())


def test_fault_decisions_are_deterministic_under_a_seed() -> None:
    a, b, c = _error_pattern(11), _error_pattern(11), _error_pattern(12)
    assert a == b and a != c
    assert 4 <= a.count(503) <= 20


def test_push_fate_stream_is_reproducible() -> None:
    settings = {"ws_push_drop_share": 0.3, "ws_push_delay_ms": 10, "ws_push_delay_share": 0.5,
                "ws_malformed_share": 0.2}
    one = FaultInjector(5, FaultSettings(**settings))
    two = FaultInjector(5, FaultSettings(**settings))
    assert [one.push_fate() for _ in range(200)] == [two.push_fate() for _ in range(200)]


def test_admin_errors_are_http_400(mx) -> None:
    for path, body in (("/admin/price", {"price": "abc"}), ("/admin/clock", {}), ("/admin/ws/drop", {"mode": "x"})):
        with pytest.raises(AdminError, match="400"):
            mx.admin._call("POST", path, body)
    with pytest.raises(AdminError):
        mx.admin.set_price("95000.05")
