"""The shared account ledger (core/ledger.py): balanced by construction, and the formats it writes unchanged.

The golden files were written by the code before the ledger existed (PaperBroker's and BitunixBroker's own
bookkeeping): the state files and the journal's fill/exit records must stay byte-identical, so files written by
earlier versions load and nothing reading events.jsonl notices the move.
"""

from __future__ import annotations

import ast
import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from laptop_agents.core.config_models import PaperSettings
from laptop_agents.core.ledger import Ledger, LedgerError, money
from laptop_agents.core.models import OrderIntent, Position, Side, Trade
from laptop_agents.core.state import render_state
from laptop_agents.core.state_schema import check_live_state
from laptop_agents.execution.bitunix_broker import BitunixBroker, ReconcileError
from laptop_agents.paper.broker import PaperBroker
from tests.unit.helpers import T0, candle, flat

D = Decimal
GOLDEN = Path(__file__).parent / "golden"
SRC = Path(__file__).resolve().parents[2] / "src" / "laptop_agents"
SETTINGS = PaperSettings(starting_equity=D("10000"), maker_fee_bps=D("2"), taker_fee_bps=D("6"), slippage_bps=D("1"))


def test_paper_state_file_and_fill_exit_records_are_byte_identical_to_the_pre_ledger_format() -> None:
    b = PaperBroker(SETTINGS)
    events = b.submit(OrderIntent(Side.LONG, D("0.1"), D("99000"), D("101000"), D("100000")), flat(0, "100000"), T0)
    events += b.on_candle(candle(1, "100100", "101500", "100050", "101200"), T0 + timedelta(minutes=1))[0]
    events += b.submit(OrderIntent(Side.SHORT, D("0.05"), D("102000"), D("98000"), D("101000")), flat(2, "101000.05"),
                       T0 + timedelta(minutes=2))
    events += b.close_all("session_end", T0 + timedelta(minutes=3))[0]
    events += b.submit(OrderIntent(Side.LONG, D("0.2"), D("99500"), D("103000"), D("101000")), flat(3, "100999"),
                       T0 + timedelta(minutes=4))
    b.on_candle(candle(4, "101000", "101100", "100900", "101050"), T0 + timedelta(minutes=5))
    text = render_state(b.to_state())
    records = "".join(json.dumps(e.to_record()) + "\n" for e in events)
    assert text + records == (GOLDEN / "paper_books.txt").read_text()
    restored = PaperBroker.from_state(SETTINGS, json.loads(text))
    assert render_state(restored.to_state()) == text


def test_live_state_written_before_the_ledger_loads_and_is_written_back_byte_identical() -> None:
    text = (GOLDEN / "live_state.json").read_text()
    data = json.loads(text)
    check_live_state(data)
    broker = BitunixBroker(cast(Any, None))
    broker.restore(data)
    broker.verify_accounting()
    assert render_state(broker.to_state()) == text
    assert broker.adjustments == D("-0.125") and broker.position is not None and len(broker.trades) == 2


def test_older_live_state_without_adjustments_loads_with_none_and_a_broken_one_is_refused() -> None:
    data = json.loads((GOLDEN / "live_state.json").read_text())
    for key in ("adjustments", "booked_fills", "exchange_seen_at"):
        del data[key]
    data["equity"] = str(D(data["equity"]) + D("0.125"))  # no adjustment booked: equity without it
    broker = BitunixBroker(cast(Any, None))
    broker.restore(data)
    broker.verify_accounting()
    assert broker.to_state()["adjustments"] == "0"
    data["positions"] = data["positions"] * 2
    with pytest.raises(ReconcileError, match="more than one open position"):
        BitunixBroker(cast(Any, None)).restore(data)


AMOUNT = st.decimals(min_value=D("-500"), max_value=D("500"), places=8, allow_nan=False, allow_infinity=False)
FEE = st.decimals(min_value=D("-1"), max_value=D("20"), places=8, allow_nan=False, allow_infinity=False)
STEP = st.one_of(
    st.tuples(st.just("open"), FEE, FEE),
    st.tuples(st.just("close"), AMOUNT, FEE),
    st.tuples(st.just("round_trip"), AMOUNT, FEE),
    st.tuples(st.just("refund"), FEE, FEE),
    st.tuples(st.just("wallet"), AMOUNT, FEE),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(STEP, max_size=25))
def test_every_booking_keeps_equity_equal_to_start_plus_trade_pnl_exactly(steps: list[tuple[Any, ...]]) -> None:
    """Whatever the order of entries, exits, whole round trips, refunds and wallet adoptions (exchange fees may be
    rebates, amounts at 1e-8), the invariant holds to the last digit and the books survive a state round trip."""
    ledger = Ledger(D("1000.00000000"), wallet_adjustments=True)
    for n, (kind, a, b) in enumerate(steps, start=1):
        pos = ledger.position
        if kind == "open" and pos is None:
            ledger.open(Position(f"P{n}", Side.LONG, D("0.01"), D("100000"), T0, a, D("99000"), D("101000")))
        elif kind == "close" and pos is not None:
            ledger.close(pos, trade_id=f"T{n}", exit_ts=T0, exit_price=D("100100"), gross_pnl=a, exit_fee=b,
                         reason="stop_loss")
        elif kind == "round_trip":
            ledger.book_round_trip(Trade(f"R{n}", Side.SHORT, D("0.02"), T0, T0, D("1"), D("1"), a, b, a - b, "x"))
        elif kind == "refund" and pos is not None:  # another path booked the round trip (fee in its pnl) first
            ledger.book_round_trip(Trade(f"B{n}", pos.side, pos.qty, T0, T0, D("1"), D("1"), a, pos.entry_fee,
                                         a - pos.entry_fee, "exchange_while_down"))
            ledger.refund_entry_fee(pos)
        elif kind == "wallet":
            ledger.adopt_wallet(ledger.cash + a + b / 3)  # an odd amount: rounded to 1e-8 as it enters
        ledger.verify()
        assert ledger.cash == money(ledger.cash)
    again = Ledger.from_state(json.loads(json.dumps(ledger.to_state())), wallet_adjustments=True)
    assert again.to_state() == ledger.to_state()
    again.verify()


def test_a_paper_ledger_has_no_wallet_and_a_wrong_equity_is_named() -> None:
    ledger = Ledger(D("100"))
    with pytest.raises(LedgerError, match="no wallet"):
        ledger.adopt_wallet(D("101"))
    assert "adjustments" not in ledger.to_state()
    ledger.cash += D("0.00000001")
    with pytest.raises(LedgerError, match=r"equity 100.00000001 disagrees with trades \(expected 100\)"):
        ledger.verify()
    data = PaperBroker(SETTINGS).to_state()
    data["equity"] = "10000.5"
    with pytest.raises(ValueError, match="equity"):
        PaperBroker.from_state(SETTINGS, data)


def test_the_live_broker_parts_borrow_nothing_from_the_paper_broker() -> None:
    """Bookkeeping is shared through core/ledger.py, never borrowed from PaperBroker's module."""
    parts = sorted((SRC / "execution").glob("bitunix_*.py"))
    assert len(parts) >= 2
    for path in parts:
        tree = ast.parse(path.read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not {m for m in imported if m.startswith("laptop_agents.paper")}, path.name
