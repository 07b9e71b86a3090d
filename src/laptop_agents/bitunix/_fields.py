"""Field readers for untrusted exchange JSON.

Every conversion failure becomes :class:`MalformedMessage` naming the message
kind and the field, so a bad message can never escape as ``KeyError``,
``TypeError`` or ``decimal.InvalidOperation`` from deep inside a consumer.

Tolerances (all from ⚠ items of the contract):

* numbers may be JSON numbers or numeric strings;
* ``null`` and ``""`` mean "absent";
* timestamps may be epoch milliseconds, epoch seconds, or ISO-8601 strings;
* several fields have aliases across endpoints (``last``/``lastPrice``...).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, TypeVar, overload

from laptop_agents.bitunix.enums import BitunixEnum
from laptop_agents.bitunix.errors import MalformedMessage, excerpt

E = TypeVar("E", bound=BitunixEnum)
T = TypeVar("T")

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECONDS_CUTOFF = 100_000_000_000
"""Epoch values below this are seconds (year 5138), above are milliseconds (1973+)."""
_MAX_EPOCH_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, datetime's limit
_MAX_EXPONENT = 30
_MAX_NUMBER_TEXT = 64
"""Longer numeric strings are refused: no real price needs them, and a
100k-digit string would make Decimal arithmetic a denial of service."""


def _absent(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def to_decimal(value: Any) -> Decimal:
    """JSON number or numeric string → finite Decimal; raises ValueError."""
    if isinstance(value, bool):
        raise ValueError("boolean is not a number")
    if isinstance(value, int):
        return _bounded(Decimal(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("non-finite number")
        return _bounded(Decimal(repr(value)))
    if isinstance(value, str):
        text = value.strip()
        if len(text) > _MAX_NUMBER_TEXT:
            raise ValueError("numeric string too long")
        try:
            result = Decimal(text)
        except InvalidOperation:
            raise ValueError(f"not a number: {text[:40]!r}") from None
        if not result.is_finite():
            raise ValueError("non-finite number")
        return _bounded(result)
    raise ValueError(f"expected number or numeric string, got {type(value).__name__}")


def _bounded(number: Decimal) -> Decimal:
    """Refuse magnitudes no price, quantity or timestamp can have (``1e999999``
    is finite but turning it into an int would allocate megabytes)."""
    if number and not -_MAX_EXPONENT <= number.adjusted() <= _MAX_EXPONENT:
        raise ValueError("number out of range")
    return number


def to_int(value: Any) -> int:
    """Integral JSON number or digit string → int; raises ValueError."""
    if isinstance(value, bool):
        raise ValueError("boolean is not an integer")
    if isinstance(value, int):
        return value
    number = to_decimal(value)
    if number != number.to_integral_value():
        raise ValueError(f"not an integer: {value!r}"[:80])
    return int(number)


def to_bool(value: Any) -> bool:
    """JSON bool, 0/1, or 'true'/'false' (any case) → bool; raises ValueError."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    raise ValueError(f"expected boolean, got {excerpt(value, 40)}")


