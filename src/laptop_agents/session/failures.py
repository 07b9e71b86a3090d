"""Ordinary failures, told apart from bugs: the exchange being down, rejected credentials, a disk that refuses writes.

A session meets these without any defect of its own, so they must end with one line naming the cause and
the fix and a documented exit code (core/errors.py), never with exit 1 and a traceback (exit 1 means a bug).
:func:`classify` is the one place that decides; the runner uses it at start-up (to refuse with the right
code) and mid-session (to stop through the normal shutdown path with the right reason).
"""

from __future__ import annotations

from laptop_agents.core.errors import (
    CredentialsRejectedError,
    DiskError,
    ExchangeUnreachableError,
    LaError,
    is_disk_error,
)

# stop reason -> the LaError class whose exit code the session ends with
EXCHANGE_UNAVAILABLE = "exchange_unavailable"
CREDENTIALS_REJECTED = "credentials_rejected"
DISK_ERROR = "disk_error"

EXCHANGE_FIX = "check the exchange's status and this host's network, then start again"
CREDENTIALS_FIX = ("check the API key and secret in the credentials file (`la secrets verify`), the key's "
                   "permissions (futures trading) and its IP whitelist, then encrypt them again (`la secrets`)")


def _bitunix_errors() -> tuple[type[BaseException], ...] | None:
    try:  # the exchange client is imported only by live sessions; paper never needs it
        from laptop_agents.bitunix import AuthError, ExchangeUnavailableError, RateLimitError, TransportError
    except ImportError:  # pragma: no cover - part of the package
        return None
    return AuthError, TransportError, RateLimitError, ExchangeUnavailableError


def classify(exc: BaseException) -> tuple[str, LaError] | None:
    """(stop reason, the one-line error) for an ordinary failure; None for anything else (a bug: exit 1)."""
    if isinstance(exc, (ExchangeUnreachableError, CredentialsRejectedError, DiskError)):
        return _reason_of(exc), exc
    if is_disk_error(exc):
        assert isinstance(exc, OSError)
        return DISK_ERROR, DiskError.from_os_error(exc, action="access")
    known = _bitunix_errors()
    if known is not None:
        auth, transport, rate_limit, circuit_open = known
        if isinstance(exc, auth):
            return CREDENTIALS_REJECTED, CredentialsRejectedError(
                f"the exchange rejected our API credentials ({exc}); {CREDENTIALS_FIX}")
        if isinstance(exc, rate_limit):
            return EXCHANGE_UNAVAILABLE, ExchangeUnreachableError(
                f"the exchange kept rate-limiting us past every retry ({exc}); make sure no other program "
                f"uses this API key, then {EXCHANGE_FIX}")
        if isinstance(exc, (transport, circuit_open)):
            return EXCHANGE_UNAVAILABLE, ExchangeUnreachableError(
                f"the exchange is unavailable: every retry failed ({exc}); {EXCHANGE_FIX}")
    try:
        from laptop_agents.resilience.circuit import CircuitOpenError
    except ImportError:  # pragma: no cover
        CircuitOpenError = ()  # type: ignore[assignment,misc]  # noqa: N806
    if isinstance(exc, CircuitOpenError):
        return EXCHANGE_UNAVAILABLE, ExchangeUnreachableError(
            f"the exchange is unavailable ({type(exc).__name__}: {exc}); {EXCHANGE_FIX}")
    return None


def _reason_of(err: LaError) -> str:
    if isinstance(err, DiskError):
        return DISK_ERROR
    if isinstance(err, CredentialsRejectedError):
        return CREDENTIALS_REJECTED
    return EXCHANGE_UNAVAILABLE
