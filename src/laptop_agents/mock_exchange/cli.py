"""Command line of the mock exchange: ``python -m laptop_agents.mock_exchange`` and ``la mock-exchange``.

``add_arguments`` and ``run_from_args`` let the main ``la`` CLI mount this as a subcommand; ``main`` is the
stand-alone entry point. Precedence: flag > ``--config`` file > default. Exit codes: 0 after a clean
shutdown (SIGTERM/SIGINT), 1 if the server cannot start (e.g. port in use), 2 for a bad option or file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from datetime import UTC, datetime
from typing import Any, get_args

from pydantic import ValidationError

from .config import DEFAULT_API_KEY, DEFAULT_SECRET, RATE_LIMIT_GROUPS, MockExchangeConfig, load_config_file
from .dialects import DEFAULT_DIALECT, DIALECT_ENV, DIALECT_POINTS, env_dialect, preset_names
from .faults import FaultSettings
from .server import MockExchange

PROG = "mock-exchange"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every mock-exchange option to ``parser`` (all default to None: unset means "config or default")."""
    net = parser.add_argument_group("network")
    net.add_argument("--host", help="listen address, loopback only (default 127.0.0.1)")
    net.add_argument("--port", type=int, help="TCP port; 0 picks a free one (default 0)")
    net.add_argument("--config", metavar="FILE", help="YAML or JSON file of options (flag names in snake_case)")

    mkt = parser.add_argument_group("market")
    mkt.add_argument("--seed", type=int, help="seed of the price path and fault decisions (default 42)")
    mkt.add_argument(
        "--time-scale", type=float, help="market ms per real ms (60 = 1 min per second; 0 = manual clock; default 1)"
    )
    mkt.add_argument("--start-time", help="market time at start: epoch ms or ISO-8601 (default: now)")
    mkt.add_argument("--start-price", type=float, help="start price of the first symbol (default 95000)")
    mkt.add_argument("--tick-ms", type=int, help="market ms between price ticks, must divide 60000 (default 1000)")
    mkt.add_argument("--history-days", type=float, help="market history before the start (default 7)")
    mkt.add_argument("--annual-volatility", type=float, help="random-walk volatility per year (default 0.6)")
    mkt.add_argument("--push-interval-ms", type=int, help="WebSocket market push cadence in real ms (default 500)")
    mkt.add_argument("--funding-rate", help="constant funding rate reported (default 0.0001)")

    auth = parser.add_argument_group("auth and rate limits")
    auth.add_argument("--recv-window-ms", type=int, help="allowed |timestamp - server time| (default 5000)")
    auth.add_argument(
        "--rate-limit",
        action="append",
        metavar="GROUP=N",
        help=f"requests/second for a group ({', '.join(RATE_LIMIT_GROUPS)}); repeatable",
    )
    auth.add_argument("--no-rate-limits", action="store_true", default=None, help="disable the real rate limiter")
    auth.add_argument(
        "--rate-limit-code", type=int, choices=(10005, 10006), help="code for rate-limited calls (default 10006)"
    )

    acc = parser.add_argument_group("accounts and trading")
    acc.add_argument(
        "--account",
        action="append",
        metavar="KEY:SECRET[:BALANCE]",
        help=f"add an account (repeatable); {DEFAULT_API_KEY}/{DEFAULT_SECRET} stays unless --no-default-account",
    )
    acc.add_argument("--no-default-account", action="store_true", default=None, help="no default account")
    acc.add_argument("--balance", help="starting USDT of the default account and of --account without one (10000)")
    acc.add_argument("--maker-fee-bps", help="maker fee in basis points (default 2)")
    acc.add_argument("--taker-fee-bps", help="taker fee in basis points (default 6)")
    acc.add_argument("--maintenance-margin-rate", help="maintenance margin rate for liquidation prices (default 0.005)")
    acc.add_argument("--no-liquidation", action="store_true", default=None, help="never liquidate positions")

    shp = parser.add_argument_group(
        "dialect: where Bitunix's sources disagree (docs/bitunix-dialects.md); a flag overrides the preset"
    )
    shp.add_argument(
        "--dialect",
        choices=preset_names(),
        help=f"preset for every disputed point (default ${DIALECT_ENV} or {DEFAULT_DIALECT})",
    )
    for point, values in DIALECT_POINTS.items():
        if isinstance(values[0], bool):
            shp.add_argument("--" + point.replace("_", "-"), choices=("true", "false"))
        else:
            shp.add_argument("--" + point.replace("_", "-"), choices=values)
    shp.add_argument("--ws-idle-timeout-s", type=float, help="close WebSockets silent this long; 0 = never (60)")
    shp.add_argument("--max-subscriptions", type=int, help="per WebSocket connection (default 300)")

    out = parser.add_argument_group("evidence and logging")
    out.add_argument("--ledger-file", metavar="PATH", help="append ledger records as JSON lines")
    out.add_argument("--log-level", help="Python logging level (default WARNING)")

    flt = parser.add_argument_group("faults (also settable at run time with POST /admin/faults)")
    flt.add_argument("--faults", metavar="JSON", help='fault settings as JSON, e.g. \'{"ws_drop_every_s": 5}\'')
    for name, field in FaultSettings.model_fields.items():
        flt.add_argument(
            "--fault-" + name.replace("_", "-"),
            dest="fault_" + name,
            metavar=_metavar(field.annotation),
            help=f"fault {name} (default {field.get_default(call_default_factory=True)!r})",
        )


