"""`la audit`: healthy runs pass, runs with known defects are caught with the right verdict and evidence."""

from __future__ import annotations

import json
import signal

import pytest

from tests.conftest import LaEnv

FAST = ["--source", "mock", "--candle-interval", "0.01"]


def session(la_env: LaEnv, *extra: str) -> None:
    la_env.run("run", "--mode", "live-session", "--duration", "0.04", *FAST, *extra)


def audit(la_env: LaEnv, *args: str) -> tuple[int, dict]:
    r = la_env.run("audit", "--json", *args)
    assert "Traceback" not in r.stderr, r.stderr
    return r.returncode, json.loads(r.stdout)


def finding(report: dict, fid: str) -> dict:
    return next(f for f in report["findings"] if f["id"] == fid)


def rubric(report: dict, category: str) -> str:
    return next(r["verdict"] for r in report["rubric"] if r["category"] == category)


def test_healthy_short_run_fails_ten_minute_autonomy_only(la_env: LaEnv) -> None:
    session(la_env)
    code, report = audit(la_env)
    for fid in ("S2", "S3", "S4", "S5", "S6", "S7", "F1", "F2", "F4", "F7", "F8", "R1", "L1", "L2", "D1"):
        assert finding(report, fid)["status"] == "PASS", finding(report, fid)
    # a 2-second run is not the 10-minute autonomy run the spec asks for: a failed success criterion, said plainly
    s1 = finding(report, "S1")
    assert s1["status"] == "FAIL" and s1["priority"] == "critical" and "TOO SHORT" in s1["evidence"]
    assert "10-minute" in s1["evidence"] and "600 s" in s1["evidence"]
    assert code == 11 and report["critical"] is True
    assert [g["id"] for g in report["gaps"] if g["priority"] == "critical"] == ["S1"]
    assert rubric(report, "10-Min Autonomy") == "FAIL"
    assert "TOO SHORT" in next(r["evidence"] for r in report["rubric"] if r["category"] == "10-Min Autonomy")
    assert report["ten_minute_autonomy"]["shown"] is False
    assert [c["status"] for c in report["checklist"]].count("PASS") == 10
    run_dir = la_env.latest.resolve()
    for name in ("audit.md", "audit.html", "audit.json"):
        assert (run_dir / name).exists()
    md = (run_dir / "audit.md").read_text()
    assert "Pass/fail rubric" in md and "10-minute autonomy: NOT SHOWN" in md
    assert json.loads((run_dir / "audit.json").read_text())["ten_minute_autonomy"]["shown"] is False
    table = la_env.run("audit")
    assert table.returncode == 11
    assert "Pass/fail rubric" in table.stdout and "Autonomy verification checklist" in table.stdout
    assert "10-minute autonomy: NOT SHOWN" in table.stdout.splitlines()[1]

    # the same run, had it lasted the full 10 minutes, passes: the criterion is the length, nothing else
    events = [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines()]
    events[0]["duration_min"] = 10
    events[-1]["duration_sec"] = 600.4
    (run_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    code, report = audit(la_env)
    assert finding(report, "S1")["status"] == "PASS" and report["ten_minute_autonomy"]["shown"] is True
    assert code == 0 and report["critical"] is False
    # planned 10 minutes but stopped after 9: still too short
    events[-1]["duration_sec"] = 540.0
    (run_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    code, report = audit(la_env)
    assert code == 11 and "TOO SHORT" in finding(report, "S1")["evidence"]


def test_critical_log_line_is_caught(la_env: LaEnv) -> None:
    session(la_env)
    with (la_env.latest / "system.jsonl").open("a") as fh:
        fh.write(json.dumps({"timestamp": "2026-01-01T00:00:00.000Z", "level": "CRITICAL", "component": "test",
                             "message": "injected defect"}) + "\n")
    code, report = audit(la_env)
    s3 = finding(report, "S3")
    assert code == 11 and s3["status"] == "FAIL" and "injected defect" in s3["evidence"]
    assert s3["priority"] == "critical" and rubric(report, "Logging") == "FAIL"


def test_missing_summary_is_caught(la_env: LaEnv) -> None:
    session(la_env)
    (la_env.latest / "summary.html").unlink()
    _, report = audit(la_env)
    s4 = finding(report, "S4")
    assert s4["status"] == "FAIL" and "summary.html" in s4["evidence"] and rubric(report, "Logging") == "FAIL"


def test_equity_drift_is_caught(la_env: LaEnv) -> None:
    session(la_env)
    path = la_env.latest / "trades.csv"
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    row = lines[1].split(",")
    i = header.index("pnl")
    row[i] = str(float(row[i]) + 0.01)
    lines[1] = ",".join(row)
    path.write_text("\n".join(lines) + "\n")
    code, report = audit(la_env)
    s6 = finding(report, "S6")
    assert code == 11 and s6["status"] == "FAIL" and "drift" in s6["evidence"] and s6["priority"] == "critical"


def test_left_over_lock_is_caught(la_env: LaEnv) -> None:
    proc = la_env.start("run", "--duration", "1", *FAST)
    la_env.wait_for(lambda: la_env.lock.exists() and la_env.latest.exists(), what="running")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    code, report = audit(la_env)
    assert code == 11
    assert finding(report, "S7")["status"] == "FAIL" and "left over" in finding(report, "S7")["evidence"]
    assert finding(report, "F1")["status"] == "FAIL" and "no SessionEnd" in finding(report, "F1")["evidence"]
    assert rubric(report, "Shutdown") == "FAIL"


def test_breaker_trip_is_reported(la_env: LaEnv) -> None:
    la_env.run("run", "--duration", "0.06", "--source", "mock", "--scenario", "losing_streak", "--candle-interval", "0.005")
    _, report = audit(la_env)
    f4 = finding(report, "F4")
    assert f4["status"] == "WARN" and "consecutive_losses" in f4["evidence"] and "CIRCUIT_BREAKER_TRIPPED" in f4["evidence"]
    assert any(g["id"] == "F4" for g in report["gaps"])


def test_stale_data_stop_is_caught(la_env: LaEnv) -> None:
    la_env.run("run", "--duration", "1", *FAST, "--inject-gap-at", "0.5", "--gap-duration", "5", "--stale-timeout", "1")
    code, report = audit(la_env)
    f2 = finding(report, "F2")
    assert f2["status"] == "FAIL" and "StaleDataDetected" in f2["evidence"]
    assert rubric(report, "Data Stability") == "FAIL" and finding(report, "S2")["status"] == "FAIL"
    assert code == 11  # exit reason not completed is a critical gap


def test_no_runs_is_a_clear_error(la_env: LaEnv) -> None:
    r = la_env.run("audit")
    assert r.returncode == 2 and "no runs" in r.stderr


@pytest.mark.long  # minutes of wall clock: its own pytest process in `make test`
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_edge_cases_all_pass(la_env: LaEnv) -> None:
    session(la_env)
    code, report = audit(la_env, "--edge-cases")
    cases = {c["name"]: c for c in report["edge_cases"]}
    assert len(cases) == 6
    assert all(c["status"] == "PASS" for c in cases.values()), cases
    # the edge cases are short on purpose and judged by their own expectations; only the audited run's
    # own shortness (a 2-second run, not 10 minutes) is a critical gap
    assert [g["id"] for g in report["gaps"] if g["priority"] == "critical"] == ["S1"]
    assert code == 11


def test_plain_audit_of_a_live_run_reads_the_live_lock(la_env: LaEnv) -> None:
    """`la audit --run <live run>` without --live judges the run by <workspace>/live's lock, not the paper one."""
    proc = la_env.start("run", "--duration", "1", *FAST)
    # the run directory (and `latest`) exists a moment before its config snapshot: wait for the snapshot too
    la_env.wait_for(lambda: la_env.lock.exists() and (la_env.latest / "config_snapshot.json").exists(),
                    what="running")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    paper_run = la_env.latest.resolve()
    live_run = paper_run.with_name(paper_run.name.replace("-paper-", "-live-"))
    paper_run.rename(live_run)
    snap = json.loads((live_run / "config_snapshot.json").read_text())
    (live_run / "config_snapshot.json").write_text(json.dumps({**snap, "mode": "live"}))
    live_lock = la_env.workspace / "live" / la_env.lock.name
    live_lock.parent.mkdir(parents=True, exist_ok=True)
    la_env.lock.rename(live_lock)  # the paper side is clean: only the live lock is left over
    code, report = audit(la_env, "--run", live_run.name)
    s7 = finding(report, "S7")
    assert code == 11 and s7["status"] == "FAIL" and "left over" in s7["evidence"], s7
    assert str(live_lock) in s7["evidence"]
