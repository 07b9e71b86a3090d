"""Interval names and bar flooring (pushes have no open time: floor ts)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from laptop_agents.bitunix.intervals import (
    all_intervals,
    interval_from_channel,
    interval_from_rest,
)


def ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)


def test_rest_to_channel_names() -> None:
    assert interval_from_rest("1m").ws_channel() == "market_kline_1min"
    assert interval_from_rest("1h").ws_channel() == "market_kline_60min"
    assert interval_from_rest("1d").ws_channel("mark") == "mark_kline_1day"
    assert interval_from_rest("1M").ws_channel() == "market_kline_1month"


def test_channel_round_trip_for_every_interval() -> None:
    for iv in all_intervals():
        for price_type in ("market", "mark"):
            assert interval_from_channel(iv.ws_channel(price_type)) == (price_type, iv)
    assert interval_from_channel("depth_book1") is None
    assert interval_from_channel("market_kline_7min") is None


def test_unknown_rest_interval() -> None:
    with pytest.raises(ValueError):
        interval_from_rest("7m")


def test_floor_matches_the_contract_example() -> None:
    iv = interval_from_rest("1m")
    assert iv.floor(1732178884994) == 1732178880000
    assert iv.next_open(1732178880000) == 1732178940000


def test_weekly_bars_start_on_monday_and_monthly_on_the_first() -> None:
    week = interval_from_rest("1w")
    assert week.floor(ms(2024, 5, 16, 13)) == ms(2024, 5, 13)  # Thursday -> Monday
    month = interval_from_rest("1M")
    assert month.floor(ms(2024, 2, 29, 23, 59)) == ms(2024, 2, 1)
    assert month.next_open(ms(2024, 12, 1)) == ms(2025, 1, 1)


def test_floor_is_idempotent_and_next_open_is_after() -> None:
    for iv in all_intervals():
        t = 1732178884994
        f = iv.floor(t)
        assert f <= t < iv.next_open(f)
        assert iv.floor(f) == f
