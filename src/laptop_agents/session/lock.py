"""Session locks: one session per workspace mode *and* one session per account, crash-safe.

Two locks guard a session, taken in this order and released in reverse:

1. **The account lock** (:class:`AccountLock`), keyed by the account the session trades, in a host-wide
   directory (:func:`resolve_lock_dir`). Live: the API key's fingerprint (a salted hash, never the key) at the
   exchange's host; paper: the paper state directory's real path. So `la run --live` from another directory
   cannot trade beside the service on the same account.
2. **The workspace lock** (:class:`PidLock`, ``<workspace>/<mode>/async_session.lock``), the file `la status`,
   `la stop`, `la doctor` and the audit read (path fixed by the audit spec).

Each lock file holds JSON (pid, run id, workspace, start time) and is held with `fcntl.flock` for the
session's lifetime. The kernel drops a flock when its process dies, however it dies, so "file exists but
nobody holds the flock" is a stale lock from a crashed or kill -9'd session: safe to take over (the workspace
lock reports it as ``LockRecovered``). On a clean exit the files are removed.

Deleting a lock file must not let a second session in. A flock lives on the inode, not the name: a new file
at the same path is a new, unlocked inode. Three things close that door:

- the account lock also binds a Linux *abstract* Unix socket named after the account (no file to delete; the
  kernel frees it when the process dies, kill -9 included; shared by every process in the network namespace,
  whatever lock directory it resolved), checked before the file;
- a deleted workspace lock file leaves the account lock standing (a second session on the same paper
  workspace is the same paper account);
- the holder checks every control tick (:meth:`SessionLock.verify`) that each path still names the inode it
  locked and, if a file was deleted or replaced, takes a fresh one (so `la status` and sessions in another
  network namespace see it again).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import socket
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from laptop_agents.core.errors import AlreadyRunningError, DiskError

log = logging.getLogger("laptop_agents.session.lock")

LOCK_DIR_ENV = "LA_LOCK_DIR"
"""Environment variable naming the host-wide lock directory (overrides ``session.lock_dir``)."""
DEFAULT_LOCK_DIRS = (Path("/run/laptop-agents"),)
"""Tried first, in order, when neither the variable nor the setting names a directory."""


@dataclass(frozen=True)
class LockInfo:
    pid: int
    run_id: str | None
    started_at: str | None
    mode: str | None
    workspace: str | None = None

    @classmethod
    def read(cls, path: Path) -> LockInfo | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8") or "{}")
        except (FileNotFoundError, json.JSONDecodeError, OSError, UnicodeDecodeError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("pid"), int):
            return None
        ws = data.get("workspace")
        return cls(data["pid"], data.get("run_id"), data.get("started_at"), data.get("mode"),
                   ws if isinstance(ws, str) else None)

    def describe(self) -> str:
        parts = [f"pid {self.pid}"]
        if self.workspace:
            parts.append(f"workspace {self.workspace}")
        if self.run_id:
            parts.append(f"run {self.run_id}")
        return ", ".join(parts)


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


def _held_error(what: str, path: Path, holder: LockInfo | None) -> AlreadyRunningError:
    who = holder.describe() if holder else "unknown pid: its lock file was deleted or is unreadable"
    where = f" --workspace {holder.workspace}" if holder and holder.workspace else ""
    return AlreadyRunningError(
        f"another session is already running on {what} ({who}; lock {path}): "
        f"stop it first (`la stop{where}`) or use another account"
    )


class PidLock:
    """Exclusive, crash-safe lock file (flock on the open file + inode check)."""

    def __init__(self, path: Path, what: str = "this workspace") -> None:
        self.path = path
        self.what = what
        self._fd: int | None = None
        self._info: dict[str, Any] = {}
        self.recovered_from: LockInfo | None = None

    def acquire(self, info: dict[str, Any]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DiskError.from_os_error(exc, self.path.parent, "create the lock directory") from None
        for _ in range(5):
            existed = self.path.exists()
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            except OSError as exc:
                raise DiskError.from_os_error(exc, self.path, "create the lock file") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise _held_error(self.what, self.path, LockInfo.read(self.path)) from None
            # we hold the flock; make sure the path still names the inode we locked
            if not self._names(fd):
                os.close(fd)
                continue
            if existed:
                self.recovered_from = LockInfo.read(self.path) or LockInfo(-1, None, None, None)
            self._fd = fd
            try:
                self._write(info)
            except OSError as exc:
                self.release()
                raise DiskError.from_os_error(exc, self.path, "write the lock file") from None
            return
        raise AlreadyRunningError(f"could not acquire {self.path}: it keeps changing under us")

    def _names(self, fd: int) -> bool:
        try:
            st, own = os.stat(self.path, follow_symlinks=False), os.fstat(fd)
        except FileNotFoundError:
            return False
        return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)

    def _write(self, info: dict[str, Any]) -> None:
        assert self._fd is not None
        self._info = dict(info)
        payload = json.dumps({"pid": os.getpid(), **info}).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, payload, 0)
        os.fsync(self._fd)

    def update(self, info: dict[str, Any]) -> None:
        """Rewrite the JSON the lock carries (e.g. once the run id is known)."""
        if self._fd is None:
            raise RuntimeError("update() on a lock that is not held")
        self._write(info)

    def verify(self) -> bool:
        """True if the path still names the file we hold. If it was deleted or replaced, take the path again
        (a fresh inode, locked, same JSON) and say so; False if someone else holds the new file."""
        if self._fd is None or self._names(self._fd):
            return True
        old, recovered = self._fd, self.recovered_from
        self._fd = None
        try:
            self.acquire(self._info)
        except (AlreadyRunningError, DiskError) as exc:
            self._fd = old  # keep what we had: still ours, and its flock still excludes the old path's readers
            log.critical("lock file %s was deleted or replaced and could not be taken back: %s", self.path, exc)
            return False
        self.recovered_from = recovered  # that was about the start, not about this restore
        os.close(old)
        log.warning("lock file %s was deleted or replaced while this session held it; restored", self.path)
        return True

    def release(self) -> None:
        """Remove the file, then drop the flock (in that order: no window for a stale file)."""
        if self._fd is None:
            return
        try:
            if self._names(self._fd):
                os.unlink(self.path)
        except OSError:
            pass
        finally:
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


# --------------------------------------------------------------------------- the account lock
@dataclass(frozen=True)
class AccountKey:
    """Which account a session trades. ``label`` is shown to people (never a secret); ``identity`` is hashed."""

    kind: str
    identity: str
    label: str

    @property
    def digest(self) -> str:
        return hashlib.sha256(f"{self.kind}\0{self.identity}".encode()).hexdigest()[:32]

    @property
    def file_name(self) -> str:
        return f"{self.kind}-{self.digest}.lock"

    @classmethod
    def paper(cls, state_dir: Path) -> AccountKey:
        """A paper account *is* its state directory (its real path: symlinks and `..` cannot split it)."""
        real = str(Path(os.path.realpath(state_dir)))
        return cls("paper", real, f"paper account {real}")

    @classmethod
    def live(cls, api_key_fingerprint: str, rest_url: str) -> AccountKey:
        """A live account is an API key at an exchange: the key's fingerprint (already a hash) and the
        exchange's host (scheme/host lower-cased, default port filled in, path ignored)."""
        return cls("live", f"{api_key_fingerprint}@{exchange_identity(rest_url)}",
                   f"live account {api_key_fingerprint} at {exchange_identity(rest_url)}")


