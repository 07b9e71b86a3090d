"""`la serve`: a paper session run as a long-lived service.

The same session as `la run` (same data and broker options, same artifacts,
same exit codes), with no deadline, wrapped by the service shell: systemd
notify, the HTTP endpoint (metrics, health, status, dashboard) and alerts.
Everything here is an observer on the session (hooks and bus subscribers);
none of it can stop trading by failing.

Its flags are declared with `la run`'s in session/options.py; the session is
assembled by session/compose.py (this module adds the service's observers).
The heavy imports happen when the command runs.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from laptop_agents.core.errors import ExitCode
from laptop_agents.session.compose import Observers
from laptop_agents.session.options import ENV_HTTP_HOST, ENV_HTTP_PORT, ServeRequest, http_host, http_port
from laptop_agents.session.workspace import Workspace

log = logging.getLogger("laptop_agents.service")

__all__ = ["ENV_HTTP_HOST", "ENV_HTTP_PORT", "dashboard_for_run", "run_serve"]


def run_serve(request: ServeRequest) -> int:
    """Build the service shell around one AsyncRunner and run it; returns the session's exit code.

    Alerts are set up first (they depend only on the config directory), so that a
    service that refuses to start (bad config, corrupted state, lock held: exit
    codes systemd will not restart) still tells the operator why.
    """
    from laptop_agents.core.errors import LaError
    from laptop_agents.core.logger import setup_logging
    from laptop_agents.session.compose import console_level, service_alerts

    setup_logging(None, console_level(request))  # --quiet / --verbose
    outcome_sink: list[Any] = []  # the metrics, once the config (symbol) is known

    def on_outcome(kind: str, outcome: str) -> None:
        for metrics in outcome_sink:
            metrics.record_alert(kind, outcome)

    router, alert_settings = service_alerts(request, on_outcome)
    notifier = router.notifier
    try:
        return _serve(request, router, alert_settings, outcome_sink)
    except LaError as err:
        router.refused(str(err), int(err.exit_code))
        raise
    except Exception as exc:
        router.crash(f"{type(exc).__name__}: {exc}")
        raise
    finally:
        notifier.close(timeout=5.0)


def _serve(request: ServeRequest, router: Any, alert_settings: Any, outcome_sink: list[Any]) -> int:
    from laptop_agents.service.http import HttpOptions, ServiceHttp, bind
    from laptop_agents.service.metrics import MetricsObserver, ServiceMetrics
    from laptop_agents.service.notify import SystemdNotifyHooks
    from laptop_agents.service.sampler import MetricsSampler
    from laptop_agents.service.status import RecentEvents
    from laptop_agents.session import compose

    config = compose.load_session_config(request)
    if request.data_retry_max < request.data_retry_base:
        from laptop_agents.core.errors import UsageError

        raise UsageError(f"--data-retry-max ({request.data_retry_max}) must be >= --data-retry-base "
                         f"({request.data_retry_base})")
    compose.check_live_source(request.live, request.data_source)
    workspace = compose.session_workspace(request)
    symbol = config.strategy.symbol
    mode = workspace.mode
    router.mode, router.symbol = mode, symbol

    metrics = ServiceMetrics(mode, symbol)
    outcome_sink.append(metrics)
    notify = SystemdNotifyHooks()
    recent = RecentEvents()

    observers = Observers(hooks=[notify, MetricsSampler(metrics)], subscribers=[MetricsObserver(metrics), recent])
    http: ServiceHttp | None = None
    if not request.no_http:
        host, port = request.http_address()
        options = HttpOptions(host=host, port=port, dashboard=request.dashboard)
        sock = bind(options)
        http = ServiceHttp(sock, options, metrics, recent,
                           extra=lambda: {"systemd_notify": notify.extra(), "alerts_targets": len(alert_settings.urls)})
        observers.hooks.append(http)
        print(f"la serve: endpoint {http.url}" + (f" (dashboard {http.url}/)" if request.dashboard else ""), flush=True)
    observers = observers + Observers.of(router) + Observers.of(compose.console_reporter(request))

    try:
        runner = compose.compose_service(request, config, workspace, observers)
        code = runner.run()
    finally:
        if http is not None and http.sock.fileno() != -1 and not http.started:
            http.sock.close()
    print(f"session {runner.run_id} ended: {runner.stopped_reason} (exit {code}); "
          f"{len(runner.recorder.run_trades)} trades; equity {runner.paper.equity} USDT; "
          f"artifacts {runner.run_dir.path}", file=sys.stdout, flush=True)
    return code if code is not None else ExitCode.INTERNAL_ERROR


def dashboard_for_run(config: Any, workspace: Workspace) -> Observers:
    """`la run --dashboard`: the endpoint and live page for an ordinary session (no notify, no alerts).

    The port is $LA_HTTP_PORT or a free one (printed), so it never collides with a running service.
    """
    from laptop_agents.service.http import HttpOptions, ServiceHttp, bind
    from laptop_agents.service.metrics import MetricsObserver, ServiceMetrics
    from laptop_agents.service.sampler import MetricsSampler
    from laptop_agents.service.status import RecentEvents

    metrics = ServiceMetrics(workspace.mode, config.strategy.symbol)
    recent = RecentEvents()
    options = HttpOptions(host=http_host(None), port=http_port(None, default=0), dashboard=True)
    http = ServiceHttp(bind(options), options, metrics, recent)
    print(f"la run: dashboard {http.url}/ (also /metrics /healthz /readyz /status)", flush=True)
    return Observers(hooks=[MetricsSampler(metrics), http], subscribers=[MetricsObserver(metrics), recent])
