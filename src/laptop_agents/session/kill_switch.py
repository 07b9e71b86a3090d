"""The kill switch: `LA_KILL_SWITCH=TRUE` in the environment, or a `kill.txt` file.

Checked before the session starts and on every control tick; either trigger
makes the session flatten and stop with stopped_reason `kill_switch`. The file
may sit in the workspace (`.workspace/kill.txt`) or in the current directory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

TRUE_VALUES = {"1", "true", "yes", "on"}


class KillSwitch:
    def __init__(self, files: list[Path], env: Mapping[str, str] | None = None) -> None:
        self.files = files
        self._env = env if env is not None else os.environ

    def reason(self) -> str | None:
        """Why the kill switch is active, or None."""
        if self._env.get("LA_KILL_SWITCH", "").strip().lower() in TRUE_VALUES:
            return "LA_KILL_SWITCH environment variable is set"
        for path in self.files:
            if path.exists():
                return f"kill file {path} exists"
        return None
