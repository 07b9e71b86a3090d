"""Where every file of a mode lives. Paper and live never share a directory.

.workspace/
  paper/ async_session.lock, async_broker_state.json, circuit_breaker_state.json, session_status.json
  live/  (the same names, for live trading)
  runs/<run_id>/ events.jsonl, system.jsonl, trades.csv, summary.html, config_snapshot.json
  runs/latest -> <newest run_id>
  kill.txt  (kill switch file; `kill.txt` in the current directory works too)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Mode = Literal["paper", "live"]
DEFAULT_WORKSPACE = Path(".workspace")
LOCK_NAME = "async_session.lock"
BROKER_STATE_NAME = "async_broker_state.json"
BREAKER_STATE_NAME = "circuit_breaker_state.json"
STATUS_NAME = "session_status.json"
KILL_FILE_NAME = "kill.txt"


@dataclass(frozen=True)
class Workspace:
    root: Path
    mode: Mode = "paper"

    @classmethod
    def resolve(cls, root: str | Path | None, mode: Mode = "paper") -> Workspace:
        """CLI flag > LA_WORKSPACE > ./.workspace"""
        chosen = root or os.environ.get("LA_WORKSPACE") or DEFAULT_WORKSPACE
        return cls(Path(chosen).absolute(), mode)

    @property
    def state_dir(self) -> Path:
        return self.root / self.mode

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def latest_run(self) -> Path:
        return self.runs_dir / "latest"

    @property
    def lock_path(self) -> Path:
        return self.state_dir / LOCK_NAME

    @property
    def broker_state_path(self) -> Path:
        return self.state_dir / BROKER_STATE_NAME

    @property
    def breaker_state_path(self) -> Path:
        return self.state_dir / BREAKER_STATE_NAME

    @property
    def status_path(self) -> Path:
        return self.state_dir / STATUS_NAME

    @property
    def detach_log_path(self) -> Path:
        return self.state_dir / "detached_session.out"

    def kill_files(self) -> list[Path]:
        return [self.root / KILL_FILE_NAME, Path.cwd() / KILL_FILE_NAME]
