"""The composition root: the only place that turns settings into a running session.

`la run` (a real-time session or a backtest) and `la serve` describe what they want as a typed request
(session/options.py); this module turns that and the config into the parts of a session and wires them:
the market data provider, the broker (paper, or live behind the live gate: signed opt-in, preflight record,
encrypted credentials, account lock; session/live_gate.py), the alerts, the console reporter and any observers
the caller brings (`la serve`'s systemd notify, HTTP endpoint and metrics; `la run --dashboard`'s page), then
hands back an :class:`AsyncRunner` or a :class:`BacktestRunner` ready to ``run()``.

Why one place: the same flags used to be interpreted three times (cli, serve, backtest), so a fix to one
path (say, the live ticker feed) could silently miss another. The pieces below the session (data, execution,
the venue package) never reach up into session/ or security/: what they need is handed to them here.

The service layer (service/) may not be imported from here (it sits above session/): its observers arrive
as values through ``observers``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from laptop_agents.core.errors import UsageError
from laptop_agents.session.options import RunRequest, ServeRequest, SessionRequest
from laptop_agents.session.workspace import Workspace

if TYPE_CHECKING:
    from laptop_agents.alerts import AlertRouter, AlertSettings
    from laptop_agents.core.config_models import AppConfig
    from laptop_agents.core.events import Event
    from laptop_agents.data.providers.base import MarketDataProvider
    from laptop_agents.session.async_session import AsyncRunner, SessionHooks
    from laptop_agents.session.backtest import BacktestRunner
    from laptop_agents.session.brokers import BrokerFactory

DEFAULT_BACKTEST_CANDLES = 10000


@dataclass
class Observers:
    """What watches a session without steering it: session hooks (lifecycle, heartbeat) and bus subscribers."""

    hooks: list[SessionHooks] = field(default_factory=list)
    subscribers: list[Callable[[Event], None]] = field(default_factory=list)

    def __add__(self, other: Observers) -> Observers:
        return Observers([*self.hooks, *other.hooks], [*self.subscribers, *other.subscribers])

    @classmethod
    def of(cls, *both: Any) -> Observers:
        """Observers that are hooks and subscribers at once (alert router, console reporter)."""
        return cls(list(both), list(both))


ObserverFactory = Callable[["AppConfig", Workspace], Observers]
"""Builds a caller's observers once the config and workspace are known (e.g. `la run --dashboard`'s page)."""


# --------------------------------------------------------------------------- settings
def load_session_config(request: SessionRequest) -> AppConfig:
    """The config files under --config-dir, overridden by the LA_* environment, overridden by the flags."""
    from laptop_agents.config_loader import load_config

    return load_config(request.config_path(), cli_settings=request.settings_overrides())


def session_workspace(request: SessionRequest) -> Workspace:
    """--workspace > $LA_WORKSPACE > ./.workspace, in the live or the paper half."""
    return Workspace.resolve(request.workspace, request.workspace_mode)


def console_level(request: SessionRequest) -> int:
    """The console log level for --quiet / --verbose (together: usage error)."""
    from laptop_agents.core.logger import console_level_for

    if request.quiet and request.verbose:
        raise UsageError("--quiet and --verbose contradict each other; pick one")
    return console_level_for(quiet=request.quiet, verbose=request.verbose)


def check_live_source(live: bool, source: str) -> None:
    """Live trading prices and decides on the exchange's own market data."""
    if live and source != "bitunix":
        raise UsageError(f"--live needs --source bitunix (the exchange's market data), not --source {source}")


# --------------------------------------------------------------------------- parts
def build_provider(config: AppConfig, source: str) -> MarketDataProvider:
    """The real-time market data provider for ``--source`` (mock or the Bitunix WebSocket)."""
    if source == "mock":
        from laptop_agents.data.providers.mock import MockProvider

        return MockProvider(config.settings.mock, symbol=config.strategy.symbol)
    if source == "bitunix":
        from laptop_agents.data.providers.bitunix_ws import BitunixWsConfig, BitunixWsProvider

        b = config.settings.bitunix
        return BitunixWsProvider(BitunixWsConfig(
            symbol=config.strategy.symbol, interval=config.strategy.timeframe, ws_url=b.ws_url, rest_url=b.rest_url,
            ping_interval_sec=b.ping_interval_sec, stall_timeout_sec=b.stall_timeout_sec,
            max_reconnect_attempts=b.max_reconnect_attempts, backoff_base_sec=b.backoff_base_sec,
            backoff_max_sec=b.backoff_max_sec,
        ))
    raise UsageError(f"unknown market data source {source!r}")


def broker_factory(config: AppConfig, provider: Any, *, live: bool) -> BrokerFactory | None:
    """Paper (None: the runner's default) or, with --live, the live broker behind the live gate. The gate (opt-in,
    preflight record, credentials) runs when the session opens the broker, after the runner took the account lock
    the factory names.

    ``provider`` is the session's market data provider: a Bitunix one also carries the public ticker the
    live broker prices its entries with (no REST round trip before each order)."""
    if not live:
        return None
    from laptop_agents.session.brokers import LiveBrokerFactory

    return LiveBrokerFactory(config, flag=True, last_price=ws_last_price(config, provider))


def ws_last_price(config: AppConfig, provider: Any) -> Any:
    """A :class:`LastPrice` fed by the public ticker on ``provider`` if it is the Bitunix WebSocket, or None
    (another source, or ``bitunix.ticker_max_age_ms: 0``). Attached before the provider connects, so its
    first subscribe frame (and every reconnect's) carries both the kline and the ticker channel."""
    from laptop_agents.data.providers.bitunix_ws import BitunixWsProvider

    max_age_ms = config.settings.bitunix.ticker_max_age_ms
    if not isinstance(provider, BitunixWsProvider) or max_age_ms <= 0:
        return None
    from laptop_agents.bitunix import LastPrice

    feed = LastPrice(config.strategy.symbol, max_age_sec=max_age_ms / 1000)
    provider.attach_last_price(feed)
    return feed


