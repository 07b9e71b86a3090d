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

The journal can lack the trade too: the live broker books a round trip the exchange closed before we looked
(entry filled, exchange-side stop fired) in one ``submit``, whose OrderSubmitted, ExecutionFill and ExecutionExit
are published one after another, and the state is saved after the first two. A kill -9 after such a save leaves
a booked trade whose ExecutionExit (and, after the OrderSubmitted save, its ExecutionFill) is in no run's
events.jsonl. Such a trade gets its missing events appended (``recovered: true``, flushed and fsynced) to the run
whose trades.csv then gets its row, *before* the row: a kill between the two leaves a journaled trade without a
row, which the next start completes like any other; nothing is ever written twice.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from laptop_agents.core.events import Event, EventEncoder, EventName
from laptop_agents.core.ledger import execution_exit, execution_fill
from laptop_agents.core.models import Trade
from laptop_agents.reporting.trades_csv import TradesCsvAppender

log = logging.getLogger("laptop_agents.reporting.trail_recovery")


@dataclass(frozen=True)
class Recovered:
    trade_id: str
    run_dir: Path
    """The run whose trades.csv now holds the row."""
    journaled: bool
    """True when that run's events.jsonl holds the trade's ExecutionExit (False: the newest earlier run got it,
    and its ExecutionExit was appended there, marked ``recovered``)."""
    events_appended: tuple[str, ...] = field(default=())
    """The event names appended to that run's events.jsonl for this trade (ExecutionFill, ExecutionExit)."""


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
    return _journaled(path, EventName.EXECUTION_EXIT, "trade_id")


def journaled_fills(path: Path) -> set[str]:
    """Position ids of the ExecutionFill events in an events.jsonl (a line cut by kill -9 is skipped)."""
    return _journaled(path, EventName.EXECUTION_FILL, "position_id")


def _journaled(path: Path, name: str, key: str) -> set[str]:
    out: set[str] = set()
    marker = f'"{name}"'
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if marker not in line:
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if isinstance(rec, dict) and rec.get("event") == name and rec.get(key):
                    out.add(str(rec[key]))
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


def recovered_events(trade: Trade, *, symbol: str | None, equity: Decimal | None, fill: bool) -> list[Event]:
    """The ExecutionExit (after its ExecutionFill when ``fill``) a killed run did not journal for a booked trade,
    with the broker's fields and ``recovered: true``. What the trade does not record is None: the entry's order
    and client ids, its own fee (``fees`` is both), the TP/SL, and the equity after the fill."""
    events = []
    if fill:
        events.append(execution_fill(
            trade.entry_ts, order_id=None, client_id=None, symbol=symbol, position_side=trade.side, qty=trade.qty,
            price=trade.entry_price, fee=None, position_id=trade.trade_id, stop_loss=None, take_profit=None,
            equity=None, recovered=True,
        ))
    events.append(execution_exit(trade.exit_ts, trade, position_id=trade.trade_id, symbol=symbol, bars_held=None,
                                 equity=equity, recovered=True))
    return events


def _append_events(path: Path, events: Sequence[Event]) -> None:
    """Append journal lines, flushed and fsynced (after cutting a torn last line) before the trades.csv row."""
    _cut_torn_tail(path)
    line = EventEncoder().line
    with path.open("a", encoding="utf-8") as fh:
        for event in events:
            fh.write(line(event))
        fh.flush()
        os.fsync(fh.fileno())


def recover_trades_csv(
    booked: Sequence[Trade],
    runs_dir: Path,
    mode: str,
    current_run_id: str,
    *,
    symbol: str | None = None,
    equity: Decimal | None = None,
) -> list[Recovered]:
    """Append every booked trade missing from this mode's trades.csv files to the run that booked it, and its
    ExecutionExit (and ExecutionFill) to that run's events.jsonl when no walked run's journal holds them.

    ``booked``: the account's trades as loaded at start, without those the broker booked while opening (they go
    into the current run). ``symbol``/``equity``: the account's, at start (a recovered ExecutionExit's equity is
    this minus the pnl booked after it). Each row is fsynced before the next start could look again: no row twice.
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
    after = {t.trade_id: i for i, t in enumerate(booked)}
    fills: set[str] | None = None
    out: list[Recovered] = []
    for home, trades in homes.items():
        appended: dict[str, tuple[str, ...]] = {}
        unjournaled: list[Event] = []
        for trade, journaled in trades:
            if journaled:
                continue
            if fills is None:  # read once, only when a trade lacks its ExecutionExit (rare)
                fills = set().union(*(journaled_fills(run / "events.jsonl") for run in walked))
            trade_equity = None if equity is None else \
                equity - sum((t.pnl for t in booked[after[trade.trade_id] + 1:]), Decimal(0))
            # a live trade's id is its position id (the fill's); a paper round trip is never booked in one step
            events = recovered_events(trade, symbol=symbol, equity=trade_equity,
                                      fill=mode != "paper" and trade.trade_id not in fills)
            unjournaled += events
            appended[trade.trade_id] = tuple(e.name for e in events)
        if unjournaled:
            _append_events(home / "events.jsonl", unjournaled)
        path = home / "trades.csv"
        _cut_torn_tail(path)
        appender = TradesCsvAppender(path, durable=True)
        appender.append(t for t, _ in trades)
        appender.close()
        if appender.write_error is not None:
            raise appender.write_error
        for trade, journaled in trades:
            names = appended.get(trade.trade_id, ())
            out.append(Recovered(trade.trade_id, home, journaled, names))
            log.warning("trades.csv: trade %s was booked by run %s but had no row (the run was killed before "
                        "writing it); appended to %s%s", trade.trade_id, home.name, path,
                        "" if journaled else f" (no journal held its {' and '.join(names)}: the run was killed "
                        f"before writing them; appended to {home / 'events.jsonl'}, marked recovered)")
    return out