def to_epoch_ms(value: Any) -> int:
    """Epoch ms/seconds (number or string) or ISO-8601 text → epoch ms."""
    if isinstance(value, str) and not _looks_numeric(value):
        text = value.strip()
        if len(text) > _MAX_NUMBER_TEXT:
            raise ValueError("timestamp text too long")
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise ValueError(f"not a timestamp: {text[:40]!r}") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        delta = dt - EPOCH
        ms = (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
    else:
        number = to_decimal(value)
        if abs(number) < _SECONDS_CUTOFF:
            number *= 1000
        ms = int(number)
    if not 0 <= ms <= _MAX_EPOCH_MS:
        raise ValueError(f"timestamp out of range: {excerpt(value, 40)}")
    return ms


def ms_to_datetime(ms: int) -> datetime:
    """Epoch ms → aware UTC datetime, exactly (no float rounding)."""
    return EPOCH + timedelta(milliseconds=ms)


def _looks_numeric(text: str) -> bool:
    stripped = text.strip()
    return bool(stripped) and stripped.lstrip("+-").replace(".", "", 1).isdigit()


class Fields:
    """Typed access to one JSON object, with the message kind for error context."""

    __slots__ = ("_data", "kind", "context")

    def __init__(self, data: Any, kind: str, *, context: str = "") -> None:
        if not isinstance(data, Mapping):
            raise MalformedMessage(
                f"expected a JSON object, got {type(data).__name__}",
                kind=kind,
                excerpt=excerpt(data),
                context=context,
            )
        self._data = data
        self.kind = kind
        self.context = context

    def has(self, *names: str) -> bool:
        return any(not _absent(self._data.get(name)) for name in names)

    def raw(self, *names: str) -> tuple[str, Any]:
        """The first present alias and its value (``(names[0], None)`` when absent)."""
        for name in names:
            value = self._data.get(name)
            if not _absent(value):
                return name, value
        return names[0], None

    def error(self, field: str, msg: str, value: Any = None) -> MalformedMessage:
        return MalformedMessage(
            msg,
            kind=self.kind,
            field=field,
            excerpt=excerpt(value) if value is not None else "",
            context=self.context,
        )

    @overload
    def _convert(self, names: tuple[str, ...], required: Literal[True], convert: Callable[[Any], T]) -> T: ...

    @overload
    def _convert(self, names: tuple[str, ...], required: bool, convert: Callable[[Any], T]) -> T | None: ...

    def _convert(self, names: tuple[str, ...], required: bool, convert: Callable[[Any], T]) -> T | None:
        name, value = self.raw(*names)
        if value is None:
            if required:
                raise self.error(name, "missing required field")
            return None
        try:
            return convert(value)
        except (ValueError, TypeError, ArithmeticError, OverflowError) as exc:
            raise self.error(name, str(exc), value) from None

    # required accessors -------------------------------------------------------

    def text(self, *names: str) -> str:
        return self._convert(names, True, _to_str)

    def decimal(self, *names: str) -> Decimal:
        return self._convert(names, True, to_decimal)

    def integer(self, *names: str) -> int:
        return self._convert(names, True, to_int)

    def boolean(self, *names: str) -> bool:
        return self._convert(names, True, to_bool)

    def epoch_ms(self, *names: str) -> int:
        return self._convert(names, True, to_epoch_ms)

    def time(self, *names: str) -> datetime:
        return ms_to_datetime(self.epoch_ms(*names))

    def enum(self, enum_cls: type[E], *names: str) -> E:
        return self._convert(names, True, enum_cls.parse)

    def obj(self, *names: str) -> Fields:
        name, value = self.raw(*names)
        if value is None:
            raise self.error(name, "missing required object")
        return Fields(value, f"{self.kind}.{name}", context=self.context)

    def items(self, *names: str) -> list[Any]:
        name, value = self.raw(*names)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.error(name, f"expected a list, got {type(value).__name__}", value)
        return value

    # optional accessors -------------------------------------------------------

    def opt_text(self, *names: str) -> str | None:
        return self._convert(names, False, _to_str)

    def opt_decimal(self, *names: str) -> Decimal | None:
        return self._convert(names, False, to_decimal)

    def opt_order_price(self, *names: str) -> Decimal | None:
        """An order's limit price; ⚠ market orders may carry the literal ``"MARKET"``
        (seen in a third-party client's fixtures) instead of null: that means None."""
        name, value = self.raw(*names)
        if isinstance(value, str) and value.strip().upper() == "MARKET":
            return None
        return self.opt_decimal(name)

    def opt_integer(self, *names: str) -> int | None:
        return self._convert(names, False, to_int)

    def opt_boolean(self, *names: str, default: bool = False) -> bool:
        value = self._convert(names, False, to_bool)
        return default if value is None else value

    def opt_epoch_ms(self, *names: str) -> int | None:
        return self._convert(names, False, to_epoch_ms)

    def opt_time(self, *names: str) -> datetime | None:
        ms = self._convert(names, False, to_epoch_ms)
        return None if ms is None else ms_to_datetime(ms)

    def opt_enum(self, enum_cls: type[E], *names: str) -> E | None:
        return self._convert(names, False, enum_cls.parse)


def _to_str(value: Any) -> str:
    """Strings as-is; integral numbers (ids sent as numbers) as their digits."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"expected a string, got {type(value).__name__}")


def list_of(data: Any, kind: str) -> list[Any]:
    """``data`` if it is a JSON list, else :class:`MalformedMessage`."""
    if not isinstance(data, list):
        raise MalformedMessage(
            f"expected a JSON list, got {type(data).__name__}", kind=kind, excerpt=excerpt(data)
        )
    return data


def check_ohlc(f: Fields, o: Decimal, h: Decimal, low: Decimal, c: Decimal) -> None:
    """A bar whose low/high do not bound open/close would crash ``Candle``
    later, far from the cause; refuse it at the edge instead."""
    if not (Decimal(0) <= low <= o <= h and low <= c <= h):
        raise f.error("ohlc", f"inconsistent OHLC o={o} h={h} l={low} c={c}")


def decode_json(raw: str | bytes | bytearray, kind: str) -> Any:
    """``json.loads`` that fails as :class:`MalformedMessage` (incl. bad UTF-8,
    over-long integers and excessive nesting)."""
    try:
        return json.loads(raw)
    except (ValueError, TypeError, RecursionError) as exc:
        raise MalformedMessage(
            f"invalid JSON: {type(exc).__name__}: {str(exc)[:80]}",
            kind=kind,
            excerpt=excerpt(raw),
        ) from None
