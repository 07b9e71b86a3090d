"""The Bitunix venue: everything the market-data provider and the live broker share.

Outside this package import only from here (``from laptop_agents.bitunix import ...``): the names
in :data:`__all__` are the venue's public surface; the modules below are its internals and may be
reshaped without touching a caller (tests/unit/test_import_graph.py enforces this). The real homes
of the venue's two users stay where the audit spec names them: ``data/providers/bitunix_ws.py``
(market data) and ``execution/bitunix_broker.py`` (the live broker).

* ``signing``: request and WebSocket-login signatures.
* ``errors``: exchange codes → typed exceptions (retryability on the class).
* ``schemas``: exchange JSON → typed, immutable models (the parsing edge); models in
  ``market_schemas``, ``trading_schemas``, ``ws_schemas``, field conversion in ``_fields``,
  enums in ``enums``.
* ``transport``: one HTTP request with rate limiting, retries, breaker; ``server_clock``: the
  exchange's clock from its Date headers.
* ``rest``: :class:`BitunixRestClient`, one typed method per endpoint.
* ``intervals``: kline interval names and bar boundaries; ``candles``: kline pushes → closed
  candles (pure), and REST warm-up.
* ``private_stream``: the private WebSocket (order/position/balance pushes) the broker books from.
* ``last_price``: the public ticker's last price, kept by the provider, read by the broker.
* ``live``: the venue half of a live start (client, client factory, private stream).

The API key pair type (:class:`Credentials`) lives in ``security/credentials.py`` because the
encrypted credentials file and the live opt-in produce it and security/ must not import the venue;
it is re-exported here for the venue's callers.

The mock exchange deliberately shares none of this code.
"""

from laptop_agents.bitunix.candles import (
    BarTransition,
    CandleAssembler,
    bar_opens,
    candle_open_ms,
    fetch_closed_candles,
)
from laptop_agents.bitunix.enums import (
    MarginMode,
    OrderSide,
    OrderStatus,
    OrderType,
    PositionMode,
    PositionSide,
    StopType,
    SymbolStatus,
    TimeInForce,
    TradeSide,
)
from laptop_agents.bitunix.errors import (
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
from laptop_agents.bitunix.intervals import Interval, interval_from_rest
from laptop_agents.bitunix.last_price import LastPrice
from laptop_agents.bitunix.live import LiveVenue, open_live_venue
from laptop_agents.bitunix.private_stream import PrivateStream
from laptop_agents.bitunix.rest import BitunixRestClient, new_client_id, order_mismatch
from laptop_agents.bitunix.schemas import (
    AccountInfo,
    OrderInfo,
    PlaceOrderRequest,
    PositionInfo,
    TradeInfo,
    TradingPair,
    WsConnect,
    WsKline,
    WsLoginAck,
    WsPong,
    WsTicker,
    WsUnhandled,
    parse_trading_pairs,
    parse_ws_message,
)
from laptop_agents.bitunix.tpsl_schemas import (
    PositionTpslRequest,
    TpslAck,
    TpslLeg,
    TpslModifyRequest,
    TpslOrderInfo,
    TpslOrderRequest,
)
from laptop_agents.bitunix.transport import (
    BitunixTransport,
    EndpointGroup,
    RestConfig,
    RetryMode,
    exit_path,
)
from laptop_agents.security.credentials import Credentials

__all__ = [
    "AccountInfo",
    "AuthError",
    "BarTransition",
    "BitunixError",
    "BitunixRestClient",
    "BitunixTransport",
    "CandleAssembler",
    "Credentials",
    "DuplicateClientIdError",
    "EndpointGroup",
    "ExchangeNetworkError",
    "ExchangeUnavailableError",
    "InsufficientBalanceError",
    "Interval",
    "InvalidRequestError",
    "LastPrice",
    "LiveVenue",
    "MalformedMessage",
    "MarginMode",
    "OrderInfo",
    "OrderNotFoundError",
    "OrderRejectedError",
    "OrderSide",
    "OrderStatus",
    "OrderType",
    "PlaceOrderRequest",
    "PositionInfo",
    "PositionMode",
    "PositionNotFoundError",
    "PositionSide",
    "PositionTpslRequest",
    "PrivateStream",
    "RateLimitError",
    "RestConfig",
    "RetryMode",
    "StopType",
    "SymbolStatus",
    "TimeInForce",
    "TpslAck",
    "TpslLeg",
    "TpslModifyRequest",
    "TpslOrderInfo",
    "TpslOrderRequest",
    "TradeInfo",
    "TradeSide",
    "TradingPair",
    "TransportError",
    "WsConnect",
    "WsKline",
    "WsLoginAck",
    "WsPong",
    "WsTicker",
    "WsUnhandled",
    "bar_opens",
    "candle_open_ms",
    "error_from_code",
    "exit_path",
    "fetch_closed_candles",
    "interval_from_rest",
    "new_client_id",
    "open_live_venue",
    "order_mismatch",
    "parse_trading_pairs",
    "parse_ws_message",
]
