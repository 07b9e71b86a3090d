"""reporting/trail_recovery: which booked trades lack a trades.csv row, and where the row goes (real files)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from laptop_agents.core.models import Side, Trade
from laptop_agents.reporting.trades_csv import write_trades_csv
from laptop_agents.reporting.trail_recovery import csv_trade_ids, recover_trades_csv

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def trade(n: int) -> Trade:
    d = Decimal(n)
    return Trade(f"T{n:06d}", Side.LONG, Decimal(1), T0, T0, d, d + 1, Decimal(1), Decimal("0.1"), Decimal("0.9"),
                 "take_profit")


def make_run(runs: Path, name: str, rows: list[int], exits: list[int]) -> Path:
    run = runs / name
    run.mkdir(parents=True)
    write_trades_csv(run / "trades.csv", [trade(n) for n in rows])
    (run / "events.jsonl").write_text("".join(json.dumps({"event": "ExecutionExit", "trade_id": trade(n).trade_id})
                                              + "\n" for n in exits))
    return run


def test_missing_rows_go_to_the_run_that_journaled_them_once(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    old = make_run(runs, "20260101T000000Z-paper-aaaaaa", [1, 2], [1, 2])
    killed = make_run(runs, "20260101T000100Z-paper-bbbbbb", [3], [3, 4])   # killed after T4's state save
    tradeless = make_run(runs, "20260101T000200Z-paper-cccccc", [], [5])    # killed before T5's row, no rows
    make_run(runs, "20260101T000300Z-live-dddddd", [], [6])                 # another mode: never touched
    (killed / "trades.csv").write_text((killed / "trades.csv").read_text() + "T000004,2026-01-01T00:00:00Z,2026-01-01T00:00:00Z,long,4,5,1,1,0.1,0.9,take_pr")  # torn
    (runs / "latest").symlink_to(tradeless)
    booked = [trade(n) for n in range(1, 6)]

    got = recover_trades_csv(booked, runs, "paper", "20260101T000400Z-paper-eeeeee")
    assert [(r.trade_id, r.run_dir.name, r.journaled) for r in got] == [
        ("T000004", killed.name, True), ("T000005", tradeless.name, True)]
    assert csv_trade_ids(killed / "trades.csv") == ["T000003", "T000004"]
    assert csv_trade_ids(tradeless / "trades.csv") == ["T000005"]
    assert csv_trade_ids(old / "trades.csv") == ["T000001", "T000002"]
    assert recover_trades_csv(booked, runs, "paper", "20260101T000500Z-paper-ffffff") == []  # never twice


def test_nothing_to_compare_with_and_an_unjournaled_trade(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    assert recover_trades_csv([trade(1)], runs, "paper", "x-paper-1") == []  # no earlier run: nothing to do
    only = make_run(runs, "20260101T000000Z-paper-aaaaaa", [1], [1])
    got = recover_trades_csv([trade(1), trade(2)], runs, "paper", "20260101T000100Z-paper-bbbbbb")
    assert [(r.trade_id, r.run_dir, r.journaled) for r in got] == [("T000002", only, False)]
    assert csv_trade_ids(only / "trades.csv") == ["T000001", "T000002"]


def test_a_trade_booked_without_its_exit_event_is_journaled_recovered_before_session_end(tmp_path: Path) -> None:
    """Seen under load on the mock: a trade booked during shutdown whose ExecutionExit never reached the bus had a
    trades.csv row but no journal line. finish() journals it (recovered: true) before SessionEnd."""
    import shutil

    from laptop_agents.config_loader import load_config
    from laptop_agents.core.events import EventBus
    from laptop_agents.core.orchestrator import RunDirectory, read_events
    from laptop_agents.session.recorder import RunRecorder
    from tests.unit.test_config import REPO_CONFIG

    class Account:
        equity = Decimal(1000)
        position = None
        trades: list[Trade] = []

        def verify_accounting(self) -> None:
            pass

    shutil.copytree(REPO_CONFIG, tmp_path / "config")
    account = Account()
    run = RunDirectory(tmp_path / "runs", "20260101T000000Z-live-aaaaaa").create()
    recorder = RunRecorder(run, EventBus(), account, load_config(tmp_path / "config", env={}), mode="live",
                           source="bitunix", started_at=T0)
    account.trades = [trade(1)]  # booked by a broker path that published nothing
    account.equity += trade(1).pnl
    recorder.finish(reason="duration", detail="", exit_code=0, ended=T0, duration_sec=1.0, candles_processed=1,
                    breaker={})
    events = read_events(run.events)
    exits = [e for e in events if e["event"] == "ExecutionExit"]
    assert [(e["trade_id"], e["recovered"]) for e in exits] == [("T000001", True)]
    assert events[-1]["event"] == "SessionEnd" and csv_trade_ids(run.trades_csv) == ["T000001"]


def test_a_round_trip_booked_at_once_and_killed_before_its_events_gets_them_once(tmp_path: Path, caplog) -> None:
    """Issue 12, kill -9 trial 21: the live broker booked a round trip the exchange closed before we looked (fill
    and exit in one submit); the state saved after its ExecutionFill (or its OrderSubmitted) already held the
    trade, and the kill came before the ExecutionExit (and ExecutionFill) line. The next start journals them
    (recovered: true, fill before exit) in the run whose trades.csv gets the row; never twice."""
    from laptop_agents.core.orchestrator import read_events

    runs = tmp_path / "runs"
    old = make_run(runs, "20260101T000000Z-live-aaaaaa", [1], [1])
    killed = make_run(runs, "20260101T000100Z-live-bbbbbb", [], [])
    with (killed / "events.jsonl").open("a") as fh:  # T2's fill reached the journal, its exit did not; T3: neither
        fh.write(json.dumps({"event": "ExecutionFill", "position_id": "T000002"}) + "\n")
        fh.write('{"event": "OrderSubmitted", "order_id": "9"}\n{"event": "ExecutionFi')  # torn by the kill
    booked = [trade(n) for n in (1, 2, 3)]
    caplog.set_level("WARNING", "laptop_agents.reporting.trail_recovery")

    got = recover_trades_csv(booked, runs, "live", "20260101T000200Z-live-cccccc", symbol="BTCUSDT",
                             equity=Decimal(1000))
    assert [(r.trade_id, r.run_dir, r.journaled, r.events_appended) for r in got] == [
        ("T000002", killed, False, ("ExecutionExit",)), ("T000003", killed, False, ("ExecutionFill", "ExecutionExit"))]
    events = read_events(killed / "events.jsonl")
    assert [(e["event"], e.get("trade_id") or e.get("position_id"), e.get("recovered")) for e in events] == [
        ("ExecutionFill", "T000002", None), ("OrderSubmitted", None, None), ("ExecutionExit", "T000002", True),
        ("ExecutionFill", "T000003", True), ("ExecutionExit", "T000003", True)]
    exit2 = events[2]
    assert (exit2["symbol"], exit2["side"], exit2["position_side"], exit2["reason"], exit2["qty"], exit2["pnl"],
            exit2["equity"]) == ("BTCUSDT", "SELL", "LONG", "take_profit", 1, 0.9, 999.1)  # 1000 - T3's pnl
    assert csv_trade_ids(killed / "trades.csv") == ["T000002", "T000003"]  # = its ExecutionExit events
    assert csv_trade_ids(old / "trades.csv") == ["T000001"] and read_events(old / "events.jsonl")[-1]["trade_id"] == "T000001"
    assert sum("T000003" in r.getMessage() and "ExecutionExit" in r.getMessage() for r in caplog.records) == 1

    # a kill between the journal lines and the rows: the next start writes the rows only
    write_trades_csv(killed / "trades.csv", [])
    got = recover_trades_csv(booked, runs, "live", "20260101T000300Z-live-dddddd", symbol="BTCUSDT",
                             equity=Decimal(1000))
    assert [(r.trade_id, r.journaled, r.events_appended) for r in got] == [("T000002", True, ()), ("T000003", True, ())]
    assert read_events(killed / "events.jsonl") == events and csv_trade_ids(killed / "trades.csv") == ["T000002", "T000003"]
    assert recover_trades_csv(booked, runs, "live", "20260101T000400Z-live-eeeeee") == []  # idempotent
