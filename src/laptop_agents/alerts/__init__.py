"""Operator alerts (Apprise behind our own Notifier): kill switch, breaker, stale data, watchdog, crashes."""

from laptop_agents.alerts.config import AlertSettings, load_alert_settings, mask_url
from laptop_agents.alerts.model import Alert, AlertKind, Severity
from laptop_agents.alerts.notifier import Notifier
from laptop_agents.alerts.router import AlertRouter

__all__ = ["Alert", "AlertKind", "AlertRouter", "AlertSettings", "Notifier", "Severity", "load_alert_settings",
           "mask_url"]
