"""`la`: the command line. Parses, calls, maps errors to exit codes; no trading logic here.

User errors (LaError) print one line and exit with their code; no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from laptop_agents import __version__
from laptop_agents.core.errors import ExitCode, LaError, UsageError

EXIT_CODES_HELP = """exit codes:
  0 completed, or stopped cleanly (SIGTERM/SIGINT/la stop)   1 internal error
  2 usage or config error        3 another session is running     4 kill switch
  5 circuit breaker stop         6 stale market data              7 watchdog (frozen loop / memory)
  8 corrupted or unknown state   9 market data failed for good    10 could not verify flat at shutdown
  11 la audit: a critical gap     12 exchange unavailable (retries exhausted)
  13 exchange rejected the API credentials                    14 disk full, read-only or not writable
  15 clock skewed beyond the exchange's receive window"""


def _common(parser: argparse.ArgumentParser) -> None:
    from laptop_agents.session.options import add_location_arguments

    add_location_arguments(parser)


def build_parser() -> argparse.ArgumentParser:
    from laptop_agents.session.options import add_run_arguments, add_serve_arguments

    parser = argparse.ArgumentParser(
        prog="la",
        description="laptop-agents: an autonomous BTC-perpetual trading service (paper by default).",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"la {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("doctor", help="check python, dependencies, config, workspace, lock and clock",
                       description="Check the environment. --fix repairs what is safe to repair and says what it did.")
    p.add_argument("--fix", action="store_true", help="create missing directories and default config files, remove a stale lock")
    _common(p)

    p = sub.add_parser("clean", help="remove run artifacts (--all: also paper state)",
                       description="Remove .workspace/runs (run artifacts). Refuses while a session runs.")
    p.add_argument("--all", action="store_true", help="also remove paper state (broker, breaker, status)")
    _common(p)

    p = sub.add_parser("status", help="RUNNING or STOPPED, with pid, run id, uptime, equity, position")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--live", action="store_true", help="the live session (<workspace>/live/) instead of paper")
    _common(p)

    p = sub.add_parser("stop", help="SIGTERM the running session and wait until it has finished cleanly")
    p.add_argument("--timeout", type=float, default=60.0, metavar="SEC", help="how long to wait (default 60)")
    p.add_argument("--live", action="store_true", help="stop the live session (<workspace>/live/) instead of paper")
    _common(p)

    p = sub.add_parser("reset-breaker", help="clear a tripped trading circuit breaker (after reviewing why it tripped)",
                       description="Clear a tripped circuit breaker and its loss streak. While a session runs (e.g. `la serve` halted by its breaker), the running session resets it and resumes trading.")
    _common(p)

    p = sub.add_parser(
        "run", help="run a trading session",
        description="Run a paper trading session. Example: la run --mode live-session --duration 10 --source mock --async",
        epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_arguments(p)

    p = sub.add_parser(
        "serve", help="run a paper session as a service: systemd notify, /metrics, health, alerts",
        description="Run a paper session until stopped, with systemd notify (READY/WATCHDOG/STATUS), an HTTP "
                    "endpoint (/metrics /healthz /readyz /status, --dashboard) and alerts.",
        epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_serve_arguments(p)

    p = sub.add_parser("data", help="market data tools (fetch klines for replays)")
    data_sub = p.add_subparsers(dest="data_command", metavar="ACTION")
    data_sub.required = True
    f = data_sub.add_parser("fetch", help="download Bitunix klines into a replay CSV (paginated, rate-limited, resumable)")
    f.add_argument("--symbol", default="BTCUSDT")
    f.add_argument("--interval", default="1m", help="1m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d 1w 1M")
    f.add_argument("--start", required=True, help="ISO 8601 UTC, e.g. 2026-01-01T00:00:00Z")
    f.add_argument("--end", required=True, help="ISO 8601 UTC (exclusive)")
    f.add_argument("--out", type=Path, help="CSV file (default data/<symbol>-<interval>.csv); resumes if it exists")
    f.add_argument("--rest-url", metavar="URL", help="Bitunix REST base URL (default from config)")
    _common(f)

    p = sub.add_parser("audit", help="the QA autonomy audit of a run: rubric, checklist, gaps (audit.md/html)",
                       description="Audit the latest run (or --run ID) against shared/spec/qa-autonomy-audit.md. "
                                   "Exit 11 when a critical gap exists.")
    from laptop_agents.audit.cli import add_arguments as _audit_arguments

    _audit_arguments(p)
    _common(p)

    _add_mock_exchange(sub)
    return parser


DELEGATED_HELP = {
    "mock-exchange": "run the mock Bitunix exchange (for tests and offline runs)",
    "secrets": "encrypt, verify or rotate the exchange credentials file",
    "live": "live-trading consent: la live optin keygen|create|sign|verify",
}


def _add_mock_exchange(sub: Any) -> None:
    """Subcommands with parsers of their own, listed here but built only when used: importing them
    (aiohttp, cryptography) would cost `la --help` a large share of its time."""
    for name, text in DELEGATED_HELP.items():
        p = sub.add_parser(name, help=text, add_help=False, description=f"run `la {name} --help` for its options")
        p.add_argument("rest", nargs=argparse.REMAINDER)


def _run_delegated(name: str, argv: list[str]) -> int:
    if name == "mock-exchange":
        from laptop_agents.mock_exchange import cli as mock_cli

        return int(mock_cli.main(argv))
    from laptop_agents.security import cli as security_cli

    # allow_abbrev=False: an abbreviation must never turn `--passphrase X` into an accepted flag
    parser = argparse.ArgumentParser(prog=f"la {name}", allow_abbrev=False, description=DELEGATED_HELP[name])
    if name == "secrets":
        security_cli.add_secrets_arguments(parser)
        return int(security_cli.run_secrets(parser.parse_args(argv)))
    security_cli.add_live_arguments(parser)
    args = parser.parse_args(argv)
    if args.live_command == "preflight" or getattr(args, "optin_command", None) == "create":
        args.config_dir = _config_dir(args)  # --config-dir > $LA_CONFIG_DIR > ./config, as `la run` resolves it
    if args.live_command == "preflight":  # a real order: session/ + execution/, which security/ may not import
        from laptop_agents.session.preflight import preflight_command

        return int(preflight_command(args.config_dir, args.workspace, args.rest_url, args.yes_place_a_real_order,
                                     sys.stdout, sys.stderr))
    from laptop_agents.config_loader import load_config

    return int(security_cli.run_live(args, load_config=load_config))


# --------------------------------------------------------------------------- commands
def _workspace(args: argparse.Namespace) -> Any:
    from laptop_agents.session.workspace import Workspace

    return Workspace.resolve(args.workspace, "live" if getattr(args, "live", False) else "paper")


def _config_dir(args: argparse.Namespace) -> Path:
    from laptop_agents.session.options import config_path

    return config_path(args.config_dir)


def cmd_run(args: argparse.Namespace) -> int:
    from laptop_agents.service.serve import dashboard_for_run
    from laptop_agents.session.options import RunRequest
    from laptop_agents.session.run_command import run_command

    return run_command(RunRequest.from_namespace(args), sys.argv[1:], dashboard=dashboard_for_run)


def cmd_status(args: argparse.Namespace) -> int:
    from laptop_agents.session.guard_notices import guard_lines, guard_status
    from laptop_agents.session.lock import LockInfo, lock_is_held

    ws = _workspace(args)
    running = lock_is_held(ws.lock_path)
    info = LockInfo.read(ws.lock_path) if running else None
    try:
        status = json.loads(ws.status_path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        status = {}
    if running and info and status.get("run_id") not in (None, info.run_id):
        status = {}
    state = "RUNNING" if running else "STOPPED"
    out: dict[str, Any] = {
        "state": state, "pid": info.pid if info else None, "run_id": info.run_id if info else status.get("run_id"),
        # the running session's read model names its mode; a stopped workspace's mode is its directory's
        "mode": (status.get("mode") if running else None) or ws.mode,
        "uptime_sec": status.get("uptime_sec") if running else None, "equity": status.get("equity"),
        "position": status.get("position"), "candles_processed": status.get("candles_processed"),
        "last_stopped_reason": None if running else status.get("stopped_reason"),
        "stale_lock": (not running) and ws.lock_path.exists(), "workspace": str(ws.root),
        "broker_healthy": status.get("broker_healthy") if running else None,  # the broker's verdict (/readyz)
    }
    if not running:
        out.update(_stopped_view(ws, status))
    out.update(guard_status(ws, status.get("breaker") if running else None))  # breaker, entries_halted, kill_switch
    if args.json:
        print(json.dumps(out, indent=2))
        return ExitCode.OK
    if running:
        pos = out["position"]
        pos_text = "flat" if not pos else f"{pos['side']} {pos['qty']} @ {pos['entry_price']}"
        print(f"RUNNING pid {out['pid']} run {out['run_id']} mode {out['mode']} uptime {out['uptime_sec']}s "
              f"equity {out['equity']} position {pos_text}")
        if status.get("broker_healthy") is False:
            print(f"WARNING: broker unhealthy: {'; '.join(status.get('broker_problems') or []) or 'see /readyz'}")
    else:
        print(_stopped_line(out))
        pos = out["position"]
        if pos:
            print(f"OPEN POSITION in {ws.broker_state_path}: {pos['side']} {pos['qty']} @ {pos['entry_price']} "
                  f"(stop {pos.get('stop_loss')}, target {pos.get('take_profit')}, opened {pos.get('entry_ts')}); "
                  "no session is watching it: the next `la run` resumes it (its stop/target apply again), "
                  f"or flatten it with `LA_KILL_SWITCH=TRUE la run{' --live' if ws.mode == 'live' else ''} ...`")
        if out["stale_lock"]:
            print(f"note: stale lock {ws.lock_path} from a session that died; the next run recovers it "
                  "(or `la doctor --fix` removes it)")
    for line in guard_lines(out):
        print(line)
    return ExitCode.OK


def _stopped_view(ws: Any, status: dict[str, Any]) -> dict[str, Any]:
    """What a stopped workspace holds, from its state file (the truth) rather than the last status snapshot.

    After a kill -9 the status file still says `running` with no stopped_reason, and its position is as old
    as its last write; the broker state file is what the next session will resume.
    """
    view: dict[str, Any] = {}
    if status.get("run_id") and status.get("stopped_reason") is None:
        view["last_stopped_reason"] = "died without a clean shutdown (killed or crashed: no SessionEnd)"
    try:
        state = json.loads(ws.broker_state_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return view
    except (OSError, ValueError) as exc:
        view["state_error"] = f"{ws.broker_state_path}: {exc}"
        return view
    positions = state.get("positions") if isinstance(state, dict) else None
    if isinstance(positions, list):
        view["position"] = positions[0] if positions and isinstance(positions[0], dict) else None
    if isinstance(state, dict) and state.get("equity") is not None:
        view["equity"] = state["equity"]
    return view


def _stopped_line(out: dict[str, Any]) -> str:
    if not out["run_id"]:
        return "STOPPED (no run yet)" if out.get("equity") is None else f"STOPPED (equity {out['equity']})"
    reason = out["last_stopped_reason"] or "unknown"
    return f"STOPPED (last run {out['run_id']}: {reason}, equity {out['equity']})"


def cmd_stop(args: argparse.Namespace) -> int:
    from laptop_agents.session.control import stop_session

    return stop_session(_workspace(args), args.timeout)


def cmd_clean(args: argparse.Namespace) -> int:
    from laptop_agents.session.control import clean_workspace

    return clean_workspace(_workspace(args), everything=args.all)


def cmd_data(args: argparse.Namespace) -> int:
    import asyncio

    from laptop_agents.config_loader import load_config
    from laptop_agents.core.models import parse_utc
    from laptop_agents.data.fetch import fetch_klines

    try:
        start, end = parse_utc(args.start), parse_utc(args.end)
    except ValueError as exc:
        raise UsageError(f"bad --start/--end: {exc}") from None
    rest_url = args.rest_url or load_config(_config_dir(args)).settings.bitunix.rest_url
    out = args.out or Path("data") / f"{args.symbol}-{args.interval}.csv"
    written, existing = asyncio.run(fetch_klines(symbol=args.symbol, interval=args.interval, start=start, end=end,
                                                 out=out, rest_url=rest_url, progress=sys.stdout.isatty()))
    print(f"wrote {written} bars to {out}" + (f" (after {existing} already there)" if existing else ""))
    return ExitCode.OK


def cmd_audit(args: argparse.Namespace) -> int:
    from laptop_agents.audit.cli import run_from_args

    return run_from_args(args, _workspace(args), _config_dir(args))


def cmd_reset_breaker(args: argparse.Namespace) -> int:
    from laptop_agents.session.control import reset_breaker

    return reset_breaker(_workspace(args), _config_dir(args))


def cmd_doctor(args: argparse.Namespace) -> int:
    from laptop_agents.doctor import run_doctor

    return run_doctor(_workspace(args), _config_dir(args), fix=args.fix)


def cmd_serve(args: argparse.Namespace) -> int:
    from laptop_agents.service.serve import run_serve
    from laptop_agents.session.options import ServeRequest

    return run_serve(ServeRequest.from_namespace(args))


COMMANDS = {"serve": cmd_serve, "data": cmd_data, "audit": cmd_audit, "reset-breaker": cmd_reset_breaker, "run": cmd_run, "status": cmd_status, "stop": cmd_stop, "clean": cmd_clean, "doctor": cmd_doctor}


def _mask_secrets_in_logs() -> None:
    """Every log handler masks every secret value the process learns (API keys, passphrases)."""
    from laptop_agents.core.logger import add_handler_filter
    from laptop_agents.security.secret import SecretMaskingFilter

    add_handler_filter(SecretMaskingFilter())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:  # from the first line: a Ctrl-C while `la` is still importing is exit 130, not a traceback
        _mask_secrets_in_logs()
        parser = build_parser()
        if argv[:1] and argv[0] in DELEGATED_HELP:  # their own parsers own every flag, --help included
            return _run_delegated(argv[0], argv[1:])
        args = parser.parse_args(argv)
        return int(COMMANDS[args.command](args))
    except LaError as err:
        print(f"la: error: {err}", file=sys.stderr)
        return int(err.exit_code)
    except OSError as exc:
        from laptop_agents.core.errors import DiskError, is_disk_error

        if not is_disk_error(exc):
            raise  # any other OSError is a bug: exit 1 with its traceback
        disk = DiskError.from_os_error(exc)
        print(f"la: error: {disk}", file=sys.stderr)
        return int(disk.exit_code)
    except KeyboardInterrupt:
        return 130
