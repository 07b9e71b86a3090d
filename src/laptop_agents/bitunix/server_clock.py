"""The exchange's clock, as seen from here: an offset to add to the local wall clock before signing.

Why: Bitunix checks every signed request's ``timestamp`` against its own wall clock (a receive window of a few
seconds, undocumented). A local clock that is off by more than that, or that steps mid-session (NTP, a VM
resume), would make every signature fail, flatten calls included. The exchange documents no server-time
endpoint, but every HTTP answer carries a ``Date`` header stamped by the server (whole seconds).

Each answer bounds the offset: the server stamped ``Date`` (floored to the second) at some local instant
between sending and receiving, so ``offset ∈ [date - received, date + 999 - sent]``. Intersecting those
intervals narrows the estimate; an interval that does not meet the current one means a clock stepped, and the
estimate restarts from it. While 0 lies inside the interval the local clock is as good as we can tell, so the
offset stays 0 (no jitter is added to a healthy clock).

Pure logic: callers pass local times in and read the offset out.
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime

SECOND_MS = 1000


def parse_http_date_ms(value: str | None) -> int | None:
    """An RFC 7231 ``Date`` header as epoch milliseconds; None when absent or unreadable."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        return None
    return int(parsed.timestamp() * 1000)


class ServerClock:
    """The running estimate of ``exchange wall clock - local wall clock`` in milliseconds."""

    def __init__(self) -> None:
        self._lo: int | None = None
        self._hi: int | None = None
        self.samples = 0
        self.resyncs = 0
        """How often a new answer contradicted the estimate (a clock step on either side)."""

    @property
    def known(self) -> bool:
        return self._lo is not None

    @property
    def offset_ms(self) -> int:
        """Milliseconds to add to the local clock: 0 while the local clock is consistent with the exchange's."""
        if self._lo is None or self._hi is None:
            return 0
        if self._lo <= 0 <= self._hi:
            return 0
        return (self._lo + self._hi) // 2

    @property
    def least_skew_ms(self) -> int:
        """The smallest |offset| consistent with every answer: the skew the local clock certainly has."""
        if self._lo is None or self._hi is None or self._lo <= 0 <= self._hi:
            return 0
        return min(abs(self._lo), abs(self._hi))

    @property
    def uncertainty_ms(self) -> int:
        if self._lo is None or self._hi is None:
            return 0
        return (self._hi - self._lo + 1) // 2

    def observe(self, server_date_ms: int, sent_local_ms: int, received_local_ms: int) -> None:
        """One answer stamped ``server_date_ms`` (whole seconds), sent and received at those local times."""
        lo = server_date_ms - received_local_ms
        hi = server_date_ms + SECOND_MS - 1 - sent_local_ms
        self.samples += 1
        if self._lo is None or self._hi is None:
            self._lo, self._hi = lo, hi
        elif hi < self._lo or lo > self._hi:
            self.resyncs += 1
            self._lo, self._hi = lo, hi
        else:
            self._lo, self._hi = max(self._lo, lo), min(self._hi, hi)
