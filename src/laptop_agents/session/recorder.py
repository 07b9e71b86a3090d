"""RunRecorder: everything a run leaves in its directory, shared by live sessions and replays.

It owns the run directory's journal (events.jsonl), the config snapshot, the
equity curve, trades.csv (a row appended, flushed and fsynced as each trade closes,
so a killed run keeps every closed trade; a row a kill prevented, after the state save, is appended to the
killed run's trades.csv by the next start: reporting/trail_recovery.py), and at the end SessionEnd, the rest of
trades.csv, summary.html/json with the no-drift accounting check.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from laptop_agents.core.config_models import AppConfig
from laptop_agents.core.errors import LaError
from laptop_agents.core.events import Event, EventBus, EventName
from laptop_agents.core.ledger import execution_exit
from laptop_agents.core.models import Position, Trade, utc_iso
from laptop_agents.core.orchestrator import EventJournal, RunDirectory
from laptop_agents.core.state import atomic_write_text
from laptop_agents.reporting.summary_html import SessionSummary, write_summary
from laptop_agents.reporting.trades_csv import TradesCsvAppender
from laptop_agents.reporting.trail_recovery import Recovered, recover_trades_csv

log = logging.getLogger("laptop_agents.session.recorder")


class Account(Protocol):
    """What the recorder reads from a broker: PaperBroker, or BitunixBroker (whose equity is the exchange's wallet)."""

    @property
    def equity(self) -> Decimal: ...
    @property
    def position(self) -> Position | None: ...
    @property
    def trades(self) -> list[Trade]: ...

    def verify_accounting(self) -> None: ...


class RunRecorder:
    def __init__(
        self,
        run_dir: RunDirectory,
        bus: EventBus,
        paper: Account,
        config: AppConfig,
        *,
        mode: str,
        source: str,
        started_at: datetime,
        extra_snapshot: dict[str, Any] | None = None,
        candle_events: bool = True,
        durable_trades: bool = True,
        carried_trades: int = 0,
    ) -> None:
        """``durable_trades``: fsync trades.csv as each trade closes (sessions); a replay passes False.

        ``carried_trades``: how many of the account's last trades were booked while the session opened its
        broker (round trips the exchange completed while we were down). They go into this run's trades.csv (no
        earlier run could write them) but not into its accounting: the starting equity already includes them."""
        self.run_dir = run_dir
        self.paper = paper
        self.config = config
        self.mode = mode
        self.source = source
        self.started_at = started_at
        self.bus = bus
        self.journal = EventJournal(run_dir.events, candle_events=candle_events)
        self.starting_equity = paper.equity
        self.first_trade = len(paper.trades)
        # a live broker's equity is the exchange's wallet; differences our trades do not explain are "adjustments"
        self.start_adjustments: Decimal | None = getattr(paper, "adjustments", None)
        # a position restored at start paid its entry fee in an earlier run
        self.restored_fee = paper.position.entry_fee if paper.position is not None else Decimal(0)
        self.equity_curve: list[tuple[str, Decimal]] = [(utc_iso(started_at), paper.equity)]
        self.snapshot = {"run_id": run_dir.run_id, "config_hash": config.config_hash, "config_dir": str(config.config_dir),
                         "mode": mode, "source": source, **(extra_snapshot or {}), **config.snapshot()}
        atomic_write_text(run_dir.config_snapshot, json.dumps(self.snapshot, indent=2, default=str) + "\n")
        self.trades_csv = TradesCsvAppender(run_dir.trades_csv, durable=durable_trades)
        self._csv_next = len(paper.trades) - max(0, min(carried_trades, len(paper.trades)))
        """Index in the account's trades of the next one trades.csv lacks (each row exactly once)."""
        self._csv_first = self._csv_next
        self._journaled_exits: set[str] = set()
        self.recovered: list[Recovered] = []
        """Trades an earlier run booked but was killed before writing to its trades.csv; now appended there."""
        if durable_trades:
            self.recovered = recover_trades_csv(paper.trades[:self._csv_next], run_dir.runs_dir, mode, run_dir.run_id,
                                                symbol=getattr(paper, "symbol", None),
                                                equity=paper.equity - sum((t.pnl for t in paper.trades[self._csv_next:]),
                                                                          Decimal(0)))
        # no row for the carried trades yet: :meth:`trades_observer` writes them when their ExecutionExit (published
        # by the session after this) has been saved in the state; a row written before that save would be written
        # again by a restart that books the same round trip again.
        bus.subscribe(self.journal)
        bus.subscribe(self._observe)

    def _observe(self, event: Event) -> None:
        if event.name == EventName.EXECUTION_EXIT:
            self.equity_curve.append((utc_iso(event.timestamp), self.paper.equity))
            self._journaled_exits.add(str(event.data.get("trade_id")))

    def _journal_unreported_exits(self, now: datetime) -> None:
        """A trade of this run booked without an ExecutionExit reaching the bus (a broker path that booked it and
        then failed, e.g. during shutdown) gets one now, marked ``recovered: true``, before SessionEnd: every trades.csv
        row has its ExecutionExit in the same run's events.jsonl, and the state is saved with it."""
        for t in self.paper.trades[self._csv_first:]:
            if t.trade_id in self._journaled_exits:
                continue
            log.warning("trade %s was booked without an ExecutionExit event; journaling it now (recovered)", t.trade_id)
            self.bus.publish(execution_exit(now, t, position_id=t.trade_id, symbol=getattr(self.paper, "symbol", None),
                                            bars_held=None, equity=self.paper.equity, recovered=True))

    def trades_observer(self, event: Event) -> None:
        """Bus observer that appends each closed trade to trades.csv. The caller subscribes it *after* the
        state store: the trade is in the state file first, so a kill between the two can never make a restart
        close the same position again (the row would then exist twice, at two prices)."""
        if event.name == EventName.EXECUTION_EXIT:
            self._append_closed_trades()

    def _append_closed_trades(self) -> None:
        """Append the run's trades not yet in trades.csv (by position in the list: each exactly once)."""
        trades = self.paper.trades
        if len(trades) > self._csv_next and self.trades_csv.write_error is None:
            self.trades_csv.append(trades[self._csv_next:])
            self._csv_next = len(trades)

    @property
    def write_error(self) -> OSError | None:
        """The first disk error met writing the run's files (journal, trades.csv), or None."""
        return self.journal.write_error or self.trades_csv.write_error

    @property
    def run_trades(self) -> list[Trade]:
        return self.paper.trades[self.first_trade:]

    def finish(
        self,
        *,
        reason: str,
        detail: str,
        exit_code: int,
        ended: datetime,
        duration_sec: float,
        candles_processed: int,
        breaker: dict[str, Any],
    ) -> SessionSummary:
        """SessionEnd, then trades.csv and summary.html/json. Returns the summary."""
        self._journal_unreported_exits(ended)
        trades = self.run_trades
        self.bus.publish(Event(
            EventName.SESSION_END, ended, run_id=self.run_dir.run_id, stopped_reason=reason, detail=detail,
            exit_code=exit_code, duration_sec=round(duration_sec, 3), candles_processed=candles_processed,
            trades=len(trades), starting_equity=self.starting_equity, ending_equity=self.paper.equity,
            net_pnl=sum((t.pnl for t in trades), Decimal(0)), open_position=self.paper.position is not None,
        ))
        self.journal.close()
        self._append_closed_trades()  # anything closed without an ExecutionExit (none expected): no row twice
        self.trades_csv.close()
        ok, check = self.accounting_check(trades)
        summary = SessionSummary(
            run_id=self.run_dir.run_id, mode=self.mode, source=self.source, started_at=utc_iso(self.started_at),
            ended_at=utc_iso(ended), stopped_reason=reason, exit_code=exit_code, starting_equity=self.starting_equity,
            ending_equity=self.paper.equity, trades=trades,
            equity_curve=self.equity_curve + [(utc_iso(ended), self.paper.equity)], config=self.snapshot,
            config_hash=self.config.config_hash, event_counts=dict(self.journal.counts),
            candles_processed=candles_processed, accounting_ok=ok, accounting_detail=check, breaker=breaker,
        )
        write_summary(self.run_dir.summary_html, self.run_dir.file("summary.json"), summary)
        if not ok:
            log.critical("ACCOUNTING DRIFT: %s", check)
        return summary

    def accounting_check(self, trades: list[Trade]) -> tuple[bool, str]:
        """No drift: ending = starting + sum(run pnl) + restored entry fee - entry fee still open.

        Both fee terms are zero for a normal run, which starts and ends flat.
        """
        try:
            self.paper.verify_accounting()
        except (ValueError, LaError) as exc:
            return False, str(exc)
        net = sum((t.pnl for t in trades), Decimal(0))
        open_fee = self.paper.position.entry_fee if self.paper.position else Decimal(0)
        expected = self.starting_equity + net + self.restored_fee - open_fee
        detail = f"ending {self.paper.equity} vs starting {self.starting_equity} + sum(trade pnl) {net}"
        if self.restored_fee or open_fee:
            detail += f" + restored entry fee {self.restored_fee} - open entry fee {open_fee}"
        if self.start_adjustments is not None:
            unexplained = getattr(self.paper, "adjustments", self.start_adjustments) - self.start_adjustments
            detail += f" (ending equity is the exchange wallet; unexplained by our trades: {unexplained})"
        return expected == self.paper.equity, detail
