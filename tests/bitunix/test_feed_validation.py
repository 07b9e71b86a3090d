"""Kline pushes that do not advance the market are refused and never make the feed fresh (issue 13).

The assembler is fed frames directly, in every ``ts`` reading an exchange may use (bar open, push time,
push time with the previous bar's final data arriving after the boundary) and with the volume columns
swapped; and hostile frames (repeats, dated years ahead or a month back, impossible OHLCV). The
provider's ``progress_monotonic`` (what the session's stale-data check reads) is driven by fake clocks.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from laptop_agents.bitunix.candles import REJECT_REASONS, CandleAssembler, candle_open_ms
from laptop_agents.bitunix.intervals import interval_from_rest
from laptop_agents.bitunix.ws_schemas import WsKline
from laptop_agents.data.providers.bitunix_ws import BitunixWsConfig, BitunixWsProvider

IV = interval_from_rest("1m")
MIN = 60_000
T0 = 1_732_178_880_000  # a bar boundary
YEAR = 365 * 86_400_000
D = Decimal


def kline(ts: int, o: str, h: str, low: str, c: str, base: str = "1", quote: str = "60000") -> WsKline:
    return WsKline("BTCUSDT", "market_kline_1min", "market", IV, ts, D(o), D(h), D(low), D(c), D(base), D(quote))


def true_bars(n: int) -> list[tuple[D, D, D, D]]:
    """OHLC of n bars; each opens at the previous close, so a new bar never looks like the old one."""
    bars, price = [], D(60000)
    for i in range(n):
        o, c = price, price + D(7 if i % 2 else -4)
        bars.append((o, max(o, c) + 3, min(o, c) - 2, c))
        price = c
    return bars


def stream(n: int, shape: str, pushes: int = 4, swap_volumes: bool = False) -> list[tuple[int, WsKline]]:
    """(market time at arrival, push) for n bars; each bar's pushes grow towards its final OHLCV."""
    out = []
    for i, (o, h, low, c) in enumerate(true_bars(n)):
        start = T0 + i * MIN
        for k in range(1, pushes + 1):
            frac = D(k) / pushes
            hi, lo = o + (h - o) * frac, o - (o - low) * frac
            close = c if k == pushes else max(lo, min(hi, o + (c - o) * frac))
            base, quote = str(D(10) * k), str(D(600000) * k)
            if swap_volumes:
                base, quote = quote, base
            arrive = start + k * (MIN // (pushes + 1))
            if k == pushes and shape == "push_time_lagged":
                arrive = start + MIN + 20  # the final data only leaves after the next bar began
            ts = start if shape == "bar_open" else arrive
            out.append((arrive, kline(ts, str(o), str(hi), str(lo), str(close), base, quote)))
    return sorted(out, key=lambda item: item[0])


def closed_candles(assembler: CandleAssembler, frames: list[tuple[int, WsKline]]) -> list[tuple]:
    out = []
    for now, push in frames:
        transition = assembler.on_push(push, now)
        if transition is not None and transition.closed is not None:
            c = transition.closed
            out.append((candle_open_ms(c), c.open, c.high, c.low, c.close))
    return out


@pytest.mark.parametrize("swap_volumes", [False, True], ids=["volumes", "swapped-volumes"])
def test_every_ts_reading_assembles_the_same_candles(swap_volumes: bool) -> None:
    n = 6
    want = [(T0 + i * MIN, *bar) for i, bar in enumerate(true_bars(n))][: n - 1]
    for shape in ("bar_open", "push_time", "push_time_lagged"):
        got = closed_candles(CandleAssembler(IV), stream(n, shape, swap_volumes=swap_volumes))
        assert got == want, shape


def test_final_data_later_than_the_next_bars_first_push_never_leaks_into_it() -> None:
    asm = CandleAssembler(IV)
    b0 = kline(T0 + 10_000, "100", "101", "99", "100.5", "5", "500")
    b0_final = kline(T0 + MIN + 30_000, "100", "103", "98", "102", "9", "900")  # stamped well into bar 1
    b1 = kline(T0 + MIN + 10_000, "102", "102.5", "101.5", "102.2", "1", "100")
    asm.on_push(b0, T0 + 10_000)
    closed0 = asm.on_push(b1, T0 + MIN + 10_000)
    assert closed0 is not None and closed0.closed is not None and closed0.closed.close == D("100.5")
    assert asm.on_push(b0_final, T0 + MIN + 30_000) is None and asm.last_rejection == "out_of_order"
    closed1 = asm.on_push(kline(T0 + 2 * MIN + 500, "102.2", "102.3", "102.1", "102.3"), T0 + 2 * MIN + 600)
    assert closed1 is not None and closed1.closed is not None
    assert (closed1.closed.open, closed1.closed.close) == (D("102"), D("102.2"))  # bar 1's own data


def good(now: int, close: str = "60001", o: str = "60000") -> WsKline:
    return kline(now, o, "60010", "59990", close)


HOSTILE = {
    "bad_price": [kline(T0 + 1000, "0", "0", "0", "0"), kline(T0 + 1000, "-1", "60010", "-1", "60000"),
                  kline(T0 + 1000, "NaN", "60010", "59990", "60000"),
                  kline(T0 + 1000, "60000", "Infinity", "59990", "60000")],
    "bad_ohlc": [kline(T0 + 1000, "60000", "59990", "60010", "60000"),  # high < low
                 kline(T0 + 1000, "60020", "60010", "59990", "60000"),  # open above high
                 kline(T0 + 1000, "60000", "60010", "59990", "59980")],  # close below low
    "bad_volume": [kline(T0 + 1000, "60000", "60010", "59990", "60000", base="-1")],
    "future": [good(T0 + 10 * YEAR), good(T0 + 2 * MIN)],
    "too_old": [good(T0 - 30 * 86_400_000), good(T0 - 2 * MIN)],
}


@pytest.mark.parametrize("reason", sorted(HOSTILE))
def test_hostile_frames_are_refused_counted_and_do_not_poison(reason: str) -> None:
    asm = CandleAssembler(IV)
    now = T0 + 1000
    assert asm.on_push(good(now), now) is None and asm.last_rejection is None
    for push in HOSTILE[reason]:
        assert asm.on_push(push, now) is None
        assert asm.last_rejection == reason
    assert asm.rejected[reason] == len(HOSTILE[reason]) and asm.accepted == 1
    assert asm.pending_open == T0
    # normal frames after it still close bars
    transition = asm.on_push(good(T0 + MIN + 500, "60005", o="60001"), T0 + MIN + 600)
    assert transition is not None and transition.closed is not None
    assert candle_open_ms(transition.closed) == T0 and transition.closed.close == D("60001")


def test_repeats_and_replayed_snapshots_are_refused() -> None:
    asm = CandleAssembler(IV)
    first = good(T0 + 1000)
    asm.on_push(first, T0 + 1000)
    for now in range(T0 + 1500, T0 + 30_000, 500):  # the exchange re-pushes its last kline
        assert asm.on_push(first, now) is None and asm.last_rejection == "repeated"
    assert asm.on_push(replace(first, ts_ms=T0 + 500), T0 + 30_000) is None
    assert asm.last_rejection == "out_of_order"
    assert asm.accepted == 1


# -- property: no hostile sequence moves the current bar past the clock or counts as progress --------------

frames_anywhere = st.builds(
    lambda ts, o, spread, c_frac, vol: kline(ts, str(o), str(o + spread), str(o - spread),
                                             str(o - spread + (2 * spread) * D(c_frac) / 100), str(vol)),
    ts=st.integers(T0 - 40 * YEAR // 4, T0 + 10 * YEAR),
    o=st.integers(-5, 70000).map(D),
    spread=st.integers(-10, 50).map(D),
    c_frac=st.integers(-20, 120),
    vol=st.integers(-3, 100),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=st.lists(st.tuples(frames_anywhere, st.integers(0, 5_000)), max_size=40))
def test_no_frame_sequence_moves_the_current_bar_past_the_clock(frames: list[tuple[WsKline, int]]) -> None:
    asm = CandleAssembler(IV)
    now = T0
    for push, step in frames:
        now += step
        transition = asm.on_push(push, now)
        assert asm.pending_open is None or asm.pending_open <= now + MIN
        if transition is not None:
            assert transition.until <= now + MIN


def hostile_variants(last: WsKline, now: int) -> st.SearchStrategy[WsKline]:
    return st.sampled_from([
        last,  # repeated
        replace(last, ts_ms=now + st_future),  # future
        replace(last, ts_ms=now - 31 * 86_400_000),  # too old
        replace(last, open=D(0), low=D(0)),
        replace(last, high=last.low - 1),
        replace(last, base_volume=D(-1)),
        replace(last, ts_ms=last.ts_ms - 1),  # older snapshot of the forming bar
    ])


st_future = 10 * YEAR


@settings(max_examples=50, deadline=None)
@given(data=st.data(), n=st.integers(1, 30))
def test_hostile_frames_never_count_as_progress(data: st.DataObject, n: int) -> None:
    """After a valid push, no sequence of hostile frames is accepted or closes a bar, and the provider's
    freshness anchor does not move however much time passes."""
    mono = [100.0]
    provider = BitunixWsProvider(BitunixWsConfig(), monotonic=lambda: mono[0],
                                 wall_clock=lambda: (T0 + 1000 + (mono[0] - 100.0) * 1000) / 1000)
    provider._last_accepted = mono[0]
    first = good(T0 + 1000)
    assert provider.on_push(first) is None and provider.progress_monotonic == 100.0
    for _ in range(n):
        mono[0] += data.draw(st.floats(0, 2))
        now = provider.market_clock.now_ms()
        push = data.draw(hostile_variants(first, now))
        assert provider.on_push(push) is None
        assert provider._assembler.last_rejection in REJECT_REASONS
        assert provider.progress_monotonic == 100.0
    assert provider._assembler.accepted == 1


def test_freshness_waits_for_the_next_closed_candle() -> None:
    """Valid pushes of the forming bar do not make a feed fresh once its next closed candle is overdue."""
    mono = [0.0]
    provider = BitunixWsProvider(BitunixWsConfig(backfill=False), monotonic=lambda: mono[0],
                                 wall_clock=lambda: (T0 + 500 + mono[0] * 1000) / 1000)
    provider._last_accepted = 0.0

    def push_at(offset_ms: int, close: str, ts_offset_ms: int | None = None) -> list:
        mono[0] = (offset_ms - 500) / 1000
        ts = T0 + (offset_ms if ts_offset_ms is None else ts_offset_ms)
        transition = provider.on_push(good(ts, close, o=str(60000 + (ts - T0) // MIN)))
        return [] if transition is None else [transition]

    push_at(500, "60001")
    [transition] = push_at(MIN + 500, "60002")  # bar T0 closes
    assert [candle_open_ms(c) for c in asyncio.run(provider._complete(transition))] == [T0]
    # the next candle (bar T0+1m) is due when bar T0+2m opens: progress is capped there
    due = (2 * MIN - 500) / 1000
    frames = []
    for offset in range(MIN + 1000, 2 * MIN + 40_000, 1000):  # pushes keep coming, but never leave that bar
        frames += push_at(offset, str(60003 + offset % 7), min(offset, 2 * MIN - 1))
    assert not frames
    assert provider._last_accepted > due  # the forming bar's pushes were valid for a while...
    assert provider.progress_monotonic == pytest.approx(due)  # ...but freshness stops at the overdue candle
    assert mono[0] - provider.progress_monotonic > 30  # stale by the session's 30 s rule


def test_one_warning_per_burst_of_refused_frames(caplog: pytest.LogCaptureFixture) -> None:
    mono = [0.0]
    provider = BitunixWsProvider(BitunixWsConfig(), monotonic=lambda: mono[0], wall_clock=lambda: T0 / 1000 + 1)
    caplog.set_level(logging.WARNING, logger="laptop_agents.data.bitunix_ws")
    zero = kline(T0 + 500, "0", "0", "0", "0")
    for i in range(200):
        mono[0] = i * 0.02
        provider.on_push(zero)
    warnings = [r for r in caplog.records if "refusing kline pushes" in r.getMessage()]
    assert len(warnings) == 1 and "bad_price" in warnings[0].getMessage()
    assert provider.rejected_frames["bad_price"] == 200


def test_refused_frames_are_a_prometheus_counter_by_reason() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from laptop_agents.service.metrics import ServiceMetrics
    from laptop_agents.session.snapshot import feed_stats

    provider = BitunixWsProvider(BitunixWsConfig(), wall_clock=lambda: T0 / 1000 + 1)
    metrics = ServiceMetrics("paper", "BTCUSDT")
    for push in (kline(T0 + 500, "0", "0", "0", "0"), good(T0 + 10 * YEAR), good(T0 + 10 * YEAR)):
        provider.on_push(push)
    metrics._follow_feed(feed_stats(provider))
    metrics._follow_feed(feed_stats(provider))  # mirrored once, not added again
    samples = {s.labels["reason"]: s.value
               for family in text_string_to_metric_families(metrics.exposition().decode())
               for s in family.samples if s.name == "laptop_agents_market_data_frames_rejected_total"}
    assert samples["bad_price"] == 1 and samples["future"] == 2
    assert set(samples) <= set(REJECT_REASONS)


def test_a_feed_that_never_closes_a_bar_goes_stale_even_without_warm_up() -> None:
    """Red team: no warm-up candles (REST down at start, or --no-warmup) and a feed in the bar-open ``ts``
    dialect whose prices are frozen while volume only grows: every push "continues" the forming bar, so no
    bar ever closes. Valid-looking pushes alone must not keep the feed fresh: the first closed candle is due
    when the bar forming at the first push ends."""
    mono = [0.0]
    provider = BitunixWsProvider(BitunixWsConfig(backfill=False), monotonic=lambda: mono[0],
                                 wall_clock=lambda: T0 / 1000 + mono[0])
    provider._stream_started = 0.0  # candles() began; warm-up gave nothing
    for i in range(1, 300):  # five minutes, one push a second
        mono[0] = float(i)
        now = T0 + i * 1000
        transition = provider.on_push(kline(IV.floor(now), "60000", "60000", "60000", "60000", str(i), str(60000 * i)))
        assert transition is None
    assert provider._assembler.accepted == 299  # each push looked valid...
    assert provider.progress_monotonic == pytest.approx(60.0)  # ...but the first candle was due at 1 min
    assert mono[0] - provider.progress_monotonic > 30
