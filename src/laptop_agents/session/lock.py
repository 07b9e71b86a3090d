"""The PID lock: one session per mode, and a dead session's lock is recoverable.

The lock file holds JSON (pid, run id, start time) and is held with
`fcntl.flock` for the session's lifetime. The kernel drops a flock when its
process dies, however it dies, so "file exists but nobody holds the flock" is
a stale lock from a crashed or kill -9'd session: safe to take over. On a clean
exit the file is removed.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from laptop_agents.core.errors import AlreadyRunningError


@dataclass(frozen=True)
class LockInfo:
    pid: int
    run_id: str | None
    started_at: str | None
    mode: str | None

    @classmethod
    def read(cls, path: Path) -> LockInfo | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8") or "{}")
        except (FileNotFoundError, json.JSONDecodeError, OSError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("pid"), int):
            return None
        return cls(data["pid"], data.get("run_id"), data.get("started_at"), data.get("mode"))


def lock_is_held(path: Path) -> bool:
    """True if a live process holds the flock on `path` (the session is running)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


class PidLock:
    """Exclusive, crash-safe session lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self.recovered_from: LockInfo | None = None

    def acquire(self, info: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(5):
            existed = self.path.exists()
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                holder = LockInfo.read(self.path)
                who = f"pid {holder.pid}, run {holder.run_id}" if holder else "unknown pid"
                raise AlreadyRunningError(
                    f"another session is already running ({who}; lock {self.path}): use `la status` or `la stop`"
                ) from None
            # we hold the flock; make sure the path still names the inode we locked
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            if existed:
                self.recovered_from = LockInfo.read(self.path) or LockInfo(-1, None, None, None)
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({"pid": os.getpid(), **info}).encode(), 0)
            os.fsync(fd)
            self._fd = fd
            return
        raise AlreadyRunningError(f"could not acquire {self.path}: it keeps changing under us")

    def update(self, info: dict[str, Any]) -> None:
        """Rewrite the JSON the lock carries (e.g. once the run id is known)."""
        if self._fd is None:
            raise RuntimeError("update() on a lock that is not held")
        payload = json.dumps({"pid": os.getpid(), **info}).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, payload, 0)

    def release(self) -> None:
        """Remove the file, then drop the flock (in that order: no window for a stale file)."""
        if self._fd is None:
            return
        try:
            if os.stat(self.path).st_ino == os.fstat(self._fd).st_ino:
                os.unlink(self.path)
        except FileNotFoundError:
            pass
        finally:
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None
