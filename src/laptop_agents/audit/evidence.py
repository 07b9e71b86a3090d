"""Everything the audit reads about one run, loaded once, tolerant of damage.

A missing or torn file is evidence too (the audit reports it), so loading
never raises for content problems; it records what it found.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from laptop_agents.core.orchestrator import (
    CONFIG_SNAPSHOT_FILE,
    EVENTS_FILE,
    SUMMARY_FILE,
    SYSTEM_FILE,
    TRADES_FILE,
)
from laptop_agents.session.lock import LockInfo, lock_is_held
from laptop_agents.session.workspace import Workspace


@dataclass
class RunEvidence:
    run_dir: Path
    workspace: Workspace
    files: dict[str, bool]
    events: list[dict[str, Any]]
    torn_event_lines: int
    system: list[dict[str, Any]]
    torn_system_lines: int
    trades: list[dict[str, str]]
    trade_columns: list[str]
    summary: dict[str, Any] | None
    summary_html: str
    config_snapshot: dict[str, Any] | None
    lock_exists: bool
    lock_held: bool
    lock_info: LockInfo | None
    broker_state: dict[str, Any] | None
    breaker_state: dict[str, Any] | None
    notes: list[str] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return self.run_dir.name

    def events_named(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == name]

    @property
    def session_start(self) -> dict[str, Any] | None:
        found = self.events_named("SessionStart")
        return found[0] if found else None

    @property
    def session_end(self) -> dict[str, Any] | None:
        found = self.events_named("SessionEnd")
        return found[-1] if found else None

    def where(self, name: str) -> str:
        return str(self.run_dir / name)


def _jsonl(path: Path) -> tuple[list[dict[str, Any]], int]:
    records, torn = [], 0
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return [], 0
    for line in lines:
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            torn += 1
            continue
        if isinstance(value, dict):
            records.append(value)
        else:
            torn += 1
    return records, torn


def _json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def load_run(run_dir: Path, workspace: Workspace) -> RunEvidence:
    names = [EVENTS_FILE, SYSTEM_FILE, TRADES_FILE, SUMMARY_FILE, CONFIG_SNAPSHOT_FILE, "summary.json"]
    files = {n: (run_dir / n).is_file() for n in names}
    events, torn_events = _jsonl(run_dir / EVENTS_FILE)
    system, torn_system = _jsonl(run_dir / SYSTEM_FILE)
    trades: list[dict[str, str]] = []
    columns: list[str] = []
    if files[TRADES_FILE]:
        with (run_dir / TRADES_FILE).open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            columns = list(reader.fieldnames or [])
            trades = list(reader)
    html = (run_dir / SUMMARY_FILE).read_text(encoding="utf-8", errors="replace") if files[SUMMARY_FILE] else ""
    state_dir = workspace.state_dir
    return RunEvidence(
        run_dir=run_dir, workspace=workspace, files=files, events=events, torn_event_lines=torn_events,
        system=system, torn_system_lines=torn_system, trades=trades, trade_columns=columns,
        summary=_json(run_dir / "summary.json"), summary_html=html, config_snapshot=_json(run_dir / CONFIG_SNAPSHOT_FILE),
        lock_exists=workspace.lock_path.exists(), lock_held=lock_is_held(workspace.lock_path),
        lock_info=LockInfo.read(workspace.lock_path), broker_state=_json(state_dir / "async_broker_state.json"),
        breaker_state=_json(state_dir / "circuit_breaker_state.json"),
    )


def resolve_run_dir(workspace: Workspace, run_id: str | None) -> Path:
    """`--run ID` or the newest run (runs/latest)."""
    from laptop_agents.core.errors import UsageError

    if run_id:
        path = workspace.runs_dir / run_id
        if not path.is_dir():
            raise UsageError(f"no run {run_id!r} in {workspace.runs_dir}")
        return path
    latest = workspace.latest_run
    if not latest.exists():
        raise UsageError(f"no runs in {workspace.runs_dir}: run a session first (or `la audit --run-session 10`)")
    return latest.resolve()
