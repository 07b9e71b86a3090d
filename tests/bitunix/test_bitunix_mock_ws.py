"""BitunixWsProvider against the project's mock exchange over real loopback sockets.

The mock runs at ``time_scale=120`` (two market minutes per real second), so a
1m candle closes every half second. Every test bounds its own run time.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from laptop_agents.bitunix import BitunixRestClient, RestConfig
from laptop_agents.bitunix.candles import candle_open_ms
from laptop_agents.core.models import Candle
from laptop_agents.data.providers.base import FatalError, MarketDataProvider
from laptop_agents.data.providers.bitunix_ws import BitunixWsConfig, BitunixWsProvider
from laptop_agents.mock_exchange.testing import MockExchangeHandle, running_mock_exchange

MIN = 60_000
FAST_MOCK = {"seed": 11, "time_scale": 120, "push_interval_ms": 100}  # a 1m candle every 0.5 s


def ws_config(mx: MockExchangeHandle, **overrides: Any) -> BitunixWsConfig:
    settings: dict[str, Any] = {
        "ws_url": mx.public_ws_url,
        "rest_url": mx.rest_url,
        "ping_interval_sec": 0.5,
        "stall_timeout_sec": 1.0,
        "connect_timeout_sec": 2.0,
        "backoff_base_sec": 0.05,
        "backoff_max_sec": 0.2,
        "max_reconnect_attempts": 8,
    }
    settings.update(overrides)
    return BitunixWsConfig(**settings)


async def collect(
    provider: BitunixWsProvider,
    n: int,
    on_candle: Callable[[int, Candle], Awaitable[None] | None] | None = None,
    timeout: float = 15.0,
) -> list[Candle]:
    out: list[Candle] = []

    async def consume() -> None:
        async for candle in provider.candles():
            out.append(candle)
            if on_candle is not None:
                result = on_candle(len(out), candle)
                if asyncio.iscoroutine(result):
                    await result
            if len(out) >= n:
                return

    try:
        await asyncio.wait_for(consume(), timeout)
    finally:
        await provider.close()
    return out


def assert_contiguous(candles: list[Candle]) -> None:
    opens = [candle_open_ms(c) for c in candles]
    assert opens == list(range(opens[0], opens[0] + MIN * len(opens), MIN)), opens


async def assert_equal_to_rest(mx: MockExchangeHandle, candles: list[Candle]) -> None:
    start, end = candle_open_ms(candles[0]), candle_open_ms(candles[-1]) + MIN
    async with BitunixRestClient(RestConfig(base_url=mx.rest_url)) as rest:
        klines = await rest.kline_range("BTCUSDT", "1m", start, end)
    assert [k.to_candle("BTCUSDT") for k in klines] == candles


def test_provider_satisfies_the_protocol() -> None:
    assert isinstance(BitunixWsProvider(), MarketDataProvider)


def test_kline_stream_yields_closed_candles_equal_to_rest() -> None:
    with running_mock_exchange(**FAST_MOCK) as mx:

        async def main() -> tuple[list[Candle], BitunixWsProvider]:
            provider = BitunixWsProvider(ws_config(mx))
            assert provider.last_data_monotonic is None
            candles = await collect(provider, 3)
            assert provider.last_data_monotonic is not None
            await assert_equal_to_rest(mx, candles)
            return candles, provider

        candles, provider = asyncio.run(main())
    assert_contiguous(candles)
    assert all(c.symbol == "BTCUSDT" and c.volume > 0 for c in candles)
    assert provider.reconnects == 0 and provider.malformed_messages == 0


def test_warm_up_then_stream_continues_without_gap() -> None:
    with running_mock_exchange(**FAST_MOCK) as mx:

        async def main() -> tuple[list[Candle], list[Candle]]:
            provider = BitunixWsProvider(ws_config(mx))
            history = await provider.warm_up(30)
            live = await collect(provider, 2)
            return history, live

        history, live = asyncio.run(main())
    assert len(history) == 30
    assert_contiguous(history + live)


@pytest.mark.parametrize("mode", ["abort", "close"])
def test_drop_reconnect_backfills_with_no_gap_and_no_duplicate(mode: str) -> None:
    with running_mock_exchange(**FAST_MOCK) as mx:

        async def main() -> tuple[list[Candle], BitunixWsProvider]:
            # rnd=1.0 makes the jittered backoff its full cap: the client stays away
            # 1.3 s, i.e. ~2.6 market minutes that must come back via REST.
            provider = BitunixWsProvider(
                ws_config(mx, backoff_base_sec=1.3, backoff_max_sec=1.3), rnd=lambda: 1.0
            )

            def drop_after_first(i: int, candle: Candle) -> None:
                if i == 1:
                    assert mx.admin.drop_ws(mode) == 1

            candles = await collect(provider, 6, drop_after_first)
            await assert_equal_to_rest(mx, candles)
            return candles, provider

        candles, provider = asyncio.run(main())
    assert_contiguous(candles)
    assert provider.reconnects == 1
    assert provider.backfilled_candles >= 2
    assert provider.missing_candles == 0


def test_silent_stall_is_detected_within_the_timeout_and_recovered() -> None:
    stall_timeout = 1.0
    with running_mock_exchange(**FAST_MOCK) as mx:

        async def main() -> tuple[list[Candle], BitunixWsProvider, float]:
            provider = BitunixWsProvider(ws_config(mx, stall_timeout_sec=stall_timeout))
            detected_after: list[float] = []
            helpers: list[asyncio.Task[None]] = []

            async def unstall_once_detected() -> None:
                t0 = time.monotonic()
                while provider.stalls == 0:
                    await asyncio.sleep(0.02)
                detected_after.append(time.monotonic() - t0)
                await asyncio.to_thread(mx.admin.set_faults, ws_stall=False)

            def stall_after_first(i: int, candle: Candle) -> None:
                if i == 1:
                    mx.admin.set_faults(ws_stall=True)  # open socket, nothing sent
                    helpers.append(asyncio.create_task(unstall_once_detected()))

            candles = await collect(provider, 5, stall_after_first, timeout=20)
            await asyncio.gather(*helpers)
            await assert_equal_to_rest(mx, candles)
            return candles, provider, detected_after[0]

        candles, provider, detected_after = asyncio.run(main())
    assert provider.stalls >= 1
    assert detected_after <= stall_timeout + 0.5
    assert_contiguous(candles)
    assert provider.missing_candles == 0


def test_malformed_and_unexpected_frames_are_skipped_and_counted() -> None:
    with running_mock_exchange(**FAST_MOCK, faults={"ws_malformed_share": 0.5}) as mx:

        async def main() -> tuple[list[Candle], BitunixWsProvider]:
            provider = BitunixWsProvider(ws_config(mx))
            candles = await collect(provider, 3)
            await assert_equal_to_rest(mx, candles)
            return candles, provider

        candles, provider = asyncio.run(main())
    assert_contiguous(candles)
    assert provider.malformed_messages + provider.unexpected_messages > 0


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_repeated_connection_failures_raise_fatal_error() -> None:
    port = _closed_port()
    config = BitunixWsConfig(
        ws_url=f"ws://127.0.0.1:{port}/public/",
        rest_url=f"http://127.0.0.1:{port}",
        max_reconnect_attempts=3,
        backoff_base_sec=0.01,
        backoff_max_sec=0.02,
        connect_timeout_sec=1.0,
    )

    async def main() -> BitunixWsProvider:
        provider = BitunixWsProvider(config)
        with pytest.raises(FatalError, match="3 consecutive failed attempts"):
            await asyncio.wait_for(collect(provider, 1), 10)
        return provider

    provider = asyncio.run(main())
    assert provider.failed_attempts == 3 and provider.connects == 0


def test_connections_that_never_deliver_data_also_end_in_fatal_error() -> None:
    with running_mock_exchange(**FAST_MOCK, faults={"ws_stall": True}) as mx:

        async def main() -> BitunixWsProvider:
            provider = BitunixWsProvider(ws_config(mx, stall_timeout_sec=0.3, max_reconnect_attempts=3))
            with pytest.raises(FatalError, match="stalled"):
                await collect(provider, 1, timeout=10)
            return provider

        provider = asyncio.run(main())
    assert provider.connects == 3 and provider.stalls == 3


def test_pongs_do_not_count_as_market_data() -> None:
    provider = BitunixWsProvider()
    assert provider.handle_message('{"op":"ping","pong":1,"ping":2}') is None
    assert provider.pongs == 1 and provider.last_data_monotonic is None


def test_close_is_idempotent_and_ends_the_stream_promptly() -> None:
    with running_mock_exchange(**FAST_MOCK) as mx:

        async def main() -> float:
            provider = BitunixWsProvider(ws_config(mx))

            async def consume() -> list[Candle]:
                return [c async for c in provider.candles()]

            task = asyncio.create_task(consume())
            await asyncio.sleep(0.5)
            t0 = time.monotonic()
            await provider.close()
            await provider.close()
            await asyncio.wait_for(task, 3)
            return time.monotonic() - t0

        assert asyncio.run(main()) < 3
