"""Bitunix enumerations, parsed case-insensitively.

⚠ Private pushes have been seen with ``Buy``/``Sell`` and ``Market``/``Limit``;
a few synonyms (``CANCELLED``, ``ISOLATED``) are accepted for the same reason:
the contract is loose and the cost of refusing a valid order update is high.
Parsing goes through :meth:`BitunixEnum.parse`; an unknown value is a
``ValueError`` that the schema layer turns into ``MalformedMessage``.
"""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

E = TypeVar("E", bound="BitunixEnum")


class BitunixEnum(str, Enum):
    """A string enum whose parse is case-, dash- and space-insensitive."""

    @classmethod
    def parse(cls: type[E], raw: object) -> E:
        if not isinstance(raw, str):
            raise ValueError(f"{cls.__name__} must be a string, got {type(raw).__name__}")
        key = raw.strip().upper().replace("-", "_").replace(" ", "_")
        key = _ALIASES.get(cls, {}).get(key, key)
        try:
            return cls(key)
        except ValueError:
            allowed = ", ".join(m.value for m in cls)
            raise ValueError(f"unknown {cls.__name__} {raw[:40]!r} (allowed: {allowed})") from None


class OrderSide(BitunixEnum):
    BUY = "BUY"
    SELL = "SELL"


class TradeSide(BitunixEnum):
    OPEN = "OPEN"
    CLOSE = "CLOSE"


class OrderType(BitunixEnum):
    LIMIT = "LIMIT"
    MARKET = "MARKET"


class TimeInForce(BitunixEnum):
    """The ``effect`` field."""

    IOC = "IOC"
    FOK = "FOK"
    GTC = "GTC"
    POST_ONLY = "POST_ONLY"


class OrderStatus(BitunixEnum):
    INIT = "INIT"
    NEW = "NEW"
    PART_FILLED = "PART_FILLED"
    CANCELED = "CANCELED"
    FILLED = "FILLED"
    PART_FILLED_CANCELED = "PART_FILLED_CANCELED"
    EXPIRED = "EXPIRED"
    SYSTEM_CANCELED = "SYSTEM_CANCELED"
    """The exchange cancelled it (tradingiq's types, the order-channel docs): terminal like CANCELED."""

    @property
    def is_open(self) -> bool:
        return self in (OrderStatus.INIT, OrderStatus.NEW, OrderStatus.PART_FILLED)



class PositionSide(BitunixEnum):
    LONG = "LONG"
    SHORT = "SHORT"



class MarginMode(BitunixEnum):
    ISOLATION = "ISOLATION"
    CROSS = "CROSS"



class PositionMode(BitunixEnum):
    ONE_WAY = "ONE_WAY"
    HEDGE = "HEDGE"



class SymbolStatus(BitunixEnum):
    OPEN = "OPEN"
    CANCEL_ONLY = "CANCEL_ONLY"
    STOP = "STOP"


class StopType(BitunixEnum):
    MARK_PRICE = "MARK_PRICE"
    LAST_PRICE = "LAST_PRICE"


class RoleType(BitunixEnum):
    TAKER = "TAKER"
    MAKER = "MAKER"


class OrderEvent(BitunixEnum):
    CREATE = "CREATE"
    UPDATE = "UPDATE"
    CLOSE = "CLOSE"


class PositionEvent(BitunixEnum):
    OPEN = "OPEN"
    UPDATE = "UPDATE"
    CLOSE = "CLOSE"


_ALIASES: dict[type[BitunixEnum], dict[str, str]] = {
    OrderStatus: {
        "CANCELLED": "CANCELED",
        "SYSTEM_CANCELLED": "SYSTEM_CANCELED",
        "SYSTEMCANCELED": "SYSTEM_CANCELED",
        "PARTIALLY_FILLED": "PART_FILLED",
        "PART_FILLED_CANCELLED": "PART_FILLED_CANCELED",
    },
    PositionSide: {"BUY": "LONG", "SELL": "SHORT"},
    MarginMode: {"ISOLATED": "ISOLATION", "CROSSED": "CROSS"},
    PositionMode: {"ONEWAY": "ONE_WAY"},
    StopType: {"MARK": "MARK_PRICE", "LAST": "LAST_PRICE"},  # the official Python SDK sends MARK; pushes "Last"
}
"""Synonyms seen in the wild or plausible from the loose contract."""
