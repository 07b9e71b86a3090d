from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from itertools import islice, pairwise
from pathlib import Path

import pytest

from laptop_agents.core.config_models import MockSettings
from laptop_agents.core.errors import AlreadyRunningError, StateError
from laptop_agents.core.state import StateManager
from laptop_agents.data.providers.mock import MockBarGenerator
from laptop_agents.session.lock import LockInfo, PidLock, lock_is_held

SAVED_AT = datetime(2026, 11, 29, tzinfo=UTC)  # the state files' saved_at stamp (written, never read back)


def test_state_round_trip_and_envelope(tmp_path: Path) -> None:
    sm = StateManager(tmp_path)
    sm.save("s.json", "thing", {"equity": "1.5", "positions": []}, saved_at=SAVED_AT)
    raw = json.loads((tmp_path / "s.json").read_text())
    assert raw["schema_version"] == 1 and raw["kind"] == "thing" and raw["saved_at"] == "2026-11-29T00:00:00.000Z"
    assert sm.load("s.json", "thing") == {"equity": "1.5", "positions": []}
    assert sm.load("absent.json", "thing") is None
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize(
    ("content", "needle"),
    [("{", "not valid JSON"), ("[]", "expected a JSON object"),
     ('{"schema_version": 1, "kind": "other"}', "holds 'other'"),
     ('{"schema_version": 2, "kind": "thing"}', "schema_version 2")],
)
def test_untrusted_state_is_refused_and_untouched(tmp_path: Path, content: str, needle: str) -> None:
    path = tmp_path / "s.json"
    path.write_text(content)
    with pytest.raises(StateError, match=needle):
        StateManager(tmp_path).load("s.json", "thing")
    assert path.read_text() == content


def test_lock_excludes_a_second_holder_and_releases(tmp_path: Path) -> None:
    path = tmp_path / "paper" / "async_session.lock"
    first = PidLock(path)
    first.acquire({"run_id": "r1"})
    assert lock_is_held(path) and LockInfo.read(path).pid == os.getpid()  # type: ignore[union-attr]
    with pytest.raises(AlreadyRunningError, match="already running"):
        PidLock(path).acquire({"run_id": "r2"})
    first.release()
    assert not path.exists() and not lock_is_held(path)


def test_stale_lock_is_recovered(tmp_path: Path) -> None:
    path = tmp_path / "async_session.lock"
    path.write_text(json.dumps({"pid": 999999, "run_id": "dead"}))
    lock = PidLock(path)
    lock.acquire({"run_id": "new"})
    assert lock.recovered_from is not None and lock.recovered_from.run_id == "dead"
    lock.release()


def test_mock_bars_are_deterministic_and_sane() -> None:
    a = list(islice(MockBarGenerator(MockSettings(seed=5)), 500))
    b = list(islice(MockBarGenerator(MockSettings(seed=5)), 500))
    c = list(islice(MockBarGenerator(MockSettings(seed=6)), 500))
    assert a == b and a != c
    for prev, bar in pairwise(a):
        assert (bar.ts - prev.ts).total_seconds() == 60
        assert bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high
        assert abs(bar.open / prev.close - 1) < 0.01
    closes = [float(x.close) for x in a]
    assert 0.8 < closes[-1] / closes[0] < 1.2
