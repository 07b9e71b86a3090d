"""Replay mode: same pipeline, simulated clock, byte-identical results."""

from __future__ import annotations

import csv
import json
from itertools import islice
from pathlib import Path

from laptop_agents.core.config_models import MockSettings
from laptop_agents.data.providers.mock import MockBarGenerator
from laptop_agents.data.providers.replay import write_candles
from tests.conftest import LaEnv


def backtest(la_env: LaEnv, *args: str):  # type: ignore[no-untyped-def]
    return la_env.run("run", "--mode", "backtest", *args)


def test_mock_backtest_is_byte_identical_and_leaves_paper_state_alone(la_env: LaEnv) -> None:
    first = backtest(la_env, "--source", "mock", "--candles", "5000", "--seed", "3")
    assert first.returncode == 0, first.stderr
    run1 = la_env.latest.resolve()
    second = backtest(la_env, "--source", "mock", "--candles", "5000", "--seed", "3", "--journal", "trades")
    assert second.returncode == 0, second.stderr
    run2 = la_env.latest.resolve()
    assert run1 != run2
    assert (run1 / "trades.csv").read_bytes() == (run2 / "trades.csv").read_bytes()
    assert len((run1 / "trades.csv").read_text().splitlines()) > 3
    names1 = [json.loads(x)["event"] for x in (run1 / "events.jsonl").read_text().splitlines()]
    names2 = [json.loads(x)["event"] for x in (run2 / "events.jsonl").read_text().splitlines()]
    assert names1.count("CandleProcessed") == 5000 and "CandleProcessed" not in names2
    assert [n for n in names1 if n != "CandleProcessed"] == names2
    summary = json.loads((run1 / "summary.json").read_text())
    assert summary["accounting_ok"] and summary["candles_processed"] == 5000
    assert (run1 / "summary.html").exists()
    assert not (la_env.workspace / "paper").exists(), "a replay never touches the paper account"
    other = backtest(la_env, "--source", "mock", "--candles", "5000", "--seed", "4")
    assert other.returncode == 0
    assert (la_env.latest / "trades.csv").read_bytes() != (run1 / "trades.csv").read_bytes()


def test_replay_file_both_shapes_same_trades(la_env: LaEnv, tmp_path: Path) -> None:
    bars = list(islice(MockBarGenerator(MockSettings(seed=9)), 3000))
    ours = tmp_path / "ours.csv"
    write_candles(ours, bars)
    bitunix = tmp_path / "bitunix.csv"
    with bitunix.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["time", "open", "high", "low", "close", "quoteVol", "baseVol", "type"])
        for b in bars:
            w.writerow([int(b.ts.timestamp() * 1000), b.open, b.high, b.low, b.close, b.volume * b.close, b.volume,
                        "LAST_PRICE"])
    a = backtest(la_env, "--source", "replay", "--data", str(ours))
    assert a.returncode == 0, a.stderr
    run_a = la_env.latest.resolve()
    b = backtest(la_env, "--source", "replay", "--data", str(bitunix))
    assert b.returncode == 0, b.stderr
    run_b = la_env.latest.resolve()
    assert (run_a / "trades.csv").read_bytes() == (run_b / "trades.csv").read_bytes()
    mock = backtest(la_env, "--source", "mock", "--candles", "3000", "--seed", "9")
    assert mock.returncode == 0
    assert (la_env.latest / "trades.csv").read_bytes() == (run_a / "trades.csv").read_bytes()
    # the usual export shape: a `Timestamp` column in epoch milliseconds (was "day is out of range for month")
    export = tmp_path / "export.csv"
    export.write_text("Timestamp,Open,High,Low,Close,Volume\n" + "".join(
        f"{int(b.ts.timestamp() * 1000)},{b.open},{b.high},{b.low},{b.close},{b.volume}\n" for b in bars))
    c = backtest(la_env, "--source", "replay", "--data", str(export))
    assert c.returncode == 0, c.stderr
    assert (la_env.latest / "trades.csv").read_bytes() == (run_a / "trades.csv").read_bytes()


def test_bad_replay_files_are_refused_with_the_line(la_env: LaEnv, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("ts,open,high,low,close,volume\n2026-01-01T00:00:00Z,1,2,0.5,1.5,1\n2026-01-01T00:01:00Z,1,x,0.5,1,1\n")
    r = backtest(la_env, "--source", "replay", "--data", str(bad))
    assert r.returncode == 2 and "line 3" in r.stderr and "Traceback" not in r.stderr
    bad.write_text("ts,open,high,low,close,volume\n2026-01-01T00:01:00Z,1,2,0.5,1.5,1\n2026-01-01T00:00:00Z,1,2,0.5,1,1\n")
    r = backtest(la_env, "--source", "replay", "--data", str(bad))
    assert r.returncode == 2 and "sorted" in r.stderr
    bad.write_text("a,b\n1,2\n")
    r = backtest(la_env, "--source", "replay", "--data", str(bad))
    assert r.returncode == 2 and "unknown columns" in r.stderr
    bad.write_text("timestamp,open,high,low,close\n01/02/2026 10:00,1,2,0.5,1.5\n")
    r = backtest(la_env, "--source", "replay", "--data", str(bad))
    assert r.returncode == 2 and "line 2" in r.stderr and "ISO 8601" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = backtest(la_env, "--source", "replay")
    assert r.returncode == 2 and "--data" in r.stderr


def test_realtime_session_and_replay_make_the_same_trades(la_env: LaEnv) -> None:
    live = la_env.run("run", "--mode", "live-session", "--duration", "0.05", "--source", "mock",
                      "--candle-interval", "0.01", "--seed", "11")
    assert live.returncode == 0, live.stderr
    live_run = la_env.latest.resolve()
    end = [json.loads(x) for x in (live_run / "events.jsonl").read_text().splitlines()][-1]
    n = end["candles_processed"]
    replay = backtest(la_env, "--source", "mock", "--candles", str(n), "--seed", "11")
    assert replay.returncode == 0, replay.stderr

    def rows(run: Path) -> list[dict[str, str]]:
        with (run / "trades.csv").open() as fh:
            out = list(csv.DictReader(fh))
        return out

    def times(run: Path, rows: list[dict[str, str]]) -> list[dict[str, str]]:
        """Each run stamps its trades on its own clock (wall vs the replay's bar closes): inside the run's span."""
        events = [json.loads(x) for x in (run / "events.jsonl").read_text().splitlines()]
        first, last = events[0]["timestamp"], events[-1]["timestamp"]
        for r in rows:
            assert first <= r.pop("entry_ts") <= r.pop("exit_ts") <= last, r
        return rows

    live_rows = times(live_run, rows(live_run))
    replay_rows = times(la_env.latest.resolve(), rows(la_env.latest.resolve()))
    # the real-time session refuses entries too close to (or past) its deadline; the replay has no deadline
    ending = [e for e in map(json.loads, (live_run / "events.jsonl").read_text().splitlines())
              if e["event"] == "RiskRejected" and e["reason"] == "session_ending"]
    assert live_rows and live_rows == replay_rows[:len(live_rows)]
    assert len(replay_rows) - len(live_rows) <= len(ending)
