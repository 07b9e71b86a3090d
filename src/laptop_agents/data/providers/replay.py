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
from datetime import UTC, datetime
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
        reader = csv.reader(fh)
        fieldnames: list[str] = next(reader, None) or []
        header = set(fieldnames)
        if set(OUR_COLUMNS) <= header:
            shape = "ours"
            time_col, volume_col = "ts", "volume"
        elif BITUNIX_COLUMNS <= header:
            shape = "bitunix"
            time_col, volume_col = "time", "baseVol"
        else:
            raise DataFileError(
                f"replay file {path}: unknown columns {sorted(header)}; expected {','.join(OUR_COLUMNS)} "
                "or Bitunix kline columns time,open,high,low,close,quoteVol,baseVol"
            )
        # column positions; with a repeated name the last one wins, as with csv.DictReader
        pos = {name: i for i, name in enumerate(fieldnames)}
        width = len(fieldnames)
        it, io, ih, il, ic, iv = (pos[c] for c in (time_col, "open", "high", "low", "close", volume_col))
        ours = shape == "ours"
        utc = UTC
        fromiso, fromts = datetime.fromisoformat, datetime.fromtimestamp
        previous: datetime | None = None
        for row in reader:
            if not row:  # a blank line: DictReader skips it too
                continue
            candle = None
            if len(row) == width:
                # fast path for a well-formed row; any doubt goes to the reference parsing below
                try:
                    if ours:  # parse_utc, minus its no-op astimezone for a UTC time
                        ts = fromiso(row[it].replace("Z", "+00:00"))
                        if ts.tzinfo is not utc:
                            raise ValueError
                    else:
                        ts = fromts(int(row[it]) / 1000, tz=utc)
                    candle = Candle(ts, Decimal(row[io]), Decimal(row[ih]), Decimal(row[il]), Decimal(row[ic]),
                                    Decimal(row[iv] or "0"), symbol)
                except (ValueError, TypeError, InvalidOperation, KeyError):
                    candle = None
            if candle is None:
                candle = _parse_row(path, reader.line_num, _as_dict(fieldnames, row), shape, symbol)
                ts = candle.ts
            if previous is not None and ts <= previous:
                raise DataFileError(
                    f"replay file {path} line {reader.line_num}: time {ts.isoformat()} is not after the previous row; "
                    "the file must be sorted by time without duplicates"
                )
            previous = ts
            yield candle


def _as_dict(fieldnames: list[str], row: list[str]) -> dict[str | None, object]:
    """The row as csv.DictReader gives it (missing fields None, extras under None)."""
    d: dict[str | None, object] = dict(zip(fieldnames, row))
    if len(fieldnames) < len(row):
        d[None] = row[len(fieldnames):]
    elif len(fieldnames) > len(row):
        for key in fieldnames[len(row):]:
            d[key] = None
    return d


def _parse_row(path: Path, line: int, row: dict, shape: str, symbol: str) -> Candle:  # type: ignore[type-arg]
    """The reference parsing of one row, with the error message that names the line."""
    try:
        if shape == "ours":
            ts = parse_utc(row["ts"])
            volume = Decimal(row["volume"] or "0")
        else:
            ts = datetime.fromtimestamp(int(row["time"]) / 1000, tz=UTC)
            volume = Decimal(row["baseVol"] or "0")
        return Candle(ts=ts, open=Decimal(row["open"]), high=Decimal(row["high"]), low=Decimal(row["low"]),
                      close=Decimal(row["close"]), volume=volume, symbol=symbol)
    except (ValueError, TypeError, InvalidOperation, KeyError) as exc:
        raise DataFileError(f"replay file {path} line {line}: {exc}") from None


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
