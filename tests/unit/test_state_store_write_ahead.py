"""The write-ahead save before an entry's send reports a disk error (the broker then does not send) and names
the file in it, so the session's exit-14 line says which file could not be written."""

from __future__ import annotations

import errno
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from laptop_agents.core.errors import DiskError
from laptop_agents.core.state import StateManager
from laptop_agents.core.state_schema import LIVE_BROKER_KIND
from laptop_agents.session.state_store import StateStore
from laptop_agents.session.workspace import BROKER_STATE_NAME


class _FullDisk(StateManager):
    """A disk that fills up mid-write: the OSError of a failed write() on a descriptor carries no filename."""

    def save(self, name: str, kind: str, data: dict[str, Any], *, saved_at: datetime) -> Path:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_write_ahead_reports_a_disk_error_and_names_the_file(tmp_path: Path) -> None:
    store = StateStore(_FullDisk(tmp_path), dict, dict, LIVE_BROKER_KIND, now=lambda: datetime.now(UTC))
    assert store.write_ahead() is False
    assert store.write_error is not None
    assert store.write_error.filename == str(tmp_path / BROKER_STATE_NAME)
    line = str(DiskError.from_os_error(store.write_error))
    assert str(tmp_path / BROKER_STATE_NAME) in line and "None" not in line
    ok = StateStore(StateManager(tmp_path), dict, dict, LIVE_BROKER_KIND, now=lambda: datetime.now(UTC))
    assert ok.write_ahead() is True and (tmp_path / BROKER_STATE_NAME).exists()
