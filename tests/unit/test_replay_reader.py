"""read_candles' fast path gives exactly what the csv.DictReader reference gave: candles or the same error."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from itertools import islice
from pathlib import Path

import pytest

from laptop_agents.core.config_models import MockSettings
from laptop_agents.core.models import Candle, parse_utc
from laptop_agents.data.providers.mock import MockBarGenerator
from laptop_agents.data.providers.replay import (
    DataFileError,
    read_candles,
    write_candles,
)

OUR_COLUMNS = ["ts", "open", "high", "low", "close", "volume"]
BITUNIX_COLUMNS = {"time", "open", "high", "low", "close", "baseVol"}


def reference(path: Path, symbol: str = "BTCUSDT") -> Iterator[Candle]:
    """The DictReader implementation the fast reader replaced (kept verbatim as the oracle)."""
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = set(reader.fieldnames or [])
        if set(OUR_COLUMNS) <= header:
            shape = "ours"
        elif BITUNIX_COLUMNS <= header:
            shape = "bitunix"
        else:
            raise DataFileError(
                f"replay file {path}: unknown columns {sorted(header)}; expected {','.join(OUR_COLUMNS)} "
                "or Bitunix kline columns time,open,high,low,close,quoteVol,baseVol"
            )
        previous: datetime | None = None
        for row in reader:
            line = reader.line_num
            try:
                if shape == "ours":
                    ts = parse_utc(row["ts"])
                    volume = Decimal(row["volume"] or "0")
                else:
                    ts = datetime.fromtimestamp(int(row["time"]) / 1000, tz=UTC)
                    volume = Decimal(row["baseVol"] or "0")
                candle = Candle(ts=ts, open=Decimal(row["open"]), high=Decimal(row["high"]), low=Decimal(row["low"]),
                                close=Decimal(row["close"]), volume=volume, symbol=symbol)
            except (ValueError, TypeError, InvalidOperation, KeyError) as exc:
                raise DataFileError(f"replay file {path} line {line}: {exc}") from None
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
