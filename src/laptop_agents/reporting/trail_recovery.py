"""Rows a killed run could not write: booked trades that no run's trades.csv holds, put back at the next start.

A closed trade is written in this order: its ExecutionExit line in events.jsonl (flushed), the account state
(atomic save), then its trades.csv row (fsynced). A SIGKILL between the state save and the row leaves a trade
that the account has booked (a restart never closes it again) but that no trades.csv holds. At every start the
session compares the account's trade ids with the trades.csv of this mode's earlier runs and appends each missing
trade to the trades.csv of the run that booked it (the run whose events.jsonl holds its ExecutionExit), so every
run's trades.csv matches its own ExecutionExit events and its own equity check.

Cheap: runs are walked newest first and the walk stops at the first run whose trades.csv holds a booked trade
(everything booked before that trade was written by that run or an earlier one, whose own restart recovered its
rows). A normal start reads one small trades.csv; a journal is read only when a row is missing.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from laptop_agents.core.models import Trade
from laptop_agents.reporting.trades_csv import TradesCsvAppender

log = logging.getLogger("laptop_agents.reporting.trail_recovery")


@dataclass(frozen=True)
class Recovered:
    trade_id: str
    run_dir: Path
    """The run whose trades.csv now holds the row."""
    journaled: bool
    """True when that run's events.jsonl holds the trade's ExecutionExit (False: the newest earlier run got it)."""


def earlier_runs(runs_dir: Path, mode: str, current_run_id: str) -> list[Path]:
    """This mode's run directories other than the current one, newest first (run ids start with their UTC time)."""
    if not runs_dir.is_dir():
        return []
    out = []
    for path in runs_dir.iterdir():
        parts = path.name.split("-")
        if len(parts) >= 3 and parts[1] == mode and path.name != current_run_id and not path.is_symlink() \
                and path.is_dir():
            out.append(path)
    return sorted(out, key=lambda p: p.name, reverse=True)


def csv_trade_ids(path: Path) -> list[str]:
    """The trade ids of a trades.csv (a last line cut by kill -9, without its newline, is ignored: that row is
    not written yet; a missing file has none)."""
    try:
        data = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    if not data.endswith("\n"):
        data = data[: data.rfind("\n") + 1]
    return [row["trade_id"] for row in csv.DictReader(io.StringIO(data, newline="")) if row.get("trade_id")]


def journaled_exits(path: Path) -> set[str]:
    """Trade ids of the ExecutionExit events in an events.jsonl (a line cut by kill -9 is skipped)."""
    out: set[str] = set()
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if '"ExecutionExit"' not in line:
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if isinstance(rec, dict) and rec.get("event") == "ExecutionExit" and rec.get("trade_id"):
                    out.add(str(rec["trade_id"]))
    except FileNotFoundError:
        pass
    return out


def find_unexported(booked: Sequence[Trade], runs: Sequence[Path]) -> tuple[list[Trade], list[Path]]:
    """Booked trades no walked run's trades.csv holds, and the runs walked (newest first). Pure but for reading
    the trades.csv files; stops at the newest run holding a booked trade."""
    index = {t.trade_id: i for i, t in enumerate(booked)}
    exported: set[str] = set()
    start = 0
    walked: list[Path] = []
    for run in runs:
        walked.append(run)
        ids = csv_trade_ids(run / "trades.csv")
        exported.update(ids)
        known = [index[i] for i in ids if i in index]
        if known:
            start = max(known) + 1
            break
    if not walked:
        return [], []
    return [t for t in booked[start:] if t.trade_id not in exported], walked


def _cut_torn_tail(path: Path) -> None:
    """Drop a last line a kill cut in the middle (no newline), so the appended row starts on its own line."""
    try:
        with path.open("rb+") as fh:
            data = fh.read()
            if data and not data.endswith(b"\n"):
                fh.truncate(data.rfind(b"\n") + 1)
    except FileNotFoundError:
        pass


def recover_trades_csv(booked: Sequence[Trade], runs_dir: Path, mode: str, current_run_id: str) -> list[Recovered]:
    """Append every booked trade missing from this mode's trades.csv files to the run that booked it.

    ``booked``: the account's trades as loaded at start, without those the broker booked while opening (they go
    into the current run). Each row is fsynced before the next start could look again: no row twice.
    """
    missing, walked = find_unexported(booked, earlier_runs(runs_dir, mode, current_run_id))
    if not missing:
        return []
    journals: dict[Path, set[str]] = {}
    homes: dict[Path, list[tuple[Trade, bool]]] = {}
    for trade in missing:
        home, journaled = walked[0], False
        for run in walked:
            if run not in journals:
                journals[run] = journaled_exits(run / "events.jsonl")
            if trade.trade_id in journals[run]:
                home, journaled = run, True
                break
        homes.setdefault(home, []).append((trade, journaled))
    out: list[Recovered] = []
    for home, trades in homes.items():
        path = home / "trades.csv"
        _cut_torn_tail(path)
        appender = TradesCsvAppender(path, durable=True)
        appender.append(t for t, _ in trades)
        appender.close()
        if appender.write_error is not None:
            raise appender.write_error
        for trade, journaled in trades:
            out.append(Recovered(trade.trade_id, home, journaled))
            log.warning("trades.csv: trade %s was booked by run %s but had no row (the run was killed before "
                        "writing it); appended to %s%s", trade.trade_id, home.name, path,
                        "" if journaled else " (its ExecutionExit is in no journal: the newest earlier run holds it)")
    return out