def exchange_identity(url: str) -> str:
    parts = urlsplit(url.strip())
    scheme = (parts.scheme or "https").lower()
    host = (parts.hostname or "").lower()
    port = parts.port or (443 if scheme in ("https", "wss") else 80)
    return f"{host}:{port}"


def resolve_lock_dir(setting: str | None = None, env: Mapping[str, str] | None = None) -> Path:
    """$LA_LOCK_DIR > ``session.lock_dir`` > /run/laptop-agents > $XDG_RUNTIME_DIR/laptop-agents >
    <tmp>/laptop-agents-<uid>: the first that exists or can be created, and is writable. A directory named
    explicitly is used as given (created if missing; an unusable one fails at acquire with DISK_ERROR)."""
    env = os.environ if env is None else env
    chosen = env.get(LOCK_DIR_ENV) or setting
    if chosen:
        return Path(chosen).expanduser()
    candidates = list(DEFAULT_LOCK_DIRS)
    if env.get("XDG_RUNTIME_DIR"):
        candidates.append(Path(env["XDG_RUNTIME_DIR"]) / "laptop-agents")
    for path in candidates:
        try:
            path.mkdir(mode=0o755, exist_ok=True)  # parents must exist: never invent /run or the XDG dir
        except OSError:
            continue
        if os.access(path, os.W_OK | os.X_OK):
            return path
    return Path(tempfile.gettempdir()) / f"laptop-agents-{os.getuid()}"


class AccountLock:
    """The host-wide lock for one account: an abstract socket (Linux) plus a flocked file in the lock dir."""

    def __init__(self, lock_dir: Path, key: AccountKey) -> None:
        self.key = key
        self.lock_dir = lock_dir
        self.file = PidLock(lock_dir / key.file_name, what=f"the same {key.label}")
        self._sock: socket.socket | None = None

    def _socket_name(self) -> str:
        # Named by the account alone, not by the lock directory: a systemd unit (PrivateTmp, ProtectSystem=strict)
        # and a manual `la run` that fall back to different directories still meet here (same network namespace).
        # Tests stay apart because their accounts differ (a temp workspace; a mock exchange on its own port).
        return f"\0laptop-agents/{self.key.digest}"

    def acquire(self, info: dict[str, Any]) -> None:
        if sys.platform.startswith("linux"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.bind(self._socket_name())
            except OSError as exc:
                sock.close()
                if exc.errno != errno.EADDRINUSE:
                    raise
                raise _held_error(self.file.what, self.file.path, LockInfo.read(self.file.path)) from None
            self._sock = sock
        try:
            self.file.acquire(info)
        except BaseException:
            self._close_socket()
            raise

    def update(self, info: dict[str, Any]) -> None:
        self.file.update(info)

    def verify(self) -> bool:
        return self.file.verify()

    def release(self) -> None:
        try:
            self.file.release()
        finally:
            self._close_socket()

    def _close_socket(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class SessionLock:
    """The account lock (if the account is known) and then the workspace lock; both or neither."""

    def __init__(self, workspace_lock: PidLock, account_lock: AccountLock | None) -> None:
        self.workspace = workspace_lock
        self.account = account_lock

    @property
    def path(self) -> Path:
        return self.workspace.path

    @property
    def recovered_from(self) -> LockInfo | None:
        return self.workspace.recovered_from

    @property
    def held(self) -> bool:
        return self.workspace.held

    def acquire(self, info: dict[str, Any]) -> None:
        if self.account is not None:
            self.account.acquire(info)
        try:
            self.workspace.acquire(info)
        except BaseException:
            if self.account is not None:
                self.account.release()
            raise

    def update(self, info: dict[str, Any]) -> None:
        self.workspace.update(info)
        if self.account is not None:
            self.account.update(info)

    def verify(self) -> bool:
        ok = self.workspace.verify()
        if self.account is not None:
            ok = self.account.verify() and ok
        return ok

    def release(self) -> None:
        try:
            self.workspace.release()
        finally:
            if self.account is not None:
                self.account.release()
