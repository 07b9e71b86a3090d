"""User-facing errors and the process exit codes they map to.

Every error a user can cause (bad config, corrupted state, a session already
running) is a `LaError`: the CLI prints its one-line message and exits with its
code, never a traceback. Anything else is a bug and exits with INTERNAL_ERROR.
"""

from __future__ import annotations

from enum import IntEnum


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
