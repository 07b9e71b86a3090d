"""`la data fetch`: download Bitunix klines into the CSV shape replays read.

Paginated and rate-limited by the REST client; written in chunks, each
appended and flushed as it arrives, so an interrupted download resumes from
the last bar in the file (no gap, no duplicate) when run again.
"""

from __future__ import annotations

import csv
import logging
from collections import deque
from datetime import UTC, datetime
from pathlib import Path

from laptop_agents.bitunix import BitunixRestClient, RestConfig, interval_from_rest
from laptop_agents.core.errors import UsageError
from laptop_agents.core.models import parse_utc
from laptop_agents.data.providers.replay import OUR_COLUMNS, DataFileError

log = logging.getLogger("laptop_agents.data.fetch")
CHUNK_BARS = 2000  # bars per append (10 REST pages of 200)


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def _last_row_ts(path: Path) -> datetime | None:
    """Open time of the last bar already in `path`, validating the header."""
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            return None
        if header != OUR_COLUMNS:
            raise DataFileError(f"{path} exists but is not a kline CSV of ours (header {header}); choose another --out")
        tail = deque(reader, maxlen=1)
    return parse_utc(tail[0][0]) if tail else None


async def fetch_klines(
    *, symbol: str, interval: str, start: datetime, end: datetime, out: Path, rest_url: str,
    progress: bool = False,
) -> tuple[int, int]:
    """Download [start, end) into `out`; returns (bars written now, bars already present)."""
    try:
        iv = interval_from_rest(interval)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if end <= start:
        raise UsageError(f"--end ({end.isoformat()}) must be after --start ({start.isoformat()})")
    start_ms, end_ms = iv.floor(_ms(start)), _ms(end)
    existing = 0
    if out.exists() and out.stat().st_size > 0:
        last = _last_row_ts(out)
        if last is not None:
            with out.open(encoding="utf-8") as fh:
                existing = sum(1 for _ in fh) - 1
            start_ms = max(start_ms, iv.next_open(_ms(last)))
            log.info("resuming %s after %s (%d bars already there)", out, last.isoformat(), existing)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", newline="", encoding="utf-8") as fh:
            csv.writer(fh, lineterminator="\n").writerow(OUR_COLUMNS)
    written = 0
    async with BitunixRestClient(RestConfig(base_url=rest_url)) as client:
        cursor = start_ms
        while cursor < end_ms:
            chunk_end = cursor
            for _ in range(CHUNK_BARS):
                chunk_end = iv.next_open(chunk_end)
                if chunk_end >= end_ms:
                    chunk_end = end_ms
                    break
            bars = await client.kline_range(symbol, interval, cursor, chunk_end)
            with out.open("a", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh, lineterminator="\n")
                for k in bars:
                    c = k.to_candle(symbol)
                    writer.writerow([c.ts.isoformat().replace("+00:00", "Z"), c.open, c.high, c.low, c.close, c.volume])
                fh.flush()
            written += len(bars)
            if progress:
                done = datetime.fromtimestamp(chunk_end / 1000, tz=UTC).isoformat()
                print(f"\rfetched {existing + written} bars, up to {done}", end="", flush=True)
            cursor = chunk_end
    if progress:
        print()
    return written, existing