def _metavar(annotation: Any) -> str:
    if annotation is bool:
        return "BOOL"
    if annotation in (int, float):
        return "N"
    if get_args(annotation):
        return "|".join(str(a) for a in get_args(annotation)) if not str(annotation).startswith("list") else "A,B"
    return "TEXT"


_SIMPLE_FLAGS = (
    "host",
    "port",
    "seed",
    "time_scale",
    "tick_ms",
    "history_days",
    "annual_volatility",
    "push_interval_ms",
    "funding_rate",
    "recv_window_ms",
    "rate_limit_code",
    "maker_fee_bps",
    "taker_fee_bps",
    "maintenance_margin_rate",
    "ws_idle_timeout_s",
    "max_subscriptions",
    "ledger_file",
)


def _parse_time(text: str) -> int:
    text = text.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def _parse_account(text: str, default_balance: Any) -> dict[str, Any]:
    parts = text.split(":")
    if len(parts) not in (2, 3) or not all(parts):
        raise ValueError(f"--account expects KEY:SECRET[:BALANCE], got {text!r}")
    return {"api_key": parts[0], "secret": parts[1], "balance": parts[2] if len(parts) == 3 else default_balance}


def _fault_value(name: str, text: str) -> Any:
    annotation = FaultSettings.model_fields[name].annotation
    if annotation is bool:
        lowered = text.strip().lower()
        if lowered not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
            raise ValueError(f"--fault-{name.replace('_', '-')} expects true or false")
        return lowered in ("true", "1", "yes", "on")
    if str(annotation).startswith("list"):
        return [p for p in text.split(",") if p]
    return text


def config_from_args(args: argparse.Namespace) -> MockExchangeConfig:
    """Merge defaults, the ``--config`` file and the flags into a validated config (ValueError if bad)."""
    data: dict[str, Any] = load_config_file(args.config) if getattr(args, "config", None) else {}
    for name in _SIMPLE_FLAGS:
        value = getattr(args, name, None)
        if value is not None:
            data[name] = value
    dialect = getattr(args, "dialect", None) or data.get("dialect") or env_dialect()
    if dialect is not None:
        data["dialect"] = dialect
    for point, values in DIALECT_POINTS.items():
        value = getattr(args, point, None)
        if value is not None:
            data[point] = (value == "true") if isinstance(values[0], bool) else value
    if getattr(args, "start_time", None):
        data["start_time_ms"] = _parse_time(args.start_time)
    if getattr(args, "balance", None) is not None:
        data["default_balance"] = args.balance
    if getattr(args, "no_rate_limits", None):
        data["rate_limits_enabled"] = False
    if getattr(args, "no_liquidation", None):
        data["liquidation"] = False
    if getattr(args, "rate_limit", None):
        limits = dict(data.get("rate_limits") or {})
        for item in args.rate_limit:
            group, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"--rate-limit expects GROUP=N, got {item!r}")
            limits[group.strip()] = int(value)
        data["rate_limits"] = limits
    if getattr(args, "start_price", None) is not None:
        symbols = list(data.get("symbols") or [{}])
        symbols[0] = {**symbols[0], "start_price": args.start_price}
        data["symbols"] = symbols
    extra = [_parse_account(a, data.get("default_balance", "10000")) for a in getattr(args, "account", None) or []]
    if extra or getattr(args, "no_default_account", None):
        base = data.get("accounts")
        if base is None:
            base = [] if getattr(args, "no_default_account", None) else [
                {"api_key": DEFAULT_API_KEY, "secret": DEFAULT_SECRET, "balance": data.get("default_balance", "10000")}
            ]
        data["accounts"] = list(base) + extra
    faults = dict(data.get("faults") or {})
    if getattr(args, "faults", None):
        parsed = json.loads(args.faults)
        if not isinstance(parsed, dict):
            raise ValueError("--faults expects a JSON object")
        faults.update(parsed)
    for name in FaultSettings.model_fields:
        value = getattr(args, "fault_" + name, None)
        if value is not None:
            faults[name] = _fault_value(name, value)
    if faults:
        data["faults"] = faults
    return MockExchangeConfig.model_validate(data)


async def _serve(config: MockExchangeConfig) -> int:
    exchange = MockExchange(config)
    try:
        await exchange.start()
    except OSError as exc:
        print(f"{PROG}: cannot listen on {config.host}:{config.port}: {exc}", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"{PROG} listening on {exchange.rest_url}", flush=True)
    print(f"{PROG} dialect {config.dialect}", flush=True)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await exchange.stop()
    return 0


def run_from_args(args: argparse.Namespace) -> int:
    """Run the server until SIGTERM/SIGINT; returns the process exit code."""
    try:
        config = config_from_args(args)
    except (ValueError, ValidationError, OSError) as exc:
        print(f"{PROG}: invalid configuration: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=getattr(args, "log_level", "WARNING") or "WARNING", stream=sys.stderr)
    return asyncio.run(_serve(config))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description="A mock Bitunix futures exchange (REST, WS, faults).")
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))
