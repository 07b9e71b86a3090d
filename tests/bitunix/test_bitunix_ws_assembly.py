"""Candle assembly and backfill logic of the WS provider, offline.

A simulated exchange produces the *true* bars and a push stream; connection
drops delete pushes and insert a reconnect. Whatever the drops, the provider
must yield exactly the true bars: no gap, no duplicate, final OHLC values.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from laptop_agents.bitunix.candles import CandleAssembler, candle_open_ms, fetch_closed_candles
from laptop_agents.bitunix.errors import TransportError
from laptop_agents.bitunix.intervals import interval_from_rest
from laptop_agents.bitunix.schemas import Kline
from laptop_agents.core.models import Candle
from laptop_agents.data.providers.bitunix_ws import BitunixWsConfig, BitunixWsProvider

MIN = 60_000
T0 = 1_732_178_880_000


@dataclass
class Push:
    bar: int
    offset_ms: int
    close: Decimal
    is_final: bool


def true_bar(i: int) -> Kline:
    base = Decimal(60000 + 10 * i)
    return Kline(T0 + i * MIN, base, base + 5, base - 5, base + 1, Decimal(i + 1), Decimal(0))


def frame(p: Push) -> str:
    bar = true_bar(p.bar)
    return json.dumps({
        "ch": "market_kline_1min", "symbol": "BTCUSDT", "ts": bar.open_ms + p.offset_ms,
        "data": {"o": str(bar.open), "h": str(bar.high), "l": str(bar.low),
                 "c": str(p.close), "b": str(bar.base_volume), "q": "0"},
    })


class FakeRest:
    """Serves the true bars; can be told to fail."""

    def __init__(self, n_bars: int, fail: bool = False) -> None:
        self.bars = [true_bar(i) for i in range(n_bars)]
        self.fail = fail
        self.calls: list[tuple[int, int]] = []

    async def kline_range(self, symbol, interval, start_ms, end_ms, *, page_limit=200, price_type=None):
        self.calls.append((start_ms, end_ms))
        if self.fail:
            raise TransportError("HTTP 503", status=503)
        return [b for b in self.bars if start_ms <= b.open_ms < end_ms]

    async def close(self) -> None:
        pass


def make_pushes(pushes_per_bar: list[int]) -> list[Push]:
    out = []
    for bar, n in enumerate(pushes_per_bar):
        final = true_bar(bar).close
        for k in range(n):
            is_final = k == n - 1
            close = final if is_final else final - Decimal(k + 1)  # partial values differ
            out.append(Push(bar, 500 + k * (58_000 // max(n, 1)), close, is_final))
    return out


async def drive(provider: BitunixWsProvider, events: list[object]) -> list[Candle]:
    out: list[Candle] = []
    for event in events:
        if event == "reconnect":
            provider._assembler.on_reconnect()
            continue
        push = provider.handle_message(frame(event))  # type: ignore[arg-type]
        assert push is not None
        transition = provider._assembler.on_push(push)
        if transition is not None:
            out.extend(await provider._complete(transition))
    return out


def provider_with(rest: FakeRest, **cfg) -> BitunixWsProvider:
    return BitunixWsProvider(BitunixWsConfig(**cfg), rest=rest)  # type: ignore[arg-type]


def expected(delivered: list[Push]) -> list[Candle]:
    first, last = delivered[0].bar, delivered[-1].bar
    return [true_bar(i).to_candle("BTCUSDT") for i in range(first, last)]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pushes_per_bar=st.lists(st.integers(1, 4), min_size=2, max_size=8),
    drops=st.lists(st.tuples(st.floats(0, 1), st.integers(1, 12)), max_size=3),
    stale_replays=st.booleans(),
)
def test_stream_equals_true_bars_whatever_the_drops(pushes_per_bar, drops, stale_replays) -> None:
    pushes = make_pushes(pushes_per_bar)
    events: list[object] = list(pushes)
    for where, length in drops:
        start = int(where * (len(events) - 1))
        del events[start : start + length]
        if events[start:]:
            events.insert(start, "reconnect")
    if stale_replays:
        # After each reconnect, re-deliver the last push seen before it (an
        # old snapshot arriving again must not be mistaken for fresh data).
        replayed: list[object] = []
        last_push: Push | None = None
        for event in events:
            replayed.append(event)
            if isinstance(event, Push):
                last_push = event
            elif last_push is not None:
                replayed.append(last_push)
        events = replayed
    delivered = [e for e in events if isinstance(e, Push)]
    if not delivered:
        return
    rest = FakeRest(len(pushes_per_bar))
    out = asyncio.run(drive(provider_with(rest), events))
    assert out == expected(delivered)


def test_connected_stream_needs_no_rest() -> None:
    rest = FakeRest(4)
    provider = provider_with(rest)
    out = asyncio.run(drive(provider, make_pushes([3, 3, 3, 1])))
    assert out == [true_bar(i).to_candle("BTCUSDT") for i in range(3)]
    assert rest.calls == [] and provider.backfilled_candles == 0


def test_reconnect_backfills_the_missed_and_the_interrupted_bars() -> None:
    rest = FakeRest(6)
    provider = provider_with(rest)
    pushes = make_pushes([2, 2, 2, 2, 2, 1])
    # Drop from the middle of bar 1 until the middle of bar 4.
    events = pushes[:3] + ["reconnect"] + pushes[9:]
    out = asyncio.run(drive(provider, events))
    assert out == [true_bar(i).to_candle("BTCUSDT") for i in range(5)]
    assert provider.backfilled_candles == 3  # bars 1, 2, 3
    assert rest.calls == [(T0 + MIN, T0 + 3 * MIN + 1)]


def test_failed_backfill_is_retried_at_the_next_bar_then_recovers() -> None:
    rest = FakeRest(6, fail=True)
    provider = provider_with(rest)
    pushes = make_pushes([2, 2, 2, 2, 2, 1])
    # Bar 0 seen to its last push, but the drop came before any later push:
    # nobody can tell that push was final, so bar 0 is owed by REST too.
    events = pushes[:2] + ["reconnect"] + pushes[6:8]
    out = asyncio.run(drive(provider, events))
    assert out == []  # REST down: nothing yielded rather than a guess
    assert provider.backfill_failures == 1
    rest.fail = False
    out += asyncio.run(drive(provider, pushes[8:]))
    assert out == [true_bar(i).to_candle("BTCUSDT") for i in range(5)]
    assert provider.missing_candles == 0


def test_backfill_disabled_leaves_a_counted_gap_but_never_partial_bars() -> None:
    rest = FakeRest(6)
    provider = provider_with(rest, backfill=False)
    pushes = make_pushes([2, 2, 2, 2, 1])
    events = pushes[:3] + ["reconnect"] + pushes[6:]  # lose end of bar 1 and bar 2
    out = asyncio.run(drive(provider, events))
    assert [candle_open_ms(c) for c in out] == [T0, T0 + 3 * MIN]
    assert provider.missing_candles == 2
    assert rest.calls == []


def test_huge_outage_only_backfills_the_most_recent_bars() -> None:
    rest = FakeRest(50)
    provider = provider_with(rest, max_backfill_bars=5)
    pushes = make_pushes([1] * 50)
    events = pushes[:1] + ["reconnect"] + pushes[40:42]
    out = asyncio.run(drive(provider, events))
    # Owed bars 0..39: only the 5 most recent are fetched, bar 40 closes live.
    assert [candle_open_ms(c) for c in out] == [T0 + i * MIN for i in range(35, 41)]
    assert provider.missing_candles == 35
    assert provider.backfilled_candles == 5


def test_priming_from_warm_up_continues_without_gap_or_duplicate() -> None:
    rest = FakeRest(6)
    provider = provider_with(rest)
    provider._assembler.prime(T0 + MIN)  # warm-up delivered bars 0 and 1
    out = asyncio.run(drive(provider, make_pushes([0, 0, 0, 2, 2, 1])[:]))
    assert [candle_open_ms(c) for c in out] == [T0 + 2 * MIN, T0 + 3 * MIN, T0 + 4 * MIN]


def test_assembler_ignores_pushes_for_already_closed_bars() -> None:
    iv = interval_from_rest("1m")
    assembler = CandleAssembler(iv)
    provider = provider_with(FakeRest(3))
    pushes = [provider.handle_message(frame(p)) for p in make_pushes([1, 1, 1])]
    assert assembler.on_push(pushes[0]) is None
    transition = assembler.on_push(pushes[1])
    assert transition is not None and transition.closed is not None
    assembler.mark_emitted(transition.closed and candle_open_ms(transition.closed))
    assert assembler.on_push(pushes[0]) is None
    assert assembler.stale_pushes == 1


def test_config_validation_and_channel() -> None:
    assert BitunixWsConfig(interval="1h").channel == "market_kline_60min"
    assert BitunixWsConfig(price_type="mark").channel == "mark_kline_1min"
    with pytest.raises(ValueError):
        BitunixWsConfig(interval="2m")
    with pytest.raises(ValueError):
        BitunixWsConfig(stall_timeout_sec=0)
    with pytest.raises(ValueError):
        BitunixWsConfig(max_reconnect_attempts=0)


class FlakyRest(FakeRest):
    """Fails the calls whose index is in ``failures``."""

    def __init__(self, n_bars: int, failures: set[int]) -> None:
        super().__init__(n_bars)
        self.failures = failures

    async def kline_range(self, symbol, interval, start_ms, end_ms, *, page_limit=200, price_type=None):
        self.fail = len(self.calls) in self.failures
        return await super().kline_range(symbol, interval, start_ms, end_ms)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pushes_per_bar=st.lists(st.integers(1, 3), min_size=2, max_size=10),
    drops=st.lists(st.tuples(st.floats(0, 1), st.integers(1, 8)), max_size=3),
    failures=st.sets(st.integers(0, 5), max_size=4),
)
def test_with_flaky_rest_output_is_increasing_and_never_partial(pushes_per_bar, drops, failures) -> None:
    events: list[object] = list(make_pushes(pushes_per_bar))
    for where, length in drops:
        start = int(where * (len(events) - 1))
        del events[start : start + length]
        if events[start:]:
            events.insert(start, "reconnect")
    if not any(isinstance(e, Push) for e in events):
        return
    provider = provider_with(FlakyRest(len(pushes_per_bar), failures))
    out = asyncio.run(drive(provider, events))
    opens = [candle_open_ms(c) for c in out]
    assert opens == sorted(set(opens))
    for candle in out:
        assert candle == true_bar((candle_open_ms(candle) - T0) // MIN).to_candle("BTCUSDT")


class HistoryRest:
    """``kline`` returns the latest ``limit`` bars (forming bar included), like the mock."""

    def __init__(self, n_bars: int) -> None:
        self.bars = [true_bar(i) for i in range(n_bars)]
        self.range_calls = 0

    async def kline(self, symbol, interval, *, start_time=None, end_time=None, limit=None, price_type=None):
        return self.bars[-(limit or 100):]

    async def kline_range(self, symbol, interval, start_ms, end_ms, *, page_limit=200, price_type=None):
        self.range_calls += 1
        return [b for b in self.bars if start_ms <= b.open_ms < end_ms]


def test_warm_up_drops_the_forming_bar_unless_time_proves_it_closed() -> None:
    rest = HistoryRest(50)
    got = asyncio.run(fetch_closed_candles(rest, "BTCUSDT", "1m", 10))  # type: ignore[arg-type]
    assert [candle_open_ms(c) for c in got] == [T0 + i * MIN for i in range(39, 49)]
    now = T0 + 50 * MIN  # bar 49 ended
    got = asyncio.run(fetch_closed_candles(rest, "BTCUSDT", "1m", 10, now_ms=now))  # type: ignore[arg-type]
    assert [candle_open_ms(c) for c in got] == [T0 + i * MIN for i in range(40, 50)]
    assert rest.range_calls == 0


def test_warm_up_beyond_one_page_uses_the_range_helper() -> None:
    rest = HistoryRest(600)
    got = asyncio.run(fetch_closed_candles(rest, "BTCUSDT", "1m", 450))  # type: ignore[arg-type]
    assert [candle_open_ms(c) for c in got] == [T0 + i * MIN for i in range(149, 599)]
    assert rest.range_calls == 1


def test_warm_up_with_short_history_returns_what_exists() -> None:
    rest = HistoryRest(5)
    got = asyncio.run(fetch_closed_candles(rest, "BTCUSDT", "1m", 100))  # type: ignore[arg-type]
    assert len(got) == 4 and rest.range_calls == 0
