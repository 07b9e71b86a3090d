"""Typed Bitunix messages: exchange JSON is parsed at this edge and nowhere else.

Each ``parse_*`` function takes the decoded ``data`` of a REST envelope (or a
whole WebSocket frame) and returns frozen dataclasses with ``Decimal`` money,
aware-UTC datetimes and enums. Anything that does not fit the contract raises
:class:`MalformedMessage` naming the message kind, the field and an excerpt:
never ``KeyError``/``TypeError``.

This module is the one import point; the models live in
:mod:`market_schemas` (klines, pairs, tickers), :mod:`trading_schemas`
(account, orders, positions, fills, the outbound order) and
:mod:`ws_schemas` (WebSocket frames).
"""

from __future__ import annotations

from laptop_agents.bitunix._fields import decode_json
from laptop_agents.bitunix.errors import MalformedMessage
from laptop_agents.bitunix.market_schemas import (
    Kline,
    Ticker,
    TradingPair,
    parse_kline,
    parse_klines,
    parse_ticker,
    parse_tickers,
    parse_trading_pair,
    parse_trading_pairs,
)
from laptop_agents.bitunix.trading_schemas import (
    AccountInfo,
    CancelFailure,
    CancelResult,
    CancelSuccess,
    OrderAck,
    OrderInfo,
    OrderPage,
    PlaceOrderRequest,
    PositionInfo,
    TradeInfo,
    TradePage,
    parse_account,
    parse_cancel_result,
    parse_order,
    parse_order_ack,
    parse_order_page,
    parse_position,
    parse_positions,
    parse_trade,
    parse_trade_page,
)
from laptop_agents.bitunix.ws_schemas import (
    WsBalancePush,
    WsConnect,
    WsKline,
    WsLoginAck,
    WsMessage,
    WsOrderPush,
    WsPong,
    WsPositionPush,
    WsTicker,
    WsUnhandled,
    parse_ws_message,
)

__all__ = [
    "AccountInfo",
    "CancelFailure",
    "CancelResult",
    "CancelSuccess",
    "Kline",
    "MalformedMessage",
    "OrderAck",
    "OrderInfo",
    "OrderPage",
    "PlaceOrderRequest",
    "PositionInfo",
    "Ticker",
    "TradeInfo",
    "TradePage",
    "TradingPair",
    "WsBalancePush",
    "WsConnect",
    "WsKline",
    "WsLoginAck",
    "WsMessage",
    "WsOrderPush",
    "WsPong",
    "WsPositionPush",
    "WsTicker",
    "WsUnhandled",
    "decode_json",
    "parse_account",
    "parse_cancel_result",
    "parse_kline",
    "parse_klines",
    "parse_order",
    "parse_order_ack",
    "parse_order_page",
    "parse_position",
    "parse_positions",
    "parse_ticker",
    "parse_tickers",
    "parse_trade",
    "parse_trade_page",
    "parse_trading_pair",
    "parse_trading_pairs",
    "parse_ws_message",
]
