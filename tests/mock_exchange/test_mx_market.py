"""The seeded price path and candle aggregation, as pure logic."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from laptop_agents.mock_exchange.klines import BY_REST, BY_WS, INTERVALS, CandleBook
from laptop_agents.mock_exchange.pricepath import MINUTE_MS, PathParams, PricePath

START = 1_736_121_600_000  # Monday 2025-01-06 00:00 UTC
DAY = 86_400_000


def make_path(seed: int = 7, start: int = START, history_days: float = 1) -> PricePath:
    return PricePath(seed=seed, symbol="BTCUSDT", start_ms=start, start_price=95000.0,
                     history_ms=int(history_days * DAY))


def test_same_seed_same_path_different_seed_different_path() -> None:
    a, b, c = make_path(7), make_path(7), make_path(8)
    ta, tb, tc = (p.advance_to(START + 3_600_000) for p in (a, b, c))
    assert ta == tb and ta != tc
    assert [a.bar(m) for m in range(a.listing_minute, a.current_minute)] == \
        [b.bar(m) for m in range(b.listing_minute, b.current_minute)]


def test_history_does_not_depend_on_request_order() -> None:
    a, b = make_path(), make_path()
    first_minute = a.listing_minute
    early = a.bar(first_minute)  # history first, then forward
    a.advance_to(START + 600_000)
    b.advance_to(START + 600_000)  # forward first, then history
    assert b.bar(first_minute) == early
    assert a.bar(START // MINUTE_MS + 5) == b.bar(START // MINUTE_MS + 5)


def test_path_starts_at_the_start_price_and_stays_realistic() -> None:
    p = make_path()
    assert p.last_price == 95000
    p.advance_to(START + DAY)
    closes = [p.bar(m).close / 10 for m in range(p.listing_minute, p.current_minute)]
    assert min(closes) > 80_000 and max(closes) < 110_000
    returns = [closes[i + 1] / closes[i] - 1 for i in range(len(closes) - 1)]
    per_minute_vol = statistics.pstdev(returns)
    assert 0.0003 < per_minute_vol < 0.003  # BTC-like: roughly 0.05-0.1 % a minute



def test_regimes_switch() -> None:
    p = PricePath(seed=7, symbol="BTCUSDT", start_ms=START, start_price=95000.0, history_ms=0,
                  params=PathParams(tick_ms=10_000))
    regimes = set()
    for _ in range(100):
        p.advance_to(p.last_tick.ts + 30 * MINUTE_MS)
        regimes.add(p.regime)
    assert len(regimes) >= 3


def test_bars_are_consistent_ohlc_and_volumes_add_up() -> None:
    p = make_path()
    ticks = [p.last_tick] + p.advance_to(START + 5 * MINUTE_MS - 1)  # the start tick exists from the outset
    minute = START // MINUTE_MS
    for m in range(minute, minute + 5):
        bar = p.bar(m)
        in_minute = [t for t in ticks if t.ts // MINUTE_MS == m]
        assert bar.open == in_minute[0].price and bar.close == in_minute[-1].price
        assert bar.high == max(t.price for t in in_minute) and bar.low == min(t.price for t in in_minute)
        assert bar.base_vol == sum(t.volume for t in in_minute)
        assert bar.quote_vol == sum(t.volume * t.price for t in in_minute)


def test_nothing_exists_before_listing_or_after_now() -> None:
    p = make_path(history_days=0.5)
    assert p.bar(p.listing_minute - 1) is None
    assert p.bar(p.current_minute + 1) is None
    assert p.bar(p.listing_minute) is not None


def test_set_next_price_is_exact_and_the_walk_continues_from_there() -> None:
    p = make_path()
    p.set_next_price(960_000)
    (tick,) = p.advance_to(START + 1000)
    assert tick.price == 960_000
    later = p.advance_to(START + 60_000)
    assert abs(later[-1].price - 960_000) < 960_000 * 0.02


def test_candle_is_the_merge_of_its_minutes() -> None:
    p = make_path()
    p.advance_to(START + 3 * 3_600_000)
    book = CandleBook(p)
    five = book.candle(BY_REST["5m"], START + 10 * MINUTE_MS)
    ones = [book.candle(BY_REST["1m"], START + (10 + i) * MINUTE_MS).bar for i in range(5)]
    assert five.bar.open == ones[0].open and five.bar.close == ones[-1].close
    assert five.bar.high == max(b.high for b in ones) and five.bar.low == min(b.low for b in ones)
    assert five.bar.base_vol == sum(b.base_vol for b in ones)


def test_open_candle_grows_and_closed_candles_never_change() -> None:
    p = make_path()
    book = CandleBook(p)
    hour = BY_REST["1h"]
    p.advance_to(START + 20 * MINUTE_MS)
    partial = book.current(hour, START + 20 * MINUTE_MS)
    p.advance_to(START + 40 * MINUTE_MS)
    grown = book.current(hour, START + 40 * MINUTE_MS)
    assert grown.bar.base_vol > partial.bar.base_vol and grown.bar.open == partial.bar.open
    p.advance_to(START + 61 * MINUTE_MS)
    final = book.candle(hour, START)
    assert final == CandleBook(p).candle(hour, START)  # cached vs freshly aggregated


def test_candles_paging_semantics() -> None:
    p = make_path()
    now = START + 30 * MINUTE_MS + 5000
    p.advance_to(now)
    book = CandleBook(p)
    one = BY_REST["1m"]
    latest = book.candles(one, now, limit=10)
    assert [c.time for c in latest] == [START + (21 + i) * MINUTE_MS for i in range(10)]
    forward = book.candles(one, now, start_ms=START + 5 * MINUTE_MS + 1, limit=3)
    assert [c.time for c in forward] == [START + (6 + i) * MINUTE_MS for i in range(3)]
    ranged = book.candles(one, now, start_ms=START, end_ms=START + 2 * MINUTE_MS)
    assert [c.time for c in ranged] == [START, START + MINUTE_MS, START + 2 * MINUTE_MS]
    future = book.candles(one, now, start_ms=now + DAY)
    assert future == []


def test_interval_alignment() -> None:
    ts = int(datetime(2025, 3, 12, 15, 47, 13, tzinfo=UTC).timestamp() * 1000)
    week = BY_REST["1w"].start_of(ts)
    assert datetime.fromtimestamp(week / 1000, tz=UTC) == datetime(2025, 3, 10, tzinfo=UTC)
    month = BY_REST["1M"]
    assert month.start_of(ts) == int(datetime(2025, 3, 1, tzinfo=UTC).timestamp() * 1000)
    assert month.next_start(month.start_of(ts)) == int(datetime(2025, 4, 1, tzinfo=UTC).timestamp() * 1000)
    dec = int(datetime(2024, 12, 1, tzinfo=UTC).timestamp() * 1000)
    assert month.next_start(dec) == int(datetime(2025, 1, 1, tzinfo=UTC).timestamp() * 1000)
    assert BY_WS["60min"] is BY_REST["1h"] and BY_WS["1day"] is BY_REST["1d"]
    assert len({i.rest for i in INTERVALS}) == len(INTERVALS)


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=0, max_value=400), st.sampled_from([i.rest for i in INTERVALS if i.minutes <= 240]),
       st.integers(min_value=0, max_value=10))
def test_candles_are_well_formed(minutes_after_start: int, interval_name: str, seed: int) -> None:
    p = make_path(seed=seed, history_days=0.1)
    now = START + minutes_after_start * MINUTE_MS + 1234
    p.advance_to(now)
    interval = BY_REST[interval_name]
    candles = CandleBook(p).candles(interval, now, limit=50)
    assert candles
    times = [c.time for c in candles]
    assert times == sorted(times) and len(set(times)) == len(times)
    for c in candles:
        assert interval.start_of(c.time) == c.time
        assert c.bar.low <= min(c.bar.open, c.bar.close) <= max(c.bar.open, c.bar.close) <= c.bar.high
        assert c.bar.base_vol > 0
