"""The image as a paper service: on the mock exchange, and through `docker stop` mid-position and a restart."""

from __future__ import annotations

import csv
import json
import time
from decimal import Decimal
from typing import Any

import pytest
from testcontainers.core.wait_strategies import (
    HealthcheckWaitStrategy,
    LogMessageWaitStrategy,
)

from tests.containers.conftest import (
    CONFIG_DIR,
    MEASUREMENTS,
    PAPER_VOLUME,
    Engine,
    docker,
    free_port,
    health,
    http_get,
    jsonl,
    la_container,
    metrics_when,
    read_file,
    wait_until,
)

pytestmark = pytest.mark.docker

STOP_TIMEOUT_S = 30       # compose.yaml's stop_grace_period


def status(port: int) -> dict[str, Any]:
    code, body = http_get(f"http://127.0.0.1:{port}/status")
    return json.loads(body) if code == 200 else {}


def new_session(port: int, previous_run_id: str) -> dict[str, Any] | None:
    """/status of a session other than `previous_run_id`, once it answers."""
    current = status(port)
    return current if current.get("run_id") not in (None, previous_run_id) else None


def stop(container: Any) -> float:
    """`docker stop` with the service's stop timeout; returns how long it took."""
    started = time.monotonic()
    docker("stop", "--time", str(STOP_TIMEOUT_S), container.get_container_id(), timeout=STOP_TIMEOUT_S + 30)
    return time.monotonic() - started


def exit_code(container: Any) -> int:
    wrapped = container.get_wrapped_container()
    wrapped.reload()
    assert wrapped.attrs["State"]["Status"] == "exited"
    return int(wrapped.attrs["State"]["ExitCode"])


def test_paper_service_on_mock_exchange_is_healthy_and_trades(engine: Engine) -> None:
    mx_port, http_port = free_port(), free_port()
    work = engine.shared_dir(writable=True)
    mx = la_container(engine.image, "mock-exchange", "--port", str(mx_port), "--seed", "5",
                      "--start-time", "2026-01-01T00:00:00Z", "--time-scale", "600", "--push-interval-ms", "50")
    mx.waiting_for(LogMessageWaitStrategy(f"mock-exchange listening on http://127.0.0.1:{mx_port}")
                   .with_startup_timeout(30))
    paper = la_container(engine.image, env={
        "LA_HTTP_PORT": str(http_port),
        "LA_BITUNIX__REST_URL": f"http://127.0.0.1:{mx_port}",
        "LA_BITUNIX__WS_URL": f"ws://127.0.0.1:{mx_port}/public/",
    }, mounts={str(work): PAPER_VOLUME}, health_interval_s=0.5)
    paper.waiting_for(HealthcheckWaitStrategy().with_startup_timeout(60))
    with mx:
        started = time.monotonic()
        with paper:
            MEASUREMENTS["docker run -> healthy (healthcheck every 0.5 s; bitunix source, warm-up included)"] = \
                f"{time.monotonic() - started:.1f} s"
            assert health(paper.get_wrapped_container()) == "healthy"
            wait_until(lambda: http_get(f"http://127.0.0.1:{http_port}/readyz")[0] == 200, 20, "/readyz 200")
            assert status(http_port)["source"] == "bitunix"

            # candles flow and whole trades are made, as the service's own metrics report them
            m = wait_until(lambda: metrics_when(http_port, laptop_agents_candles_processed_total=60,
                                                laptop_agents_position_exits_total=1),
                           90, "60 candles and a closed trade in /metrics")
            assert m["laptop_agents_orders_filled_total"] >= 1
            run_id = status(http_port)["run_id"]

            took = stop(paper)
            assert exit_code(paper) == 0
            assert took < STOP_TIMEOUT_S

            # the run artifacts, on the bind-mounted workspace
            run_dir = work / "runs" / run_id
            events = jsonl((run_dir / "events.jsonl").read_bytes())
            names = [e["event"] for e in events]
            assert names[0] == "SessionStart" and events[0]["source"] == "bitunix"
            assert "WarmupCompleted" in names
            assert names.count("CandleProcessed") >= 60
            assert names[-1] == "SessionEnd" and events[-1]["stopped_reason"] == "sigterm"
            with (run_dir / "trades.csv").open() as fh:
                trades = list(csv.DictReader(fh))
            assert len(trades) >= 1
            summary = json.loads((run_dir / "summary.json").read_text())
            assert summary["accounting_ok"] is True
            assert Decimal(summary["ending_equity"]) == \
                Decimal(summary["starting_equity"]) + sum(Decimal(t["pnl"]) for t in trades)
            assert (work / "runs" / "latest").resolve().name == run_id
            assert not (work / "paper" / "async_session.lock").exists()
            assert (work / "paper" / "async_broker_state.json").exists()


