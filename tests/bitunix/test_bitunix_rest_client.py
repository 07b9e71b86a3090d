"""REST client over real loopback sockets against a scripted server.

The server checks signatures on the raw bytes it receives, so these tests prove
the client sends exactly what it signs. Resilience behaviour (which failures are
retried for which endpoints, duplicate clientId resolution, breaker, pacing) is
asserted from what the server actually saw.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web

from laptop_agents.bitunix import (
    AuthError,
    BitunixRestClient,
    Credentials,
    DuplicateClientIdError,
    EndpointGroup,
    ExchangeUnavailableError,
    InsufficientBalanceError,
    OrderSide,
    OrderType,
    PlaceOrderRequest,
    RateLimitError,
    RestConfig,
    TransportError,
)
from laptop_agents.bitunix.transport import DOCUMENTED_RATE_LIMITS
from laptop_agents.resilience.rate_limiter import RateLimit
from laptop_agents.resilience.retry import RetryPolicy
from tests.bitunix.bitunix_fake_http import FakeBitunix, Recorded, body_json, err, ok, serve

FAST = {group: RateLimit(1000.0, 1000.0) for group in EndpointGroup}
ORDER = {
    "orderId": "9001", "symbol": "BTCUSDT", "qty": "0.001", "side": "BUY",
    "orderType": "MARKET", "status": "FILLED", "clientId": None,
}


def make_client(fake: FakeBitunix, *, secret: str | None = None, **overrides: Any) -> BitunixRestClient:
    config = RestConfig(
        base_url=fake.base_url,
        timeout_sec=overrides.pop("timeout_sec", 2.0),
        retry=overrides.pop("retry", RetryPolicy(max_attempts=3, base_delay_sec=0.01, max_delay_sec=0.02)),
        rate_limits=overrides.pop("rate_limits", FAST),
        **overrides,
    )
    return BitunixRestClient(config, Credentials(fake.api_key, secret or fake.secret))


def run_with(
    handlers: dict[str, Callable[[Recorded], Any]],
    scenario: Callable[[FakeBitunix], Awaitable[Any]],
) -> tuple[FakeBitunix, Any]:
    fake = FakeBitunix(handlers=handlers)

    async def main() -> Any:
        async with serve(fake):
            return await scenario(fake)

    return fake, asyncio.run(main())


def market_order(client_id: str | None = "cid-1") -> PlaceOrderRequest:
    return PlaceOrderRequest("BTCUSDT", OrderSide.BUY, Decimal("0.001"), OrderType.MARKET, client_id=client_id)


def test_documented_rate_limits_are_the_defaults() -> None:
    assert RestConfig().rate_limits == DOCUMENTED_RATE_LIMITS
    assert {g: r.rate_per_sec for g, r in DOCUMENTED_RATE_LIMITS.items()} == {
        EndpointGroup.MARKET: 10, EndpointGroup.QUERY: 10, EndpointGroup.PLACE_ORDER: 10,
        EndpointGroup.BATCH_ORDER: 5, EndpointGroup.CANCEL: 5, EndpointGroup.FLASH_CLOSE: 5, EndpointGroup.TPSL: 10,
    }


def test_signed_get_is_accepted_and_parsed() -> None:
    account = {"marginCoin": "USDT", "available": "100", "frozen": "0", "margin": "0"}

    async def scenario(fake: FakeBitunix) -> Any:
        async with make_client(fake) as client:
            return await client.account()

    fake, result = run_with({"/account": lambda r: ok([account])}, scenario)
    assert result.available == Decimal("100")
    (rec,) = fake.requests
    assert rec.query == {"marginCoin": "USDT"}
    assert len(rec.headers["nonce"]) == 32 and rec.headers["timestamp"].isdigit()


def test_signed_post_sends_exactly_the_signed_compact_bytes() -> None:
    async def scenario(fake: FakeBitunix) -> Any:
        async with make_client(fake) as client:
            return await client.place_order(market_order())

    fake, ack = run_with({"/trade/place_order": lambda r: ok({"orderId": "1", "clientId": "cid-1"})}, scenario)
    assert ack.order_id == "1" and not ack.already_existed
    (rec,) = fake.requests
    assert rec.body == (
        b'{"symbol":"BTCUSDT","side":"BUY","tradeSide":"OPEN","qty":"0.001",'
        b'"orderType":"MARKET","clientId":"cid-1"}'
    )
    assert rec.headers["content-type"].startswith("application/json")


def test_client_id_is_generated_once_when_missing() -> None:
    async def scenario(fake: FakeBitunix) -> Any:
        async with make_client(fake) as client:
            return await client.place_order(market_order(client_id=None))

    fake, ack = run_with({"/trade/place_order": lambda r: ok({"orderId": "1"})}, scenario)
    sent = body_json(fake.requests[0])["clientId"]
    assert len(sent) == 32 and ack.client_id == sent


def test_bad_secret_is_an_auth_error_and_never_retried() -> None:
    async def scenario(fake: FakeBitunix) -> Any:
        async with make_client(fake, secret="wrong-secret-value") as client:
            with pytest.raises(AuthError) as info:
                await client.account()
            return info.value

    fake, error = run_with({"/account": lambda r: ok({})}, scenario)
    assert error.code == 10007 and len(fake.requests) == 1


def test_exchange_error_code_maps_to_typed_error_and_secrets_are_scrubbed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def echo_key(rec: Recorded) -> web.Response:
        return err(20003, f"balance low for key {rec.headers['api-key']}")

    async def scenario(fake: FakeBitunix) -> Any:
        async with make_client(fake) as client:
            with pytest.raises(InsufficientBalanceError) as info:
                await client.place_order(market_order())
            return info.value

    with caplog.at_level(logging.DEBUG):
        fake, error = run_with({"/trade/place_order": echo_key}, scenario)
    assert fake.api_key not in str(error) and "***" in str(error)
    assert fake.secret not in caplog.text and fake.api_key not in caplog.text


def test_5xx_is_retried_for_gets() -> None:
    calls = 0

    def flaky(rec: Recorded) -> web.Response:
        nonlocal calls
        calls += 1
        return web.Response(status=502) if calls < 3 else ok([{"symbol": "BTCUSDT", "lastPrice": "1"}])

    async def scenario(fake: FakeBitunix) -> Any:
        async with make_client(fake) as client:
            tickers = await client.tickers(["BTCUSDT"])
            return tickers, client.transport.stats.retries

    fake, (tickers, retries) = run_with({"/market/tickers": flaky}, scenario)
    assert tickers[0].last_price == Decimal("1")
    assert calls == 3 and retries == 2
    assert fake.requests[0].query == {"symbols": "BTCUSDT"}


def test_5xx_on_a_cancel_is_not_retried_because_it_may_have_run() -> None:
    async def scenario(fake: FakeBitunix) -> Any:
        async with make_client(fake) as client:
            with pytest.raises(TransportError) as info:
                await client.cancel_orders("BTCUSDT", order_ids=["1"])
            return info.value

    fake, error = run_with({"/trade/cancel_orders": lambda r: web.Response(status=503)}, scenario)
    assert error.status == 503 and fake.count("/cancel_orders") == 1


def test_rate_limit_refusal_backs_off_and_retries_even_for_cancels() -> None:
    calls = 0

    def limited(rec: Recorded) -> web.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return err(10006, "too many requests")
        if calls == 2:
            return web.Response(status=429)
        return ok({"successList": [{"orderId": "1"}], "failureList": []})

    async def scenario(fake: FakeBitunix) -> Any:
        async with make_client(fake) as client:
            return await client.cancel_orders("BTCUSDT", order_ids=["1"])

    fake, result = run_with({"/trade/cancel_orders": limited}, scenario)
    assert calls == 3 and [s.order_id for s in result.succeeded] == ["1"]


def test_persistent_rate_limit_surfaces_as_rate_limit_error() -> None:
    async def scenario(fake: FakeBitunix) -> Any:
        async with make_client(fake) as client:
            with pytest.raises(RateLimitError):
                await client.get_pending_positions("BTCUSDT")

    fake, _ = run_with({"/position/get_pending_positions": lambda r: err(10005)}, scenario)
    assert fake.count("/get_pending_positions") == 3


def test_timed_out_placement_is_retried_and_the_duplicate_resolved() -> None:
    placed: dict[str, dict] = {}

    async def slow_place(rec: Recorded) -> web.Response:
        body = body_json(rec)
        if body["clientId"] in placed:
            return err(30042, "client id duplicate")
        placed[body["clientId"]] = body
        await asyncio.sleep(1.0)  # the order lands, but the answer is too late
        return ok({"orderId": "9001", "clientId": body["clientId"]})

    def detail(rec: Recorded) -> web.Response:
        assert rec.query == {"clientId": "cid-1"}
        return ok(dict(ORDER, clientId="cid-1"))

    async def scenario(fake: FakeBitunix) -> Any:
        async with make_client(fake, timeout_sec=0.3) as client:
            ack = await client.place_order(market_order())
            return ack, client.duplicates_resolved

    fake, (ack, resolved) = run_with(
        {"/trade/place_order": slow_place, "/trade/get_order_detail": detail}, scenario
    )
    # the lookup by clientId finds it: never sent a second time
    assert ack.order_id == "9001" and ack.already_existed and resolved == 1
    assert len(placed) == 1 and fake.count("/place_order") == 1


def test_timed_out_opening_order_is_never_resent_even_when_the_lookup_finds_nothing() -> None:
    """Not found is no proof: the original may still be held on its way in and land after a re-send (where
    30042 covers only open orders that doubles the position). The caller gets the failure (order unknown)."""

    async def place(rec: Recorded) -> web.Response:
        await asyncio.sleep(1.0)
        return web.Response(status=504)

    async def scenario(fake: FakeBitunix) -> Any:
        async with make_client(fake, timeout_sec=0.3) as client:
            with pytest.raises(TransportError):
                await client.place_order(market_order())

    fake, _ = run_with({"/trade/place_order": place, "/trade/get_order_detail": lambda r: err(20007)}, scenario)
    paths = [r.path.rsplit("/", 1)[-1] for r in fake.requests]
    assert paths == ["place_order", "get_order_detail"], paths


def test_timed_out_reduce_only_order_is_resent_only_after_the_lookup_proves_it_absent() -> None:
    calls: list[str] = []

    async def place(rec: Recorded) -> web.Response:
        calls.append(body_json(rec)["clientId"])
        if len(calls) == 1:
            await asyncio.sleep(1.0)  # never processed (the answer is too late and nothing was placed)
            return web.Response(status=504)
        return ok({"orderId": "9002", "clientId": calls[-1]})

    async def scenario(fake: FakeBitunix) -> Any:
        async with make_client(fake, timeout_sec=0.3) as client:
            return await client.place_order(replace(market_order(), reduce_only=True))  # it can only reduce

    fake, ack = run_with({"/trade/place_order": place, "/trade/get_order_detail": lambda r: err(20007)}, scenario)
    assert ack.order_id == "9002" and not ack.already_existed
    assert ack.resent, "the caller must know the unanswered original may still land (and execute again)"
    paths = [r.path.rsplit("/", 1)[-1] for r in fake.requests]
    assert paths == ["place_order", "get_order_detail", "place_order"], paths
    bodies = [r.body for r in fake.requests if r.path.endswith("/place_order")]
    assert bodies[0] == bodies[1]  # same clientId, same bytes
    nonces = [r.headers["nonce"] for r in fake.requests if r.path.endswith("/place_order")]
    assert nonces[0] != nonces[1]  # but freshly signed


def test_duplicate_client_id_of_a_different_order_is_not_swallowed() -> None:
    async def scenario(fake: FakeBitunix) -> Any:
        async with make_client(fake) as client:
            with pytest.raises(DuplicateClientIdError):
                await client.place_order(market_order())

    run_with(
        {
            "/trade/place_order": lambda r: err(30042),
            "/trade/get_order_detail": lambda r: ok(dict(ORDER, qty="5", clientId="cid-1")),
        },
        scenario,
    )


def test_duplicate_that_cannot_be_found_re_raises_the_duplicate() -> None:
    async def scenario(fake: FakeBitunix) -> Any:
        async with make_client(fake) as client:
            with pytest.raises(DuplicateClientIdError):
                await client.place_order(market_order())

    run_with(
        {"/trade/place_order": lambda r: err(30042), "/trade/get_order_detail": lambda r: err(20007)},
        scenario,
    )


def test_bad_json_and_non_envelopes_are_transport_errors() -> None:
    async def scenario(fake: FakeBitunix) -> Any:
        async with make_client(fake, retry=RetryPolicy(max_attempts=1)) as client:
            for path in ("tickers", "trading_pairs"):
                with pytest.raises(TransportError):
                    await getattr(client, path)()

    run_with(
        {
            "/market/tickers": lambda r: web.Response(text="<html>oops</html>"),
            "/market/trading_pairs": lambda r: web.json_response({"data": []}),
        },
        scenario,
    )


def test_circuit_opens_after_consecutive_transport_failures_and_stops_calling() -> None:
    async def scenario(fake: FakeBitunix) -> Any:
        async with make_client(
            fake,
            retry=RetryPolicy(max_attempts=1),
            circuit_failure_threshold=3,
            circuit_reset_timeout_sec=60,
        ) as client:
            for _ in range(3):
                with pytest.raises(TransportError):
                    await client.tickers()
            with pytest.raises(ExchangeUnavailableError) as info:
                await client.tickers()
            return info.value, client.transport.stats.circuit_rejections

    fake, (error, rejections) = run_with({"/market/tickers": lambda r: web.Response(status=500)}, scenario)
    assert fake.count("/tickers") == 3 and rejections == 1
    assert 0 < error.retry_after_sec <= 60


def test_business_errors_do_not_trip_the_breaker() -> None:
    async def scenario(fake: FakeBitunix) -> Any:
        async with make_client(fake, circuit_failure_threshold=2) as client:
            for _ in range(4):
                with pytest.raises(InsufficientBalanceError):
                    await client.place_order(market_order())
            return client.transport.breaker.state.value

    _, state = run_with({"/trade/place_order": lambda r: err(20003)}, scenario)
    assert state == "closed"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connection_refused_is_retried_even_for_non_idempotent_posts() -> None:
    async def main() -> Any:
        config = RestConfig(
            base_url=f"http://127.0.0.1:{_closed_port()}",
            retry=RetryPolicy(max_attempts=3, base_delay_sec=0.01, max_delay_sec=0.01),
            rate_limits=FAST,
        )
        async with BitunixRestClient(config, Credentials("k" * 16, "s" * 16)) as client:
            with pytest.raises(TransportError) as info:
                await client.close_all_position("BTCUSDT")
            return info.value, client.transport.stats.attempts

    error, attempts = asyncio.run(main())
    assert error.maybe_delivered is False and attempts == 3


def test_client_side_pacing_per_endpoint_group() -> None:
    limits = dict(FAST, **{EndpointGroup.MARKET: RateLimit(50.0)})

    async def scenario(fake: FakeBitunix) -> Any:
        async with make_client(fake, rate_limits=limits) as client:
            loop = asyncio.get_running_loop()
            start = loop.time()
            await asyncio.gather(*(client.tickers() for _ in range(11)))
            elapsed = loop.time() - start
            return elapsed, client.transport.limiter.stats(EndpointGroup.MARKET)

    fake, (elapsed, stats) = run_with({"/market/tickers": lambda r: ok([])}, scenario)
    assert elapsed >= 0.19  # 10 gaps of 20 ms
    assert stats.acquired == 11 and stats.waits == 10
    assert fake.count("/tickers") == 11


def test_signed_call_without_credentials_fails_fast() -> None:
    async def main() -> None:
        async with BitunixRestClient(RestConfig(base_url="http://127.0.0.1:9")) as client:
            with pytest.raises(AuthError):
                await client.account()

    asyncio.run(main())


def test_kline_range_pages_without_gap_or_duplicate() -> None:
    minute = 60_000
    t0 = 1_700_000_000_000 - 1_700_000_000_000 % minute
    bars = {t0 + i * minute: i for i in range(450)}

    def kline(rec: Recorded) -> web.Response:
        start, end, limit = int(rec.query["startTime"]), int(rec.query["endTime"]), int(rec.query["limit"])
        picked = [t for t in sorted(bars) if start <= t <= end][-limit:]  # newest-first truncation
        rows = [{"open": "1", "high": "2", "low": "1", "close": "1", "time": t} for t in reversed(picked)]
        return ok(rows)

    async def scenario(fake: FakeBitunix) -> Any:
        async with make_client(fake) as client:
            return await client.kline_range("BTCUSDT", "1m", t0, t0 + 450 * minute)

    fake, result = run_with({"/market/kline": kline}, scenario)
    assert [k.open_ms for k in result] == sorted(bars)
    assert fake.count("/kline") == 3
    assert all(int(r.query["limit"]) <= 200 for r in fake.requests)


def test_typed_endpoints_hit_the_documented_paths() -> None:
    hits: list[tuple[str, Any]] = []

    def record(data: Any) -> Callable[[Recorded], web.Response]:
        def handler(rec: Recorded) -> web.Response:
            hits.append((rec.path.removeprefix("/api/v1/futures"), body_json(rec) if rec.body else rec.query))
            return ok(data)
        return handler

    order = dict(ORDER, clientId="c")
    handlers = {
        "/market/trading_pairs": record([{"symbol": "BTCUSDT", "minTradeVolume": "0.0001", "basePrecision": 4, "quotePrecision": 1}]),
        "/account/change_leverage": record(None),
        "/account/change_margin_mode": record(None),
        "/trade/cancel_all_orders": record(None),
        "/trade/get_pending_orders": record({"orderList": [order], "total": 1}),
        "/trade/get_order_detail": record(order),
        "/trade/get_history_trades": record({"tradeList": [], "total": 0}),
        "/position/get_pending_positions": record([]),
    }

    async def scenario(fake: FakeBitunix) -> Any:
        from laptop_agents.bitunix import MarginMode

        async with make_client(fake) as client:
            pairs = await client.trading_pairs(["BTCUSDT"])
            await client.change_leverage("BTCUSDT", 5)
            await client.change_margin_mode("BTCUSDT", MarginMode.ISOLATION)
            await client.cancel_all_orders("BTCUSDT")
            page = await client.get_pending_orders("BTCUSDT", limit=10)
            detail = await client.get_order_detail(order_id="9001")
            trades = await client.get_history_trades("BTCUSDT")
            positions = await client.get_pending_positions("BTCUSDT")
            return pairs, page, detail, trades, positions

    _, (pairs, page, detail, trades, positions) = run_with(handlers, scenario)
    assert pairs[0].qty_step == Decimal("0.0001")
    assert page.total == 1 and detail.order_id == "9001" and trades.total == 0 and positions == []
    assert hits[1] == ("/account/change_leverage", {"symbol": "BTCUSDT", "leverage": 5, "marginCoin": "USDT"})
    assert hits[2][1]["marginMode"] == "ISOLATION"
    assert hits[4] == ("/trade/get_pending_orders", {"symbol": "BTCUSDT", "limit": "10"})


def test_a_closed_client_refuses_further_requests() -> None:
    async def scenario(fake: FakeBitunix) -> None:
        client = make_client(fake)
        await client.tickers()
        await client.close()
        await client.close()
        with pytest.raises(RuntimeError, match="closed"):
            await client.tickers()

    fake, _ = run_with({"/market/tickers": lambda r: ok([])}, scenario)
    assert fake.count("/tickers") == 1
