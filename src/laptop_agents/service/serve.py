"""`la serve`: a paper session run as a long-lived service.

The same session as `la run` (same data and broker options, same artifacts,
same exit codes), with no deadline, wrapped by the service shell: systemd
notify, the HTTP endpoint (metrics, health, status, dashboard) and alerts.
Everything here is an observer on the session (hooks and bus subscribers);
none of it can stop trading by failing.

Only argument parsing (`add_arguments`) is imported when `la` builds its parser;
the heavy imports happen when the command runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from laptop_agents.core.errors import ExitCode

log = logging.getLogger("laptop_agents.service")

ENV_HTTP_HOST = "LA_HTTP_HOST"
ENV_HTTP_PORT = "LA_HTTP_PORT"


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535 (0 = any free port), got {value}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `la serve`: `la run`'s data options, plus the HTTP endpoint's."""
    from laptop_agents.cli import _non_negative_float, _positive_float

    p.add_argument("--source", choices=["bitunix", "mock"], default="bitunix",
                   help="market data: bitunix (WebSocket, the default, as for `la run`), mock (seeded, offline)")
    p.add_argument("--rest-url", metavar="URL", help="Bitunix REST base URL (default https://fapi.bitunix.com)")
    p.add_argument("--ws-url", metavar="URL", help="Bitunix public WebSocket URL (default wss://fapi.bitunix.com/public/)")
    p.add_argument("--seed", type=int, help="mock data seed")
    p.add_argument("--candle-interval", type=_positive_float, metavar="SEC", help="mock: real seconds between candles")
    p.add_argument("--scenario", choices=["random_walk", "losing_streak"], help="mock price path")
    p.add_argument("--inject-gap-at", type=_non_negative_float, metavar="SEC", help="mock: stop data this many seconds in")
    p.add_argument("--gap-duration", type=_positive_float, metavar="SEC", help="mock: length of the injected gap (default 35)")
    p.add_argument("--stale-timeout", type=_positive_float, metavar="SEC", help="override session.stale_data_timeout_sec")
    p.add_argument("--data-retry-base", type=_positive_float, default=5.0, metavar="SEC",
                   help="a market data source that gave up is reconnected after SEC, then 2x, 4x, ... (default 5)")
    p.add_argument("--data-retry-max", type=_positive_float, default=300.0, metavar="SEC",
                   help="cap of that back-off (default 300)")
    p.add_argument("--http-host", default=os.environ.get(ENV_HTTP_HOST) or "127.0.0.1", metavar="HOST",
                   help=f"address of the metrics/health endpoint (default ${ENV_HTTP_HOST} or 127.0.0.1)")
    p.add_argument("--http-port", type=_port, default=None, metavar="PORT",
                   help=f"port of the endpoint; 0 picks a free one (default ${ENV_HTTP_PORT} or 9478)")
    p.add_argument("--no-http", action="store_true", help="do not serve /metrics, /healthz, /readyz, /status")
    p.add_argument("--dashboard", action="store_true", help="also serve a live dashboard page at / on the endpoint")
    p.add_argument("--quiet", action="store_true", help="console shows warnings and errors only")
    p.add_argument("--live", action="store_true",
                   help="trade REAL money on the exchange (--source bitunix only), behind the signed opt-in; "
                        "state in <workspace>/live/")


def _http_port(args: argparse.Namespace, default: int = 9478) -> int:
    """Flag > $LA_HTTP_PORT > default; a bad environment value is a usage error (exit 2), named."""
    if getattr(args, "http_port", None) is not None:
        return int(args.http_port)
    text = os.environ.get(ENV_HTTP_PORT, "").strip()
    if not text:
        return default
    try:
        return _port(text)
    except argparse.ArgumentTypeError as exc:
        from laptop_agents.core.errors import ConfigError

        raise ConfigError(f"{ENV_HTTP_PORT}={text!r}: {exc}") from None


def run_serve(args: argparse.Namespace) -> int:
    """Build the service shell around one AsyncRunner and run it; returns the session's exit code.

    Alerts are set up first (they depend only on the config directory), so that a
    service that refuses to start (bad config, corrupted state, lock held: exit
    codes systemd will not restart) still tells the operator why.
    """
    from laptop_agents.alerts import AlertRouter, Notifier, load_alert_settings
    from laptop_agents.cli import _config_dir, console_level
    from laptop_agents.core.errors import LaError
    from laptop_agents.core.logger import setup_logging

    setup_logging(None, console_level(args))  # --quiet / --verbose
    config_dir = _config_dir(args)
    alert_settings = load_alert_settings(config_dir)
    outcome_sink: list[Any] = []  # the metrics, once the config (symbol) is known

    def on_outcome(kind: str, outcome: str) -> None:
        for metrics in outcome_sink:
            metrics.record_alert(kind, outcome)

    notifier = Notifier(alert_settings, on_outcome=on_outcome)
    router = AlertRouter(notifier, "paper", "unknown", stays_up=True)
    try:
        return _serve(args, config_dir, router, alert_settings, outcome_sink)
    except LaError as err:
        router.refused(str(err), int(err.exit_code))
        raise
    except Exception as exc:
        router.crash(f"{type(exc).__name__}: {exc}")
        raise
    finally:
        notifier.close(timeout=5.0)


