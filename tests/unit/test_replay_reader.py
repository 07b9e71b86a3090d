"""read_candles' fast path gives exactly what the csv.DictReader reference gave: candles or the same error."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal, InvalidOperation
from itertools import islice
from pathlib import Path

import pytest

from laptop_agents.core.config_models import MockSettings
from laptop_agents.core.models import Candle
from laptop_agents.data.providers.mock import MockBarGenerator
from laptop_agents.data.providers.replay import (
    DataFileError,
    _columns,
    _why,
    parse_time,
    read_candles,
    write_candles,
)


def reference(path: Path, symbol: str = "BTCUSDT") -> Iterator[Candle]:
    """The plain csv.DictReader reading of the documented rules: the oracle for the fast path."""
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        reader.fieldnames = [n.strip().lower() for n in (reader.fieldnames or [])]
        time_col, _, volume_col = _columns(path, list(reader.fieldnames))
        previous: datetime | None = None
        for row in reader:
            line = reader.line_num
            try:
                if row[time_col] is None:
                    raise TypeError
                ts = parse_time(row[time_col])
                volume = Decimal((row[volume_col] if volume_col else "") or "0")
                candle = Candle(ts=ts, open=Decimal(row["open"]), high=Decimal(row["high"]), low=Decimal(row["low"]),
                                close=Decimal(row["close"]), volume=volume, symbol=symbol)
            except (ValueError, TypeError, InvalidOperation, KeyError, OverflowError, OSError) as exc:
                raise DataFileError(f"replay file {path} line {line}: {_why(exc)}") from None
            if previous is not None and ts <= previous:
                raise DataFileError(
                    f"replay file {path} line {line}: time {ts.isoformat()} is not after the previous row; "
                    "the file must be sorted by time without duplicates"
                )
            previous = ts
            yield candle


def outcome(gen: Iterator[Candle]) -> tuple[list[tuple[object, ...]], str | None]:
    out: list[tuple[object, ...]] = []
    try:
        for c in gen:
            out.append((c.ts, c.ts.tzinfo, c.open, c.high, c.low, c.close, c.volume, c.symbol,
                        str(c.open), str(c.volume)))
    except DataFileError as exc:
        return out, str(exc)
    return out, None


HEAD = "ts,open,high,low,close,volume\n"
GOOD = "2026-01-01T00:00:00Z,1,2,0.5,1.5,1\n"
CASES = {
    "good": HEAD + GOOD + "2026-01-01T00:01:00Z,1.5,2,1,1.2,\n",
    "blank_lines": HEAD + "\n" + GOOD + "\n\n" + "2026-01-01T00:01:00Z,1.5,2,1,1.2,3\n",
    "offset_and_naive": HEAD + "2026-01-01T01:00:00+01:00,1,2,0.5,1.5,1\n2026-01-01T00:01:00,1,2,0.5,1.5,1\n"
                        "2026-01-01T00:02:00.250Z,1,2,0.5,1.5,1\n2026-01-01T00:03:00+00:00,1,2,0.5,1.5,1\n",
    "short_row": HEAD + GOOD + "2026-01-01T00:01:00Z,1,2,0.5,1.5\n",
    "short_row_no_close": HEAD + GOOD + "2026-01-01T00:01:00Z,1,2,0.5\n",
    "long_row": HEAD + "2026-01-01T00:00:00Z,1,2,0.5,1.5,1,extra,more\n",
    "bad_number": HEAD + GOOD + "2026-01-01T00:01:00Z,1,x,0.5,1,1\n",
    "bad_time": HEAD + "2026-13-01T00:00:00Z,1,2,0.5,1.5,1\n",
    "lower_z": HEAD + "2026-01-01T00:00:00z,1,2,0.5,1.5,1\n",
    "inconsistent": HEAD + "2026-01-01T00:00:00Z,1,2,0.5,2.5,1\n",
    "unsorted": HEAD + "2026-01-01T00:01:00Z,1,2,0.5,1.5,1\n" + GOOD,
    "duplicate": HEAD + GOOD + GOOD,
    "dup_header": "ts,open,high,low,close,volume,close\n2026-01-01T00:00:00Z,1,2,0.5,1.5,1,1.9\n",
    "reordered": "volume,close,low,high,open,ts,x\n1,1.5,0.5,2,1,2026-01-01T00:00:00Z,y\n",
    "spaces": HEAD + "2026-01-01T00:00:00Z, 1 ,2,0.5,1.5,1\n",
    "quoted": HEAD + '"2026-01-01T00:00:00Z","1","2","0.5","1.5","1_0"\n',
    "unknown_columns": "a,b\n1,2\n",
    "empty": "",
    "blank_first_line": "\n" + HEAD + GOOD,
    "bitunix": "time,open,high,low,close,quoteVol,baseVol,type\n1767225600000,1,2,0.5,1.5,9,1,LAST\n"
               "1767225660000,1.5,2,1,1.2,9,,LAST\n",
    "bitunix_bad": "time,open,high,low,close,quoteVol,baseVol\n1767225600000.5,1,2,0.5,1.5,9,1\n",
    "bitunix_short": "time,open,high,low,close,quoteVol,baseVol\n1767225600000,1,2,0.5,1.5,9\n",
    # the usual names and time formats (issue 16)
    "timestamp_ms": "timestamp,open,high,low,close,volume\n1767225600000,1,2,0.5,1.5,1\n1767225660000,1,2,0.5,1.5,1\n",
    "ts_epoch_s": HEAD + "1767225600,1,2,0.5,1.5,1\n1767225660,1,2,0.5,1.5,1\n1767225720.5,1,2,0.5,1.5,1\n",
    "ts_epoch_us_ns": HEAD + "1767225600000000,1,2,0.5,1.5,1\n1767225660000000000,1,2,0.5,1.5,1\n",
    "mixed_units": HEAD + "1767225600000,1,2,0.5,1.5,1\n1767225660,1,2,0.5,1.5,1\n",
    "date_daily": "Date,Open,High,Low,Close,Volume\n2026-01-01,1,2,0.5,1.5,1\n2026-01-02,1,2,0.5,1.5,1\n",
    "date_basic": "date,open,high,low,close\n20260101,1,2,0.5,1.5\n20260102,1,2,0.5,1.5\n",
    "open_time_binance": "open_time,open,high,low,close,volume,close_time\n1767225600000,1,2,0.5,1.5,1,1767225659999\n",
    "time_iso_space": "time,open,high,low,close,vol\n2026-01-01 00:00:00,1,2,0.5,1.5,1\n2026-01-01 00:01:00+00:00,1,2,0.5,1.5,1\n",
    "datetime_no_volume": "datetime,open,high,low,close\n2026-01-01T00:00:00Z,1,2,0.5,1.5\n",
    "bom_upper": "\ufeffTS,OPEN,HIGH,LOW,CLOSE,VOLUME\n2026-01-01T00:00:00Z,1,2,0.5,1.5,1\n",
    "row_counter_time": "time,open,high,low,close\n1,1,2,0.5,1.5\n2,1,2,0.5,1.5\n",
    "garbage_time": HEAD + "yesterday,1,2,0.5,1.5,1\n",
    "missing_close": "ts,open,high,low,volume\n2026-01-01T00:00:00Z,1,2,0.5,1\n",
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_as_dictreader(tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.csv"
    path.write_text(CASES[name], encoding="utf-8")
    assert outcome(read_candles(path)) == outcome(reference(path))


def test_mock_file_round_trip(tmp_path: Path) -> None:
    bars = list(islice(MockBarGenerator(MockSettings(seed=5)), 3000))
    path = tmp_path / "bars.csv"
    write_candles(path, bars)
    assert list(read_candles(path)) == bars
    assert outcome(read_candles(path, symbol="ETHUSDT")) == outcome(reference(path, symbol="ETHUSDT"))


@pytest.mark.parametrize(("text", "expected"), [
    ("1767225600", "2026-01-01T00:00:00+00:00"), ("1767225600000", "2026-01-01T00:00:00+00:00"),
    ("1767225600123", "2026-01-01T00:00:00.123000+00:00"), ("1767225600000000", "2026-01-01T00:00:00+00:00"),
    ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00+00:00"), ("2026-01-01", "2026-01-01T00:00:00+00:00"),
    ("2026-01-01 01:00:00+01:00", "2026-01-01T00:00:00+00:00"), ("20260101", "2026-01-01T00:00:00+00:00"),
])
def test_time_formats(text: str, expected: str) -> None:
    assert parse_time(text).isoformat() == expected


def test_the_issue_file_epoch_ms_under_timestamp_and_clear_errors(tmp_path: Path) -> None:
    """Epoch ms under `timestamp` used to fail with "day is out of range for month"."""
    bars = list(islice(MockBarGenerator(MockSettings(seed=5)), 50))
    path = tmp_path / "ms.csv"
    path.write_text("timestamp,open,high,low,close,volume\n" + "".join(
        f"{int(b.ts.timestamp() * 1000)},{b.open},{b.high},{b.low},{b.close},{b.volume}\n" for b in bars))
    assert list(read_candles(path)) == bars
    for name, needle in (("row_counter_time", "not a plausible epoch time"), ("garbage_time", "neither ISO 8601"),
                         ("unknown_columns", "missing a time column"), ("missing_close", "missing close")):
        bad = tmp_path / f"{name}.csv"
        bad.write_text(CASES[name], encoding="utf-8")
        with pytest.raises(DataFileError) as err:
            list(read_candles(bad))
        assert needle in str(err.value) and "\n" not in str(err.value)
