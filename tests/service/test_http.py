"""The HTTP endpoint of `la serve`: /metrics, /healthz, /readyz, /status and the dashboard."""

from __future__ import annotations

import json
import signal
import socket

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import LaEnv
from tests.service.conftest import FAST, start_la, start_serve, wait_until

REQUIRED_METRICS = {
    "laptop_agents_candles_processed_total", "laptop_agents_market_data_age_seconds", "laptop_agents_ws_reconnects_total",
    "laptop_agents_orders_submitted_total", "laptop_agents_orders_filled_total", "laptop_agents_orders_rejected_total",
    "laptop_agents_order_roundtrip_seconds_bucket", "laptop_agents_api_errors_total",
    "laptop_agents_rate_limit_waits_total", "laptop_agents_position_size_base_units",
    "laptop_agents_position_notional_usdt", "laptop_agents_equity_usdt", "laptop_agents_realized_pnl_usdt",
    "laptop_agents_daily_pnl_usdt", "laptop_agents_drawdown_percent", "laptop_agents_consecutive_losing_trades",
    "laptop_agents_breaker_tripped", "laptop_agents_kill_switch_active", "laptop_agents_loop_heartbeat_age_seconds",
    "laptop_agents_process_resident_memory_bytes", "laptop_agents_process_cpu_seconds_total",
}


def samples(body: bytes) -> list:
    return [s for fam in text_string_to_metric_families(body.decode()) for s in fam.samples]


def test_endpoint_serves_metrics_health_status_dashboard(la_env: LaEnv) -> None:
    served = start_serve(la_env, "--dashboard")
    wait_until(lambda: served.get("/readyz")[0] == 200, 20, "/readyz 200 once data flows")
    wait_until(lambda: served.status()["trades"] >= 1, 30, "a trade")
    code, health_body = served.json("/healthz")
    assert code == 200 and health_body["healthy"] is True

    code, body = served.get("/metrics")
    assert code == 200
    got = samples(body)
    names = {s.name for s in got}
    assert names >= REQUIRED_METRICS, REQUIRED_METRICS - names
    for s in got:
        if s.name.startswith("laptop_agents_"):
            assert s.labels.get("mode") == "paper" and s.labels.get("symbol") == "BTCUSDT", s
            assert "order_id" not in s.labels and "run_id" not in s.labels
    by = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in got}
    assert by[("laptop_agents_candles_processed_total", (("mode", "paper"), ("symbol", "BTCUSDT")))] > 10
    assert by[("laptop_agents_orders_filled_total", (("mode", "paper"), ("symbol", "BTCUSDT")))] >= 1
    assert by[("laptop_agents_process_resident_memory_bytes", (("mode", "paper"), ("symbol", "BTCUSDT")))] > 10e6

    status = served.status()
    cli = json.loads(la_env.run("status", "--json").stdout)
    assert set(cli) <= set(status), set(cli) - set(status)
    assert status["state"] == cli["state"] == "RUNNING" and status["pid"] == cli["pid"] == served.proc.pid
    assert status["run_id"] == cli["run_id"]
    for key in ("equity", "position", "last_candle", "data_age_sec", "breaker", "kill_switch_active", "recent_events"):
        assert key in status
    assert any(e["event"] == "SessionStart" for e in status["recent_events"])

    code, page = served.get("/")
    assert code == 200 and b"/status" in page and b"kill switch" in page and b"<script>" in page

    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(timeout=30) == 0


def test_no_dashboard_without_flag_and_busy_port_is_a_usage_error(la_env: LaEnv) -> None:
    served = start_serve(la_env)
    assert served.get("/dashboard")[0] == 404
    assert b"--dashboard" in served.get("/")[1]
    port = int(served.url.rsplit(":", 1)[1])
    second = la_env.run("serve", "--http-port", str(port), *FAST, timeout=30)
    assert second.returncode == 2, second.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in second.stderr
    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(timeout=30) == 0


def test_endpoint_is_loopback_by_default(la_env: LaEnv) -> None:
    served = start_serve(la_env)
    assert served.url.startswith("http://127.0.0.1:")
    port = int(served.url.rsplit(":", 1)[1])
    s = socket.socket()
    try:
        assert s.connect_ex(("127.0.0.1", port)) == 0
    finally:
        s.close()
    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(timeout=30) == 0


def test_la_run_dashboard(la_env: LaEnv) -> None:
    served = start_la(la_env, "run", "--duration", "0.04", *FAST, "--dashboard", extra_env={"LA_HTTP_PORT": "0"})
    code, page = served.get("/")
    assert code == 200 and b"laptop-agents" in page
    wait_until(lambda: served.status()["candles_processed"] > 0, 20, "candles on /status")
    assert served.proc.wait(timeout=60) == 0
    assert "la run: dashboard http://127.0.0.1:" in served.stdout_lines[0]
