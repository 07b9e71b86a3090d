"""Alerts delivered for real (JSON webhook + SMTP on 127.0.0.1) from a running `la serve`; never blocking trading."""

from __future__ import annotations

import json
import logging
import signal
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from laptop_agents.alerts import (
    Alert,
    AlertKind,
    AlertSettings,
    Notifier,
    Severity,
    load_alert_settings,
    mask_url,
)
from laptop_agents.core.errors import ConfigError
from tests.conftest import LaEnv
from tests.service.conftest import Served, start_serve, wait_until
from tests.service.receivers import SmtpReceiver, WebhookReceiver

SECRET = "tok-SECRET-7f3a"


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    receiver = SmtpReceiver()
    yield receiver
    receiver.close()


def urls_file(la_env: LaEnv, *urls: str) -> dict[str, str]:
    path = la_env.root / "alert-urls"
    path.write_text("# Apprise URLs, one per line\n" + "\n".join(urls) + "\n")
    return {"LA_ALERT_URLS_FILE": str(path)}


def titles(webhook: WebhookReceiver) -> list[str]:
    return [m["title"] for m in webhook.received]


def assert_delivered(webhook: WebhookReceiver, smtp: SmtpReceiver, title: str) -> None:
    wait_until(lambda: any(title in t for t in titles(webhook)), 20, f"webhook alert {title!r}: {titles(webhook)}")
    wait_until(lambda: any(title in t for t in smtp.texts()), 20, f"email alert {title!r}: {smtp.texts()}")


def assert_secret_never_logged(la_env: LaEnv, served: Served) -> None:
    stderr = served.proc.stderr.read() if served.proc.stderr else ""
    stdout = "".join(served.stdout_lines)
    run_files = [p.read_text() for p in la_env.latest.resolve().iterdir() if p.suffix in (".jsonl", ".json", ".html")]
    for text in (stderr, stdout, *run_files):
        assert SECRET not in text


def metric(served: Served, name: str, **labels: str) -> float:
    _, body = served.get("/metrics")
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    raise AssertionError(f"no sample {name} {labels}")


def test_breaker_trip_alert_by_webhook_and_email(la_env: LaEnv, webhook: WebhookReceiver, smtp: SmtpReceiver) -> None:
    env = urls_file(la_env, webhook.url + f"/{SECRET}", smtp.url())
    served = start_serve(la_env, "--scenario", "losing_streak", extra_env=env)
    assert_delivered(webhook, smtp, "Circuit breaker tripped")
    msg = next(m for m in webhook.received if "Circuit breaker" in m["title"])
    assert msg["type"] == "failure" and "consecutive" in msg["message"] and "reset-breaker" in msg["message"]
    wait_until(lambda: metric(served, "laptop_agents_alerts_sent_total", kind="circuit_breaker") == 1, 10, "sent metric")
    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(timeout=30) == 0
    assert len([t for t in titles(webhook) if "Circuit breaker" in t]) == 1, "deduplicated: one trip, one alert"
    assert_secret_never_logged(la_env, served)


def test_kill_switch_alert(la_env: LaEnv, webhook: WebhookReceiver, smtp: SmtpReceiver) -> None:
    served = start_serve(la_env, extra_env=urls_file(la_env, webhook.url, smtp.url()))
    wait_until(lambda: served.get("/readyz")[0] == 200, 20, "ready")
    (la_env.workspace / "kill.txt").write_text("stop\n")
    # `la serve` halts in place (tests/service/test_stay_up.py) and alerts while it stays up
    assert_delivered(webhook, smtp, "Kill switch activated")
    assert "halted in place" in next(m for m in webhook.received if "Kill switch" in m["title"])["message"]
    assert served.proc.poll() is None
    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(timeout=30) == 0


def test_stale_data_alert(la_env: LaEnv, webhook: WebhookReceiver, smtp: SmtpReceiver) -> None:
    served = start_serve(la_env, "--inject-gap-at", "0.5", "--gap-duration", "60", "--stale-timeout", "1.5",
                         extra_env=urls_file(la_env, webhook.url, smtp.url()))
    assert_delivered(webhook, smtp, "Stale market data")
    assert served.proc.poll() is None, "halted in place, not exit 6"
    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(timeout=30) == 0


