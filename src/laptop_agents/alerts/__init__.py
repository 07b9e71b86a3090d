"""Operator alerts (Apprise behind our own Notifier): kill switch, breaker, stale data, watchdog, crashes.

The names below load on first use (PEP 562): reading the alert settings must not pay for importing
Apprise (~0.3 s), so a `la run` without alert targets starts as fast as one without this package.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from laptop_agents.alerts.config import AlertSettings, load_alert_settings, mask_url
    from laptop_agents.alerts.model import Alert, AlertKind, Severity
    from laptop_agents.alerts.notifier import Notifier
    from laptop_agents.alerts.router import AlertRouter

_HOMES = {
    "AlertSettings": "config", "load_alert_settings": "config", "mask_url": "config",
    "Alert": "model", "AlertKind": "model", "Severity": "model",
    "Notifier": "notifier", "AlertRouter": "router",
}

__all__ = ["Alert", "AlertKind", "AlertRouter", "AlertSettings", "Notifier", "Severity", "load_alert_settings",
           "mask_url"]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"laptop_agents.alerts.{home}"), name)
    globals()[name] = value
    return value
