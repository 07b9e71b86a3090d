"""Price protection from the public WebSocket ticker (LastPrice) instead of a REST tickers round trip.

Real sockets against the mock exchange: BitunixWsProvider keeps a LastPrice current from the ``ticker``
channel on its kline connection; BitunixBroker reads it for price protection while it is fresh. The REST
``market/tickers`` requests are counted client side, on the aiohttp session the broker's transport really
uses (a TraceConfig sees every request that goes out).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from laptop_agents.bitunix import BitunixRestClient, Credentials
from laptop_agents.bitunix.last_price import LastPrice
from laptop_agents.core.events import EventName
from laptop_agents.core.models import Side
from laptop_agents.data.providers.bitunix_ws import BitunixWsConfig, BitunixWsProvider
from laptop_agents.execution.bitunix_broker import (
    ORDER_REJECTED,
    BitunixBroker,
    LiveBrokerSettings,
)
from laptop_agents.mock_exchange.testing import (
    MockExchangeHandle,
    running_mock_exchange,
)
from tests.live.conftest import (
    KEY,
    SECRET,
    T0,
    accepted_orders,
    candle,
    intent,
    price_of,
    rest_config,
    run,
)

MX: dict[str, Any] = {"seed": 11, "time_scale": 0, "push_interval_ms": 20}
TICKERS_PATH = "/market/tickers"


class RequestCounter:
    """Client-side count of REST requests by path suffix, from aiohttp's own request tracing."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def trace_config(self) -> aiohttp.TraceConfig:
        tc = aiohttp.TraceConfig()

        async def on_start(_s: Any, _c: Any, params: aiohttp.TraceRequestStartParams) -> None:
            self.paths.append(params.url.path)

        tc.on_request_start.append(on_start)
        return tc

    def count(self, suffix: str = TICKERS_PATH) -> int:
        return sum(1 for p in self.paths if p.endswith(suffix))


def ws_config(mx: MockExchangeHandle, **overrides: Any) -> BitunixWsConfig:
    settings: dict[str, Any] = {
        "ws_url": mx.public_ws_url, "rest_url": mx.rest_url, "ping_interval_sec": 0.5, "stall_timeout_sec": 2.0,
        "connect_timeout_sec": 2.0, "backoff_base_sec": 0.05, "backoff_max_sec": 0.2, "max_reconnect_attempts": 8,
    }
    settings.update(overrides)
    return BitunixWsConfig(**settings)


@contextlib.asynccontextmanager
async def streaming(provider: BitunixWsProvider) -> AsyncIterator[BitunixWsProvider]:
    """Consume ``provider.candles()`` in the background (the session's loop does this), close it after."""

    async def consume() -> None:
        async for _candle in provider.candles():
            pass

    task = asyncio.create_task(consume())
    try:
        yield provider
    finally:
        await provider.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


