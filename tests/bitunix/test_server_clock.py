"""ServerClock: the exchange-time offset from whole-second Date headers (pure logic, seeded)."""

from __future__ import annotations

import random

from laptop_agents.bitunix.server_clock import ServerClock, parse_http_date_ms


def _answer(clock: ServerClock, local_ms: int, true_offset_ms: int, latency_ms: int) -> None:
    server_ms = local_ms + latency_ms // 2 + true_offset_ms
    clock.observe(server_ms // 1000 * 1000, local_ms, local_ms + latency_ms)


def test_offset_converges_within_the_receive_window_and_follows_a_step() -> None:
    rnd = random.Random(7)
    clock = ServerClock()
    local = 1_700_000_000_000
    for true_offset in (0, 8_000, -9_000, 250):
        for _ in range(40):
            local += rnd.randrange(50, 400)
            _answer(clock, local, true_offset, rnd.randrange(1, 80))
        error = abs(clock.offset_ms - true_offset)
        assert error <= 500 if abs(true_offset) >= 1000 else clock.offset_ms == 0 or error <= 1000
        assert clock.least_skew_ms <= abs(true_offset)
    assert clock.resyncs >= 2  # each step beyond a second restarted the estimate


def test_a_healthy_clock_gets_no_offset_and_dates_parse() -> None:
    clock = ServerClock()
    _answer(clock, 1_700_000_000_300, 0, 20)
    assert clock.known and clock.offset_ms == 0 and clock.least_skew_ms == 0
    assert parse_http_date_ms("Tue, 14 Nov 2023 22:13:20 GMT") == 1_700_000_000_000
    assert parse_http_date_ms("not a date") is None and parse_http_date_ms(None) is None
