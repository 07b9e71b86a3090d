"""`la doctor [--fix]`: is this machine ready to trade? Fix what is safe to fix.

Checks: Python version, dependencies, config validity (and prints the
effective config), workspace writable, stale lock, state files valid (core/state_schema.py), clock
sanity, kill switch. `--fix` creates missing directories and default config
files and removes a stale lock; it never touches state files or a running
session's lock, and says what it did.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from laptop_agents.config_loader import default_files, load_config
from laptop_agents.core.errors import ExitCode, LaError
from laptop_agents.session.guard_notices import KILL_HINT, breaker_line
from laptop_agents.session.kill_switch import KillSwitch
from laptop_agents.session.lock import LockInfo, lock_is_held
from laptop_agents.session.state_store import check_workspace_state
from laptop_agents.session.workspace import Workspace

REQUIRED = ["aiohttp", "pydantic", "python-json-logger", "sdnotify", "psutil", "prometheus-client", "apprise",
            "cryptography", "pyyaml"]


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    warn: bool = False

    def line(self) -> str:
        mark = "OK  " if self.ok else ("WARN" if self.warn else "FAIL")
        return f"[{mark}] {self.name}: {self.detail}"


def run_doctor(ws: Workspace, config_dir: Path, fix: bool) -> int:
    checks: list[Check] = []
    fixed: list[str] = []

    v = sys.version_info
    checks.append(Check("python", v >= (3, 11), f"{v.major}.{v.minor}.{v.micro} (need >= 3.11)"))

    missing, versions = [], []
    for dist in REQUIRED:
        try:
            versions.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            missing.append(dist)
    checks.append(Check("dependencies", not missing,
                        f"missing {', '.join(missing)}: run `make setup`" if missing else ", ".join(versions)))

    if fix:
        for rel, text in default_files().items():
            path = config_dir / rel
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
                fixed.append(f"wrote default config {path}")
    try:
        config = load_config(config_dir)
        s = config.settings
        checks.append(Check("config", True, f"{config_dir}/ valid (hash {config.config_hash[:12]})"))
        checks.append(Check("effective config", True,
                            f"strategy {config.strategy.name} {config.strategy.symbol} {config.strategy.timeframe}; "
                            f"risk/trade {config.risk.risk_per_trade_pct}%, daily loss {config.risk.max_daily_loss_usd} USD, "
                            f"max notional {config.risk.max_position_notional_usd} USD; breaker dd "
                            f"{config.risk.circuit_breaker.max_drawdown_pct}% / {config.risk.circuit_breaker.max_consecutive_losses} "
                            f"losses ({config.risk.circuit_breaker.action}); fees {s.paper.maker_fee_bps}/{s.paper.taker_fee_bps} bps, "
                            f"slippage {s.paper.slippage_bps} bps; stale_data_timeout_sec {s.session.stale_data_timeout_sec}; "
                            f"watchdog {s.session.heartbeat_timeout_sec}s / {s.session.max_memory_mb:.0f} MB"))
    except LaError as err:
        checks.append(Check("config", False, str(err)))

    try:
        if fix and not ws.state_dir.exists():
            fixed.append(f"created {ws.state_dir}")
        if fix:
            ws.state_dir.mkdir(parents=True, exist_ok=True)
            ws.runs_dir.mkdir(parents=True, exist_ok=True)
        probe_dir = ws.state_dir if ws.state_dir.exists() else ws.root if ws.root.exists() else ws.root.parent
        with tempfile.NamedTemporaryFile(dir=probe_dir, prefix=".doctor-") as fh:
            fh.write(b"ok")
            fh.flush()
            os.fsync(fh.fileno())
            skew = abs(os.fstat(fh.fileno()).st_mtime - time.time())
        checks.append(Check("workspace", ws.state_dir.exists(),
                            f"{ws.root} writable" if ws.state_dir.exists() else f"{ws.state_dir} missing (`la doctor --fix` creates it)"))
        checks.append(Check("clock", skew < 5 and time.gmtime().tm_year >= 2024,
                            f"UTC {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}, filesystem skew {skew:.3f}s"))
    except OSError as exc:
        checks.append(Check("workspace", False, f"{ws.root} not writable: {exc.strerror}"))

    if ws.lock_path.exists():
        if lock_is_held(ws.lock_path):
            info = LockInfo.read(ws.lock_path)
            checks.append(Check("lock", True, f"session running (pid {info.pid if info else '?'})", warn=True))
        elif fix:
            ws.lock_path.unlink(missing_ok=True)
            fixed.append(f"removed stale lock {ws.lock_path}")
            checks.append(Check("lock", True, "stale lock removed"))
        else:
            checks.append(Check("lock", False, f"stale lock {ws.lock_path} (no live holder): `la doctor --fix` removes it", warn=True))
    else:
        checks.append(Check("lock", True, "no session running"))

    try:
        breaker = check_workspace_state(ws)
        present = [p.name for p in (ws.broker_state_path, ws.breaker_state_path) if p.exists()]
        checks.append(Check("state", True, f"{', '.join(present)} valid" if present else "absent (fresh start)"))
        if breaker is not None and breaker.tripped:
            checks.append(Check("circuit breaker", False, breaker_line(breaker), warn=True))
        else:
            checks.append(Check("circuit breaker", True, "not tripped"))
    except LaError as err:
        checks.append(Check("state", False, str(err)))

    kill = KillSwitch(ws.kill_files()).reason()
    checks.append(Check("kill switch", kill is None, f"{kill}; {KILL_HINT}" if kill else "not active",
                        warn=kill is not None))

    for c in checks:
        print(c.line())
    for f in fixed:
        print(f"fixed: {f}")
    failed = [c for c in checks if not c.ok and not c.warn]
    print("doctor: " + ("all checks passed" if not failed else f"{len(failed)} check(s) failed"))
    return ExitCode.OK if not failed else ExitCode.USAGE
