"""Ordinary failures are told apart from bugs by type, whatever the message: the class of failure decides the
exit code (12 exchange, 13 credentials, 14 disk); anything else stays a bug (exit 1)."""

from __future__ import annotations

import errno
import os

import pytest

from laptop_agents.bitunix.errors import (
    AuthError,
    ExchangeNetworkError,
    ExchangeUnavailableError,
    OrderRejectedError,
    RateLimitError,
    TransportError,
)
from laptop_agents.core.errors import ExitCode
from laptop_agents.resilience.circuit import CircuitOpenError
from laptop_agents.session.failures import classify


@pytest.mark.parametrize("exc, code", [
    (TransportError("HTTP 503", status=503), ExitCode.EXCHANGE_UNAVAILABLE),
    (TransportError("request timed out"), ExitCode.EXCHANGE_UNAVAILABLE),
    (ExchangeNetworkError("network", code=10001), ExitCode.EXCHANGE_UNAVAILABLE),
    (RateLimitError("too many", code=10006), ExitCode.EXCHANGE_UNAVAILABLE),
    (ExchangeUnavailableError("breaker open", retry_after_sec=30), ExitCode.EXCHANGE_UNAVAILABLE),
    (CircuitOpenError("bitunix", 30.0), ExitCode.EXCHANGE_UNAVAILABLE),
    (AuthError("Signature Error", code=10007), ExitCode.CREDENTIALS_REJECTED),
    (OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/w/paper/x.json"), ExitCode.DISK_ERROR),
    (OSError(errno.EROFS, os.strerror(errno.EROFS), "/w/paper/x.json"), ExitCode.DISK_ERROR),
    (PermissionError(errno.EACCES, os.strerror(errno.EACCES), "/w/paper/x.json"), ExitCode.DISK_ERROR),
])
def test_ordinary_failures_get_their_code_and_one_line(exc: BaseException, code: ExitCode) -> None:
    ordinary = classify(exc)
    assert ordinary is not None
    reason, err = ordinary
    assert err.exit_code == code and "\n" not in str(err)
    assert reason in ("exchange_unavailable", "credentials_rejected", "disk_error")


@pytest.mark.parametrize("exc", [
    ValueError("a bug"), KeyError("x"), OrderRejectedError("qty too small", code=30001),
    OSError(errno.EBADF, os.strerror(errno.EBADF)), RuntimeError("the Bitunix REST client is closed"),
])
def test_everything_else_stays_a_bug(exc: BaseException) -> None:
    assert classify(exc) is None


def test_ctrl_c_while_la_is_still_starting_is_exit_130_without_traceback(monkeypatch, capsys) -> None:
    """A Ctrl-C lands wherever `la` is, the first lazy imports of main() included (seen: a traceback from
    core.logger's import when SIGINT came 0.3 s after start)."""
    from laptop_agents import cli

    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_mask_secrets_in_logs", interrupted)
    assert cli.main(["status"]) == 130
    assert "Traceback" not in capsys.readouterr().err
