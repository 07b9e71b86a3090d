"""Bitunix error codes and the one exception the mock raises for an API-level refusal.

Bitunix answers a refused request with HTTP 200 and a non-zero ``code`` in the ``{code,msg,data}``
envelope; only transport failures use other HTTP statuses. Every refusal in the mock is therefore an
:class:`ApiError`, which the HTTP layer turns into that envelope. The codes are the ones listed on the
reference page (``/work/shared/reference/bitunix-api.md``); where the page gives a range or two
alternatives, the constant names below record which one the mock uses.
"""

from __future__ import annotations

SUCCESS = 0
NETWORK_ERROR = 10001
PARAMETER_ERROR = 10002
API_KEY_EMPTY = 10003
IP_NOT_WHITELISTED = 10004
RATE_LIMITED_ALT = 10005
RATE_LIMITED = 10006
SIGNATURE_ERROR = 10007
VALUE_NOT_COMPLY = 10008
MARKET_NOT_EXISTS = 20001
POSITION_LIMIT = 20002
INSUFFICIENT_BALANCE = 20003
INVALID_LEVERAGE = 20005
OPEN_ORDERS_EXIST = 20006
ORDER_NOT_FOUND = 20007
INSUFFICIENT_AMOUNT = 20008
ACCOUNT_NOT_ALLOWED = 20011
FUTURES_NOT_TRADABLE = 20012
WOULD_LIQUIDATE = 30001
POSITION_NOT_EXIST = 30004
ABNORMAL_ORDER_STATUS = 30011
QTY_ABOVE_MAX_LIMIT = 30013
QTY_ABOVE_MAX_MARKET = 30039
QTY_BELOW_MIN = 30016
REDUCE_ONLY_NO_POSITION = 30018
REDUCE_ONLY_SAME_DIRECTION = 30019
TP_PRICE_INVALID = 30020
SL_PRICE_INVALID = 30021
TRIGGER_PRICE_NOT_POSITIVE = 30041
CLIENT_ID_DUPLICATE = 30042

RATE_LIMIT_CODES = frozenset({RATE_LIMITED_ALT, RATE_LIMITED})

MESSAGES: dict[int, str] = {
    SUCCESS: "Success",
    NETWORK_ERROR: "Network Error",
    PARAMETER_ERROR: "Parameter Error",
    API_KEY_EMPTY: "api-key can't be empty",
    IP_NOT_WHITELISTED: "The request ip is not within the whitelist",
    RATE_LIMITED_ALT: "Too many requests, please try again later",
    RATE_LIMITED: "Too many requests, please try again later",
    SIGNATURE_ERROR: "Signature Error",
    VALUE_NOT_COMPLY: "Please enter the value that complies with the rules",
    MARKET_NOT_EXISTS: "Market not exists",
    POSITION_LIMIT: "The current positions amount has exceeded the maximum open limit",
    INSUFFICIENT_BALANCE: "Insufficient balance",
    INVALID_LEVERAGE: "Leverage exceeds the maximum leverage of risk level or is invalid",
    OPEN_ORDERS_EXIST: "The leverage or margin mode cannot be changed with open orders or positions",
    ORDER_NOT_FOUND: "Order not exists",
    INSUFFICIENT_AMOUNT: "Insufficient amount",
    ACCOUNT_NOT_ALLOWED: "Account not allowed to trade",
    FUTURES_NOT_TRADABLE: "Futures does not support trading",
    WOULD_LIQUIDATE: "The order price would trigger liquidation immediately",
    POSITION_NOT_EXIST: "Position not exist",
    ABNORMAL_ORDER_STATUS: "Abnormal order status",
    QTY_ABOVE_MAX_LIMIT: "Order quantity exceeds the maximum limit order volume",
    QTY_ABOVE_MAX_MARKET: "Order quantity exceeds the maximum market order volume",
    QTY_BELOW_MIN: "Order quantity is below the minimum trade volume",
    REDUCE_ONLY_NO_POSITION: "Reduce-only order with no position",
    REDUCE_ONLY_SAME_DIRECTION: "Reduce-only order has the same direction as the position",
    TP_PRICE_INVALID: "Take-profit price is invalid",
    SL_PRICE_INVALID: "Stop-loss price is invalid",
    TRIGGER_PRICE_NOT_POSITIVE: "Trigger price must be greater than 0",
    CLIENT_ID_DUPLICATE: "Client ID duplicate",
}


class ApiError(Exception):
    """A refusal the exchange reports inside the envelope (HTTP 200, ``code`` != 0).

    ``msg`` defaults to the generic text for the code; callers add detail so a test reading the
    ledger can tell *why* a request was refused without the mock inventing new codes.
    """

    def __init__(self, code: int, msg: str | None = None) -> None:
        self.code = code
        self.msg = msg or MESSAGES.get(code, "Error")
        super().__init__(f"{code}: {self.msg}")
