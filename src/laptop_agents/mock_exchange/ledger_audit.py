"""Audit a trading client's records against the mock exchange's ledger (the exchange's truth).

Chaos tests and the kill -9 campaign (``bench/chaos_campaign.py``) ask the same questions after every case,
across every run of that case (a killed run, its restart, ...):

* **duplicate orders**: a ``clientId`` accepted twice, or one ``clientId`` sent for two different orders
  (side, qty, trade side, position or reduce-only differ), i.e. an id reused after a crash; a plain retry
  of the *same* request that meets 30042 is what idempotency is for and is not counted;
* **unbooked fills**: a ledger fill whose position is in no trades.csv row, or in no journal event (an
  entry fill: ExecutionFill/OrderSubmitted by order id or ExecutionFill by position id; any fill of a position
  with an ExecutionExit);
* **double bookings**: one position booked as a trade more than once, or a trade whose quantity is not
  what the exchange filled (an unnoticed second entry);
* **open positions / orders** left on the account;
* **equity explained**: wallet − starting balance must equal the sum of booked trade PnL exactly; anything
  else is an unexplained adjustment.

Pure functions over plain records; :func:`read_runs` reads a workspace's ``runs/*/{trades.csv,events.jsonl}``.
"""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

ORDER_FIELDS = ("symbol", "side", "qty", "tradeSide", "positionId", "reduceOnly", "orderType")
"""The fields of a place_order body that make it "the same order" for the duplicate-clientId check."""


