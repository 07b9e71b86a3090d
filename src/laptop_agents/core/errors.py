"""User-facing errors and the process exit codes they map to.

Every error a user can cause (bad config, corrupted state, a session already
running) is a `LaError`: the CLI prints its one-line message and exits with its
code, never a traceback. Anything else is a bug and exits with INTERNAL_ERROR.
"""

from __future__ import annotations

import errno
import os
from enum import IntEnum
from pathlib import Path
from typing import TypeGuard


class ExitCode(IntEnum):
    """Documented process exit codes (README, "Exit codes")."""

    OK = 0                 # completed, or stopped cleanly by SIGTERM/SIGINT/`la stop`
    INTERNAL_ERROR = 1     # a bug or an unexpected failure; see system.jsonl
    USAGE = 2              # bad command line or invalid config file
    ALREADY_RUNNING = 3    # another session holds the lock
    KILL_SWITCH = 4        # kill switch active: flattened and stopped
    CIRCUIT_BREAKER = 5    # trading circuit breaker tripped with action stop_session
    STALE_DATA = 6         # market data stopped for longer than stale_data_timeout_sec
    WATCHDOG = 7           # watchdog: heartbeat frozen or memory limit exceeded
    STATE_ERROR = 8        # a state file is corrupted or of an unknown version
    DATA_ERROR = 9         # the market data provider failed for good (FatalError)
    NOT_FLAT = 10          # shutdown could not verify the account is flat
    AUDIT_CRITICAL = 11    # `la audit` found a critical gap (or a failed edge case)
    EXCHANGE_UNAVAILABLE = 12  # the exchange kept failing (5xx, timeouts, rate limits) past every retry
    CREDENTIALS_REJECTED = 13  # the exchange refused our API key or signature
    DISK_ERROR = 14        # the workspace (or lock directory) cannot be written: full, read-only, no permission
    CLOCK_SKEW = 15        # this host's clock is off the exchange's by more than its receive window (at start)


class LaError(Exception):
    """An error the user can fix; `str()` is the one line shown to them."""

    exit_code: ExitCode = ExitCode.INTERNAL_ERROR


class UsageError(LaError):
    """The command line asks for something impossible or incomplete."""

    exit_code = ExitCode.USAGE


class ConfigError(LaError):
    """A config file or setting is invalid."""

    exit_code = ExitCode.USAGE


class StateError(LaError):
    """A state file cannot be trusted (corrupted, unknown version, wrong kind)."""

    exit_code = ExitCode.STATE_ERROR


class AlreadyRunningError(LaError):
    """A live session already holds the lock for this mode."""

    exit_code = ExitCode.ALREADY_RUNNING


class ExchangeUnreachableError(LaError):
    """The exchange stayed unavailable (5xx, timeouts, 429s) past every retry: not a bug, not ours to fix."""

    exit_code = ExitCode.EXCHANGE_UNAVAILABLE


class CredentialsRejectedError(LaError):
    """The exchange refused the API key, the signature or the IP: the credentials need fixing."""

    exit_code = ExitCode.CREDENTIALS_REJECTED


# errno values that mean "this disk / directory cannot take our writes", not "la has a bug"
PATH_ERRNOS = frozenset({errno.ENOTDIR, errno.EEXIST, errno.ELOOP})
"""A path the session must write is unusable as given (a file where a directory must be, a symlink where the lock
file must be): bad input from the command line, settings or environment, not a bug; one line, DISK_ERROR."""
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO,
                         errno.EFBIG}) | PATH_ERRNOS
_DISK_FIXES = {
    errno.ENOSPC: "the disk is full: free space there (or point --workspace / LA_WORKSPACE at another disk)",
    errno.EDQUOT: "the disk quota is used up: free space there (or point --workspace / LA_WORKSPACE elsewhere)",
    errno.EFBIG: "a file grew past the file-size limit: archive old runs (`la clean`) or raise the limit",
    errno.EROFS: "the file system is read-only: remount it read-write (or point --workspace / LA_WORKSPACE elsewhere)",
    errno.EACCES: "permission denied: give this user write access (or point --workspace / LA_WORKSPACE elsewhere)",
    errno.EPERM: "operation not permitted: give this user write access (or point --workspace / LA_WORKSPACE elsewhere)",
    errno.EIO: "the disk reported an I/O error: check the disk (dmesg) before running again",
    errno.ENOTDIR: "a part of that path is a file, not a directory: point --workspace / LA_WORKSPACE (or LA_LOCK_DIR "
                   "/ session.lock_dir) at a directory",
    errno.EEXIST: "that path exists and is not a directory: point --workspace / LA_WORKSPACE (or LA_LOCK_DIR / "
                  "session.lock_dir) at a directory, or move the file away",
    errno.ELOOP: "that path is a symbolic link (or a loop of them) where a plain file must be: remove the link",
}


def is_disk_error(exc: BaseException) -> TypeGuard[OSError]:
    """An OSError that says the disk or directory refused a write (full, read-only, no permission, I/O)."""
    return isinstance(exc, OSError) and exc.errno in DISK_ERRNOS


class DiskError(LaError):
    """A file the session must write cannot be written; state already on disk is left as it was."""

    exit_code = ExitCode.DISK_ERROR

    @classmethod
    def from_os_error(cls, exc: OSError, path: Path | str | None = None, action: str = "write") -> LaError:
        """A DiskError naming the path, the cause and the fix; an OSError of another kind stays a bug (exit 1)."""
        where = path if path is not None else exc.filename
        code = exc.errno if exc.errno is not None else 0
        cause = os.strerror(code) if code else str(exc)
        if code not in DISK_ERRNOS:
            err = LaError(f"cannot {action} {where}: {cause}")
            return err
        return cls(f"cannot {action} {where}: {cause} ({errno.errorcode.get(code, code)}); {_DISK_FIXES[code]}")
