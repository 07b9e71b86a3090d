"""A frozen or poisoned feed stops the session on stale data (issue 13).

A real `la run --source bitunix` process against the mock exchange on 127.0.0.1 (one shared by the module,
faults reset per test). Once candles flow, the exchange is made to push only what does not advance the
market: the same kline again (`price_paused`, or a captured frame re-sent), klines a month old, klines ten
years ahead, klines with price 0. Each time the run must stop with `stale_data` (exit 6) within the stale
timeout, instead of running to `completed` with the position unmanaged. One frame from the future amid
normal pushes must not stop the candles that follow it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from itertools import pairwise
from typing import Any

import pytest

from laptop_agents.mock_exchange.server import MockExchange
from laptop_agents.mock_exchange.testing import MockExchangeHandle, running_mock_exchange
from laptop_agents.mock_exchange.ws import Outgoing
from tests.conftest import LaEnv

pytestmark = pytest.mark.slow

STALE_TIMEOUT = 2.0
MIN = 60_000
DAY = 86_400_000
YEAR = 365 * DAY
FrameFn = Callable[[MockExchange], dict[str, Any]]


@pytest.fixture(scope="module")
def exchange() -> Iterator[MockExchangeHandle]:
    """Ten 1-minute bars per real second, pushed every 50 ms."""
    with running_mock_exchange(seed=13, time_scale=600, push_interval_ms=50) as mx:
        yield mx


@pytest.fixture
def mx(exchange: MockExchangeHandle) -> Iterator[MockExchangeHandle]:
    exchange.admin.set_faults(price_paused=False, ws_stall=False)
    yield exchange
    exchange.admin.set_faults(price_paused=False, ws_stall=False)


def kline(ts: int, o: str = "60000.0", h: str = "60010.0", low: str = "59990.0", c: str = "60005.0",
          b: str = "1.5", q: str = "90000.0") -> dict[str, Any]:
    return {"ch": "market_kline_1min", "symbol": "BTCUSDT", "ts": ts,
            "data": {"o": o, "c": c, "h": h, "l": low, "b": b, "q": q}}


def push(mx: MockExchangeHandle, make: FrameFn) -> int:
    """Send one raw frame (built on the exchange's loop, with its market clock) to every public socket."""
    def send(ex: MockExchange) -> int:
        payload = json.dumps(make(ex))
        conns = [c for c in ex.hub.connections if c.kind == "public"]
        for conn in conns:
            ex.hub._enqueue(conn, Outgoing(payload))
        return len(conns)
    return mx.call(send)


@contextmanager
def hostile_feed(mx: MockExchangeHandle, make: FrameFn) -> Iterator[None]:
    """The exchange's own pushes stop; only ``make``'s frames flow, every 50 ms."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(0.05):
            push(mx, make)

    mx.admin.set_faults(ws_stall=True)
    thread = threading.Thread(target=loop, name="hostile-feed", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def candles(la_env: LaEnv) -> int:
    return sum(1 for e in la_env.events() if e["event"] == "CandleProcessed") if la_env.latest.exists() else 0


def start(la_env: LaEnv, mx: MockExchangeHandle) -> Any:
    proc = la_env.start("run", "--duration", "0.5", "--stale-timeout", str(STALE_TIMEOUT), "--source", "bitunix",
                        "--rest-url", mx.rest_url, "--ws-url", mx.public_ws_url)
    la_env.wait_for(lambda: candles(la_env) >= 5, what="candles flowing")
    return proc


def assert_stale_stop(la_env: LaEnv, proc: Any, refused: str | None) -> None:
    assert proc.wait(timeout=60) == 6, proc.stderr.read()
    events = la_env.events()
    end = events[-1]
    assert end["event"] == "SessionEnd" and end["stopped_reason"] == "stale_data"
    [stale] = [e for e in events if e["event"] == "StaleDataDetected"]
    assert STALE_TIMEOUT < stale["data_age_sec"] <= STALE_TIMEOUT + 1
    assert la_env.state()["positions"] == []
    log = la_env.system_log()
    assert len([r for r in log if "market data gap" in r["message"]]) == 1  # at half the timeout, once
    if refused is not None:
        assert any(r["level"] == "WARNING" and "refusing kline pushes" in r["message"] and refused in r["message"]
                   for r in log), "refused frames are logged"


def test_price_paused_exchange_stops_on_stale_data(la_env: LaEnv, mx: MockExchangeHandle) -> None:
    proc = start(la_env, mx)
    mx.admin.set_faults(price_paused=True)  # the exchange keeps re-pushing its last kline
    assert_stale_stop(la_env, proc, "repeated")


@pytest.mark.parametrize("attack,make,refused", [
    ("repeated", None, "repeated"),
    ("month_old", lambda ex: kline(ex.market_now() - 30 * DAY), "too_old"),
    ("zero_price", lambda ex: kline(ex.market_now(), "0", "0", "0", "0"), "bad_price"),
    ("future", lambda ex: kline(ex.market_now() + 10 * YEAR), "future"),
])
def test_frames_that_do_not_advance_the_market_stop_on_stale_data(
    la_env: LaEnv, mx: MockExchangeHandle, attack: str, make: FrameFn | None, refused: str
) -> None:
    proc = start(la_env, mx)
    if attack == "future":
        # one frame ten years ahead amid normal pushes: the candles after it still come
        push(mx, make)  # type: ignore[arg-type]
        seen = candles(la_env)
        la_env.wait_for(lambda: candles(la_env) >= seen + 5, what="candles after a future-dated frame")
    if make is None:
        frozen = push_frame_now(mx)
        make = lambda ex: frozen  # noqa: E731 - the same frame again and again
    with hostile_feed(mx, make):
        assert_stale_stop(la_env, proc, refused)


def to_ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def push_frame_now(mx: MockExchangeHandle) -> dict[str, Any]:
    """A valid kline of the bar forming now (what a stuck exchange would keep re-sending)."""
    return mx.call(lambda ex: kline(ex.market_now()))


def test_gap_over_half_the_timeout_is_a_warning(la_env: LaEnv) -> None:
    """A gap the session survives (2 s against 3 s) is still visible: one WARNING, not one per tick."""
    result = la_env.run("run", "--duration", "0.06", "--source", "mock", "--candle-interval", "0.01",
                        "--inject-gap-at", "0.5", "--gap-duration", "2", "--stale-timeout", "3")
    assert result.returncode == 0, result.stderr
    assert la_env.events()[-1]["stopped_reason"] == "completed"
    gaps = [r for r in la_env.system_log() if "market data gap" in r["message"]]
    assert len(gaps) == 1 and gaps[0]["level"] == "WARNING"


@pytest.mark.parametrize("dialect", [
    {"kline_push_ts": "bar_open", "kline_volumes": "documented"},
    {"kline_push_ts": "push_time_lagged", "kline_volumes": "swapped"},
], ids=["ts-bar-open", "ts-push-time-lagged"])
def test_every_kline_ts_dialect_gives_the_exchange_candles(la_env: LaEnv, dialect: dict[str, str]) -> None:
    """Whatever push `ts` means (bar open; push time with the final data after the boundary), the session
    trades exactly the exchange's own bars: compared with its REST klines, no gap, no duplicate, final OHLC."""
    import asyncio

    from laptop_agents.bitunix.rest import BitunixRestClient
    from laptop_agents.bitunix.transport import RestConfig

    with running_mock_exchange(seed=14, time_scale=600, push_interval_ms=50, **dialect) as mx:
        result = la_env.run("run", "--duration", "0.1", "--source", "bitunix", "--rest-url", mx.rest_url,
                            "--ws-url", mx.public_ws_url)
        assert result.returncode == 0, result.stderr
        got = [(to_ms(e["candle_ts"]), e["open"], e["high"], e["low"], e["close"])
               for e in la_env.events() if e["event"] == "CandleProcessed"]
        assert len(got) > 20

        async def exchange_bars() -> dict[int, Any]:
            rest = BitunixRestClient(RestConfig(base_url=mx.rest_url))
            try:
                bars = await rest.kline_range("BTCUSDT", "1m", got[0][0], got[-1][0] + MIN)
            finally:
                await rest.close()
            return {k.open_ms: k for k in bars}

        truth = asyncio.run(exchange_bars())
    times = [t for t, *_ in got]
    assert {b - a for a, b in pairwise(times)} == {MIN}
    for ts, o, h, low, c in got:
        k = truth[ts]
        assert (Decimal(str(o)), Decimal(str(h)), Decimal(str(low)), Decimal(str(c))) == (k.open, k.high, k.low, k.close), ts