def test_docker_stop_mid_position_flattens_then_a_new_container_resumes(engine: Engine) -> None:
    volume = engine.volume()
    config = engine.config_dir(exits={"stop_atr_mult": 20, "take_profit_r": 20, "max_hold_candles": 0})
    mounts = {volume: PAPER_VOLUME, str(config): f"{CONFIG_DIR}:ro"}
    state_path = f"{PAPER_VOLUME}/paper/async_broker_state.json"

    port = free_port()
    first = la_container(engine.image, "paper", "--candle-interval", "0.05",
                         env={"LA_SOURCE": "mock", "LA_HTTP_PORT": str(port)}, mounts=mounts)
    with first:
        opened = wait_until(lambda: (status(port).get("position") and status(port)), 60, "an open position")
        run_id = opened["run_id"]
        took = stop(first)
        MEASUREMENTS["docker stop with an open position -> exited"] = f"{took:.1f} s"
        assert exit_code(first) == 0
        assert took < STOP_TIMEOUT_S

        stopped = first.get_wrapped_container()
        state = json.loads(read_file(stopped, state_path) or b"{}")
        assert state["positions"] == []                       # flattened on the way out
        assert read_file(stopped, f"{PAPER_VOLUME}/paper/async_session.lock") is None
        events = jsonl(read_file(stopped, f"{PAPER_VOLUME}/runs/{run_id}/events.jsonl"))
        assert events[-1]["event"] == "SessionEnd" and events[-1]["stopped_reason"] == "sigterm"
        shutdown_exits = [e for e in events if e["event"] == "ExecutionExit" and e["reason"] == "shutdown"]
        assert len(shutdown_exits) == 1
        assert read_file(stopped, f"{PAPER_VOLUME}/runs/{run_id}/summary.json") is not None
        logs = b"".join(first.get_logs()).decode()
        assert "close_all()" in logs and "(exit 0)" in logs

    # the state lives on the volume, not in the removed container: a new container resumes from it
    port2 = free_port()
    second = la_container(engine.image, "paper", "--candle-interval", "0.05",
                          env={"LA_SOURCE": "mock", "LA_HTTP_PORT": str(port2)}, mounts=mounts)
    with second:
        resumed = wait_until(lambda: new_session(port2, run_id), 60, "the new session's /status")
        assert Decimal(resumed["starting_equity"]) == Decimal(state["starting_equity"])
        restored = wait_until(
            lambda: [e for e in jsonl(read_file(second.get_wrapped_container(),
                                                f"{PAPER_VOLUME}/runs/{resumed['run_id']}/events.jsonl"))
                     if e["event"] == "StateRestored"], 30, "StateRestored in the new run")
        assert Decimal(restored[0]["equity"]) == Decimal(state["equity"])
        assert restored[0]["trades"] == len(state["trades"]) and restored[0]["position_id"] is None
        assert stop(second) < STOP_TIMEOUT_S
        assert exit_code(second) == 0
        after = json.loads(read_file(second.get_wrapped_container(), state_path) or b"{}")
        assert after["trades"][:len(state["trades"])] == state["trades"]   # history kept, appended to
        assert Decimal(after["equity"]) == Decimal(after["starting_equity"]) + sum(
            Decimal(t["pnl"]) for t in after["trades"])