def test_refusing_to_start_is_alerted(la_env: LaEnv, webhook: WebhookReceiver) -> None:
    state = la_env.workspace / "paper" / "async_broker_state.json"
    state.parent.mkdir(parents=True)
    state.write_text("{not json")
    result = la_env.run("serve", "--source", "mock", "--http-port", "0",
                        extra_env=urls_file(la_env, webhook.url), timeout=60)
    assert result.returncode == 8, result.stderr
    assert any("Service refused to start" in t for t in titles(webhook)), titles(webhook)
    msg = next(m for m in webhook.received if "refused" in m["title"])
    assert "exit 8" in msg["message"] and str(state) in msg["message"]


def test_slow_and_dead_targets_do_not_slow_trading(la_env: LaEnv) -> None:
    slow = WebhookReceiver(hold=True)
    dead_port = WebhookReceiver()
    dead_url = dead_port.url
    dead_port.close()  # nothing listens there any more: connection refused
    try:
        served = start_serve(la_env, "--scenario", "losing_streak", extra_env=urls_file(la_env, slow.url, dead_url))
        wait_until(lambda: slow.started, 30, "the breaker alert reaching the slow target")
        at_delivery = served.status()["candles_processed"]
        # while the delivery hangs, the loop keeps processing candles and beating its heartbeat
        wait_until(lambda: served.status()["candles_processed"] >= at_delivery + 100, 10, "100 more candles")
        assert not slow.received, "the slow target is still holding the request"
        assert served.get("/healthz")[0] == 200
        slow.release()
        wait_until(lambda: metric(served, "laptop_agents_alert_delivery_failures_total", kind="circuit_breaker") >= 1,
                   20, "the failed delivery (dead target) counted")
        served.proc.send_signal(signal.SIGTERM)
        assert served.proc.wait(timeout=30) == 0
    finally:
        slow.close()


# --------------------------------------------------------------------------- in-process: policy
class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def alert(kind: AlertKind = AlertKind.CIRCUIT_BREAKER, key: str = "x", sev: Severity = Severity.WARNING) -> Alert:
    return Alert(kind, sev, "t", "b", key)


def test_dedup_and_rate_limit() -> None:
    clock = FakeClock()
    outcomes: list[tuple[str, str]] = []
    n = Notifier(AlertSettings(dedup_window_sec=60, rate_limit_count=2, rate_limit_window_sec=10),
                 on_outcome=lambda k, o: outcomes.append((k, o)), clock=clock)
    assert n.send(alert(key="a")) == "queued"
    assert n.send(alert(key="a")) == "duplicate"
    assert n.send(alert(key="b")) == "queued"
    assert n.send(alert(key="c")) == "rate_limited"
    assert n.send(alert(key="d", sev=Severity.CRITICAL)) == "queued", "critical alerts get a higher ceiling"
    clock.now += 11
    assert n.send(alert(key="c")) == "queued"
    clock.now += 61
    assert n.send(alert(key="a")) == "queued", "dedup window over"
    assert n.flush(5)
    assert [a.key for a in n.delivered] == ["a", "b", "d", "c", "a"]
    assert ("circuit_breaker", "duplicate") in outcomes and ("circuit_breaker", "rate_limited") in outcomes
    n.close()


def test_queue_full_drops_not_blocks() -> None:
    n = Notifier(AlertSettings(urls=("json://127.0.0.1:9/",), queue_size=1, dedup_window_sec=0, rate_limit_count=100))
    results = [n.send(alert(key=str(i))) for i in range(20)]
    assert "queue_full" in results
    n.close(timeout=10)


def test_urls_are_masked_in_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    settings = AlertSettings(urls=(f"slack://{SECRET}/B000/XXXX", "not a url"))
    assert SECRET not in repr(settings)
    Notifier(settings).close()
    assert SECRET not in caplog.text and "slack://***" in caplog.text
    assert mask_url(f"mailto://user:{SECRET}@host") == "mailto://***"


