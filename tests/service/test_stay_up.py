"""`la serve` halts in place (flat, no entries, not ready, gauges exported) and resumes when the cause clears.

Real `la serve` processes, real HTTP, real alerts (webhook), a real mock exchange for the data source.
Before service mode stayed up these sessions exited 4 (kill switch), 5 (breaker stop), 6 (stale data) or
9 (data source gave up) within about a second of the cause, so no scrape ever saw the gauges.
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from laptop_agents.mock_exchange.testing import running_mock_exchange
from laptop_agents.session.stay_up import Backoff, HaltCauses
from tests.conftest import LaEnv
from tests.service.conftest import Served, start_serve, wait_until
from tests.service.receivers import WebhookReceiver
from tests.service.test_alerts import metric, titles, urls_file

pytestmark = pytest.mark.slow


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


def readyz(served: Served) -> tuple[int, dict[str, Any]]:
    return served.json("/readyz")


def halted(served: Served, reason: str) -> bool:
    code, body = readyz(served)
    return code == 503 and any(p.startswith(f"halted: {reason}") for p in body["problems"])


def stop(served: Served) -> None:
    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(timeout=30) == 0


def test_kill_switch_halts_in_place_and_resumes_when_cleared(la_env: LaEnv, webhook: WebhookReceiver) -> None:
    la_env.hold_positions()  # a position is open when the switch is thrown: halting must flatten it
    served = start_serve(la_env, extra_env=urls_file(la_env, webhook.url))
    wait_until(lambda: served.status()["position"] is not None, 30, "an open position")
    kill = la_env.workspace / "kill.txt"
    kill.write_text("stop\n")
    wait_until(lambda: halted(served, "kill_switch"), 20, "/readyz 503 halted: kill_switch")
    status = served.status()
    assert served.proc.poll() is None, "the service stays up"
    assert status["state"] == "HALTED" and status["position"] is None and status["kill_switch_active"] is True
    assert metric(served, "laptop_agents_kill_switch_active") == 1
    assert metric(served, "laptop_agents_halted", reason="kill_switch") == 1
    assert metric(served, "laptop_agents_ready") == 0
    # entries stay halted while candles keep flowing
    submitted = metric(served, "laptop_agents_orders_submitted_total")
    candles = status["candles_processed"]
    wait_until(lambda: served.status()["candles_processed"] >= candles + 300, 30, "300 more candles while halted")
    assert metric(served, "laptop_agents_orders_submitted_total") == submitted
    assert served.status()["position"] is None
    kill.unlink()
    wait_until(lambda: readyz(served)[0] == 200, 20, "ready again once kill.txt is gone")
    assert metric(served, "laptop_agents_kill_switch_active") == 0
    assert metric(served, "laptop_agents_halted", reason="kill_switch") == 0
    wait_until(lambda: metric(served, "laptop_agents_orders_submitted_total") > submitted, 30, "trading resumed")
    stop(served)
    assert len([t for t in titles(webhook) if "Kill switch activated" in t]) == 1
    events = [line for line in (la_env.latest / "events.jsonl").read_text().splitlines()]
    assert any('"ServiceHalted"' in e and '"kill_switch"' in e for e in events)
    assert any('"ServiceResumed"' in e for e in events)
    assert any('"ExecutionExit"' in e and '"kill_switch"' in e for e in events), "flattened with reason kill_switch"


def test_breaker_stop_halts_until_la_reset_breaker(la_env: LaEnv) -> None:
    la_env.edit_yaml("risk.yaml", circuit_breaker={"action": "stop_session"})
    served = start_serve(la_env, "--scenario", "losing_streak")
    wait_until(lambda: halted(served, "circuit_breaker"), 60, "/readyz 503 halted: circuit_breaker")
    assert served.proc.poll() is None, "a breaker stop no longer exits 5 in service mode"
    assert metric(served, "laptop_agents_halted", reason="circuit_breaker") == 1
    assert metric(served, "laptop_agents_breaker_tripped", reason="consecutive_losses") == 1
    assert served.status()["position"] is None
    result = la_env.run("reset-breaker", timeout=60)
    assert result.returncode == 0, result.stderr
    assert "reset by the running session" in result.stdout
    wait_until(lambda: metric(served, "laptop_agents_halted", reason="circuit_breaker") == 0, 20, "breaker halt cleared")
    assert metric(served, "laptop_agents_breaker_tripped", reason="consecutive_losses") == 0
    stop(served)
    assert '"tripped": false' in (la_env.workspace / "paper" / "circuit_breaker_state.json").read_text()


def test_stale_data_halts_then_resumes_when_data_is_back(la_env: LaEnv, webhook: WebhookReceiver) -> None:
    served = start_serve(la_env, "--inject-gap-at", "1", "--gap-duration", "4", "--stale-timeout", "1.5",
                         extra_env=urls_file(la_env, webhook.url))
    wait_until(lambda: halted(served, "stale_data"), 20, "/readyz 503 halted: stale_data")
    assert metric(served, "laptop_agents_halted", reason="stale_data") == 1
    wait_until(lambda: readyz(served)[0] == 200, 30, "ready again when the gap ends")
    assert metric(served, "laptop_agents_halted", reason="stale_data") == 0
    assert served.proc.poll() is None
    stop(served)
    assert len([t for t in titles(webhook) if "Stale market data" in t]) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_data_source_down_stays_up_backs_off_and_alerts_once_down_once_back(la_env: LaEnv,
                                                                           webhook: WebhookReceiver) -> None:
    port = _free_port()  # nothing listens here yet: the exchange is down
    env = {**urls_file(la_env, webhook.url), "LA_BITUNIX__MAX_RECONNECT_ATTEMPTS": "1",
           "LA_BITUNIX__BACKOFF_MAX_SEC": "0.05", "LA_BITUNIX__WARMUP": "false"}
    served = start_serve(la_env, "--source", "bitunix", "--rest-url", f"http://127.0.0.1:{port}",
                         "--ws-url", f"ws://127.0.0.1:{port}/public/", "--data-retry-base", "0.2",
                         "--data-retry-max", "0.8", extra_env=env, source="bitunix")
    wait_until(lambda: halted(served, "data_source_down"), 30, "/readyz 503 halted: data_source_down")
    assert metric(served, "laptop_agents_data_source_up") == 0
    wait_until(lambda: metric(served, "laptop_agents_data_source_reconnect_attempts_total") >= 4, 30,
               "reconnect attempts with capped back-off")
    assert served.proc.poll() is None, "no exit 9, no restart loop"
    assert [t for t in titles(webhook) if "Market data source down" in t] != []
    with running_mock_exchange(seed=5, time_scale=600, push_interval_ms=50, port=port):
        wait_until(lambda: readyz(served)[0] == 200, 40, "ready once the exchange is back")
        assert metric(served, "laptop_agents_data_source_up") == 1
        wait_until(lambda: any("Market data source back" in t for t in titles(webhook)), 20, "the 'back' alert")
        stop(served)
    assert len([t for t in titles(webhook) if "Market data source down" in t]) == 1, titles(webhook)
    assert len([t for t in titles(webhook) if "Market data source back" in t]) == 1, titles(webhook)


# --------------------------------------------------------------------------- pure parts
def test_backoff_is_exponential_and_capped() -> None:
    b = Backoff(5, 300)
    assert [b.delay(n) for n in range(1, 9)] == [5, 10, 20, 40, 80, 160, 300, 300]
    assert b.delay(10_000) == 300
    with pytest.raises(ValueError):
        Backoff(10, 5)


def test_halt_causes_report_starts_and_clears_once() -> None:
    c = HaltCauses()
    assert c.update({"stale_data": "x"}) == (["stale_data"], [])
    assert c.update({"stale_data": "x", "kill_switch": "k"}) == (["kill_switch"], [])
    assert c.primary == "kill_switch" and c.halted
    assert c.update({"stale_data": "y", "kill_switch": "k"}) == ([], [])
    assert c.update({}) == ([], ["kill_switch", "stale_data"])
    assert not c.halted
