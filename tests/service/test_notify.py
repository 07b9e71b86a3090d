"""`la serve` under a real NOTIFY_SOCKET: READY, WATCHDOG pings from the loop, STATUS, STOPPING."""

from __future__ import annotations

import signal
from itertools import pairwise

from laptop_agents.service.notify import (
    SdNotifier,
    SystemdNotifyHooks,
    watchdog_ping_interval,
)
from tests.conftest import LaEnv
from tests.service.conftest import FAST, NotifyListener
from tests.service.receivers import WebhookReceiver


def test_ready_watchdog_status_stopping(la_env: LaEnv, notify_socket: NotifyListener) -> None:
    env = {"NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "600000"}
    proc = la_env.start("serve", "--no-http", *FAST, extra_env=env)
    ready = notify_socket.wait_for("READY=1")
    pings = notify_socket.wait_for("WATCHDOG=1", count=5)
    statuses = notify_socket.wait_for("STATUS=", count=2)
    assert any("candles" in m and "equity" in m for _, m in statuses), statuses
    assert any(t > ready[0][0] for t, _ in pings), "pings continue after READY"
    assert not notify_socket.lines("STOPPING=1")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    notify_socket.wait_for("STOPPING=1", timeout=5)
    stopping_at = notify_socket.lines("STOPPING=1")[0][0]
    final = [m for t, m in notify_socket.lines("STATUS=") if t >= stopping_at]
    assert any("sigterm" in m for m in final), final
    assert any(m.startswith("STATUS=stopped: sigterm (exit 0)") for m in final), final
    # the pings follow the loop but are throttled to WATCHDOG_USEC/3 = 0.2 s: never a burst
    times = [t for t, _ in notify_socket.lines("WATCHDOG=1")]
    span = times[-1] - times[0]
    assert len(times) - 1 <= span / 0.2 + 3, (len(times), span)


def test_halted_before_any_data_is_ready_with_a_halted_status(la_env: LaEnv, notify_socket: NotifyListener) -> None:
    """Exchange unreachable from the start: systemd must not time the start out (TimeoutStartSec) into a restart
    loop; the service is up, halted in place: READY=1 with STATUS=halted: ... naming the cause."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    env = {"NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "3000000",
           "LA_BITUNIX__MAX_RECONNECT_ATTEMPTS": "1", "LA_BITUNIX__BACKOFF_MAX_SEC": "0.05",
           "LA_BITUNIX__WARMUP": "false"}
    proc = la_env.start("serve", "--no-http", "--source", "bitunix", "--rest-url", f"http://127.0.0.1:{dead}",
                        "--ws-url", f"ws://127.0.0.1:{dead}/public/", extra_env=env)
    ready = notify_socket.wait_for("READY=1", timeout=30)
    status = [m for t, m in notify_socket.lines("STATUS=") if t >= ready[0][0]]
    assert any(m.startswith("STATUS=halted:") and "data_source_down" in m for m in status), status
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0


def test_frozen_loop_stops_watchdog_pings(la_env: LaEnv, notify_socket: NotifyListener) -> None:
    webhook = WebhookReceiver()
    (la_env.root / "alert-urls").write_text(webhook.url + "\n")
    env = {
        "LA_ALERT_URLS_FILE": str(la_env.root / "alert-urls"),
        "NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "600000",
        "LA_MOCK__FREEZE_AT_SEC": "1.5", "LA_MOCK__FREEZE_DURATION_SEC": "30",
        "LA_SESSION__HEARTBEAT_TIMEOUT_SEC": "3", "LA_SESSION__SHUTDOWN_GRACE_SEC": "1",
    }
    proc = la_env.start("serve", "--no-http", *FAST, extra_env=env)
    notify_socket.wait_for("READY=1")
    assert proc.wait(timeout=30) == 7, "the in-process watchdog kills a frozen loop (exit 7)"
    exited_at = max(t for t, _ in notify_socket.messages)
    pings = [t for t, _ in notify_socket.lines("WATCHDOG=1")]
    assert len(pings) >= 3, "pings flowed before the freeze"
    gaps = [b - a for a, b in pairwise(pings)]
    assert max(gaps, default=0) < 2.0, f"no long gap before the freeze: {gaps}"
    # from the freeze on, nothing pinged: systemd (WatchdogSec) would have killed it too
    assert exited_at - pings[-1] >= 3.0, (exited_at - pings[-1], pings[-3:])
    assert any("watchdog" in m for _, m in notify_socket.lines("STATUS=stopped")), notify_socket.lines("STATUS=")
    # the watchdog kill was alerted before the emergency exit
    try:
        assert any("Watchdog killed the session" in m["title"] for m in webhook.received), webhook.received
    finally:
        webhook.close()


def test_no_notify_socket_is_a_noop() -> None:
    notifier = SdNotifier(env={})
    assert not notifier.enabled
    assert notifier.notify("READY=1") is False
    hooks = SystemdNotifyHooks(env={})
    assert hooks.notifier.enabled is False


def test_unusable_notify_socket_is_logged_not_fatal(tmp_path) -> None:
    notifier = SdNotifier(env={"NOTIFY_SOCKET": str(tmp_path / "missing.sock")})
    assert not notifier.enabled and notifier.notify("WATCHDOG=1") is False


def test_ping_interval_follows_watchdog_usec() -> None:
    assert watchdog_ping_interval({"WATCHDOG_USEC": "30000000"}) == 10.0
    assert watchdog_ping_interval({}) == 1.0
    assert watchdog_ping_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) == 1.0
