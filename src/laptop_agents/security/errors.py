"""Security errors: each one a single line that names what is wrong and how to fix it.

All are :class:`LaError` so the CLI prints the line and exits with a code, never
a traceback. None of them ever carries a secret value: messages are built from
paths, field names and fingerprints only.
"""

from __future__ import annotations

from laptop_agents.core.errors import ExitCode, LaError


class SecurityError(LaError):
    """Base class; exit code 2 (a configuration problem the operator must fix)."""

    exit_code = ExitCode.USAGE


class PassphraseUnavailableError(SecurityError):
    """No passphrase source is configured, or the configured one cannot be read."""


class CredentialsFileError(SecurityError):
    """The credentials file is missing, unreadable, or not in a format we know."""


class PlaintextCredentialsError(CredentialsFileError):
    """The credentials file holds plaintext API keys instead of an encrypted document."""


class WrongPassphraseError(SecurityError):
    """The passphrase does not open this credentials file."""


class CredentialsTamperedError(CredentialsFileError):
    """The passphrase is right but the ciphertext or its metadata were altered."""


class OptInError(SecurityError):
    """The live opt-in document is missing, malformed, or its signature is wrong."""


class LiveGateRefused(SecurityError):
    """A live session was refused; ``reason`` is a stable machine-readable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
