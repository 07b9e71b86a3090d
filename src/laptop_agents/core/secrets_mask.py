"""Keep secrets out of reprs, logs and exception text.

Pure string helpers (no I/O) so any layer may use them: the Bitunix client uses
them for its credential type and to scrub exchange-provided text before it
lands in an exception message.
"""

from __future__ import annotations

from collections.abc import Iterable

MASK = "***"


def fingerprint(value: str, visible: int = 4) -> str:
    """A short, non-reversible-enough hint for telling keys apart: ``***abcd``.

    Shows at most ``visible`` trailing characters and never more than a quarter
    of the value, so short values are fully masked.
    """
    shown = min(visible, len(value) // 4)
    if shown <= 0:
        return MASK
    return MASK + value[-shown:]


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every occurrence of each non-trivial secret in ``text`` with ``***``.

    Secrets shorter than 4 characters are ignored: masking them would mangle
    ordinary text without protecting anything.
    """
    for secret in sorted((s for s in secrets if s and len(s) >= 4), key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text
