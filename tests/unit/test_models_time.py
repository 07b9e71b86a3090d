"""utc_iso's table-driven formatting equals the isoformat-based reference."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

from laptop_agents.core.models import utc_iso


def reference(ts: datetime) -> str:
    if ts.tzinfo is not UTC:
        ts = ts.astimezone(UTC)
    return ts.isoformat(timespec="milliseconds")[:-6] + "Z"


def test_utc_iso_matches_isoformat() -> None:
    rng = random.Random(11)
    zones = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8)), None]
    for _ in range(50_000):
        naive = datetime(rng.randrange(1, 9999), 1, 1) + timedelta(days=rng.randrange(365), seconds=rng.randrange(86400),
                                                                  microseconds=rng.randrange(1_000_000))
        tz = rng.choice(zones)
        ts = naive.replace(tzinfo=tz) if tz is not None else naive
        if ts.year < 2 or ts.year > 9997:
            continue
        assert utc_iso(ts) == reference(ts), ts
    edge = datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert utc_iso(edge) == "2026-12-31T23:59:59.999Z" == reference(edge)
    assert utc_iso(datetime(999, 1, 2, tzinfo=UTC)) == "0999-01-02T00:00:00.000Z"