def test_alert_settings_sources(tmp_path: Path) -> None:
    assert load_alert_settings(tmp_path, env={}).urls == ()
    (tmp_path / "alerts.yaml").write_text("urls: [json://127.0.0.1:1/]\ndedup_window_sec: 5\n")
    s = load_alert_settings(tmp_path, env={})
    assert s.urls == ("json://127.0.0.1:1/",) and s.dedup_window_sec == 5
    secret = tmp_path / "secret"
    secret.write_text("# comment\njson://127.0.0.1:2/\nmailto://a@b.c\n")
    s = load_alert_settings(tmp_path, env={"LA_ALERT_URLS_FILE": str(secret)})
    assert s.urls == ("json://127.0.0.1:2/", "mailto://a@b.c")
    (tmp_path / "alerts.yaml").write_text("urls: []\nspam: 1\n")
    with pytest.raises(ConfigError, match="unknown field"):
        load_alert_settings(tmp_path, env={})
    with pytest.raises(ConfigError, match="cannot read"):
        load_alert_settings(tmp_path, env={"LA_ALERT_URLS_FILE": str(tmp_path / "nope")})
    assert json.dumps(repr(s))


def test_router_maps_every_alert_kind() -> None:
    """In-process: each alerting event (and the live path's API) becomes exactly the alert it should."""
    from datetime import datetime

    from laptop_agents.alerts import AlertRouter
    from laptop_agents.core.events import Event, EventName

    now = datetime(2026, 1, 1, tzinfo=UTC)
    notifier = Notifier(AlertSettings())
    router = AlertRouter(notifier, "live", "BTCUSDT")
    router(Event(EventName.SESSION_START, now, run_id="R1", mode="live", source="bitunix", starting_equity=100))
    router(Event(EventName.SESSION_START, now, run_id="R2", mode="paper"))  # paper start: no alert
    router(Event(EventName.WATCHDOG_TRIGGERED, now, reason="watchdog_memory", detail="RSS 1600 MB"))
    router(Event(EventName.SESSION_END, now, stopped_reason="error", exit_code=1, detail="boom", open_position=False))
    router(Event(EventName.SESSION_END, now, stopped_reason="sigterm", exit_code=10, open_position=True))
    router(Event(EventName.CANDLE_PROCESSED, now))
    router.credential_failure("cannot decrypt credentials: wrong passphrase")
    router.optin_failure("opt-in signature does not match the pinned key")
    assert notifier.flush(5)
    kinds = [a.kind for a in notifier.delivered]
    assert kinds == [AlertKind.LIVE_STARTED, AlertKind.WATCHDOG, AlertKind.CRASH, AlertKind.NOT_FLAT,
                     AlertKind.CREDENTIAL_FAILURE, AlertKind.OPTIN_FAILURE]
    assert all(a.severity is Severity.CRITICAL for a in notifier.delivered[1:])
    assert notifier.delivered[0].fields["mode"] == "live" and notifier.delivered[1].fields["run_id"] == "R2"
    notifier.close()


def test_la_run_sends_the_same_alerts(la_env: LaEnv, webhook: WebhookReceiver) -> None:
    """A foreground (or detached) `la run` alerts like `la serve` when targets are configured."""
    env = {**urls_file(la_env, webhook.url + f"/{SECRET}"), "LA_KILL_SWITCH": "1"}
    result = la_env.run("run", "--mode", "live-session", "--source", "mock", "--candle-interval", "0.01",
                        "--duration", "1", extra_env=env, timeout=60)
    assert result.returncode == 4, result.stderr
    # the final flush delivered it before the process exited
    msg = next(m for m in webhook.received if "Kill switch activated" in m["title"])
    assert "paper BTCUSDT" in msg["title"]
    assert SECRET not in result.stdout + result.stderr


def test_la_run_refusing_to_start_is_alerted(la_env: LaEnv, webhook: WebhookReceiver) -> None:
    state = la_env.workspace / "paper" / "async_broker_state.json"
    state.parent.mkdir(parents=True)
    state.write_text("{not json")
    result = la_env.run("run", "--mode", "live-session", "--source", "mock", "--duration", "1",
                        extra_env=urls_file(la_env, webhook.url), timeout=60)
    assert result.returncode == 8, result.stderr
    assert "Traceback" not in result.stderr
    msg = next(m for m in webhook.received if "refused" in m["title"])
    assert "exit 8" in msg["message"] and str(state) in msg["message"]
