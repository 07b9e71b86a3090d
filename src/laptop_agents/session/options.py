"""The options of a trading session, declared once for `la run` and `la serve`, and their typed values.

`la serve` runs the same session as `la run` (same data, broker, verbosity and location options), so those
flags are declared here, once, by :func:`add_session_arguments`; each command adds only its own on top
(`la run`: mode, duration, backtest inputs, detach; `la serve`: HTTP endpoint, data-source back-off). The
parsed namespace becomes a frozen :class:`RunRequest` or :class:`ServeRequest`, which is what the composition
root (session/compose.py) reads: nothing past the parser sees an ``argparse.Namespace``.

This module imports argparse and the standard library only, so building `la`'s parser stays cheap.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, TypeVar

Command = Literal["run", "serve"]
SOURCES: dict[Command, tuple[str, ...]] = {"run": ("bitunix", "mock", "replay"), "serve": ("bitunix", "mock")}
"""Market data sources per command: a replay file is a backtest's input, never a service's."""


# --------------------------------------------------------------------------- argument types
def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def port(text: str) -> int:
    """argparse type: a TCP port, 0 meaning any free one."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535 (0 = any free port), got {value}")
    return value


# --------------------------------------------------------------------------- declarations
def add_location_arguments(parser: argparse.ArgumentParser) -> None:
    """--workspace and --config-dir: every `la` command that reads a workspace or the config takes them."""
    parser.add_argument("--workspace", metavar="DIR",
                        help="state and run artifacts (default: $LA_WORKSPACE or ./.workspace)")
    parser.add_argument("--config-dir", metavar="DIR", help="config directory (default: $LA_CONFIG_DIR or ./config)")


def add_session_arguments(parser: argparse.ArgumentParser, command: Command) -> None:
    """The flags `la run` and `la serve` share, declared once (a test holds both parsers to this list).

    Only the choices of ``--source`` differ: a service never replays a file.
    """
    parser.add_argument("--source", choices=SOURCES[command],
                        help="market data: bitunix (WebSocket; the live-session and service default), mock (seeded; "
                             "the backtest default)" + (", replay (backtest only, --data FILE)" if command == "run"
                                                         else ""))
    parser.add_argument("--rest-url", metavar="URL", help="Bitunix REST base URL (default https://fapi.bitunix.com)")
    parser.add_argument("--ws-url", metavar="URL",
                        help="Bitunix public WebSocket URL (default wss://fapi.bitunix.com/public/)")
    parser.add_argument("--seed", type=int, help="mock data seed")
    parser.add_argument("--candle-interval", type=positive_float, metavar="SEC",
                        help="mock: real seconds between candles")
    parser.add_argument("--scenario", choices=["random_walk", "losing_streak"], help="mock price path")
    parser.add_argument("--inject-gap-at", type=non_negative_float, metavar="SEC",
                        help="mock: stop data this many seconds in")
    parser.add_argument("--gap-duration", type=positive_float, metavar="SEC",
                        help="mock: length of the injected gap (default 35)")
    parser.add_argument("--stale-timeout", type=positive_float, metavar="SEC",
                        help="override session.stale_data_timeout_sec")
    parser.add_argument("--quiet", action="store_true", help="console shows warnings and errors only")
    parser.add_argument("--verbose", action="store_true",
                        help="console also shows debug lines (signals, routine risk rejections)")
    parser.add_argument("--status-every", type=non_negative_float, default=30.0, metavar="SEC",
                        help="live session: a status line on the console every SEC seconds (default 30; 0: none)")
    parser.add_argument("--dashboard", action="store_true",
                        help="serve a live dashboard page (and /metrics /healthz /readyz /status); `la run`: on "
                             "127.0.0.1, port $LA_HTTP_PORT or a free one; `la serve`: at / on its endpoint")
    parser.add_argument("--live", action="store_true",
                        help="trade REAL money on the exchange (live-session, --source bitunix only); needs the signed "
                             "opt-in (settings live.optin_file, live.optin_public_key), a passed `la live preflight` "
                             "and the encrypted credentials (live.credentials_file); state in <workspace>/live/")
    add_location_arguments(parser)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """`la run`: the shared session flags plus the run's own (mode, duration, backtest inputs, detach)."""
    parser.add_argument("--mode", dest="session_mode", choices=["live-session", "backtest"], default="live-session",
                        help="live-session: real-time session (paper broker); backtest: fast-forward replay")
    parser.add_argument("--duration", type=positive_float, metavar="MIN",
                        help="minutes to run, fractions allowed (default: until stopped)")
    parser.add_argument("--candles", type=int, metavar="N",
                        help="backtest with --source mock: how many candles (default 10000)")
    parser.add_argument("--data", type=Path, metavar="FILE", help="backtest with --source replay: OHLCV CSV file")
    parser.add_argument("--journal", choices=["full", "trades"], default="full",
                        help="backtest: full (every event) or trades (no CandleProcessed lines)")
    parser.add_argument("--async", dest="use_async", action="store_true",
                        help="accepted for compatibility: the asyncio runner is the only runner")
    parser.add_argument("--detach", action="store_true",
                        help="run in the background; `la status` / `la stop` manage it")
    add_session_arguments(parser, "run")


