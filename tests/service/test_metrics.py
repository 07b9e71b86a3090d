"""Metrics derived from domain events (in-process, deterministic)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from prometheus_client.parser import text_string_to_metric_families

from laptop_agents.core.events import Event, EventName
from laptop_agents.data.providers.base import FeedStats
from laptop_agents.service.metrics import MetricsObserver, ServiceMetrics
from laptop_agents.session.snapshot import feed_stats

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def value(metrics: ServiceMetrics, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    raise AssertionError(f"no sample {name} {labels}")


def test_events_drive_counters_and_state_gauges() -> None:
    m = ServiceMetrics("paper", "BTCUSDT")
    observe = MetricsObserver(m)
    observe(Event(EventName.SESSION_START, NOW, starting_equity=Decimal(10000)))
    for _ in range(3):
        observe(Event(EventName.CANDLE_PROCESSED, NOW))
    observe(Event(EventName.ORDER_SUBMITTED, NOW, order_id="O1"))
    observe(Event(EventName.EXECUTION_FILL, NOW, order_id="O1"))
    observe(Event(EventName.RISK_REJECTED, NOW, reason="circuit_breaker_tripped:daily_loss",
                  code="circuit_breaker_tripped"))
    observe(Event(EventName.EXECUTION_EXIT, NOW, reason="stop_loss"))
    observe(Event(EventName.CIRCUIT_BREAKER_TRIPPED, NOW, reason="consecutive_losses"))
    observe(Event(EventName.KILL_SWITCH_ACTIVATED, NOW))

    assert value(m, "laptop_agents_candles_processed_total") == 3
    assert value(m, "laptop_agents_orders_submitted_total") == 1
    assert value(m, "laptop_agents_orders_filled_total") == 1
    assert value(m, "laptop_agents_order_roundtrip_seconds_count") == 1
    assert value(m, "laptop_agents_orders_rejected_total", reason="circuit_breaker_tripped") == 1
    assert value(m, "laptop_agents_position_exits_total", reason="stop_loss") == 1
    assert value(m, "laptop_agents_breaker_tripped", reason="consecutive_losses") == 1
    assert value(m, "laptop_agents_breaker_tripped", reason="max_drawdown") == 0
    assert value(m, "laptop_agents_breaker_trips_total", reason="consecutive_losses") == 1
    assert value(m, "laptop_agents_kill_switch_active") == 1
    assert value(m, "laptop_agents_equity_usdt") == 10000
    assert value(m, "laptop_agents_events_total", event="CandleProcessed") == 3

    observe(Event(EventName.CIRCUIT_BREAKER_RESET, NOW))
    assert value(m, "laptop_agents_breaker_tripped", reason="consecutive_losses") == 0


def test_not_yet_wired_sources_export_zero_with_their_labels() -> None:
    m = ServiceMetrics("live", "ETHUSDT")
    assert value(m, "laptop_agents_ws_reconnects_total", mode="live", symbol="ETHUSDT") == 0
    assert value(m, "laptop_agents_api_errors_total", code="rate_limit") == 0
    assert value(m, "laptop_agents_rate_limit_waits_total") == 0
    m.record_ws_reconnect()
    m.record_api_error("auth")
    m.record_api_error("something new")
    m.record_rate_limit_wait()
    assert value(m, "laptop_agents_ws_reconnects_total") == 1
    assert value(m, "laptop_agents_api_errors_total", code="auth") == 1
    assert value(m, "laptop_agents_api_errors_total", code="other") == 1
    assert value(m, "laptop_agents_rate_limit_waits_total") == 1


def test_two_sessions_in_one_process_do_not_collide() -> None:
    a, b = ServiceMetrics("paper", "BTCUSDT"), ServiceMetrics("paper", "BTCUSDT")
    MetricsObserver(a)(Event(EventName.CANDLE_PROCESSED, NOW))
    assert value(a, "laptop_agents_candles_processed_total") == 1
    assert value(b, "laptop_agents_candles_processed_total") == 0
    assert b"_created" not in a.exposition()


def test_ws_reconnects_follow_the_provider_count() -> None:
    m = ServiceMetrics("paper", "BTCUSDT")

    class Provider:
        reconnects = 0

        def feed_stats(self) -> FeedStats:
            return FeedStats(reconnects=self.reconnects)

    provider = Provider()
    m._follow_feed(feed_stats(provider))
    provider.reconnects = 3
    m._follow_feed(feed_stats(provider))
    m._follow_feed(feed_stats(provider))
    assert value(m, "laptop_agents_ws_reconnects_total") == 3
    m._follow_feed(feed_stats(object()))  # a provider keeping no counters reports zeros, never a decrease
    assert value(m, "laptop_agents_ws_reconnects_total") == 3
