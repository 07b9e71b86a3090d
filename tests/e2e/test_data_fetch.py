"""`la data fetch` against the mock exchange: paginated, resumable, replayable."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from laptop_agents.mock_exchange.testing import running_mock_exchange
from tests.conftest import LaEnv


def test_fetch_paginates_resumes_and_replays(la_env: LaEnv) -> None:
    with running_mock_exchange(seed=4, history_days=2) as mx:
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        start = now - timedelta(hours=20)
        middle = start + timedelta(minutes=450)
        end = start + timedelta(minutes=1000)
        out = la_env.root / "klines.csv"
        iso = lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
        first = la_env.run("data", "fetch", "--start", iso(start), "--end", iso(middle), "--out", str(out),
                           "--rest-url", mx.rest_url)
        assert first.returncode == 0, first.stderr
        assert "wrote 450 bars" in first.stdout
        second = la_env.run("data", "fetch", "--start", iso(start), "--end", iso(end), "--out", str(out),
                            "--rest-url", mx.rest_url)
        assert second.returncode == 0, second.stderr
        assert "wrote 550 bars" in second.stdout and "after 450" in second.stdout
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    times = [datetime.fromisoformat(r["ts"].replace("Z", "+00:00")) for r in rows]
    assert len(rows) == 1000 and times[0] == start
    assert all(b - a == timedelta(minutes=1) for a, b in pairwise(times))
    # 1000 bars through an endpoint that serves at most 200 per request: the download paged
    replay = la_env.run("run", "--mode", "backtest", "--source", "replay", "--data", str(out))
    assert replay.returncode == 0, replay.stderr
    assert "1000 candles" in replay.stdout


def test_fetch_refuses_bad_arguments(la_env: LaEnv) -> None:
    r = la_env.run("data", "fetch", "--start", "2026-01-02T00:00:00Z", "--end", "2026-01-01T00:00:00Z",
                   "--rest-url", "http://127.0.0.1:9")
    assert r.returncode == 2 and "must be after" in r.stderr
    r = la_env.run("data", "fetch", "--start", "yesterday", "--end", "2026-01-01T00:00:00Z")
    assert r.returncode == 2 and "bad --start" in r.stderr
    (la_env.root / "x.csv").write_text("a,b\n")
    r = la_env.run("data", "fetch", "--start", "2026-01-01T00:00:00Z", "--end", "2026-01-02T00:00:00Z",
                   "--out", str(la_env.root / "x.csv"), "--rest-url", "http://127.0.0.1:9")
    assert r.returncode == 2 and "not a kline CSV" in r.stderr
