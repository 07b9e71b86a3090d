"""Where alert targets come from, and how they are kept secret.

Targets are Apprise URLs (`slack://...`, `mailto://...`, `json://...`); they
often embed tokens or passwords, so they live in a secret file and are never
logged (see `mask_url`). Sources, first found wins:

1. `LA_ALERT_URLS_FILE`: a file (e.g. a systemd credential) with either one URL
   per line (`#` comments allowed) or YAML `urls: [...]` plus the options below.
2. `<config dir>/alerts.yaml`: the same YAML shape.

No source means no targets: alerts are still evaluated, deduplicated, logged
and counted, so the path is exercised even on a laptop without targets.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from laptop_agents.core.errors import ConfigError

ENV_URLS_FILE = "LA_ALERT_URLS_FILE"
CONFIG_FILE = "alerts.yaml"


@dataclass(frozen=True)
class AlertSettings:
    urls: tuple[str, ...] = ()
    dedup_window_sec: float = 300.0
    rate_limit_count: int = 10
    rate_limit_window_sec: float = 60.0
    queue_size: int = 100
    source: str = "none"

    def __repr__(self) -> str:  # never print the URLs themselves
        masked = ", ".join(mask_url(u) for u in self.urls)
        return (f"AlertSettings(urls=[{masked}], dedup_window_sec={self.dedup_window_sec}, "
                f"rate_limit={self.rate_limit_count}/{self.rate_limit_window_sec}s, source={self.source})")


def mask_url(url: str) -> str:
    """`slack://T000/B000/XXXX` → `slack://***`: the scheme says what, nothing says how to reach it."""
    scheme, sep, _ = url.partition("://")
    return f"{scheme}://***" if sep else "***"


def _parse(text: str, source: str) -> dict[str, Any]:
    stripped = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    if stripped and all("://" in ln and not ln.startswith(("urls:", "-")) for ln in stripped):
        return {"urls": stripped}
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError:
        raise ConfigError(f"invalid alerts config {source}: neither one URL per line nor YAML") from None
    if not isinstance(data, dict):
        raise ConfigError(f"invalid alerts config {source}: expected `urls:` and options")
    return data


def _build(data: Mapping[str, Any], source: str) -> AlertSettings:
    allowed = {"urls", "dedup_window_sec", "rate_limit_count", "rate_limit_window_sec", "queue_size"}
    unknown = set(data) - allowed
    if unknown:
        raise ConfigError(f"invalid alerts config {source}: unknown field(s) {sorted(unknown)}; allowed {sorted(allowed)}")
    urls = data.get("urls") or []
    if isinstance(urls, str):
        urls = [urls]
    if not isinstance(urls, list) or not all(isinstance(u, str) and "://" in u for u in urls):
        raise ConfigError(f"invalid alerts config {source}: urls must be a list of Apprise URLs (scheme://...)")
    try:
        settings = AlertSettings(
            urls=tuple(u.strip() for u in urls),
            dedup_window_sec=float(data.get("dedup_window_sec", 300.0)),
            rate_limit_count=int(data.get("rate_limit_count", 10)),
            rate_limit_window_sec=float(data.get("rate_limit_window_sec", 60.0)),
            queue_size=int(data.get("queue_size", 100)),
            source=source,
        )
    except (TypeError, ValueError):
        raise ConfigError(f"invalid alerts config {source}: options must be numbers") from None
    if settings.dedup_window_sec < 0 or settings.rate_limit_count < 1 or settings.rate_limit_window_sec <= 0 \
            or settings.queue_size < 1:
        raise ConfigError(f"invalid alerts config {source}: dedup_window_sec >= 0, rate_limit_count >= 1, "
                          "rate_limit_window_sec > 0, queue_size >= 1")
    return settings


def load_alert_settings(config_dir: Path, env: Mapping[str, str] | None = None) -> AlertSettings:
    env = os.environ if env is None else env
    named = env.get(ENV_URLS_FILE, "").strip()
    if named:
        path = Path(named)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{ENV_URLS_FILE}={path}: cannot read it ({exc.strerror})") from None
        return _build(_parse(text, str(path)), str(path))
    path = Path(config_dir) / CONFIG_FILE
    if path.exists():
        return _build(_parse(path.read_text(encoding="utf-8"), str(path)), str(path))
    return AlertSettings()