def _serve(args: argparse.Namespace, config_dir: Any, router: Any, alert_settings: Any, outcome_sink: list[Any]) -> int:
    from laptop_agents.cli import _workspace, broker_factory, build_provider, check_live_source, settings_overrides
    from laptop_agents.core.config_models import load_config
    from laptop_agents.service.http import HttpOptions, ServiceHttp, bind
    from laptop_agents.service.metrics import MetricsObserver, ServiceMetrics
    from laptop_agents.service.notify import SystemdNotifyHooks
    from laptop_agents.service.sampler import MetricsSampler
    from laptop_agents.service.status import RecentEvents
    from laptop_agents.session.async_session import (
        AsyncRunner,
        RunOptions,
        SessionHooks,
    )

    config = load_config(config_dir, cli_settings=settings_overrides(args))
    if args.data_retry_max < args.data_retry_base:
        from laptop_agents.core.errors import UsageError

        raise UsageError(f"--data-retry-max ({args.data_retry_max}) must be >= --data-retry-base "
                         f"({args.data_retry_base})")
    check_live_source(args)
    workspace = _workspace(args)
    symbol = config.strategy.symbol
    mode = workspace.mode
    router.mode, router.symbol = mode, symbol

    metrics = ServiceMetrics(mode, symbol)
    outcome_sink.append(metrics)
    notify = SystemdNotifyHooks()
    recent = RecentEvents()

    hooks: list[SessionHooks] = [notify, MetricsSampler(metrics)]
    http: ServiceHttp | None = None
    if not args.no_http:
        options = HttpOptions(host=args.http_host, port=_http_port(args), dashboard=args.dashboard)
        sock = bind(options)
        http = ServiceHttp(sock, options, metrics, recent,
                           extra=lambda: {"systemd_notify": notify.extra(), "alerts_targets": len(alert_settings.urls)})
        hooks.append(http)
        print(f"la serve: endpoint {http.url}" + (f" (dashboard {http.url}/)" if args.dashboard else ""), flush=True)
    hooks.append(router)
    from laptop_agents.session.console import ConsoleReporter

    console = ConsoleReporter(getattr(args, "status_every", 30.0))  # order/fill/exit + status lines (i16-terminal)
    hooks.append(console)

    try:
        provider = build_provider(config, args.source)
        options_ = RunOptions(duration_min=None, source=args.source, mode="service",
                              warmup=args.source == "bitunix" and config.settings.bitunix.warmup,
                              stay_up=True, data_retry_base_sec=args.data_retry_base,
                              data_retry_max_sec=args.data_retry_max)
        runner = AsyncRunner(config, workspace, provider, options_, hooks=hooks,
                             broker_factory=broker_factory(args, config, provider),
                             provider_factory=_provider_factory(args, config, provider))
        for subscriber in (MetricsObserver(metrics), recent, router, console):
            runner.bus.subscribe(subscriber)
        code = runner.run()
    finally:
        if http is not None and http.sock.fileno() != -1 and not http.started:
            http.sock.close()
    print(f"session {runner.run_id} ended: {runner.stopped_reason} (exit {code}); "
          f"{len(runner.recorder.run_trades)} trades; equity {runner.paper.equity} USDT; "
          f"artifacts {runner.run_dir.path}", file=sys.stdout, flush=True)
    return code if code is not None else ExitCode.INTERNAL_ERROR


def _provider_factory(args: argparse.Namespace, config: Any, first: Any) -> Any:
    """A fresh market data provider after one gave up (service mode reconnects); None when it cannot be rebuilt.

    Live trading hands the provider to its broker (last price, fills): a replaced provider would leave the
    broker on the dead one, so live keeps the seed's behaviour (exit 9; the supervisor restarts it).
    """
    if getattr(args, "live", False):
        return None
    from laptop_agents.cli import build_provider

    return lambda: build_provider(config, args.source)


def dashboard_for_run(args: argparse.Namespace, config: Any) -> tuple[list[Any], list[Any]]:
    """`la run --dashboard`: the endpoint and live page for an ordinary session (no notify, no alerts).

    Returns (session hooks, bus subscribers) for the caller to hand to its AsyncRunner.
    The port is $LA_HTTP_PORT or a free one (printed), so it never collides with a running service.
    """
    from laptop_agents.service.http import HttpOptions, ServiceHttp, bind
    from laptop_agents.service.metrics import MetricsObserver, ServiceMetrics
    from laptop_agents.service.sampler import MetricsSampler
    from laptop_agents.service.status import RecentEvents

    metrics = ServiceMetrics("live" if getattr(args, "live", False) else "paper", config.strategy.symbol)
    recent = RecentEvents()
    options = HttpOptions(host=os.environ.get(ENV_HTTP_HOST) or "127.0.0.1", port=_http_port(args, default=0),
                          dashboard=True)
    http = ServiceHttp(bind(options), options, metrics, recent)
    print(f"la run: dashboard {http.url}/ (also /metrics /healthz /readyz /status)", flush=True)
    return [MetricsSampler(metrics), http], [MetricsObserver(metrics), recent]
