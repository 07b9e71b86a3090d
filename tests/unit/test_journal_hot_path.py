"""Hot-path details that must not change behaviour: journal flushing, snapshot reuse."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from laptop_agents.core.config_models import PaperSettings
from laptop_agents.core.events import Event, EventName, new_event
from laptop_agents.core.orchestrator import EventJournal, read_events
from laptop_agents.paper.broker import PaperBroker
from tests.unit.helpers import T0


def test_money_events_reach_the_file_before_any_flush(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    journal = EventJournal(path)
    journal(Event(EventName.CANDLE_PROCESSED, T0, symbol="BTCUSDT", close=Decimal("1.5")))
    assert path.read_text() == ""  # candle lines are buffered (the session flushes after each candle)
    journal(Event(EventName.EXECUTION_FILL, T0, order_id="O1", price=Decimal("100.5")))
    lines = path.read_text().splitlines()  # a crash now would not lose the fill
    assert [json.loads(x)["event"] for x in lines] == ["CandleProcessed", "ExecutionFill"]
    journal.close()
    assert [e["event"] for e in read_events(path)] == ["CandleProcessed", "ExecutionFill"]
    assert journal.counts == {"CandleProcessed": 1, "ExecutionFill": 1}


def test_trades_only_journal_counts_but_skips_candles(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    journal = EventJournal(path, candle_events=False)
    journal(new_event(EventName.CANDLE_PROCESSED, T0, {"symbol": "BTCUSDT"}))
    journal(Event(EventName.SIGNAL_GENERATED, T0, signal="LONG"))
    journal.close()
    assert [e["event"] for e in read_events(path)] == ["SignalGenerated"]
    assert journal.counts == {"CandleProcessed": 1, "SignalGenerated": 1}


def test_new_event_is_event_with_keywords() -> None:
    a = new_event(EventName.CANDLE_PROCESSED, T0, {"symbol": "X", "close": Decimal(2)})
    b = Event(EventName.CANDLE_PROCESSED, T0, symbol="X", close=Decimal(2))
    assert type(a) is Event and (a.name, a.timestamp, a.data) == (b.name, b.timestamp, b.data)
    assert a.to_record() == b.to_record() and repr(a) == repr(b)


def test_snapshot_is_reused_only_while_nothing_changed() -> None:
    broker = PaperBroker(PaperSettings())
    first = broker.snapshot()
    assert broker.snapshot() is first
    broker.ledger.cash -= Decimal("1.25")  # any booking that moves equity
    after = broker.snapshot()
    assert after is not first and after.equity == broker.cash and after.position is None
    assert broker.snapshot() is after
