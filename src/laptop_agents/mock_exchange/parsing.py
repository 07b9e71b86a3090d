"""Parsing of REST requests: query/body access, tolerant value parsing, and the ``place_order`` body.

Strict where every source agrees (docs/bitunix-dialects.md): order quantities and prices are strings, enums
are upper case exactly as documented (``BUY``, not ``buy``). The one documented leniency is ``tpStopType`` /
``slStopType`` ``MARK`` (and ``LAST``), which the official Python SDK sends. Anything that cannot be read is a
10002 parameter error; whether a well-formed order is acceptable is the matching engine's decision.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any, TypeVar

from . import errors
from .errors import ApiError
from .models import Effect, OrderType, PlaceOrderRequest, Side, TpSl, TradeSide

E = TypeVar("E", bound=Enum)


@dataclass
class ApiRequest:
    """One API call after authentication: query parameters, parsed JSON body and the caller's key."""

    query: Mapping[str, str]
    body: dict[str, Any]
    api_key: str | None
    remote: str

    def param(self, name: str) -> Any:
        """A query parameter or body field (GETs use the query, POSTs the body); "" counts as absent."""
        value = self.body.get(name) if self.body else self.query.get(name)
        return None if value == "" else value

    def text(self, name: str, required: bool = False) -> str | None:
        value = self.param(name)
        if value is None:
            if required:
                raise ApiError(errors.PARAMETER_ERROR, f"{name} is required")
            return None
        if isinstance(value, (dict, list, bool)):
            raise ApiError(errors.PARAMETER_ERROR, f"{name} must be a string")
        return str(value)

    def integer(
        self, name: str, default: int | None = None, lo: int | None = None, hi: int | None = None
    ) -> int | None:
        value = self.param(name)
        if value is None:
            return default
        try:
            if isinstance(value, bool):
                raise ValueError
            number = int(str(value))
        except ValueError:
            raise ApiError(errors.PARAMETER_ERROR, f"{name} must be an integer") from None
        if lo is not None and number < lo:
            raise ApiError(errors.PARAMETER_ERROR, f"{name} must be >= {lo}")
        if hi is not None and number > hi:
            raise ApiError(errors.PARAMETER_ERROR, f"{name} must be <= {hi}")
        return number


def parse_decimal(value: Any, name: str, strings_only: bool = True) -> Decimal | None:
    """A decimal string (the documented form); JSON numbers only with ``strings_only=False``."""
    if value is None or value == "":
        return None
    allowed = (str,) if strings_only else (str, int, float)
    if isinstance(value, bool) or not isinstance(value, allowed):
        raise ApiError(errors.PARAMETER_ERROR, f"{name} must be a number string like \"0.001\", got {value!r}")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ApiError(errors.PARAMETER_ERROR, f"{name} is not a number: {value!r}") from None
    if not number.is_finite():
        raise ApiError(errors.PARAMETER_ERROR, f"{name} is not a finite number")
    return number


def parse_enum(cls: type[E], value: Any, name: str, default: E | None = None) -> E:
    """Exact, upper-case enum values as documented (``buy`` or ``Buy`` is a 10002)."""
    if value is None or value == "":
        if default is None:
            raise ApiError(errors.PARAMETER_ERROR, f"{name} is required")
        return default
    try:
        if not isinstance(value, str):
            raise ValueError
        return cls(value)
    except ValueError:
        allowed = "|".join(m.value for m in cls)
        raise ApiError(errors.PARAMETER_ERROR, f"{name} must be one of {allowed}, got {value!r}") from None


STOP_TYPES = {"LAST_PRICE": "LAST_PRICE", "MARK_PRICE": "MARK_PRICE", "MARK": "MARK_PRICE", "LAST": "LAST_PRICE"}


def parse_stop_type(value: Any, name: str) -> str:
    """``MARK_PRICE``/``LAST_PRICE`` (docs) or ``MARK``/``LAST`` (the official Python SDK's example)."""
    if value is None or value == "":
        return "LAST_PRICE"
    stop = STOP_TYPES.get(value) if isinstance(value, str) else None
    if stop is None:
        raise ApiError(errors.PARAMETER_ERROR, f"{name} must be MARK_PRICE or LAST_PRICE, got {value!r}")
    return stop


def parse_bool(value: Any, name: str) -> bool:
    if value is None or value == "":
        return False
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise ApiError(errors.PARAMETER_ERROR, f"{name} must be true or false")


def parse_place_order(body: dict[str, Any]) -> PlaceOrderRequest:
    """Type-check a ``place_order`` body; the exchange's trading rules are checked by the engine."""
    symbol = body.get("symbol")
    if not symbol or not isinstance(symbol, str):
        raise ApiError(errors.PARAMETER_ERROR, "symbol is required")
    qty = parse_decimal(body.get("qty"), "qty")
    if qty is None:
        raise ApiError(errors.PARAMETER_ERROR, "qty is required")
    order_type = parse_enum(OrderType, body.get("orderType"), "orderType")
    client_id = body.get("clientId")
    if client_id is not None and not isinstance(client_id, (str, int)):
        raise ApiError(errors.PARAMETER_ERROR, "clientId must be a string")
    position_id = body.get("positionId")
    tpsl = TpSl(
        tp_price=parse_decimal(body.get("tpPrice"), "tpPrice"),
        tp_stop_type=parse_stop_type(body.get("tpStopType"), "tpStopType"),
        tp_order_type=parse_enum(OrderType, body.get("tpOrderType"), "tpOrderType", OrderType.MARKET),
        tp_order_price=parse_decimal(body.get("tpOrderPrice"), "tpOrderPrice"),
        sl_price=parse_decimal(body.get("slPrice"), "slPrice"),
        sl_stop_type=parse_stop_type(body.get("slStopType"), "slStopType"),
        sl_order_type=parse_enum(OrderType, body.get("slOrderType"), "slOrderType", OrderType.MARKET),
        sl_order_price=parse_decimal(body.get("slOrderPrice"), "slOrderPrice"),
    )
    return PlaceOrderRequest(
        symbol=symbol,
        side=parse_enum(Side, body.get("side"), "side"),
        qty=qty,
        order_type=order_type,
        price=parse_decimal(body.get("price"), "price"),
        trade_side=parse_enum(TradeSide, body.get("tradeSide"), "tradeSide", TradeSide.OPEN),
        position_id=str(position_id) if position_id not in (None, "") else None,
        effect=parse_enum(Effect, body.get("effect"), "effect", Effect.GTC),
        client_id=str(client_id) if client_id not in (None, "") else None,
        reduce_only=parse_bool(body.get("reduceOnly"), "reduceOnly"),
        tpsl=tpsl,
    )


def parse_body(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ApiError(errors.PARAMETER_ERROR, "request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(errors.PARAMETER_ERROR, "request body must be a JSON object")
    return body


def raw_for_ledger(raw: bytes) -> Any:
    """The request body for the ledger when it did not parse (or was never parsed)."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return raw.decode("utf-8", "replace")
