"""Run directories and the event journal.

Each session writes to `.workspace/runs/<run_id>/`; `runs/latest` is a symlink
swapped atomically to the newest run so a reader never sees it half-updated.
The journal is an event-bus observer that appends one JSON object per event
to events.jsonl and is flushed by the session loop after every candle; events
that move money (fills, exits, breaker trips) are flushed as they are written,
so a crash can lose at most candle/signal lines, never a trade.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from laptop_agents.core.errors import is_disk_error
from laptop_agents.core.events import Event, EventEncoder, EventName

log = logging.getLogger("laptop_agents.journal")

EVENTS_FILE = "events.jsonl"
SYSTEM_FILE = "system.jsonl"
TRADES_FILE = "trades.csv"
SUMMARY_FILE = "summary.html"
CONFIG_SNAPSHOT_FILE = "config_snapshot.json"


def new_run_id(now: datetime, mode: str) -> str:
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{mode}-{secrets.token_hex(3)}"


class RunDirectory:
    def __init__(self, runs_dir: Path, run_id: str) -> None:
        self.runs_dir = runs_dir
        self.run_id = run_id
        self.path = runs_dir / run_id

    def create(self) -> RunDirectory:
        self.path.mkdir(parents=True, exist_ok=False)
        self.point_latest_here()
        return self

    def point_latest_here(self) -> None:
        latest = self.runs_dir / "latest"
        tmp = self.runs_dir / f".latest.{os.getpid()}"
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        os.symlink(self.run_id, tmp)
        os.replace(tmp, latest)

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def events(self) -> Path:
        return self.file(EVENTS_FILE)

    @property
    def system(self) -> Path:
        return self.file(SYSTEM_FILE)

    @property
    def trades_csv(self) -> Path:
        return self.file(TRADES_FILE)

    @property
    def summary_html(self) -> Path:
        return self.file(SUMMARY_FILE)

    @property
    def config_snapshot(self) -> Path:
        return self.file(CONFIG_SNAPSHOT_FILE)


# written and flushed at once: a crash must never lose one of these
FLUSHED_EVENTS = frozenset({
    EventName.ORDER_SUBMITTED, EventName.ORDER_REJECTED, EventName.EXECUTION_FILL, EventName.EXECUTION_EXIT,
    EventName.CIRCUIT_BREAKER_TRIPPED, EventName.KILL_SWITCH_ACTIVATED, EventName.SESSION_END,
})


class AppendOnlyFile:
    """An append-only artifact (events.jsonl, trades.csv) whose disk may refuse writes.

    A disk error (full, read-only, I/O error) is kept in :attr:`write_error`, stops further writes and is
    logged once; the session reads it and stops with DISK_ERROR. Any other error is a bug and propagates.
    """

    path: Path
    write_error: OSError | None
    _fh: IO[str] | None

    def _failed(self, exc: OSError) -> None:
        if not is_disk_error(exc):
            raise exc
        if exc.filename is None:
            exc.filename = str(self.path)
        if self.write_error is None:
            log.error("cannot write %s: %s", self.path, exc)
        self.write_error = exc
        fh, self._fh = self._fh, None
        if fh is not None:
            with contextlib.suppress(OSError):
                fh.close()


class EventJournal(AppendOnlyFile):
    """events.jsonl writer. `candle_events=False` keeps only non-candle events (replay speed).

    Buffered (64 KiB); the session loop flushes after every candle, and money-moving events
    (FLUSHED_EVENTS) are flushed as soon as they are written.
    """

    def __init__(self, path: Path, candle_events: bool = True) -> None:
        self.path = path
        self.candle_events = candle_events
        self.counts: Counter[str] = Counter()
        self._fh: IO[str] | None = path.open("a", encoding="utf-8", buffering=1 << 16)
        self._line = EventEncoder().line
        self._skip = None if candle_events else EventName.CANDLE_PROCESSED
        self.write_error: OSError | None = None

    def __call__(self, event: Event) -> None:
        name = event.name
        self.counts[name] += 1
        if name == self._skip:
            return
        fh = self._fh
        if fh is not None:
            try:
                fh.write(self._line(event))
                if name in FLUSHED_EVENTS:
                    fh.flush()
            except OSError as exc:
                self._failed(exc)

    def flush(self) -> None:
        if self._fh is not None:
            try:
                self._fh.flush()
            except OSError as exc:
                self._failed(exc)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None


def read_events(path: Path) -> list[dict[str, Any]]:
    """Parse events.jsonl, skipping a torn last line (a crash mid-write)."""
    out: list[dict[str, Any]] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return out
    for line in lines:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out
