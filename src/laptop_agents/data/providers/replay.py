"""Historical candles from a CSV file, streamed (a million rows never sit in memory at once).

The header names the columns, in any order and any letter case (a UTF-8 BOM is ignored):
  time      the first of: ts, timestamp, open_time, datetime, date, time
  prices    open, high, low, close
  volume    the first of: volume, basevol, vol (optional: 0 without one)
So our own shape (ts,open,high,low,close,volume; what `la data fetch` writes), Bitunix kline
fields (time,open,high,low,close,quoteVol,baseVol) and the usual exchange/pandas exports are read.
Times: ISO 8601 (`Z`, an offset, or none = UTC; a date alone is midnight UTC) or epoch seconds,
milliseconds, microseconds or nanoseconds, told apart by magnitude (only dates after 2001 are
plausible, so a row counter in a "time" column is refused rather than replayed as 1970).
Rows must be in time order without duplicates; a bad row stops the replay with its line number
and what is wrong, never a silent skip.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from laptop_agents.core.errors import ExitCode, LaError
from laptop_agents.core.models import Candle, parse_utc

OUR_COLUMNS = ["ts", "open", "high", "low", "close", "volume"]
TIME_COLUMNS = ("ts", "timestamp", "open_time", "datetime", "date", "time")
PRICE_COLUMNS = ("open", "high", "low", "close")
VOLUME_COLUMNS = ("volume", "basevol", "vol")
# epoch units by magnitude: (lowest plausible value = 2001-09-09, divisor to seconds)
_EPOCH_UNITS = ((10**9, 1), (10**12, 10**3), (10**15, 10**6), (10**18, 10**9))
_NUMBER = re.compile(r"^\s*\d+(\.\d+)?\s*$")


class DataFileError(LaError):
    exit_code = ExitCode.USAGE


def _epoch_unit(value: float) -> int | None:
    """The divisor to seconds for an epoch value (s, ms, us, ns), or None if no unit gives a date in 2001..2286."""
    for low, div in _EPOCH_UNITS:
        if low <= value < low * 100:
            return div
    return None


def parse_time(text: str) -> datetime:
    """One time value as an aware UTC datetime: ISO 8601, or epoch s/ms/us/ns; ValueError says what is wrong."""
    t = text.strip()
    if _NUMBER.match(t):
        if len(t) == 8 and t.isdigit():  # 20260101: an ISO basic date, not an epoch
            return parse_utc(t)
        value = float(t) if "." in t else int(t)
        div = _epoch_unit(value)
        if div is None:
            raise ValueError(f"time {t!r} is not a plausible epoch time (seconds, milliseconds, microseconds or "
                             "nanoseconds since 1970, after 2001)")
        return datetime.fromtimestamp(value / div, tz=UTC)
    try:
        return parse_utc(t)
    except ValueError as exc:
        raise ValueError(f"time {t!r} is neither ISO 8601 (2026-01-01T00:00:00Z) nor an epoch number: {exc}") from None


def _columns(path: Path, fieldnames: list[str]) -> tuple[str, tuple[str, ...], str | None]:
    """Pick the time, price and volume columns by name (case-insensitive); one clear error otherwise."""
    names = {n.strip().lower() for n in fieldnames}
    time_col = next((c for c in TIME_COLUMNS if c in names), None)
    missing = [c for c in PRICE_COLUMNS if c not in names]
    if time_col is None or missing:
        need = [] if time_col else [f"a time column ({', '.join(TIME_COLUMNS)})"]
        raise DataFileError(
            f"replay file {path}: {'columns' if len(missing) < len(PRICE_COLUMNS) else 'unknown columns'} "
            f"{sorted(n for n in names if n)}; missing "
            f"{' and '.join(need + ([', '.join(missing)] if missing else []))}: a replay CSV needs a time column and "
            "open,high,low,close (volume optional), e.g. ts,open,high,low,close,volume"
        )
    volume_col = next((c for c in VOLUME_COLUMNS if c in names), None)
    return time_col, PRICE_COLUMNS, volume_col


def _epoch_parser(sample: str) -> Callable[[str], datetime] | None:
    """An epoch parser specialised on the file's first time value, or None when that value is not an epoch number.

    It raises ValueError on any value of another magnitude, so parse_time (the reference) decides those.
    """
    if not _NUMBER.match(sample) or (len(sample.strip()) == 8 and sample.strip().isdigit()):
        return None
    div = _epoch_unit(float(sample))
    if div is None:
        return None
    low, high = next((lo, lo * 100) for lo, d in _EPOCH_UNITS if d == div)
    fromts, utc = datetime.fromtimestamp, UTC

    def epoch(text: str) -> datetime:
        value = int(text)
        if not low <= value < high:
            raise ValueError
        return fromts(value / div, tz=utc)

    return epoch


def read_candles(path: Path, symbol: str = "BTCUSDT") -> Iterator[Candle]:
    """Yield candles from `path`, validating shape, numbers, OHLC consistency and order."""
    try:
        fh = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise DataFileError(f"cannot read replay file {path}: {exc.strerror}") from None
    with fh:
        reader = csv.reader(fh)
        fieldnames: list[str] = next(reader, [])
        time_col, prices, volume_col = _columns(path, fieldnames)
        # column positions; with a repeated name the last one wins, as with csv.DictReader
        pos = {name.strip().lower(): i for i, name in enumerate(fieldnames)}
        width = len(fieldnames)
        it, io, ih, il, ic = (pos[c] for c in (time_col, *prices))
        iv = pos[volume_col] if volume_col is not None else None
        keys = [n.strip().lower() for n in fieldnames]
        utc, zero = UTC, Decimal(0)
        fromiso = datetime.fromisoformat
        epoch: Callable[[str], datetime] | None = None
        decided = False
        previous: datetime | None = None
        for row in reader:
            if not row:  # a blank line: DictReader skips it too
                continue
            candle = None
            if len(row) == width:
                # fast path for a well-formed row; any doubt goes to the reference parsing below
                try:
                    if not decided:  # the first row's time says ISO text or epoch numbers (and their unit)
                        epoch, decided = _epoch_parser(row[it]), True
                    if epoch is None:  # parse_utc, minus its no-op astimezone for a UTC time
                        ts = fromiso(row[it].replace("Z", "+00:00"))
                        if ts.tzinfo is not utc:
                            raise ValueError
                    else:
                        ts = epoch(row[it])
                    candle = Candle(ts, Decimal(row[io]), Decimal(row[ih]), Decimal(row[il]), Decimal(row[ic]),
                                    zero if iv is None else Decimal(row[iv] or "0"), symbol)
                except (ValueError, TypeError, InvalidOperation, KeyError, OverflowError, OSError):
                    candle = None
            if candle is None:
                candle = _parse_row(path, reader.line_num, _as_dict(keys, row), time_col, volume_col, symbol)
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
    d: dict[str | None, object] = dict(zip(fieldnames, row, strict=False))  # a short or long row: below
    if len(fieldnames) < len(row):
        d[None] = row[len(fieldnames):]
    elif len(fieldnames) > len(row):
        for key in fieldnames[len(row):]:
            d[key] = None
    return d


def _parse_row(path: Path, line: int, row: dict, time_col: str, volume_col: str | None,  # type: ignore[type-arg]
               symbol: str) -> Candle:
    """The reference parsing of one row, with the error message that names the line."""
    try:
        raw = row[time_col]
        if raw is None:
            raise TypeError
        ts = parse_time(raw)
        volume = Decimal((row[volume_col] if volume_col is not None else "") or "0")
        return Candle(ts=ts, open=Decimal(row["open"]), high=Decimal(row["high"]), low=Decimal(row["low"]),
                      close=Decimal(row["close"]), volume=volume, symbol=symbol)
    except (ValueError, TypeError, InvalidOperation, KeyError, OverflowError, OSError) as exc:
        raise DataFileError(f"replay file {path} line {line}: {_why(exc)}") from None


def _why(exc: Exception) -> str:
    if isinstance(exc, InvalidOperation):
        return "a price or volume is not a number"
    if isinstance(exc, TypeError):
        return "the row has fewer fields than the header"
    return str(exc) or type(exc).__name__


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
