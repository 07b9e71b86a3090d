"""The one read model (session/read_model.py), in-process and deterministic: every view renders the same value.

A snapshot is built by hand here (no runner): /healthz, /readyz, /status, the STATUS= line, status.json and the
gauges are pure functions of it and of the time they are rendered at.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal

from prometheus_client.parser import text_string_to_metric_families

from laptop_agents.core.events import Event, EventName
from laptop_agents.execution.health import BrokerHealth
from laptop_agents.service.metrics import MetricsObserver, ServiceMetrics
from laptop_agents.service.status import status_payload
from laptop_agents.session.read_model import (
    BreakerView,
    FeedStats,
    HaltView,
    PositionView,
    SessionSnapshot,
    Thresholds,
    status_file,
)

T0 = datetime(2026, 11, 29, 12, tzinfo=UTC)
NOW = 1000.0  # the monotonic "now" every render is measured at


def snapshot(**changes: object) -> SessionSnapshot:
    base = SessionSnapshot(
        taken_mono=NOW, updated_at=T0, running=True, pid=4242, run_id="r1", mode="live", session_mode="service",
        source="bitunix", symbol="BTCUSDT", workspace="/ws/live", started_at=T0, started_mono=NOW - 60,
        duration_min=None, heartbeat_mono=NOW - 0.1, data_mono=NOW - 1.0,
        thresholds=Thresholds.from_settings(30.0, 0.25, 30.0), equity=Decimal("1010"),
        starting_equity=Decimal("1000"), mark_to_market_equity=Decimal("1012.5"),
        position=PositionView("LONG", Decimal("0.01"), Decimal("95000"), Decimal("94000"), Decimal("97000"),
                              Decimal("952.5"), Decimal("2.5"), Decimal("0.01"), Decimal("952.5")),
        trades=3, candles_processed=42, last_candle=None,
        breaker=BreakerView(state=(("tripped", False), ("reason", None)), tripped=False, reason=None,
                            consecutive_losses=1, daily_realized_pnl=Decimal("10"), drawdown_pct=Decimal("0.5"),
                            realized_drawdown_pct=Decimal("0.7"), max_drawdown_pct=Decimal("10"),
                            max_daily_loss_usd=Decimal("50"), action="halt_entries"),
        kill_switch_active=False, kill_switch=None, stopped_reason=None, stop_detail="", exit_code=None,
        broker=BrokerHealth("bitunix"), halt=HaltView((), None, True, 0, None, 0),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def gauge(m: ServiceMetrics, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(m.exposition().decode()):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    raise AssertionError(f"no sample {name} {labels}")


def test_health_and_readiness_rules() -> None:
    snap = snapshot()
    assert snap.thresholds == Thresholds(2.0, 15.0)
    assert snap.health(NOW)[0] is True
    assert snap.health(NOW + 2.5)[0] is False, "ages are measured when rendered: a frozen loop ages"
    assert snap.readiness(NOW) == (True, {"ready": True, "problems": [], "data_age_sec": 1.0, "data_max_age_sec": 15.0,
                                          "broker": "bitunix", "broker_healthy": True})
    assert snapshot(data_mono=None).readiness(NOW)[1]["problems"] == ["no market data yet"]
    assert "old" in snapshot(data_mono=NOW - 16).readiness(NOW)[1]["problems"][0]
    assert snapshot(stopped_reason="sigterm").readiness(NOW)[0] is False
    assert snapshot(halt=None, kill_switch_active=True).readiness(NOW)[1]["problems"] == ["kill switch active"]
    tripped = dataclasses.replace(snapshot().breaker, tripped=True, reason="consecutive_losses")
    ok, body = snapshot(breaker=tripped).readiness(NOW)
    assert not ok and "circuit breaker tripped (consecutive_losses)" in body["problems"][0]
    halted = HaltView((("data_source_down", "ws refused"),), NOW - 5, False, 2, NOW + 3, 2)
    assert snapshot(halt=halted).readiness(NOW)[1]["problems"] == ["halted: data_source_down: ws refused"]


def test_an_unhealthy_broker_is_not_ready_and_says_why_everywhere() -> None:
    """broker_healthy is the broker's verdict, not a constant: every view shows the same problem."""
    sick = snapshot(broker=BrokerHealth("bitunix", ("exchange API circuit breaker is open",)))
    ok, body = sick.readiness(NOW)
    assert not ok and body["broker_healthy"] is False
    assert body["problems"] == ["broker unhealthy: exchange API circuit breaker is open"]
    payload = status_payload(sick, now=NOW)
    assert payload["broker_healthy"] is False and payload["ready"] is False
    assert payload["broker"]["problems"] == ["exchange API circuit breaker is open"]
    assert status_file(sick)["broker_healthy"] is False
    assert "BROKER UNHEALTHY (exchange API circuit breaker is open)" in sick.status_line(NOW)
    m = ServiceMetrics("live", "BTCUSDT")
    m.sample(sick, NOW)
    assert gauge(m, "laptop_agents_ready") == 0 and gauge(m, "laptop_agents_broker_healthy") == 0
    m.sample(snapshot(), NOW)
    assert gauge(m, "laptop_agents_ready") == 1 and gauge(m, "laptop_agents_broker_healthy") == 1


