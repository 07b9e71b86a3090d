"""Notifier: our alerts → Apprise, off the trading loop.

Why a worker thread with a bounded queue: delivering to Slack or SMTP takes
hundreds of milliseconds when healthy and seconds when not. `send()` only
decides (dedup, rate limit) and enqueues, in O(1), so a slow or dead target
can never delay a candle. A full queue drops the alert (counted), a failed
delivery is logged and counted, never raised.

Secrets: target URLs are never logged; Apprise's own logger (which may print
hosts or tokens) is detached from every handler.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable

import apprise

from laptop_agents.alerts.config import AlertSettings, mask_url
from laptop_agents.alerts.model import Alert, Severity

log = logging.getLogger("laptop_agents.alerts")

Outcome = Callable[[str, str], None]  # (alert kind, outcome) for metrics
_STOP = object()
_NOTIFY_TYPES = {Severity.INFO: apprise.NotifyType.INFO, Severity.WARNING: apprise.NotifyType.WARNING,
                 Severity.CRITICAL: apprise.NotifyType.FAILURE}


def _silence_apprise() -> None:
    logger = logging.getLogger("apprise")
    logger.propagate = False
    logger.handlers[:] = [logging.NullHandler()]
    logger.setLevel(logging.CRITICAL + 1)


class Notifier:
    """Deduplicate, rate-limit, queue and deliver alerts to every configured target."""

    def __init__(self, settings: AlertSettings, on_outcome: Outcome | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._on_outcome = on_outcome or (lambda kind, outcome: None)
        self._clock = clock
        self._lock = threading.Lock()
        self._last_sent: dict[str, float] = {}
        self._recent: deque[float] = deque()
        self._queue: queue.Queue[object] = queue.Queue(maxsize=settings.queue_size)
        self._thread: threading.Thread | None = None
        self.delivered: list[Alert] = []
        _silence_apprise()
        self._apprise = apprise.Apprise()
        for url in settings.urls:
            if not self._apprise.add(url):
                log.error("alert target %s is not a valid Apprise URL; ignored", mask_url(url))
        log.info("alerts: %d target(s) %s from %s", len(self._apprise),
                 [mask_url(u) for u in settings.urls], settings.source)

    # ------------------------------------------------------------------ producer side (any thread)
    def send(self, alert: Alert) -> str:
        """Queue an alert unless it is a duplicate or over the rate limit; returns the outcome."""
        now = self._clock()
        s = self.settings
        with self._lock:
            last = self._last_sent.get(alert.dedup_key)
            if last is not None and now - last < s.dedup_window_sec:
                outcome = "duplicate"
            else:
                while self._recent and now - self._recent[0] >= s.rate_limit_window_sec:
                    self._recent.popleft()
                if len(self._recent) >= s.rate_limit_count and alert.severity is not Severity.CRITICAL:
                    outcome = "rate_limited"
                elif len(self._recent) >= 2 * s.rate_limit_count:
                    outcome = "rate_limited"  # even critical alerts have a ceiling
                else:
                    try:
                        self._queue.put_nowait(alert)
                    except queue.Full:
                        outcome = "queue_full"
                    else:
                        outcome = "queued"
                        self._last_sent[alert.dedup_key] = now
                        self._recent.append(now)
                        self._ensure_worker()
        level = logging.WARNING if alert.severity is not Severity.INFO else logging.INFO
        log.log(level if outcome == "queued" else logging.INFO, "alert %s [%s] %s: %s (%s)", alert.kind.value,
                alert.severity.value, alert.title, alert.body, outcome)
        if outcome != "queued":
            self._on_outcome(alert.kind.value, outcome)
        return outcome

    def _ensure_worker(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._work, name="la-alerts", daemon=True)
            self._thread.start()

    # ------------------------------------------------------------------ worker side
    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    return
                assert isinstance(item, Alert)
                self._deliver(item)
            finally:
                self._queue.task_done()

    def _deliver(self, alert: Alert) -> None:
        if not len(self._apprise):
            self.delivered.append(alert)
            return
        started = time.monotonic()
        try:
            ok = bool(self._apprise.notify(title=f"[la] {alert.title}", body=alert.render(),
                                           notify_type=_NOTIFY_TYPES[alert.severity]))
        except Exception:
            log.exception("alert %s: delivery raised", alert.kind.value)
            ok = False
        took = time.monotonic() - started
        if ok:
            self.delivered.append(alert)
            log.info("alert %s delivered to %d target(s) in %.2fs", alert.kind.value, len(self._apprise), took)
            self._on_outcome(alert.kind.value, "sent")
        else:
            log.error("alert %s: delivery to at least one target failed after %.2fs", alert.kind.value, took)
            self._on_outcome(alert.kind.value, "failed")

    # ------------------------------------------------------------------ lifecycle
    def flush(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for queued alerts to be delivered; True if the queue drained."""
        deadline = time.monotonic() + timeout
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._queue.all_tasks_done.wait(left)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (bounded by `timeout`), then stop the worker."""
        self.flush(timeout)
        if self._thread is not None and self._thread.is_alive():
            try:
                self._queue.put_nowait(_STOP)
            except queue.Full:
                return
            self._thread.join(timeout=1.0)
