"""BitunixRestClient against the project's mock exchange (real loopback sockets).

The mock verifies signatures with its own code, keeps a ledger of what it
processed, and injects faults on request, so these tests check the client's
behaviour from the exchange's side of the wire.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, TypeVar

import pytest

from laptop_agents.bitunix import (
    AuthError,
    BitunixRestClient,
    Credentials,
    EndpointGroup,
    InsufficientBalanceError,
    MarginMode,
    OrderSide,
    OrderStatus,
    OrderType,
    PlaceOrderRequest,
    PositionSide,
    RateLimitError,
    RestConfig,
    TradeSide,
    TransportError,
)
from laptop_agents.mock_exchange.testing import MockExchangeHandle, running_mock_exchange
from laptop_agents.resilience.rate_limiter import RateLimit
from laptop_agents.resilience.retry import RetryPolicy

T = TypeVar("T")
KEY, SECRET = "testkey", "testsecret"
QUICK_RETRY = RetryPolicy(max_attempts=4, base_delay_sec=0.02, max_delay_sec=0.1)


def client_for(mx: MockExchangeHandle, secret: str = SECRET, **overrides: Any) -> BitunixRestClient:
    config = RestConfig(
        base_url=mx.rest_url,
        timeout_sec=overrides.pop("timeout_sec", 2.0),
        retry=overrides.pop("retry", QUICK_RETRY),
        **overrides,
    )
    return BitunixRestClient(config, Credentials(KEY, secret))


def run(mx: MockExchangeHandle, scenario: Callable[[BitunixRestClient], Awaitable[T]], **kw: Any) -> T:
    async def main() -> T:
        async with client_for(mx, **kw) as client:
            return await asyncio.wait_for(scenario(client), 20)

    return asyncio.run(main())


def buy(qty: str = "0.01", client_id: str | None = None) -> PlaceOrderRequest:
    return PlaceOrderRequest("BTCUSDT", OrderSide.BUY, Decimal(qty), OrderType.MARKET, client_id=client_id)


def test_signed_requests_are_accepted_through_a_full_round_trip() -> None:
    with running_mock_exchange(seed=3) as mx:

        async def scenario(client: BitunixRestClient) -> dict[str, Any]:
            pairs = await client.trading_pairs(["BTCUSDT"])
            account = await client.account()
            await client.change_leverage("BTCUSDT", 10)
            await client.change_margin_mode("BTCUSDT", MarginMode.ISOLATION)
            ack = await client.place_order(buy(client_id="rt-1"))
            detail = await client.get_order_detail(client_id="rt-1")
            positions = await client.get_pending_positions("BTCUSDT")
            trades = await client.get_history_trades("BTCUSDT")
            limit = PlaceOrderRequest(
                "BTCUSDT", OrderSide.BUY, Decimal("0.01"), OrderType.LIMIT,
                price=Decimal("50000.0"), client_id="rt-2",
            )
            await client.place_order(limit)
            pending = await client.get_pending_orders("BTCUSDT")
            cancelled = await client.cancel_orders("BTCUSDT", client_ids=["rt-2"])
            await client.close_all_position("BTCUSDT")
            after = await client.get_pending_positions("BTCUSDT")
            return locals()

        r = run(mx, scenario)
    assert r["pairs"][0].symbol == "BTCUSDT" and r["pairs"][0].qty_step == Decimal("0.0001")
    assert r["account"].margin_coin == "USDT" and r["account"].available > 0
    assert r["detail"].order_id == r["ack"].order_id and r["detail"].status is OrderStatus.FILLED
    (position,) = r["positions"]
    assert position.side is PositionSide.LONG and position.qty == Decimal("0.01")
    assert position.leverage == 10 and position.margin_mode is MarginMode.ISOLATION
    assert any(t.order_id == r["ack"].order_id for t in r["trades"].trades)
    assert [o.client_id for o in r["pending"].orders] == ["rt-2"]
    assert [a.client_id for a in r["cancelled"].succeeded] == ["rt-2"] and not r["cancelled"].failed
    assert r["after"] == []


def test_bad_secret_is_an_auth_error() -> None:
    with running_mock_exchange(seed=3) as mx:

        async def scenario(client: BitunixRestClient) -> None:
            with pytest.raises(AuthError) as info:
                await client.account()
            assert info.value.code == 10007
            assert "wrong-secret" not in str(info.value)

        run(mx, scenario, secret="wrong-secret-xyz")
        assert mx.admin.events("order_request") == []


def test_lost_placement_answer_is_retried_and_resolved_idempotently() -> None:
    with running_mock_exchange(seed=3) as mx:
        # The exchange processes the order, then the answer is lost (HTTP 503).
        mx.admin.set_faults(rest_error_next=1, rest_fault_paths=["trade/place_order"], rest_fault_phase="after")

        async def scenario(client: BitunixRestClient) -> Any:
            ack = await client.place_order(buy(client_id="idem-1"))
            return ack, client.duplicates_resolved

        ack, resolved = run(mx, scenario)
        requests = mx.admin.events("order_request")
        fills = mx.admin.events("fill")
    # the lookup by clientId finds the placed order: it is not sent a second time
    assert ack.already_existed and ack.client_id == "idem-1" and resolved == 1
    assert [r["accepted"] for r in requests] == [True]
    assert len(fills) == 1 and fills[0]["orderId"] == ack.order_id


def test_hung_placement_times_out_and_is_resolved_without_a_second_order() -> None:
    with running_mock_exchange(seed=3) as mx:
        mx.admin.set_faults(
            rest_hang_next=1, rest_hang_s=5, rest_fault_paths=["trade/place_order"], rest_fault_phase="after"
        )

        async def scenario(client: BitunixRestClient) -> Any:
            return await client.place_order(buy(client_id="idem-2"))

        ack = run(mx, scenario, timeout_sec=0.5)
        accepted = [r for r in mx.admin.events("order_request") if r["accepted"]]
    assert ack.already_existed and len(accepted) == 1 and accepted[0]["orderId"] == ack.order_id


def test_order_rejection_is_typed_and_not_retried() -> None:
    with running_mock_exchange(seed=3) as mx:
        mx.admin.set_faults(reject_orders_next=1)

        async def scenario(client: BitunixRestClient) -> None:
            with pytest.raises(InsufficientBalanceError):
                await client.place_order(buy())

        run(mx, scenario)
        assert len(mx.admin.events("order_request")) == 1


def test_forced_rate_limiting_backs_off_and_retries() -> None:
    with running_mock_exchange(seed=3) as mx:
        mx.admin.set_faults(rate_limit_next=2)

        async def scenario(client: BitunixRestClient) -> Any:
            tickers = await client.tickers(["BTCUSDT"])
            return tickers, client.transport.stats.retries

        tickers, retries = run(mx, scenario)
    assert tickers[0].symbol == "BTCUSDT" and retries == 2


def test_persistent_rate_limiting_surfaces_as_rate_limit_error() -> None:
    with running_mock_exchange(seed=3, faults={"rate_limit_all": True}) as mx:

        async def scenario(client: BitunixRestClient) -> None:
            with pytest.raises(RateLimitError):
                await client.get_pending_orders("BTCUSDT")

        run(mx, scenario)


@pytest.mark.serial  # counts requests per wall-clock window: a loaded machine spreads the burst out
def test_client_pacing_keeps_a_burst_under_the_exchange_limit() -> None:
    with running_mock_exchange(seed=3) as mx:

        async def scenario(client: BitunixRestClient) -> Any:
            await asyncio.gather(*(client.tickers() for _ in range(15)))
            return client.transport.limiter.stats(EndpointGroup.MARKET), client.transport.stats

        market_stats, stats = run(mx, scenario)
    # Pacing is measured at send time, so heavy load on the test machine can
    # still bunch arrivals into one server window now and then; the retry
    # absorbs that. Without pacing (next test) refusals are the rule.
    assert market_stats.waits >= 5
    assert stats.errors.get("RateLimitError", 0) <= 2


@pytest.mark.serial  # counts requests per wall-clock window: a loaded machine spreads the burst out
def test_without_client_pacing_the_exchange_limiter_bites() -> None:
    unpaced = {group: RateLimit(10_000.0, 10_000.0) for group in EndpointGroup}
    with running_mock_exchange(seed=3) as mx:

        async def scenario(client: BitunixRestClient) -> int:
            results = await asyncio.gather(*(client.tickers() for _ in range(30)), return_exceptions=True)
            return sum(isinstance(r, RateLimitError) for r in results)

        refused = run(mx, scenario, retry=RetryPolicy(max_attempts=1), rate_limits=unpaced)
    assert refused >= 10  # the previous test's pacing is what keeps it (nearly) clean


def test_5xx_is_retried_for_gets_but_not_for_cancels() -> None:
    with running_mock_exchange(seed=3) as mx:
        mx.admin.set_faults(rest_error_next=2)

        async def get_scenario(client: BitunixRestClient) -> Any:
            return await client.get_pending_positions("BTCUSDT")

        assert run(mx, get_scenario) == []
        mx.admin.set_faults(rest_error_next=1, rest_fault_paths=["trade/cancel_all_orders"])

        async def post_scenario(client: BitunixRestClient) -> None:
            with pytest.raises(TransportError) as info:
                await client.cancel_all_orders("BTCUSDT")
            assert info.value.status == 503

        # cancel_all_orders is idempotent, so even it is retried; cancel_orders is not.
        run(mx, post_scenario, retry=RetryPolicy(max_attempts=1))


def test_uncertain_shapes_are_parsed_in_every_variant() -> None:
    options = {"kline_number_format": "number", "kline_order": "desc", "account_response": "list"}
    with running_mock_exchange(seed=3, **options) as mx:

        async def scenario(client: BitunixRestClient) -> Any:
            return await client.kline("BTCUSDT", "1m", limit=50), await client.account()

        klines, account = run(mx, scenario)
    opens = [k.open_ms for k in klines]
    assert len(klines) == 50 and opens == sorted(opens)
    assert account.margin_coin == "USDT"


def test_hedge_mode_close_uses_position_id() -> None:
    with running_mock_exchange(seed=3) as mx:
        mx.admin.add_account("hedgekey", "hedgesecret", position_mode="HEDGE")

        async def main() -> Any:
            config = RestConfig(base_url=mx.rest_url, retry=QUICK_RETRY)
            async with BitunixRestClient(config, Credentials("hedgekey", "hedgesecret")) as client:
                await client.place_order(buy())
                (position,) = await client.get_pending_positions("BTCUSDT")
                close = PlaceOrderRequest(
                    "BTCUSDT", OrderSide.BUY, position.qty, OrderType.MARKET,
                    trade_side=TradeSide.CLOSE, position_id=position.position_id,
                )
                await client.place_order(close)
                return await client.get_pending_positions("BTCUSDT")

        assert asyncio.run(main()) == []