def test_every_view_renders_the_same_snapshot() -> None:
    snap = snapshot()
    payload = status_payload(snap, now=NOW + 0.5)
    file = status_file(snap)
    line = snap.status_line(NOW)
    assert payload["mode"] == file["mode"] == "live" and line.startswith("live mode, bitunix BTCUSDT: 42 candles")
    assert payload["equity"] == file["equity"] == "1010" and payload["candles_processed"] == file["candles_processed"]
    assert payload["position"]["unrealized_pnl"] == "2.5" and file["position"]["qty"] == "0.01"
    assert payload["heartbeat_age_sec"] == 0.6 and payload["uptime_sec"] == 60.5
    assert payload["realized_pnl"] == "10" and payload["breaker"]["drawdown_pct"] == "0.5000"
    m = ServiceMetrics("live", "BTCUSDT")
    m.sample(snap, NOW)
    assert gauge(m, "laptop_agents_equity_usdt") == 1010
    assert gauge(m, "laptop_agents_position_size_base_units") == 0.01
    assert gauge(m, "laptop_agents_drawdown_percent") == 0.7  # of realized equity, as before
    assert gauge(m, "laptop_agents_market_data_age_seconds") == 1.0
    assert gauge(m, "laptop_agents_mark_to_market_equity_usdt") == 1012.5
    short = dataclasses.replace(snap.position, side="SHORT", signed_qty=Decimal("-0.01"))  # type: ignore[arg-type]
    m.sample(snapshot(position=short, data_mono=None), NOW)
    assert gauge(m, "laptop_agents_position_size_base_units") == -0.01
    assert gauge(m, "laptop_agents_market_data_age_seconds") == 60, "no data yet: as old as the session"


def test_feed_counters_are_mirrored_once_by_their_growth() -> None:
    m = ServiceMetrics("paper", "BTCUSDT")
    feed = FeedStats(reconnects=2, rejected_frames=(("bad_price", 3),), api_errors=(("TransportError", 4),),
                     rate_limit_waits=1)
    for _ in range(2):
        m.sample(snapshot(feed=feed), NOW)
    assert gauge(m, "laptop_agents_ws_reconnects_total") == 2
    assert gauge(m, "laptop_agents_market_data_frames_rejected_total", reason="bad_price") == 3
    assert gauge(m, "laptop_agents_api_errors_total", code="network") == 4
    assert gauge(m, "laptop_agents_rate_limit_waits_total") == 1


def test_rejections_are_counted_by_their_typed_code_never_their_text() -> None:
    """RiskRejected is labelled by its ``code``, and the broker's OrderRejected counts too (it never did)."""
    m = ServiceMetrics("live", "BTCUSDT")
    observe = MetricsObserver(m)
    observe(Event(EventName.RISK_REJECTED, T0, reason="size 0.00001 below exchange minimum 0.0001 (risk binds)",
                  code="below_min_qty"))
    observe(Event(EventName.RISK_REJECTED, T0, reason="daily loss budget exhausted"))  # no code: not parsed
    observe(Event(EventName.ORDER_REJECTED, T0, reason="insufficient_balance", message="free text 123"))
    observe(Event(EventName.ORDER_REJECTED, T0, reason="order 42 refused: some new text"))
    assert gauge(m, "laptop_agents_orders_rejected_total", reason="below_min_qty") == 1
    assert gauge(m, "laptop_agents_orders_rejected_total", reason="insufficient_balance") == 1
    assert gauge(m, "laptop_agents_orders_rejected_total", reason="other") == 2
    assert gauge(m, "laptop_agents_orders_rejected_total", reason="daily_loss_budget") == 0


def test_paper_broker_is_healthy_exactly_while_its_state_persists() -> None:
    from types import SimpleNamespace

    from laptop_agents.session.snapshot import broker_health

    runner = SimpleNamespace(account=object(), broker=SimpleNamespace(name="paper"),
                             store=SimpleNamespace(write_error=None))
    assert broker_health(runner) == BrokerHealth("paper")  # type: ignore[arg-type]
    runner.store.write_error = OSError(28, "No space left on device")
    sick = broker_health(runner)  # type: ignore[arg-type]
    assert not sick.healthy and sick.problems[0].startswith("state not persisted (")
