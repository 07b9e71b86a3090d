"""Everything Bitunix-specific that the data provider and the broker share.

* :mod:`signing`: request and WebSocket-login signatures.
* :mod:`errors`: exchange codes → typed exceptions (retryability on the class).
* :mod:`schemas`: exchange JSON → typed, immutable models (the parsing edge);
  models in :mod:`market_schemas`, :mod:`trading_schemas`, :mod:`ws_schemas`,
  field conversion in :mod:`_fields`, enums in :mod:`enums`.
* :mod:`credentials`: the API key pair, unprintable secret.
* :mod:`transport`: one HTTP request with rate limiting, retries, breaker.
* :mod:`rest`: :class:`BitunixRestClient`, one typed method per endpoint.
* :mod:`intervals`: kline interval names and bar boundaries.
* :mod:`candles`: kline pushes → closed candles (pure), and REST warm-up.

The mock exchange deliberately shares none of this code.
"""

from laptop_agents.execution.bitunix.credentials import Credentials
from laptop_agents.execution.bitunix.enums import (
    MarginMode,
    OrderSide,
    OrderStatus,
    OrderType,
    PositionMode,
    PositionSide,
    TimeInForce,
    TradeSide,
)
from laptop_agents.execution.bitunix.errors import (
    AuthError,
    BitunixError,
    DuplicateClientIdError,
    ExchangeNetworkError,
    ExchangeUnavailableError,
    InsufficientBalanceError,
    InvalidRequestError,
    MalformedMessage,
    OrderNotFoundError,
    OrderRejectedError,
    PositionNotFoundError,
    RateLimitError,
    TransportError,
    error_from_code,
)
from laptop_agents.execution.bitunix.rest import BitunixRestClient, new_client_id
from laptop_agents.execution.bitunix.schemas import PlaceOrderRequest
from laptop_agents.execution.bitunix.transport import EndpointGroup, RestConfig, RetryMode

__all__ = [
    "AuthError",
    "BitunixError",
    "BitunixRestClient",
    "Credentials",
    "DuplicateClientIdError",
    "EndpointGroup",
    "ExchangeNetworkError",
    "ExchangeUnavailableError",
    "InsufficientBalanceError",
    "InvalidRequestError",
    "MalformedMessage",
    "MarginMode",
    "OrderNotFoundError",
    "OrderRejectedError",
    "OrderSide",
    "OrderStatus",
    "OrderType",
    "PlaceOrderRequest",
    "PositionMode",
    "PositionNotFoundError",
    "PositionSide",
    "RateLimitError",
    "RestConfig",
    "RetryMode",
    "TimeInForce",
    "TradeSide",
    "TransportError",
    "error_from_code",
    "new_client_id",
]
