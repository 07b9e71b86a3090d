"""Historical candles from a CSV file, streamed (a million rows never sit in memory at once).

Two shapes are read, told apart by the header:
  ts,open,high,low,close,volume                         ours (ts: ISO 8601 UTC), what `la data fetch` writes
  time,open,high,low,close,quoteVol,baseVol[,type]      Bitunix kline fields (time: ms since epoch)
Rows must be in time order without duplicates; a bad row stops the replay with
its line number, never a silent skip.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path

from laptop_agents.core.errors import ExitCode, LaError
from laptop_agents.core.models import Candle, parse_utc

OUR_COLUMNS = ["ts", "open", "high", "low", "close", "volume"]
BITUNIX_COLUMNS = {"time", "open", "high", "low", "close", "baseVol"}


class DataFileError(LaError):
    exit_code = ExitCode.USAGE


def read_candles(path: Path, symbol: str = "BTCUSDT") -> Iterator[Candle]:
    """Yield candles from `path`, validating shape, numbers, OHLC consistency and order."""
    try:
        fh = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise DataFileError(f"cannot read replay file {path}: {exc.strerror}") from None
    with fh:
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
                    ts = datetime.fromtimestamp(int(row["time"]) / 1000, tz=timezone.utc)
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


def write_candles(path: Path, candles: Iterator[Candle] | list[Candle]) -> int:
    """Write candles in our CSV shape; returns the row count."""
    n = 0
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(OUR_COLUMNS)
        for c in candles:
            writer.writerow([c.ts.isoformat().replace("+00:00", "Z"), c.open, c.high, c.low, c.close, c.volume])
            n += 1
    return n
