"""What the service alerts about, in our own vocabulary (not Apprise's).

The rest of the code speaks in `Alert`s; only `notifier.py` knows Apprise.
`key` is the deduplication key: the same key within the dedup window is sent
once (a breaker that trips for the same reason twice is one page, not two).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class AlertKind(str, Enum):
    KILL_SWITCH = "kill_switch"
    CIRCUIT_BREAKER = "circuit_breaker"
    STALE_DATA = "stale_data"
    WATCHDOG = "watchdog"
    CRASH = "crash"
    NOT_FLAT = "not_flat"
    LIVE_STARTED = "live_started"
    CREDENTIAL_FAILURE = "credential_failure"
    OPTIN_FAILURE = "optin_failure"
    DATA_SOURCE = "data_source"  # service mode: the market data source went down / came back


class Severity(str, Enum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True)
class Alert:
    kind: AlertKind
    severity: Severity
    title: str
    body: str
    key: str = ""
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def dedup_key(self) -> str:
        return f"{self.kind.value}:{self.key}"

    def render(self) -> str:
        """The message body: the human text, then the structured fields one per line."""
        lines = [self.body]
        lines += [f"{k}: {v}" for k, v in self.fields.items()]
        return "\n".join(lines)
