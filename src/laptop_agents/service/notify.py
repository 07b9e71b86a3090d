"""systemd notify protocol (sd_notify) as session hooks.

Why hooks, not a timer: `WATCHDOG=1` is sent from the trading loop's own
heartbeat (`on_heartbeat`), so when the event loop freezes the pings stop and
systemd (WatchdogSec=) kills and restarts the service. A separate thread or
timer would keep pinging for a dead loop and defeat the watchdog.

Messages: `READY=1` once market data flows (not merely when the process is up:
a service that cannot get data is not ready), `STATUS=` lines a person reads in
`systemctl status`, `STOPPING=1` when shutdown begins. Without `NOTIFY_SOCKET`
every call is a no-op. The socket is non-blocking: a full or vanished socket
drops a message rather than stall trading.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any

import sdnotify

from laptop_agents.session.async_session import AsyncRunner, SessionHooks
from laptop_agents.session.read_model import SessionSnapshot

log = logging.getLogger("laptop_agents.service.notify")

DEFAULT_PING_INTERVAL_SEC = 1.0
STATUS_INTERVAL_SEC = 5.0


class SdNotifier:
    """sd_notify through the `sdnotify` package, with its socket made non-blocking.

    `sdnotify` connects a blocking datagram socket; a stalled systemd must never
    block the trading loop, so we switch it to non-blocking and count what is
    dropped instead of waiting.
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.address = env.get("NOTIFY_SOCKET") or None
        self._notifier: sdnotify.SystemdNotifier | None = None
        self.sent = 0
        self.dropped = 0
        if self.address is None:
            return
        saved = os.environ.get("NOTIFY_SOCKET")
        try:
            os.environ["NOTIFY_SOCKET"] = self.address  # sdnotify reads the address from the environment only
            notifier = sdnotify.SystemdNotifier(debug=True)
            notifier.socket.setblocking(False)
            self._notifier = notifier
        except Exception as exc:  # noqa: BLE001 - sdnotify(debug=True) re-raises anything
            log.warning("NOTIFY_SOCKET %s is set but unusable (%s); systemd notifications disabled", self.address, exc)
        finally:
            if saved is None:
                os.environ.pop("NOTIFY_SOCKET", None)
            else:
                os.environ["NOTIFY_SOCKET"] = saved

    @property
    def enabled(self) -> bool:
        return self._notifier is not None

    def notify(self, *lines: str) -> bool:
        """Send one datagram of newline-separated `KEY=value` lines; False if it was dropped."""
        if self._notifier is None:
            return False
        try:
            self._notifier.notify("\n".join(lines))
        except OSError as exc:
            self.dropped += 1
            log.debug("sd_notify dropped %r: %s", lines, exc)
            return False
        self.sent += 1
        return True

    def close(self) -> None:
        if self._notifier is not None and self._notifier.socket is not None:
            self._notifier.socket.close()
        self._notifier = None


def watchdog_ping_interval(env: Mapping[str, str]) -> float:
    """Ping at a third of WatchdogSec (systemd recommends at least twice per period)."""
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return DEFAULT_PING_INTERVAL_SEC
    try:
        return max(0.05, int(usec) / 1_000_000 / 3)
    except ValueError:
        return DEFAULT_PING_INTERVAL_SEC


def describe(snapshot: SessionSnapshot, now: float | None = None) -> str:
    """One human-readable status line (what `systemctl status` shows), rendered from the read model."""
    return snapshot.status_line(time.monotonic() if now is None else now)


class SystemdNotifyHooks(SessionHooks):
    """READY/WATCHDOG/STATUS/STOPPING for a session run under systemd (Type=notify)."""

    def __init__(self, env: Mapping[str, str] | None = None, notifier: SdNotifier | None = None) -> None:
        env = os.environ if env is None else env
        self.notifier = notifier or SdNotifier(env)
        self.ping_interval = watchdog_ping_interval(env)
        self._last_ping = float("-inf")
        self._last_status = float("-inf")
        self.ready = False
        self._halted = False

    def _status(self, text: str) -> None:
        self.notifier.notify(f"STATUS={text}")
        self._last_status = time.monotonic()

    def on_started(self, runner: AsyncRunner) -> None:
        snap = runner.read_model
        if snap is None:
            return
        self._status(f"session {snap.run_id} started ({snap.mode} mode); waiting for market data from {snap.source}")

    def on_first_candle(self, runner: AsyncRunner) -> None:
        snap = runner.read_model
        if self.ready or snap is None:
            return
        self.ready = True
        self.notifier.notify("READY=1", f"STATUS=trading: {describe(snap)}", f"MAINPID={os.getpid()}")
        self._last_status = time.monotonic()

    def on_heartbeat(self, runner: AsyncRunner) -> None:
        now = time.monotonic()
        if now - self._last_ping >= self.ping_interval:
            self.notifier.notify("WATCHDOG=1")
            self._last_ping = now
        snap = runner.read_model
        if snap is None:
            return
        halted = snap.halted
        if halted and not self.ready:
            # service mode: halted before the first candle (data source down, kill switch) is a steady state
            # too; systemd must not time the start out: READY, and STATUS= says why it does not trade
            self.ready = True
            self.notifier.notify("READY=1", f"STATUS=halted: {describe(snap, now)}", f"MAINPID={os.getpid()}")
            self._last_status = now
            self._halted = True
            return
        if self.ready and (halted != self._halted or now - self._last_status >= STATUS_INTERVAL_SEC):
            self._halted = halted
            self._status(f"{'halted' if halted else 'trading'}: {describe(snap, now)}")

    def on_stopping(self, runner: AsyncRunner) -> None:
        snap = runner.read_model
        reason = (snap.stopped_reason if snap else None) or "error"
        detail = f" ({snap.stop_detail})" if snap and snap.stop_detail else ""
        self.notifier.notify("STOPPING=1", f"STATUS=stopping: {reason}{detail}; flattening and writing reports")

    def on_finished(self, runner: AsyncRunner) -> None:
        snap = runner.read_model
        if snap is None:
            return
        self._status(f"stopped: {snap.stopped_reason} (exit {snap.exit_code}); {snap.mode} mode; "
                     f"equity {snap.equity} USDT")

    def extra(self) -> dict[str, Any]:
        return {"enabled": self.notifier.enabled, "sent": self.notifier.sent, "dropped": self.notifier.dropped}
