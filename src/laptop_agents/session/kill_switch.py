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
FALSE_VALUES = {"", "0", "false", "no", "off"}
"""Only these leave the switch off: any other value (``enable``, ``2``, ``y``) is taken as set (fail safe)."""


class KillSwitch:
    def __init__(self, files: list[Path], env: Mapping[str, str] | None = None) -> None:
        self.files = files
        self._env = env if env is not None else os.environ

    def reason(self) -> str | None:
        """Why the kill switch is active, or None."""
        raw = self._env.get("LA_KILL_SWITCH", "")
        if raw.strip().lower() in TRUE_VALUES:
            return "LA_KILL_SWITCH environment variable is set"
        if raw.strip().lower() not in FALSE_VALUES:
            return f"LA_KILL_SWITCH={raw.strip()[:40]!r} is set (only empty, 0, false, no or off leave it off)"
        for path in self.files:
            # anything by that name counts: an empty file, a directory, a dangling or looping symlink
            try:
                os.lstat(path)
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError as exc:  # cannot tell: fail safe
                return f"kill file {path} cannot be checked ({exc.strerror}); taken as present"
            return f"kill file {path} exists"
        return None