def session_alerts(request: SessionRequest, mode: str, symbol: str) -> AlertRouter | None:
    """`la run`'s alerts (live start, kill switch, breaker trip, not flat at shutdown, ...), the same `la serve`
    sends, when alert targets are configured; None otherwise (Apprise is not even imported, so a plain paper
    run starts as fast as before)."""
    from laptop_agents.alerts.config import load_alert_settings

    settings = load_alert_settings(request.config_path())
    if not settings.urls:
        return None
    from laptop_agents.alerts import AlertRouter, Notifier

    return AlertRouter(Notifier(settings), mode, symbol)


def service_alerts(request: SessionRequest,
                   on_outcome: Callable[[str, str], None]) -> tuple[AlertRouter, AlertSettings]:
    """`la serve`'s alerts, built before anything else (they need only the config directory) so a service that
    refuses to start (bad config, corrupted state, lock held) still tells the operator why; the router learns the
    mode and symbol once the config is read. ``on_outcome(kind, outcome)`` sees each delivery (the metrics)."""
    from laptop_agents.alerts import AlertRouter, Notifier, load_alert_settings

    settings = load_alert_settings(request.config_path())
    return AlertRouter(Notifier(settings, on_outcome=on_outcome), "paper", "unknown", stays_up=True), settings


def console_reporter(request: SessionRequest) -> Any:
    """Order/fill/exit lines and the periodic status line on the console."""
    from laptop_agents.session.console import ConsoleReporter

    return ConsoleReporter(request.status_every)


# --------------------------------------------------------------------------- sessions
def _runner(config: AppConfig, workspace: Workspace, provider: MarketDataProvider, options: Any,
            observers: Observers, broker: BrokerFactory | None,
            provider_factory: Callable[[], MarketDataProvider] | None = None) -> AsyncRunner:
    from laptop_agents.session.async_session import AsyncRunner

    runner = AsyncRunner(config, workspace, provider, options, hooks=list(observers.hooks), broker_factory=broker,
                         provider_factory=provider_factory)
    for subscriber in observers.subscribers:
        runner.bus.subscribe(subscriber)
    return runner


def compose_run(request: RunRequest, config: AppConfig, workspace: Workspace, observers: Observers) -> AsyncRunner:
    """`la run --mode live-session`: a real-time session with a deadline (or until stopped), paper or live."""
    from laptop_agents.session.async_session import RunOptions

    source = request.data_source
    provider = build_provider(config, source)
    options = RunOptions(duration_min=request.duration, source=source, mode=request.session_mode,
                         warmup=source == "bitunix" and config.settings.bitunix.warmup)
    return _runner(config, workspace, provider, options, observers,
                   broker_factory(config, provider, live=request.live))


def compose_service(request: ServeRequest, config: AppConfig, workspace: Workspace,
                    observers: Observers) -> AsyncRunner:
    """`la serve`: the same session with no deadline that halts in place instead of exiting (stay_up) and rebuilds a
    paper data source that gave up."""
    from laptop_agents.session.async_session import RunOptions

    source = request.data_source
    provider = build_provider(config, source)
    options = RunOptions(duration_min=None, source=source, mode="service",
                         warmup=source == "bitunix" and config.settings.bitunix.warmup,
                         stay_up=True, data_retry_base_sec=request.data_retry_base,
                         data_retry_max_sec=request.data_retry_max)
    return _runner(config, workspace, provider, options, observers,
                   broker_factory(config, provider, live=request.live),
                   provider_factory=_provider_factory(config, source, live=request.live))


def _provider_factory(config: AppConfig, source: str, *, live: bool) -> Callable[[], MarketDataProvider] | None:
    """A fresh market data provider after one gave up (service mode reconnects); None when it cannot be rebuilt.

    Live trading hands the provider to its broker (last price, fills): a replaced provider would leave the
    broker on the dead one, so live keeps the seed's behaviour (exit 9; the supervisor restarts it).
    """
    if live:
        return None
    return lambda: build_provider(config, source)


def compose_backtest(request: RunRequest, config: AppConfig, workspace: Workspace, level: int) -> BacktestRunner:
    """`la run --mode backtest`: the same pipeline fast-forward over a replay file or seeded mock history."""
    from laptop_agents.session.backtest import BacktestRunner

    candles, total, source = _backtest_candles(request, config)
    return BacktestRunner(config, workspace, candles, source=source, total=total,
                          candle_events=request.journal == "full", console_level=level)


def _backtest_candles(request: RunRequest, config: AppConfig) -> tuple[Iterable[Any], int | None, str]:
    """(candles, how many if known, source label) for a backtest's --source."""
    if request.data_source == "replay":
        if request.data is None:
            raise UsageError("--source replay needs --data FILE (an OHLCV CSV)")
        from laptop_agents.data.providers.replay import read_candles

        if not request.data.is_file():
            raise UsageError(f"replay file {request.data} does not exist")
        return read_candles(request.data, symbol=config.strategy.symbol), None, f"replay:{request.data.name}"
    from itertools import islice

    from laptop_agents.data.providers.mock import MockBarGenerator

    total = request.candles if request.candles is not None else DEFAULT_BACKTEST_CANDLES
    if total <= 0:
        raise UsageError("--candles must be a positive number")
    candles: Iterator[Any] = islice(MockBarGenerator(config.settings.mock, symbol=config.strategy.symbol), total)
    return candles, total, f"mock:seed={config.settings.mock.seed}"