async def until(cond: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def live_broker(mx: MockExchangeHandle, feed: LastPrice | None) -> AsyncIterator[tuple[BitunixBroker, RequestCounter]]:
    counter = RequestCounter()
    session = aiohttp.ClientSession(trace_configs=[counter.trace_config()])
    client = BitunixRestClient(rest_config(mx), Credentials(KEY, SECRET), session=session)
    broker = BitunixBroker(client, LiveBrokerSettings(leverage=5), last_price=feed)
    try:
        await broker.start(T0)
        yield broker, counter
        await broker.shutdown("test", T0)
    finally:
        await client.close()
        await session.close()


def _names(events: list) -> list[str]:
    return [e.name for e in events]


def in_loop(fn: Callable[[], Awaitable[None]]) -> None:
    run(fn, timeout=60)


# -- (1) fresh ticker: no REST tickers request, price protection still works ---------------------------------


def test_fresh_ws_ticker_replaces_the_rest_tickers_round_trip_and_still_protects() -> None:
    with running_mock_exchange(**MX) as mx:
        async def scenario() -> None:
            feed = LastPrice("BTCUSDT", max_age_sec=1.0)
            provider = BitunixWsProvider(ws_config(mx), last_price=feed)
            async with streaming(provider), live_broker(mx, feed) as (broker, counter):
                p = price_of(mx)
                await until(lambda: feed.fresh() == p, what="the ticker price")
                before = counter.count()

                # the market jumps 5 % (beyond the 2 % scope) after a signal priced at p: refused, nothing sent
                moved = (p * Decimal("1.05")).quantize(Decimal("0.1"))
                mx.admin.set_price(moved)
                await until(lambda: feed.fresh() == moved, what="the moved ticker price")
                events = await broker.submit(intent(Side.LONG, p), candle(p), T0)
                assert _names(events) == [ORDER_REJECTED]
                assert events[0].data["reason"] == "price_protection" and events[0].data["sent"] is False
                assert str(moved) in events[0].data["message"]
                assert accepted_orders(mx) == []

                # a signal at the current price: accepted and filled, still without asking REST for the price
                events = await broker.submit(intent(Side.LONG, moved), candle(moved), T0)
                assert _names(events) == [EventName.ORDER_SUBMITTED, EventName.EXECUTION_FILL]
                assert len(accepted_orders(mx)) == 1

                assert counter.count() == before == 0, counter.paths
                assert broker.price_sources == {"ws": 2}
                assert provider.tickers > 0
                await broker.close_all("test", T0)

        in_loop(scenario)


# -- (2) stale cache: falls back to REST ---------------------------------------------------------------------


def test_stale_ws_price_falls_back_to_rest_tickers() -> None:
    with running_mock_exchange(**MX) as mx:
        async def scenario() -> None:
            clock = [100.0]
            feed = LastPrice("BTCUSDT", max_age_sec=1.0, monotonic=lambda: clock[0])
            async with live_broker(mx, feed) as (broker, counter):
                p = price_of(mx)
                # a cached price 5 % off the market: used while fresh, it refuses the entry
                feed.update("BTCUSDT", (p * Decimal("1.05")).quantize(Decimal("0.1")))
                clock[0] += 0.5
                events = await broker.submit(intent(Side.LONG, p), candle(p), T0)
                assert events[0].data["reason"] == "price_protection"
                assert counter.count() == 0

                # older than the max age: the broker asks REST (the real price) and the entry goes through
                clock[0] += 0.6
                assert feed.fresh() is None and feed.sample is not None
                events = await broker.submit(intent(Side.LONG, p), candle(p), T0)
                assert _names(events) == [EventName.ORDER_SUBMITTED, EventName.EXECUTION_FILL]
                assert counter.count() == 1
                assert broker.price_sources == {"ws": 1, "rest": 1}
                await broker.close_all("test", T0)

        in_loop(scenario)


def test_without_a_ws_price_every_entry_reads_rest_as_before() -> None:
    with running_mock_exchange(**MX) as mx:
        async def scenario() -> None:
            async with live_broker(mx, None) as (broker, counter):
                p = price_of(mx)
                events = await broker.submit(intent(Side.LONG, p), candle(p), T0)
                assert _names(events) == [EventName.ORDER_SUBMITTED, EventName.EXECUTION_FILL]
                assert counter.count() == 1 and broker.price_sources == {"rest": 1}
                await broker.close_all("test", T0)

        in_loop(scenario)


def test_a_closed_provider_clears_the_price_so_entries_use_rest() -> None:
    with running_mock_exchange(**MX) as mx:
        async def scenario() -> None:
            feed = LastPrice("BTCUSDT", max_age_sec=60.0)
            provider = BitunixWsProvider(ws_config(mx), last_price=feed)
            async with streaming(provider):
                await until(lambda: feed.fresh() is not None, what="the ticker price")
            assert feed.sample is None and feed.fresh() is None  # a gone connection's price is not trusted
            async with live_broker(mx, feed) as (broker, counter):
                p = price_of(mx)
                events = await broker.submit(intent(Side.LONG, p), candle(p), T0)
                assert _names(events) == [EventName.ORDER_SUBMITTED, EventName.EXECUTION_FILL]
                assert counter.count() == 1
                await broker.close_all("test", T0)

        in_loop(scenario)


# -- (3) malformed and other-symbol frames never change the price --------------------------------------------


def _ticker(symbol: Any = "BTCUSDT", la: Any = "95000.1", **extra: Any) -> str:
    frame: dict[str, Any] = {"ch": "ticker", "symbol": symbol, "ts": 1_732_178_884_994,
                             "data": {"o": "94000", "la": la, "h": "96000", "l": "93000", "b": "1", "q": "2", "r": "0.01"}}
    frame.update(extra)
    return json.dumps(frame)


BAD_TICKERS = [
    _ticker(symbol="ETHUSDT", la="3000"),  # another symbol
    _ticker(la="-1"),
    _ticker(la="0"),
    _ticker(la="NaN"),
    _ticker(la="Infinity"),
    _ticker(la="not-a-number"),
    _ticker(la=None),
    _ticker(la=[1]),
    _ticker(symbol=None),
    _ticker(symbol=7),
    _ticker(data=None),
    _ticker(data="95000"),
    _ticker(data=[]),
    _ticker(ts="yesterday"),
    '{"ch":"ticker"}',
    '{"ch":"ticker","symbol":"BTCUSDT","data":{"o":"1"}}',
    _ticker()[:40],
    "}{",
]


def test_bad_and_foreign_ticker_frames_are_counted_and_never_move_the_price() -> None:
    feed = LastPrice("BTCUSDT", max_age_sec=60.0)
    provider = BitunixWsProvider(BitunixWsConfig(), last_price=feed)
    assert provider.handle_message(_ticker(la="95000.1")) is None
    assert feed.fresh() == Decimal("95000.1") and provider.tickers == 1
    sample = feed.sample
    for raw in BAD_TICKERS:
        assert provider.handle_message(raw) is None, raw
        assert feed.sample is sample, raw
    assert provider.tickers == 1
    assert provider.malformed_messages + provider.unexpected_messages == len(BAD_TICKERS)
    assert provider.unexpected_messages >= 1  # the other symbol
    # ticker frames are not market data for stale detection: that stays on klines
    assert provider.last_data_monotonic is None


def test_a_ticker_without_a_price_feed_is_an_unexpected_frame() -> None:
    provider = BitunixWsProvider(BitunixWsConfig())
    assert provider.handle_message(_ticker()) is None
    assert provider.unexpected_messages == 1 and provider.tickers == 0
    assert json.loads(provider._subscribe_frame())["args"] == [{"symbol": "BTCUSDT", "ch": "market_kline_1min"}]


@pytest.mark.parametrize("bad", [LastPrice("ETHUSDT")])
def test_a_feed_for_another_symbol_is_refused(bad: LastPrice) -> None:
    with pytest.raises(ValueError):
        BitunixWsProvider(BitunixWsConfig(), last_price=bad)
    with pytest.raises(ValueError):
        BitunixBroker(None, LiveBrokerSettings(), last_price=bad)  # type: ignore[arg-type]


def test_garbage_on_the_socket_never_moves_the_price() -> None:
    with running_mock_exchange(**MX, faults={"ws_malformed_share": 0.5}) as mx:
        async def scenario() -> None:
            feed = LastPrice("BTCUSDT", max_age_sec=60.0)
            provider = BitunixWsProvider(ws_config(mx), last_price=feed)
            p = price_of(mx)
            seen: set[Decimal] = set()
            real_update = feed.update

            def update(symbol: str, price: Decimal, ts: int | None = None) -> bool:
                seen.add(price)
                return real_update(symbol, price, ts)

            feed.update = update  # type: ignore[method-assign]
            async with streaming(provider):
                await until(lambda: provider.tickers >= 20 and provider.malformed_messages > 0, what="pushes")
                assert feed.fresh() == p
            assert seen == {p}

        in_loop(scenario)


# -- (4) a dropped WebSocket resubscribes both channels ------------------------------------------------------


@pytest.mark.parametrize("mode", ["abort", "close"])
def test_reconnect_after_drop_restores_the_ticker_feed(mode: str) -> None:
    with running_mock_exchange(**MX) as mx:
        async def scenario() -> None:
            feed = LastPrice("BTCUSDT", max_age_sec=1.0)
            provider = BitunixWsProvider(ws_config(mx), last_price=feed)
            async with streaming(provider):
                await until(lambda: feed.fresh() is not None, what="the first ticker")
                klines_before = provider.last_data_monotonic
                assert mx.admin.drop_ws(mode) >= 1
                await until(lambda: provider.reconnects >= 1, what="the reconnect")
                # the new connection's ticker pushes (not the old one's) bring the price back, and it follows
                moved = (price_of(mx) + Decimal(25)).quantize(Decimal("0.1"))
                mx.admin.set_price(moved)
                await until(lambda: feed.fresh() == moved, what="the ticker after the reconnect")
                assert feed.clears >= 1
                # klines resubscribed too: the stale-data clock moved on
                await until(lambda: provider.last_data_monotonic != klines_before, what="klines after reconnect")
            assert provider.malformed_messages == 0

        in_loop(scenario)


# -- wiring: `la run --live --source bitunix` and `la serve --live` -------------------------------------------


def test_compose_wires_the_providers_ticker_feed_into_the_live_broker_factory(tmp_path: Any) -> None:
    import shutil
    from pathlib import Path

    from laptop_agents.config_loader import load_config
    from laptop_agents.session import compose

    src = Path(__file__).resolve().parents[2] / "config"
    shutil.copytree(src, tmp_path / "config")
    config = load_config(tmp_path / "config", env={})

    provider = compose.build_provider(config, "bitunix")
    factory = compose.broker_factory(config, provider, live=True)
    assert factory.last_price is not None and factory.last_price is provider.last_price
    assert factory.last_price.max_age_sec == config.settings.bitunix.ticker_max_age_ms / 1000 == 1.0
    channels = [a["ch"] for a in json.loads(provider._subscribe_frame())["args"]]
    assert channels == [provider.config.channel, "ticker"]
    assert factory._request().last_price is factory.last_price

    paper_provider = compose.build_provider(config, "bitunix")
    assert compose.broker_factory(config, paper_provider, live=False) is None
    assert paper_provider.last_price is None  # paper: no ticker subscription, nothing changes
    mock_provider = compose.build_provider(config, "mock")
    factory = compose.broker_factory(config, mock_provider, live=True)
    assert factory.last_price is None  # not a Bitunix provider: REST, as before
