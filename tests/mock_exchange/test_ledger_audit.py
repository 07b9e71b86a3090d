"""The ledger audit the chaos suite and the kill -9 campaign judge by: each verdict can fail."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from laptop_agents.mock_exchange.ledger_audit import RunRecords, audit, duplicate_client_ids, read_runs

ENTRY = {"symbol": "BTCUSDT", "side": "BUY", "qty": "0.01", "orderType": "MARKET", "clientId": "la1"}
CLOSE = {"symbol": "BTCUSDT", "side": "SELL", "qty": "0.01", "orderType": "MARKET", "tradeSide": "CLOSE",
         "positionId": "P1", "reduceOnly": True, "clientId": "la2"}


def order(seq: int, body: dict, accepted: bool = True, order_id: str = "O1") -> dict:
    return {"seq": seq, "type": "order_request", "request": body, "clientId": body["clientId"], "accepted": accepted,
            "orderId": order_id if accepted else None}


def fill(seq: int, order_id: str, side: str, fee: str, pnl: str, position: str = "P1") -> dict:
    return {"seq": seq, "type": "fill", "orderId": order_id, "positionId": position, "side": side, "qty": "0.01",
            "fee": fee, "realizedPNL": pnl}


LEDGER = [order(1, ENTRY, order_id="O1"), fill(2, "O1", "BUY", "0.5", "0"),
          order(3, CLOSE, order_id="O2"), fill(4, "O2", "SELL", "0.5", "3")]
ACCOUNT = {"balance": "10002", "startingBalance": "10000", "positions": [], "openOrders": []}
ROW = {"trade_id": "P1", "qty": "0.01", "pnl": "2"}
EVENTS = [{"event": "ExecutionFill", "order_id": "O1", "position_id": "P1"},
          {"event": "ExecutionExit", "position_id": "P1", "trade_id": "P1"}]


def test_a_clean_round_trip_passes() -> None:
    result = audit(LEDGER, ACCOUNT, RunRecords([ROW], EVENTS, 1))
    assert result.ok, result.problems()
    assert (result.orders_accepted, result.fills, result.unexplained) == (2, 2, 0)


def test_a_clientid_reused_for_another_order_is_a_duplicate_but_a_same_body_retry_is_not() -> None:
    retry = order(5, ENTRY, accepted=False)
    assert duplicate_client_ids([order(1, ENTRY), retry]) == []
    reused = order(5, {**CLOSE, "clientId": "la1"}, accepted=False)
    assert duplicate_client_ids([order(1, ENTRY), reused]) == ["la1"]
    assert duplicate_client_ids([order(1, ENTRY), order(2, ENTRY)]) == ["la1"], "accepted twice"
    assert duplicate_client_ids([order(1, ENTRY), order(2, {**ENTRY, "qty": "0.010"}, accepted=False)]) == []


def test_fills_missing_from_trades_or_journal_are_unbooked() -> None:
    no_row = audit(LEDGER, ACCOUNT, RunRecords([], EVENTS, 1))
    assert no_row.unbooked_in_trades == ["P1"] and no_row.unbooked_fills == 2
    assert "unexplained" in " ".join(no_row.problems())
    no_events = audit(LEDGER, ACCOUNT, RunRecords([ROW], [], 1))
    assert no_events.unbooked_fills == 2 and not no_events.ok
    entry_only = audit(LEDGER, ACCOUNT, RunRecords([ROW], EVENTS[:1], 1))
    assert entry_only.unbooked_in_events == ["P1/order O2"]


def test_double_booking_wrong_qty_open_positions_and_unexplained_equity_fail() -> None:
    twice = audit(LEDGER, ACCOUNT, RunRecords([ROW, ROW], EVENTS, 2))
    assert twice.double_booked == ["P1"] and twice.unexplained == Decimal(-2)
    second_entry = [*LEDGER[:2], fill(5, "O3", "BUY", "0.5", "0")]
    assert audit(second_entry, ACCOUNT, RunRecords([ROW], EVENTS, 1)).double_booked
    left_open = audit(LEDGER, {**ACCOUNT, "positions": [{}], "openOrders": [{}]}, RunRecords([ROW], EVENTS, 1))
    assert (left_open.open_positions, left_open.open_orders) == (1, 1) and not left_open.ok
    drift = audit(LEDGER, {**ACCOUNT, "balance": "10001"}, RunRecords([ROW], EVENTS, 1))
    assert drift.unexplained == Decimal(-1) and not drift.ok


def test_read_runs_reads_every_run_once_and_survives_a_torn_line(tmp_path: Path) -> None:
    for name, lines in (("r1", '{"event":"ExecutionFill","order_id":"O1"}\n{"event":"Exe'), ("r2", "")):
        run = tmp_path / "runs" / name
        run.mkdir(parents=True)
        (run / "events.jsonl").write_text(lines)
        (run / "trades.csv").write_text("trade_id,qty,pnl\nP1,0.01,2\n" if name == "r2" else "trade_id,qty,pnl\n")
    (tmp_path / "runs" / "latest").symlink_to(tmp_path / "runs" / "r2")
    records = read_runs(tmp_path)
    assert records.runs == 2 and len(records.trades) == 1 and records.events == [{"event": "ExecutionFill",
                                                                                   "order_id": "O1"}]