ENV_HTTP_HOST = "LA_HTTP_HOST"
ENV_HTTP_PORT = "LA_HTTP_PORT"


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """`la serve`: the shared session flags plus the service's own (HTTP endpoint, data-source back-off)."""
    parser.add_argument("--data-retry-base", type=positive_float, default=5.0, metavar="SEC",
                        help="a market data source that gave up is reconnected after SEC, then 2x, 4x, ... (default 5)")
    parser.add_argument("--data-retry-max", type=positive_float, default=300.0, metavar="SEC",
                        help="cap of that back-off (default 300)")
    parser.add_argument("--http-host", default=None, metavar="HOST",
                        help=f"address of the metrics/health endpoint (default ${ENV_HTTP_HOST} or 127.0.0.1)")
    parser.add_argument("--http-port", type=port, default=None, metavar="PORT",
                        help=f"port of the endpoint; 0 picks a free one (default ${ENV_HTTP_PORT} or 9478)")
    parser.add_argument("--no-http", action="store_true", help="do not serve /metrics, /healthz, /readyz, /status")
    add_session_arguments(parser, "serve")


# --------------------------------------------------------------------------- typed values
R = TypeVar("R", bound="SessionRequest")


@dataclass(frozen=True, kw_only=True)
class SessionRequest:
    """What `la run` and `la serve` were asked for (the shared flags), as values. Field names are the flags' dests."""

    source: str | None = None
    rest_url: str | None = None
    ws_url: str | None = None
    seed: int | None = None
    candle_interval: float | None = None
    scenario: str | None = None
    inject_gap_at: float | None = None
    gap_duration: float | None = None
    stale_timeout: float | None = None
    quiet: bool = False
    verbose: bool = False
    status_every: float = 30.0
    dashboard: bool = False
    live: bool = False
    workspace: str | None = None
    config_dir: str | None = None

    @classmethod
    def from_namespace(cls: type[R], args: argparse.Namespace) -> R:
        """The parsed flags; a flag the parser did not declare keeps its default."""
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)})

    @property
    def workspace_mode(self) -> Literal["paper", "live"]:
        """The workspace mode: paper and live never share a directory, a lock or a file."""
        return "live" if self.live else "paper"

    def config_path(self) -> Path:
        """--config-dir > $LA_CONFIG_DIR > ./config."""
        return config_path(self.config_dir)

    def settings_overrides(self) -> dict[str, Any]:
        """The flags that override settings.yaml (the top of the precedence order)."""
        overrides: dict[str, Any] = {}
        mock = {key: getattr(self, name) for name, key in (
            ("seed", "seed"), ("candle_interval", "candle_interval_sec"), ("scenario", "scenario"),
            ("inject_gap_at", "gap_at_sec"), ("gap_duration", "gap_duration_sec")) if getattr(self, name) is not None}
        if mock:
            overrides["mock"] = mock
        if self.stale_timeout is not None:
            overrides["session"] = {"stale_data_timeout_sec": self.stale_timeout}
        bitunix = {k: v for k, v in (("rest_url", self.rest_url), ("ws_url", self.ws_url)) if v is not None}
        if bitunix:
            overrides["bitunix"] = bitunix
        return overrides


@dataclass(frozen=True, kw_only=True)
class RunRequest(SessionRequest):
    """`la run`'s flags as values."""

    session_mode: str = "live-session"  # --mode
    duration: float | None = None
    candles: int | None = None
    data: Path | None = None
    journal: str = "full"
    detach: bool = False

    @property
    def backtest(self) -> bool:
        return self.session_mode == "backtest"

    @property
    def data_source(self) -> str:
        """--source, or its default: mock for a backtest, the Bitunix WebSocket for a real-time session."""
        return self.source or ("mock" if self.backtest else "bitunix")


@dataclass(frozen=True, kw_only=True)
class ServeRequest(SessionRequest):
    """`la serve`'s flags as values."""

    data_retry_base: float = 5.0
    data_retry_max: float = 300.0
    http_host: str | None = None
    http_port: int | None = None
    no_http: bool = False

    @property
    def data_source(self) -> str:
        return self.source or "bitunix"

    def http_address(self, default_port: int = 9478) -> tuple[str, int]:
        """(host, port): flag > $LA_HTTP_HOST / $LA_HTTP_PORT > 127.0.0.1:default_port."""
        return http_host(self.http_host), http_port(self.http_port, default_port)


def config_path(flag: str | None) -> Path:
    """--config-dir > $LA_CONFIG_DIR > ./config."""
    return Path(flag or os.environ.get("LA_CONFIG_DIR") or "config")


def http_host(flag: str | None) -> str:
    return flag or os.environ.get(ENV_HTTP_HOST) or "127.0.0.1"


def http_port(flag: int | None, default: int) -> int:
    """Flag > $LA_HTTP_PORT > default; a bad environment value is a config error (exit 2), named."""
    if flag is not None:
        return int(flag)
    text = os.environ.get(ENV_HTTP_PORT, "").strip()
    if not text:
        return default
    try:
        return port(text)
    except argparse.ArgumentTypeError as exc:
        from laptop_agents.core.errors import ConfigError

        raise ConfigError(f"{ENV_HTTP_PORT}={text!r}: {exc}") from None
