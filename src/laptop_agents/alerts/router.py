"""Which domain events become alerts: an EventBus subscriber plus session hooks.

Derived from the same events that feed events.jsonl, so an alert always has a
matching journal line. Also the API the live path calls for failures that
happen before or outside a session (credentials, live opt-in).
"""

from __future__ import annotations

import logging
from typing import Any

from laptop_agents.alerts.model import Alert, AlertKind, Severity
from laptop_agents.alerts.notifier import Notifier
from laptop_agents.core.errors import ExitCode
from laptop_agents.core.events import Event, EventName
from laptop_agents.session.async_session import AsyncRunner, SessionHooks

log = logging.getLogger("laptop_agents.alerts")

FINAL_FLUSH_SEC = 5.0


class AlertRouter(SessionHooks):
    """Map events to alerts; flush pending alerts before the process exits."""

    def __init__(self, notifier: Notifier, mode: str, symbol: str, stays_up: bool = False) -> None:
        self.notifier = notifier
        self.mode = mode
        self.symbol = symbol
        # `la serve` halts in place (flat, not ready) where `la run` stops with an exit code: say which
        self.stays_up = stays_up
        self.run_id: str | None = None

    def _alert(self, kind: AlertKind, severity: Severity, title: str, body: str, key: str = "",
               **fields: Any) -> str:
        base = {"mode": self.mode, "symbol": self.symbol}
        if self.run_id:
            base["run_id"] = self.run_id
        base.update({k: str(v) for k, v in fields.items() if v is not None})
        return self.notifier.send(Alert(kind, severity, f"{title} ({self.mode} {self.symbol})", body, key, base))

    # ------------------------------------------------------------------ bus subscriber
    def __call__(self, event: Event) -> None:
        d = event.data
        name = event.name
        if name == EventName.SESSION_START:
            self.run_id = d.get("run_id")
            if d.get("mode") == "live":
                self._alert(AlertKind.LIVE_STARTED, Severity.WARNING, "Live trading session started",
                            f"session {self.run_id} started trading real money", key=str(self.run_id),
                            source=d.get("source"), starting_equity=d.get("starting_equity"))
        elif name == EventName.KILL_SWITCH_ACTIVATED:
            self._alert(AlertKind.KILL_SWITCH, Severity.CRITICAL, "Kill switch activated",
                        f"{d.get('detail')}: " + (
                            "flat and halted in place (not ready); trading resumes when the kill switch is cleared"
                            if self.stays_up else
                            f"flattening and stopping (exit {ExitCode.KILL_SWITCH:d}); a new session refuses to trade "
                            "until the kill switch is cleared"), key=str(self.run_id))
        elif name == EventName.CIRCUIT_BREAKER_TRIPPED:
            self._alert(AlertKind.CIRCUIT_BREAKER, Severity.CRITICAL, "Circuit breaker tripped",
                        f"{d.get('detail')}; action {d.get('action')}. Review, then `la reset-breaker`.",
                        key=str(d.get("reason")), reason=d.get("reason"), equity=d.get("equity"),
                        drawdown_pct=d.get("drawdown_pct"), consecutive_losses=d.get("consecutive_losses"))
        elif name == EventName.STALE_DATA_DETECTED:
            self._alert(AlertKind.STALE_DATA, Severity.CRITICAL, "Stale market data",
                        f"no market data from {d.get('source')} for {d.get('data_age_sec')}s "
                        f"(limit {d.get('stale_data_timeout_sec')}s): " + (
                            "flat and halted in place until data flows again" if self.stays_up
                            else f"flattening and stopping (exit {ExitCode.STALE_DATA:d})"),
                        key=str(self.run_id), data_age_sec=d.get("data_age_sec"))
        elif name == EventName.DATA_SOURCE_DOWN:
            self._alert(AlertKind.DATA_SOURCE, Severity.CRITICAL, "Market data source down",
                        f"{d.get('source')}: {d.get('detail')}. Flat and halted in place (not ready); reconnecting "
                        f"with capped exponential back-off (next try in {d.get('retry_in_sec')}s). One more alert "
                        "when it is back.", key=f"{self.run_id}:down:{d.get('outage')}", source=d.get("source"))
        elif name == EventName.DATA_SOURCE_RESTORED:
            self._alert(AlertKind.DATA_SOURCE, Severity.WARNING, "Market data source back",
                        f"{d.get('source')} delivers market data again after {d.get('down_sec')}s "
                        f"({d.get('failed_attempts')} failed attempts); trading resumes once nothing else halts it",
                        key=f"{self.run_id}:back:{d.get('outage')}", source=d.get("source"))
        elif name == EventName.WATCHDOG_TRIGGERED:
            self._alert(AlertKind.WATCHDOG, Severity.CRITICAL, "Watchdog killed the session",
                        f"{d.get('detail')}: flattening and exiting (exit {ExitCode.WATCHDOG:d})", key=str(d.get("reason")),
                        reason=d.get("reason"))
        elif name == EventName.SESSION_END:
            code = d.get("exit_code")
            if code == ExitCode.INTERNAL_ERROR or d.get("stopped_reason") == "error":
                self._alert(AlertKind.CRASH, Severity.CRITICAL, "Session crashed",
                            f"internal error: {d.get('detail')}; see system.jsonl of run {self.run_id}",
                            key=str(self.run_id))
            if code == ExitCode.NOT_FLAT or d.get("open_position"):
                self._alert(AlertKind.NOT_FLAT, Severity.CRITICAL, "Shutdown NOT flat",
                            f"the session stopped ({d.get('stopped_reason')}) without verifying the account is flat: "
                            "check positions on the exchange now", key=str(self.run_id))

    # ------------------------------------------------------------------ API for other paths
    def crash(self, detail: str) -> None:
        """A failure outside the session loop (e.g. during start-up)."""
        self._alert(AlertKind.CRASH, Severity.CRITICAL, "Service crashed", detail, key=detail[:80])

    def refused(self, detail: str, exit_code: int) -> None:
        """The service refused to start (config, lock, corrupted state): systemd will not restart it."""
        self._alert(AlertKind.CRASH, Severity.CRITICAL, "Service refused to start",
                    f"{detail} (exit {exit_code}); it stays down until someone fixes this", key=f"refused:{exit_code}",
                    exit_code=exit_code)

    def credential_failure(self, detail: str) -> None:
        """The live path could not load or decrypt the exchange credentials."""
        self._alert(AlertKind.CREDENTIAL_FAILURE, Severity.CRITICAL, "Credential failure", detail, key=detail[:80])

    def optin_failure(self, detail: str) -> None:
        """The signed live opt-in is missing, invalid or does not match the config."""
        self._alert(AlertKind.OPTIN_FAILURE, Severity.CRITICAL, "Live opt-in refused", detail, key=detail[:80])

    # ------------------------------------------------------------------ hooks
    def on_finished(self, runner: AsyncRunner) -> None:
        """Give queued alerts a bounded chance to go out (the watchdog path exits right after)."""
        if not self.notifier.flush(FINAL_FLUSH_SEC):
            log.error("alerts: gave up waiting for delivery after %.0fs at shutdown", FINAL_FLUSH_SEC)
