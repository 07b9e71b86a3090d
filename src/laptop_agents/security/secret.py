"""Secret values that cannot leak by accident, and a logging filter that masks them.

Why a type and a filter: the type stops the common leaks (a secret in an f-string,
a ``repr`` in a traceback, a pickle written to a state file); the filter is the
safety net for everything the type cannot see (a third-party library logging a
header, an exception message that echoes a request). Every secret value the
process learns is registered with :data:`REGISTRY`, and the filter replaces
each registered value wherever it appears in a log record.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

from laptop_agents.core.secrets_mask import MASK, redact

_MIN_MASKABLE = 4


class SecretStr:
    """A string whose ``repr``/``str``/``format`` never reveal the value.

    The value is reachable only through :meth:`reveal`, so every use of the
    plain text is explicit and greppable.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("SecretStr holds a str")
        self._value = value
        REGISTRY.add(value)

    def reveal(self) -> str:
        """The plain value: call only where it must be used (signing, decryption)."""
        return self._value

    def __len__(self) -> int:
        return len(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return f"SecretStr('{MASK}')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return format(repr(self), spec)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretStr):
            return NotImplemented
        import hmac

        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(("SecretStr", self._value))

    def __reduce__(self) -> Any:
        raise TypeError("SecretStr cannot be pickled")


class SecretRegistry:
    """The set of secret values to mask (thread-safe; values are never logged)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()

    def add(self, *values: str | None) -> None:
        with self._lock:
            for value in values:
                if value and len(value) >= _MIN_MASKABLE:
                    self._values.add(value)

    def discard(self, *values: str | None) -> None:
        with self._lock:
            for value in values:
                if value:
                    self._values.discard(value)

    def values(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._values)

    def mask(self, text: str) -> str:
        return redact(text, self.values())

    def __repr__(self) -> str:
        return f"SecretRegistry({len(self._values)} values)"


REGISTRY = SecretRegistry()
"""Process-wide registry: decrypted credentials and passphrases add themselves here."""


def register_secrets(values: Iterable[str | None]) -> None:
    REGISTRY.add(*values)


class SecretMaskingFilter(logging.Filter):
    """Replace every registered secret in a record's message, args, exception and extras.

    The record is rewritten in place (message pre-formatted, args cleared,
    exception text pre-rendered) so every handler after this filter, whatever
    its formatter, sees only masked text. Never drops a record.
    """

    _STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}

    def __init__(self, registry: SecretRegistry | None = None) -> None:
        super().__init__()
        self.registry = registry or REGISTRY

    def filter(self, record: logging.LogRecord) -> bool:
        values = self.registry.values()
        if not values:
            return True
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string must not hide the record
            message = str(record.msg)
        record.msg = redact(message, values)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_info:
            record.exc_info = None  # rendered once, masked below; handlers must not re-render it
        if record.exc_text:
            record.exc_text = redact(record.exc_text, values)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, values)
        for key, value in list(vars(record).items()):
            if key in self._STANDARD:
                continue
            if isinstance(value, str):
                setattr(record, key, redact(value, values))
            elif not isinstance(value, (int, float, bool, type(None))):
                text = str(value)
                masked = redact(text, values)
                if masked != text:
                    setattr(record, key, masked)
        return True


_INSTALLED_FLAG = "_la_secret_filter"


def install_masking_filter(logger: logging.Logger | None = None) -> SecretMaskingFilter:
    """Attach the filter to every handler of ``logger`` (default: the package logger) and to the logger.

    Handler-level filters also see records propagated from child loggers, which
    logger-level filters do not; the logger-level one covers handlers added later.
    Idempotent.
    """
    logger = logger or logging.getLogger("laptop_agents")
    existing = next((f for f in logger.filters if getattr(f, _INSTALLED_FLAG, False)), None)
    filt = existing if isinstance(existing, SecretMaskingFilter) else SecretMaskingFilter()
    setattr(filt, _INSTALLED_FLAG, True)
    if existing is None:
        logger.addFilter(filt)
    for handler in logger.handlers:
        if not any(getattr(f, _INSTALLED_FLAG, False) for f in handler.filters):
            handler.addFilter(filt)
    return filt
