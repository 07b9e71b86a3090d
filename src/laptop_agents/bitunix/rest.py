"""Typed Bitunix futures REST API.

One method per endpoint: arguments in domain types, results parsed into
``schemas`` dataclasses. Transport concerns (signing, rate limits, retries,
circuit breaker) live in :mod:`transport`; this module decides, per endpoint,
which rate-limit group applies and how safe a resend is:

* reads are retried on any retryable failure;
* order placement is re-sent only when a lookup by its ``clientId`` proves the
  earlier attempt absent (a lost answer may hide a placed order, and whether the
  exchange answers 30042 for a clientId whose order already finished is
  undocumented); an order found (by lookup or a 30042) counts as ours only when it
  matches what we sent;
* cancels and closes are retried only when the request provably had no effect.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from laptop_agents.bitunix.enums import MarginMode, OrderStatus
from laptop_agents.bitunix.errors import BitunixError, DuplicateClientIdError, OrderNotFoundError
from laptop_agents.bitunix.intervals import interval_from_rest
from laptop_agents.bitunix.schemas import (
    AccountInfo,
    CancelResult,
    Kline,
    OrderAck,
    OrderInfo,
    OrderPage,
    PlaceOrderRequest,
    PositionInfo,
    Ticker,
    TradePage,
    TradingPair,
    parse_account,
    parse_cancel_result,
    parse_klines,
    parse_order,
    parse_order_ack,
    parse_order_page,
    parse_positions,
    parse_tickers,
    parse_trade_page,
    parse_trading_pairs,
)
from laptop_agents.bitunix.tpsl_schemas import (
    PositionTpslRequest,
    TpslAck,
    TpslModifyRequest,
    TpslOrderInfo,
    TpslOrderRequest,
    parse_tpsl_ack,
    parse_tpsl_orders,
)
from laptop_agents.bitunix.transport import (
    BitunixTransport,
    EndpointGroup,
    RestConfig,
    RetryMode,
)
from laptop_agents.security.credentials import Credentials

log = logging.getLogger("laptop_agents.bitunix")

API = "/api/v1/futures"
KLINE_MAX_LIMIT = 200
PENDING_ORDERS_MAX_LIMIT = 100


def new_client_id() -> str:
    """A fresh order clientId (32 hex chars, unique per placement intent)."""
    return uuid.uuid4().hex


def order_mismatch(existing: OrderInfo, request: PlaceOrderRequest, not_before: datetime | None = None) -> str | None:
    """Why ``existing`` (found by our clientId) is NOT the order ``request`` placed; None when it matches.

    Symbol, side and quantity must match; trade side and reduce-only when the exchange reports them; and the
    order must not be older than ``not_before`` (exchange time of the newest record we had already seen when we
    sent it): an older order under our clientId is someone else's, or ours from another life.
    """
    if existing.symbol != request.symbol:
        return f"symbol {existing.symbol} != {request.symbol}"
    if existing.side is not request.side:
        return f"side {existing.side.value} != {request.side.value}"
    if existing.qty != request.qty:
        return f"qty {existing.qty} != {request.qty}"
    if existing.trade_side is not None and request.trade_side is not None and existing.trade_side is not request.trade_side:
        return f"tradeSide {existing.trade_side.value} != {request.trade_side.value}"
    if request.reduce_only and existing.trade_side is None and not existing.reduce_only:
        return "not reduce-only"
    if not_before is not None and existing.created is not None and existing.created < not_before:
        return f"created {existing.created.isoformat()} before our send (newest known {not_before.isoformat()})"
    return None


class BitunixRestClient:
    """Bitunix futures REST client.

    Construct with a :class:`RestConfig` (base URL, timeouts, retry policy,
    rate limits, breaker settings) and optional :class:`Credentials`; public
    market endpoints work without credentials. Extra keyword arguments (clock,
    sleep, random, nonce factory, aiohttp session) are passed to
    :class:`BitunixTransport` for tests and for sharing a session.
    """

    def __init__(
        self,
        config: RestConfig | None = None,
        credentials: Credentials | None = None,
        **transport_options: Any,
    ) -> None:
        self.transport = BitunixTransport(config, credentials, **transport_options)
        self.duplicates_resolved = 0
        """Placements answered 30042 and resolved to the existing order (a metric)."""

    @property
    def config(self) -> RestConfig:
        return self.transport.config

    async def close(self) -> None:
        await self.transport.close()

    async def __aenter__(self) -> BitunixRestClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- plumbing ---------------------------------------------------------------

    async def _public(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return await self.transport.request(
            "GET", API + path, group=EndpointGroup.MARKET, params=params
        )

    async def _query(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return await self.transport.request(
            "GET", API + path, group=EndpointGroup.QUERY, params=params, signed=True
        )

    async def _post(
        self, path: str, body: dict[str, Any], group: EndpointGroup, retry_mode: RetryMode
    ) -> Any:
        return await self.transport.request(
            "POST", API + path, group=group, body=body, signed=True, retry_mode=retry_mode
        )

    # -- market (public) --------------------------------------------------------

    async def trading_pairs(self, symbols: Sequence[str] | None = None) -> list[TradingPair]:
        params = {"symbols": ",".join(symbols)} if symbols else None
        return parse_trading_pairs(await self._public("/market/trading_pairs", params))

    async def tickers(self, symbols: Sequence[str] | None = None) -> list[Ticker]:
        params = {"symbols": ",".join(symbols)} if symbols else None
        return parse_tickers(await self._public("/market/tickers", params))

    async def kline(
        self,
        symbol: str,
        interval: str,
        *,
        start_time: int | None = None,
        end_time: int | None = None,
        limit: int | None = None,
        price_type: str | None = None,
    ) -> list[Kline]:
        """One page of klines (≤200), sorted by open time. Times in epoch ms."""
        interval_from_rest(interval)  # fail fast on a typo, before any request
        if limit is not None and not 1 <= limit <= KLINE_MAX_LIMIT:
            raise ValueError(f"limit must be 1..{KLINE_MAX_LIMIT}")
        params = {
            "symbol": symbol,
            "interval": interval,
            "startTime": start_time,
            "endTime": end_time,
            "limit": limit,
            "type": price_type,
        }
        return parse_klines(await self._public("/market/kline", params))

    async def kline_range(
        self,
        symbol: str,
        interval: str,
        start_ms: int,
        end_ms: int,
        *,
        page_limit: int = KLINE_MAX_LIMIT,
        price_type: str | None = None,
    ) -> list[Kline]:
        """All bars with open time in ``[start_ms, end_ms)``, paging as needed.

        ⚠ Whether ``startTime``/``endTime`` are inclusive and which end a
        ``limit`` truncates are undocumented. Each page therefore asks for a
        window holding at most ``page_limit`` bars, ending 1 ms before the next
        window starts, so neither reading can drop or double a bar; results are
        de-duplicated and filtered to the range anyway.
        """
        if not 1 <= page_limit <= KLINE_MAX_LIMIT:
            raise ValueError(f"page_limit must be 1..{KLINE_MAX_LIMIT}")
        iv = interval_from_rest(interval)
        bars: dict[int, Kline] = {}
        window_start = iv.floor(start_ms)
        while window_start < end_ms:
            window_end = window_start
            for _ in range(page_limit):
                window_end = iv.next_open(window_end)
                if window_end >= end_ms:
                    break
            page = await self.kline(
                symbol,
                interval,
                start_time=window_start,
                end_time=min(window_end, end_ms) - 1,
                limit=page_limit,
                price_type=price_type,
            )
            for bar in page:
                if start_ms <= bar.open_ms < end_ms:
                    bars[bar.open_ms] = bar
            window_start = window_end
        return [bars[t] for t in sorted(bars)]

    # -- account ----------------------------------------------------------------

    async def account(self, margin_coin: str = "USDT") -> AccountInfo:
        data = await self._query("/account", {"marginCoin": margin_coin})
        return parse_account(data, margin_coin)

    async def change_leverage(self, symbol: str, leverage: int, margin_coin: str = "USDT") -> None:
        """Set leverage (idempotent: setting the same value twice is harmless)."""
        if leverage < 1:
            raise ValueError("leverage must be >= 1")
        await self._post(
            "/account/change_leverage",
            {"symbol": symbol, "leverage": leverage, "marginCoin": margin_coin},
            EndpointGroup.QUERY,
            RetryMode.IDEMPOTENT,
        )

    async def change_margin_mode(
        self, symbol: str, margin_mode: MarginMode, margin_coin: str = "USDT"
    ) -> None:
        """Set margin mode (idempotent); refused (20006) with open orders/position."""
        await self._post(
            "/account/change_margin_mode",
            {"marginMode": margin_mode.value, "symbol": symbol, "marginCoin": margin_coin},
            EndpointGroup.QUERY,
            RetryMode.IDEMPOTENT,
        )

    # -- trading ----------------------------------------------------------------

    async def place_order(self, request: PlaceOrderRequest, *, not_before: datetime | None = None) -> OrderAck:
        """Place one order exactly once, however many attempts it takes.

        A missing ``client_id`` is generated here, *before* the first attempt,
        so every attempt carries the same one. Sends that certainly had no
        effect (rate-limited, connection refused) are retried as usual. After an
        ambiguous failure (timeout, 5xx: it may have landed) the order is looked
        up by clientId: found and matching (:func:`order_mismatch`) → returned
        with ``already_existed=True``; not found → a reduce-only order is sent
        again (same clientId); anything else raises the original error, as does
        a failed lookup (the caller must treat the order as unknown). "Not
        found" is no proof for an order that can open a position: the original
        request may still be held on its way in and land after a re-send, and
        where 30042 covers only open orders a filled entry's clientId is free
        again, so the re-send would double the position. Only the caller can
        wait until the original can no longer land. A 30042 answer is resolved
        by a lookup too; a clientId that belongs to a different order raises
        :class:`DuplicateClientIdError`.
        """
        if request.client_id is None:
            request = replace(request, client_id=new_client_id())
        attempts = max(1, self.config.retry.max_attempts)
        resent = False  # an unanswered attempt was followed by another: the original may still land (OrderAck.resent)
        for attempt in range(attempts):
            try:
                data = await self._post(
                    "/trade/place_order",
                    request.to_body(),
                    EndpointGroup.PLACE_ORDER,
                    RetryMode.UNDELIVERED_ONLY,
                )
            except DuplicateClientIdError as dup:
                return replace(await self._resolve_duplicate(request, dup, not_before), resent=resent)
            except BitunixError as exc:
                exc.earlier_attempt_unanswered = resent  # the caller must know the original may still land
                if not (exc.retryable and exc.maybe_delivered):
                    raise
                found = await self._lookup_placed(request, exc, not_before)
                if found is not None:
                    return replace(found, resent=resent)
                if attempt + 1 >= attempts or not request.reduce_only:
                    raise
                log.warning("order %s: placement failed (%s) and the lookup proves it absent; sending again "
                            "(attempt %d of %d)", request.client_id, exc, attempt + 2, attempts)
                resent = True
                continue
            ack = parse_order_ack(data)
            return replace(ack, client_id=ack.client_id or request.client_id, resent=resent)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _lookup_placed(
        self, request: PlaceOrderRequest, failure: BitunixError, not_before: datetime | None
    ) -> OrderAck | None:
        """After an ambiguous failure: the order if it landed (and matches), None if proven absent."""
        assert request.client_id is not None
        try:
            existing = await self.get_order_detail(client_id=request.client_id)
        except OrderNotFoundError:
            return None
        except BitunixError:
            raise failure from None  # unknown: never send again on a guess
        why = order_mismatch(existing, request, not_before)
        if why is not None:
            raise DuplicateClientIdError(
                f"clientId {request.client_id} belongs to a different order {existing.order_id} ({why})",
                context="POST /trade/place_order",
            )
        self.duplicates_resolved += 1
        log.warning("order %s landed despite the failed answer (%s): orderId %s; not sent again",
                    request.client_id, failure, existing.order_id)
        return OrderAck(order_id=existing.order_id, client_id=request.client_id, already_existed=True)

    async def _resolve_duplicate(
        self, request: PlaceOrderRequest, dup: DuplicateClientIdError, not_before: datetime | None = None
    ) -> OrderAck:
        assert request.client_id is not None
        try:
            existing = await self.get_order_detail(client_id=request.client_id)
        except OrderNotFoundError:
            log.error("clientId %s reported duplicate but no order found", request.client_id)
            raise dup from None
        why = order_mismatch(existing, request, not_before)
        if why is not None:
            raise DuplicateClientIdError(
                f"clientId {request.client_id} belongs to a different order {existing.order_id} ({why})",
                code=dup.code,
                context=dup.context,
            ) from None
        self.duplicates_resolved += 1
        log.info(
            "order with clientId %s already existed (orderId %s); not placed again",
            request.client_id,
            existing.order_id,
        )
        return OrderAck(order_id=existing.order_id, client_id=request.client_id, already_existed=True)

    async def cancel_orders(
        self,
        symbol: str,
        *,
        order_ids: Sequence[str] = (),
        client_ids: Sequence[str] = (),
    ) -> CancelResult:
        """Cancel by id; inspect ``CancelResult.failed`` for per-order refusals."""
        order_list = [{"orderId": i} for i in order_ids] + [{"clientId": c} for c in client_ids]
        if not order_list:
            raise ValueError("cancel_orders needs at least one order_id or client_id")
        data = await self._post(
            "/trade/cancel_orders",
            {"symbol": symbol, "orderList": order_list},
            EndpointGroup.CANCEL,
            RetryMode.UNDELIVERED_ONLY,
        )
        return parse_cancel_result(data)

    async def cancel_all_orders(self, symbol: str) -> None:
        """Cancel every open order of ``symbol`` (⚠ response data unconfirmed: ignored)."""
        await self._post(
            "/trade/cancel_all_orders", {"symbol": symbol}, EndpointGroup.CANCEL, RetryMode.IDEMPOTENT
        )

    async def close_all_position(self, symbol: str) -> None:
        """Market-close every position of ``symbol`` (⚠ response data unconfirmed).

        Retried only when it certainly did not run: after an ambiguous failure
        the caller should re-read positions rather than fire a second close.
        """
        await self._post(
            "/trade/close_all_position",
            {"symbol": symbol},
            EndpointGroup.FLASH_CLOSE,
            RetryMode.UNDELIVERED_ONLY,
        )

    async def get_pending_orders(
        self,
        symbol: str | None = None,
        *,
        order_id: str | None = None,
        client_id: str | None = None,
        status: OrderStatus | None = None,
        skip: int | None = None,
        limit: int | None = None,
    ) -> OrderPage:
        if limit is not None and not 1 <= limit <= PENDING_ORDERS_MAX_LIMIT:
            raise ValueError(f"limit must be 1..{PENDING_ORDERS_MAX_LIMIT}")
        params = {
            "symbol": symbol,
            "orderId": order_id,
            "clientId": client_id,
            "status": status.value if status else None,
            "skip": skip,
            "limit": limit,
        }
        return parse_order_page(await self._query("/trade/get_pending_orders", params))

    async def get_history_orders(
        self,
        symbol: str | None = None,
        *,
        order_id: str | None = None,
        client_id: str | None = None,
        start_time: int | None = None,
        end_time: int | None = None,
        skip: int | None = None,
        limit: int | None = None,
    ) -> OrderPage:
        params = {
            "symbol": symbol,
            "orderId": order_id,
            "clientId": client_id,
            "startTime": start_time,
            "endTime": end_time,
            "skip": skip,
            "limit": limit,
        }
        return parse_order_page(await self._query("/trade/get_history_orders", params))

    async def get_order_detail(
        self, *, order_id: str | None = None, client_id: str | None = None
    ) -> OrderInfo:
        """One order by ``order_id`` or ``client_id`` (exactly one of them)."""
        if (order_id is None) == (client_id is None):
            raise ValueError("pass exactly one of order_id and client_id")
        data = await self._query(
            "/trade/get_order_detail", {"orderId": order_id, "clientId": client_id}
        )
        if data is None:
            raise OrderNotFoundError(
                "order detail returned no data", code=None, context="GET /trade/get_order_detail"
            )
        return parse_order(data)

    async def get_history_trades(
        self,
        symbol: str | None = None,
        *,
        order_id: str | None = None,
        position_id: str | None = None,
        start_time: int | None = None,
        end_time: int | None = None,
        skip: int | None = None,
        limit: int | None = None,
    ) -> TradePage:
        params = {
            "symbol": symbol,
            "orderId": order_id,
            "positionId": position_id,
            "startTime": start_time,
            "endTime": end_time,
            "skip": skip,
            "limit": limit,
        }
        return parse_trade_page(await self._query("/trade/get_history_trades", params))

    async def get_pending_positions(
        self, symbol: str | None = None, *, position_id: str | None = None
    ) -> list[PositionInfo]:
        params = {"symbol": symbol, "positionId": position_id}
        return parse_positions(await self._query("/position/get_pending_positions", params))

    # -- TP/SL orders (tpsl/*; shapes and dialects in tpsl_schemas) --------------

    async def place_tpsl_order(self, request: TpslOrderRequest) -> TpslAck:
        """TP/SL on (part of) a position. The answer may hold one id or one per leg: re-read
        :meth:`get_pending_tpsl_orders` for what the exchange actually holds. Not re-sent after an
        ambiguous failure (no clientId makes it idempotent)."""
        data = await self._post("/tpsl/place_order", request.to_body(), EndpointGroup.TPSL,
                                RetryMode.UNDELIVERED_ONLY)
        return parse_tpsl_ack(data)

    async def modify_tpsl_order(self, request: TpslModifyRequest) -> TpslAck:
        """Set a TP/SL order's legs to ``request`` (a full statement: safe to repeat)."""
        data = await self._post("/tpsl/modify_order", request.to_body(), EndpointGroup.TPSL, RetryMode.IDEMPOTENT)
        return parse_tpsl_ack(data)

    async def cancel_tpsl_order(self, symbol: str, order_id: str) -> TpslAck:
        """Cancel one TP/SL order (docs: success of the call is not proof: re-read the pending list)."""
        data = await self._post("/tpsl/cancel_order", {"symbol": symbol, "orderId": order_id}, EndpointGroup.TPSL,
                                RetryMode.UNDELIVERED_ONLY)
        return parse_tpsl_ack(data)

    async def place_position_tpsl(self, request: PositionTpslRequest) -> TpslAck:
        """The position's single whole-position TP/SL (closed at market when triggered)."""
        data = await self._post("/tpsl/position/place_order", request.to_body(), EndpointGroup.TPSL,
                                RetryMode.UNDELIVERED_ONLY)
        return parse_tpsl_ack(data)

    async def modify_position_tpsl(self, request: PositionTpslRequest) -> TpslAck:
        data = await self._post("/tpsl/position/modify_order", request.to_body(), EndpointGroup.TPSL,
                                RetryMode.IDEMPOTENT)
        return parse_tpsl_ack(data)

    async def get_pending_tpsl_orders(
        self, symbol: str | None = None, *, position_id: str | None = None
    ) -> list[TpslOrderInfo]:
        """Every pending TP/SL order (pages of the documented maximum, 100; the default page is only 10)."""
        out: list[TpslOrderInfo] = []
        while True:
            params = {"symbol": symbol, "positionId": position_id, "skip": len(out) or None,
                      "limit": PENDING_ORDERS_MAX_LIMIT}
            page = parse_tpsl_orders(await self._transport_tpsl_query("/tpsl/get_pending_orders", params))
            out += page
            if len(page) < PENDING_ORDERS_MAX_LIMIT:
                return out

    async def _transport_tpsl_query(self, path: str, params: dict[str, Any]) -> Any:
        return await self.transport.request("GET", API + path, group=EndpointGroup.TPSL, params=params, signed=True)