@dataclass
class RunRecords:
    """What a client left in its workspace: trades.csv rows and journal events of every run directory."""

    trades: list[dict[str, str]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    runs: int = 0


def read_runs(*workspaces: Path) -> RunRecords:
    """Every ``runs/<run id>/`` under the workspaces (the ``latest`` link is skipped: no run is read twice)."""
    out = RunRecords()
    for workspace in workspaces:
        runs = workspace / "runs"
        if not runs.is_dir():
            continue
        for run_dir in sorted(p for p in runs.iterdir() if p.is_dir() and not p.is_symlink()):
            out.runs += 1
            trades = run_dir / "trades.csv"
            if trades.exists():
                with trades.open(newline="", encoding="utf-8") as fh:
                    out.trades += [dict(row) for row in csv.DictReader(fh)]
            events = run_dir / "events.jsonl"
            if events.exists():
                for line in events.read_text(encoding="utf-8", errors="replace").splitlines():
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        continue  # a line cut by kill -9
                    if isinstance(rec, dict):
                        out.events.append(rec)
    return out


@dataclass
class AuditResult:
    orders_accepted: int
    fills: int
    duplicate_client_ids: list[str]
    unbooked_in_trades: list[str]
    """Position ids (of ledger fills) with no trades.csv row."""
    unbooked_in_events: list[str]
    """Fill descriptions (position/order ids) no journal event accounts for."""
    double_booked: list[str]
    """Position ids booked more than once, or booked with a quantity the exchange did not fill."""
    open_positions: int
    open_orders: int
    wallet_delta: Decimal
    booked_pnl: Decimal

    @property
    def unexplained(self) -> Decimal:
        return self.wallet_delta - self.booked_pnl

    unbooked_fill_seqs: list[int] = field(default_factory=list)
    """Ledger ``seq`` of every fill missing from trades.csv or from the journal (each fill counted once)."""

    @property
    def unbooked_fills(self) -> int:
        return len(self.unbooked_fill_seqs)

    @property
    def ok(self) -> bool:
        return not self.problems()

    def problems(self) -> list[str]:
        out = []
        if self.duplicate_client_ids:
            out.append(f"clientIds used for more than one order: {self.duplicate_client_ids}")
        if self.unbooked_in_trades:
            out.append(f"fills of positions in no trades.csv row: {self.unbooked_in_trades}")
        if self.unbooked_in_events:
            out.append(f"fills in no journal event: {self.unbooked_in_events}")
        if self.double_booked:
            out.append(f"positions booked twice or with the wrong quantity: {self.double_booked}")
        if self.open_positions or self.open_orders:
            out.append(f"left on the exchange: {self.open_positions} position(s), {self.open_orders} order(s)")
        if self.unexplained:
            out.append(f"equity unexplained: wallet moved {self.wallet_delta}, booked trades sum to "
                       f"{self.booked_pnl} (difference {self.unexplained})")
        return out


def _same_order(a: dict[str, Any], b: dict[str, Any]) -> bool:
    def norm(body: dict[str, Any]) -> tuple[str, ...]:
        out = []
        for k in ORDER_FIELDS:
            v = body.get(k)
            if k == "qty" and v not in (None, ""):
                try:
                    v = Decimal(str(v)).normalize()
                except ArithmeticError:
                    pass
            out.append("" if v is None else str(v).upper())
        return tuple(out)

    return norm(a) == norm(b)


def duplicate_client_ids(order_requests: list[dict[str, Any]]) -> list[str]:
    """clientIds accepted twice, or sent with two different order bodies (ledger ``order_request`` records)."""
    accepted = Counter(r["clientId"] for r in order_requests if r.get("accepted") and r.get("clientId"))
    bad = {cid for cid, n in accepted.items() if n > 1}
    first: dict[str, dict[str, Any]] = {}
    for r in order_requests:
        cid = r.get("clientId")
        body = r.get("request")
        if not cid or not isinstance(body, dict):
            continue
        if cid in first and not _same_order(first[cid], body):
            bad.add(cid)
        first.setdefault(cid, body)
    return sorted(bad)


def _ids(events: list[dict[str, Any]], names: set[str], *keys: str) -> set[str]:
    return {str(e[k]) for e in events if e.get("event") in names for k in keys if e.get(k) not in (None, "")}


def audit(ledger_events: list[dict[str, Any]], account: dict[str, Any], records: RunRecords) -> AuditResult:
    """Check ``records`` (every run of one account) against the ledger records and final account summary."""
    orders = [r for r in ledger_events if r.get("type") == "order_request"]
    fills = [r for r in ledger_events if r.get("type") == "fill"]
    by_position: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for f in fills:
        by_position[str(f.get("positionId") or f"order-{f['orderId']}")].append(f)

    trade_ids = Counter(row.get("trade_id", "") for row in records.trades)
    rows_by_id = {row.get("trade_id", ""): row for row in records.trades}
    ev = records.events
    entry_order_ids = _ids(ev, {"ExecutionFill", "OrderSubmitted"}, "order_id")
    entry_position_ids = _ids(ev, {"ExecutionFill"}, "position_id")
    exit_position_ids = _ids(ev, {"ExecutionExit"}, "position_id", "trade_id")

    unbooked_trades: list[str] = []
    unbooked_events: list[str] = []
    missing: set[int] = set()
    double: list[str] = []
    for pid, pfills in by_position.items():
        aliases = {pid} | {f"order-{f['orderId']}" for f in pfills}
        booked_as = [a for a in aliases if trade_ids.get(a)]
        if not booked_as:
            unbooked_trades.append(pid)
            missing.update(int(f["seq"]) for f in pfills)
        elif sum(trade_ids[a] for a in booked_as) > 1:
            double.append(pid)
        else:
            row = rows_by_id[booked_as[0]]
            opened = _opening_qty(pfills)
            try:
                if opened and Decimal(row.get("qty") or "0") != opened:
                    double.append(f"{pid} (booked qty {row.get('qty')}, exchange opened {opened})")
            except ArithmeticError:
                double.append(f"{pid} (unreadable qty {row.get('qty')!r})")
        closed = bool(aliases & exit_position_ids)
        opening_side = pfills[0].get("side")
        for f in pfills:
            # an exit fill needs the position's ExecutionExit; an entry fill its ExecutionFill/OrderSubmitted, or
            # the ExecutionExit of a round trip rebuilt from history (it carries the entry's price and fee)
            opening = f.get("side") == opening_side
            if closed or (opening and (str(f["orderId"]) in entry_order_ids or pid in entry_position_ids)):
                continue
            unbooked_events.append(f"{pid}/order {f['orderId']}")
            missing.add(int(f["seq"]))
    booked = sum((Decimal(row.get("pnl") or "0") for row in records.trades), Decimal(0))
    return AuditResult(
        orders_accepted=sum(1 for r in orders if r.get("accepted")),
        fills=len(fills),
        duplicate_client_ids=duplicate_client_ids(orders),
        unbooked_in_trades=sorted(unbooked_trades),
        unbooked_in_events=sorted(unbooked_events),
        double_booked=sorted(double),
        open_positions=len(account.get("positions") or []),
        open_orders=len(account.get("openOrders") or []),
        wallet_delta=Decimal(str(account["balance"])) - Decimal(str(account["startingBalance"])),
        booked_pnl=booked,
        unbooked_fill_seqs=sorted(missing),
    )


def _opening_qty(fills: list[dict[str, Any]]) -> Decimal:
    """The quantity that opened the position: fills on the side of the first fill (one-way mode)."""
    if not fills:
        return Decimal(0)
    first_side = fills[0].get("side")
    return sum((Decimal(str(f["qty"])) for f in fills if f.get("side") == first_side), Decimal(0))
