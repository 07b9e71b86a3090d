"""Bitunix failures as typed exceptions.

Bitunix reports business errors as HTTP 200 with a non-zero ``code``; anything
that prevents a well-formed envelope from arriving is a :class:`TransportError`.
Each class states, as class attributes, the two facts resilience code needs:

* ``retryable``: may the *same* request be sent again and possibly succeed?
* ``counts_as_api_failure``: does this say the API itself is unhealthy (feeds
  the API circuit breaker)? A rejected order proves the API works.

Retrying a retryable error is still only *safe* if the request is idempotent or
provably was not processed; :attr:`BitunixError.maybe_delivered` carries the
second half of that judgement.

Messages never contain credentials: the client builds ``context`` from method
and path only and scrubs exchange-provided text (see ``rest.py``).
"""

from __future__ import annotations

from typing import Any, ClassVar


class BitunixError(Exception):
    """Base of every Bitunix client error; ``code`` is the exchange code, if any."""

    retryable: ClassVar[bool] = False
    counts_as_api_failure: ClassVar[bool] = False

    def __init__(
        self,
        msg: str = "",
        *,
        code: int | None = None,
        context: str = "",
        maybe_delivered: bool = True,
    ) -> None:
        super().__init__(msg)
        self.msg = msg
        self.code = code
        self.context = context
        self.maybe_delivered = maybe_delivered
        """False only when the request certainly did not take effect (e.g. refused
        by the rate limiter, connection never established)."""
        self.earlier_attempt_unanswered = False
        """Set by ``place_order`` when this error answered a re-send: an earlier attempt of the same order went
        unanswered and was not found, so it may still land (like ``OrderAck.resent``)."""

    def __str__(self) -> str:
        parts = []
        if self.code is not None:
            parts.append(f"[{self.code}]")
        parts.append(self.msg or type(self).__name__)
        if self.context:
            parts.append(f"({self.context})")
        return " ".join(parts)


class TransportError(BitunixError):
    """No usable answer: non-200 status, timeout, connection error, bad JSON."""

    retryable = True
    counts_as_api_failure = True

    def __init__(
        self,
        msg: str = "",
        *,
        status: int | None = None,
        code: int | None = None,
        context: str = "",
        maybe_delivered: bool = True,
    ) -> None:
        super().__init__(msg, code=code, context=context, maybe_delivered=maybe_delivered)
        self.status = status


class ExchangeNetworkError(TransportError):
    """Code 10001: the exchange reports an internal network error."""


class ExchangeUnavailableError(BitunixError):
    """Refused locally because the API circuit breaker is open.

    Not retryable in a tight loop: wait ``retry_after_sec``. Nothing was sent.
    """

    def __init__(self, msg: str = "", *, retry_after_sec: float = 0.0, context: str = "") -> None:
        super().__init__(msg, context=context, maybe_delivered=False)
        self.retry_after_sec = retry_after_sec


class AuthError(BitunixError):
    """Key missing, IP not whitelisted or bad signature: fix config, don't retry."""


class RateLimitError(BitunixError):
    """The exchange refused the request for exceeding its rate; back off and retry."""

    retryable = True

    def __init__(
        self,
        msg: str = "",
        *,
        code: int | None = None,
        context: str = "",
        maybe_delivered: bool = False,
    ) -> None:
        super().__init__(msg, code=code, context=context, maybe_delivered=maybe_delivered)


class InvalidRequestError(BitunixError):
    """Parameter/value errors, unknown market, leverage or mode changes refused."""


class InsufficientBalanceError(BitunixError):
    """Code 20003: not enough margin for the order."""


class OrderRejectedError(BitunixError):
    """The exchange refused the order itself (qty/price bounds, TP/SL, reduce-only...)."""


class PositionNotFoundError(OrderRejectedError):
    """Code 30004: the referenced position does not exist (e.g. already closed)."""


class DuplicateClientIdError(BitunixError):
    """Code 30042: an order with this clientId already exists.

    After a retry this means "the first attempt was placed": the client resolves
    it by looking the order up instead of surfacing this error.
    """


class OrderNotFoundError(BitunixError):
    """Code 20007: no such order."""


class MalformedMessage(BitunixError):
    """A message did not have the shape the contract promises.

    ``kind`` names the message type (e.g. ``ws.kline``), ``field`` the offending
    field when known, ``excerpt`` a short, truncated rendering of the input.
    """

    def __init__(
        self,
        msg: str = "",
        *,
        kind: str = "",
        field: str | None = None,
        excerpt: str = "",
        context: str = "",
    ) -> None:
        super().__init__(msg, context=context)
        self.kind = kind
        self.field = field
        self.excerpt = excerpt

    def __str__(self) -> str:
        where = self.kind + (f".{self.field}" if self.field else "")
        text = f"malformed {where}: {self.msg}" if where else f"malformed message: {self.msg}"
        if self.excerpt:
            text += f" in {self.excerpt}"
        if self.context:
            text += f" ({self.context})"
        return text


_AUTH = frozenset({10003, 10004, 10007})
_RATE = frozenset({10005, 10006})
_INVALID = frozenset({10002, 10008, 20001, 20005, 20006})
_REJECTED = frozenset(
    {20002, 20008, 20011, 20012, 30001, 30011, 30013, 30014, 30015, 30016, 30017, 30018, 30019}
    | set(range(30020, 30039))
    | {30039, 30041}
)

CODE_CLASSES: dict[int, type[BitunixError]] = {
    10001: ExchangeNetworkError,
    **{c: AuthError for c in _AUTH},
    **{c: RateLimitError for c in _RATE},
    **{c: InvalidRequestError for c in _INVALID},
    20003: InsufficientBalanceError,
    20007: OrderNotFoundError,
    **{c: OrderRejectedError for c in _REJECTED},
    30004: PositionNotFoundError,
    30042: DuplicateClientIdError,
}
"""Documented codes. Unlisted 3xxxx codes are trade rejections; others fall back
to the non-retryable base class."""


def error_class_for(code: int) -> type[BitunixError]:
    if code in CODE_CLASSES:
        return CODE_CLASSES[code]
    if 30000 <= code < 40000:
        return OrderRejectedError
    return BitunixError


def error_from_code(code: int, msg: str = "", *, context: str = "") -> BitunixError:
    """The typed exception for a non-zero envelope ``code``."""
    cls = error_class_for(code)
    if cls is ExchangeNetworkError:
        return ExchangeNetworkError(msg, code=code, context=context)
    return cls(msg, code=code, context=context)


def excerpt(value: Any, limit: int = 160) -> str:
    """A bounded ``repr`` of untrusted input for error messages and logs."""
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - repr of arbitrary input must not raise out
        text = f"<unrepresentable {type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."
