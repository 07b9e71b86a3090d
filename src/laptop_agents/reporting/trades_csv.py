"""trades.csv: one row per closed trade, exact decimal strings (no float rounding).

A session grows its trades.csv as trades close (:class:`TradesCsvAppender`): each row is flushed and fsynced
when its trade closes, so a session killed with SIGKILL (or a power cut) loses no closed trade from its record.
The end of the run only appends what is still missing, never rewrites: no row twice.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from laptop_agents.core.models import Trade, utc_iso
from laptop_agents.core.orchestrator import AppendOnlyFile

COLUMNS = [
    "trade_id", "entry_ts", "exit_ts", "side", "entry_price", "exit_price", "qty", "gross_pnl", "fees", "pnl",
    "exit_reason",
]


def trade_row(t: Trade) -> list[object]:
    return [
        t.trade_id, utc_iso(t.entry_ts), utc_iso(t.exit_ts), t.side.value, t.entry_price, t.exit_price,
        t.qty, t.gross_pnl, t.fees, t.pnl, t.exit_reason,
    ]


def write_trades_csv(path: Path, trades: Iterable[Trade]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(COLUMNS)
        for t in trades:
            writer.writerow(trade_row(t))


class TradesCsvAppender(AppendOnlyFile):
    """A run's trades.csv, one row appended per closed trade.

    ``durable``: flush and fsync after every append (a session: a closed trade survives kill -9). A replay
    passes False: rows stay buffered until :meth:`close` (a backtest that dies is simply run again).
    A disk error (full, read-only) is kept in :attr:`write_error` and stops further writes; the session
    reads it and stops with DISK_ERROR. Any other error is a bug and propagates.
    """

    def __init__(self, path: Path, *, durable: bool = True) -> None:
        self.path = path
        self.durable = durable
        self.rows = 0
        self.write_error: OSError | None = None
        self._fh: IO[str] | None = path.open("a", newline="", encoding="utf-8")
        self._writer = csv.writer(self._fh, lineterminator="\n")
        try:
            if self._fh.tell() == 0:
                self._writer.writerow(COLUMNS)
                self._sync()
        except OSError as exc:
            self._failed(exc)

    def append(self, trades: Iterable[Trade]) -> None:
        if self._fh is None:
            return
        try:
            for t in trades:
                self._writer.writerow(trade_row(t))
                self.rows += 1
            if self.durable:
                self._sync()
        except OSError as exc:
            self._failed(exc)

    def _sync(self) -> None:
        assert self._fh is not None
        self._fh.flush()
        if self.durable:
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is None:
            return
        try:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
        except OSError as exc:
            self._failed(exc)
        self._fh = None
