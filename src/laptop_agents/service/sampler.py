"""Gauges follow the trading loop's own heartbeat.

Why the heartbeat and not a timer: a frozen loop then freezes the gauges too,
and the scrape itself (served by the same loop) fails, so Prometheus' `up`
tells the truth instead of a background thread reporting a healthy-looking
but stale picture.
"""

from __future__ import annotations

from laptop_agents.service.metrics import ServiceMetrics
from laptop_agents.session.async_session import AsyncRunner, SessionHooks


class MetricsSampler(SessionHooks):
    """Samples the session's published read model (`runner.read_model`), never the runner's parts."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics

    def _sample(self, runner: AsyncRunner) -> None:
        if runner.read_model is not None:
            self.metrics.sample(runner.read_model)

    def on_heartbeat(self, runner: AsyncRunner) -> None:
        self._sample(runner)

    def on_first_candle(self, runner: AsyncRunner) -> None:
        self._sample(runner)

    def on_finished(self, runner: AsyncRunner) -> None:
        self._sample(runner)
