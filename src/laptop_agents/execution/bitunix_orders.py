"""Order execution on Bitunix: one order's identity, its send, the lookup after an ambiguous answer, the wait for
its end, and the exit path's retry rules.

Why its own module: these are the rules that keep an order from being lost, doubled or mistaken for someone
else's, whatever the rest of the broker does with it:

* **Order identity.** Every order carries a clientId ``<prefix><tag><run><seq>``: the instance tag and the
  sequence persist in the state file, the run token is fresh random at every start, so a crash that loses the
  saved sequence can never make a restart reuse a clientId. An order found under our clientId counts as ours
  only when it matches what we sent (symbol, side, qty, trade side, not older than what we had already seen);
  a mismatch halts entries.
* **Flatten always wins.** Closing, cancelling, verifying and booking run on the transport's exit path (never
  paused by the API circuit breaker) and retry transient failures with backoff for ``stop_budget_sec``, with a
  fresh HTTP session after repeated transport failures.

:class:`OrderExecution` is a part of :class:`~laptop_agents.execution.bitunix_broker.BitunixBroker` (its base):
the parts share one account's client, settings and clocks, which the watchdog swaps for a fresh loop's
(``close_all_blocking``), so they read them from the broker rather than holding copies.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TypeVar

from laptop_agents.bitunix import (
    BitunixError,
    BitunixRestClient,
    DuplicateClientIdError,
    ExchangeUnavailableError,
    InsufficientBalanceError,
    InvalidRequestError,
    OrderInfo,
    OrderNotFoundError,
    OrderRejectedError,
    OrderSide,
    OrderType,
    PlaceOrderRequest,
    PositionInfo,
    PositionNotFoundError,
    PrivateStream,
    RateLimitError,
    TransportError,
    exit_path,
    order_mismatch,
)
from laptop_agents.core.models import Position, Side
from laptop_agents.execution.bitunix_settings import (
    LiveBrokerError,
    LiveBrokerSettings,
    OrderIdentityError,
    ReconcileError,
)

log = logging.getLogger("laptop_agents.execution.bitunix_broker")

T = TypeVar("T")
CLOCK_TOLERANCE = timedelta(seconds=1)
"""Exchange timestamps may be coarser than our ordering needs (seconds vs milliseconds)."""


class OrderExecution:
    """Sending, identifying, looking up and awaiting orders; the exit path's retries (see the module doc)."""

    client: BitunixRestClient
    settings: LiveBrokerSettings
    symbol: str
    stream: PrivateStream | None
    fill_notices: Counter[str]
    """How each order's end was noticed: ``ws`` (private push) or ``poll`` (REST fallback)."""
    halted: str | None
    """Why entries are halted (an order identity mismatch); the session stops on it."""
    _sleep: Callable[[float], Awaitable[None]]
    _monotonic: Callable[[], float]
    _seq: int
    _tag: str
    """The instance tag: persisted, so this instance's orders are told from another la's on one account."""
    _run: str
    """Fresh at every start: clientIds of this life differ from every earlier one, saved sequence or not."""
    _newest_seen: datetime | None
    """Exchange time of the newest order/fill seen: an order created before it is not one we just sent."""
    _stop_until: float | None
    """Monotonic end of the running exit's retry budget (None: no exit running)."""
    _quiet_until: float | None
    """Monotonic time until which an unanswered order attempt may still land: no new entry before it."""

    def _next_client_id(self) -> str:
        """Unique across restarts and crashes: persisted tag + per-start run token + sequence (<= 30 chars)."""
        self._seq += 1
        return f"{self.settings.client_id_prefix}{self._tag}{self._run}{self._seq:06d}"

    def _saw(self, when: datetime | None) -> None:
        if when is not None and (self._newest_seen is None or when > self._newest_seen):
            self._newest_seen = when

    def _halt(self, why: str) -> None:
        """Stop entering: the exchange holds an order under our clientId that we did not send."""
        if self.halted is None:
            self.halted = why
            log.critical("ENTRIES HALTED: %s; check the account's orders on the exchange before restarting", why)

    def _is_ours(self, client_id: str | None) -> bool:
        return bool(client_id) and str(client_id).startswith(self.settings.client_id_prefix)

    def _tag_of(self, client_id: str | None) -> str:
        start = len(self.settings.client_id_prefix)
        return str(client_id or "")[start:start + len(self._tag)]

    def _other_instance(self, client_id: str | None) -> bool:
        """An la clientId (our prefix) carrying another instance's tag: another session on this account."""
        return self._is_ours(client_id) and self._tag_of(client_id) != self._tag

    def _not_before(self) -> datetime | None:
        return None if self._newest_seen is None else self._newest_seen - CLOCK_TOLERANCE

    async def _lookup_after_failure(self, request: PlaceOrderRequest, exc: BitunixError) -> OrderInfo | None:
        """After retries ran out on place_order: did it land? Ask by clientId (the exchange is the truth).

        A found order counts only if it is the one we sent (:func:`order_mismatch`); otherwise
        :class:`OrderIdentityError`: we must not adopt, book or retry on someone else's order.
        """
        client_id = request.client_id
        assert client_id is not None
        try:
            order = await self.client.get_order_detail(client_id=client_id)
        except OrderNotFoundError:
            log.warning("order %s not placed after transport failure (%s)", client_id, exc)
            return None
        except (TransportError, RateLimitError, ExchangeUnavailableError):
            raise  # transient: the caller retries or keeps the entry pending
        except BitunixError as lookup_exc:
            raise LiveBrokerError(
                f"order {client_id}: placement failed ({exc}) and the lookup failed too ({lookup_exc}); "
                "order state unknown, stopping"
            ) from None
        why = order_mismatch(order, request, self._not_before())
        if why is not None:
            raise OrderIdentityError(
                f"order {client_id}: the exchange's order {order.order_id} under our clientId is not the one we sent "
                f"({why}); stopping"
            )
        log.warning("order %s was placed despite the failed response (orderId %s)", client_id, order.order_id)
        self._saw(order.created)
        return order

    async def _await_terminal(self, order_id: str) -> OrderInfo:
        """Wait for the order to finish: the private push rings first if the stream is up, REST confirms."""
        deadline = self._monotonic() + self.settings.fill_timeout_sec
        source = "poll"
        if self.stream is not None and self.stream.connected:
            push = await self.stream.wait_order_terminal(order_id, self.settings.fill_timeout_sec / 2)
            source = "ws" if push is not None else "poll"
        while True:
            order = await self.client.get_order_detail(order_id=order_id)
            if not order.status.is_open:
                self.fill_notices[source] += 1
                self._saw(order.created)
                return order
            source = "poll"
            if self._monotonic() >= deadline:
                raise LiveBrokerError(f"order {order_id} still {order.status.value} after {self.settings.fill_timeout_sec}s")
            await self._sleep(self.settings.fill_poll_interval_sec)

    async def _exchange_position(self) -> PositionInfo | None:
        positions = [p for p in await self.client.get_pending_positions(self.symbol) if p.symbol == self.symbol]
        if len(positions) > 1:
            raise ReconcileError(f"{len(positions)} positions open on {self.symbol}; expected at most one")
        return positions[0] if positions else None

    async def _send_close(self, pos: Position, request: PlaceOrderRequest) -> str | None:
        """One try at the close order: its id, or None when the position is already gone.

        After an ambiguous failure the order is looked up by clientId: found (and ours) → its id; proven absent
        and the position still open → the transport error again, so :meth:`_retrying` sends it once more
        (same clientId; reduce-only, so it can never open a position). A lookup that fails is retried too.
        """
        client_id = request.client_id
        assert client_id is not None
        try:
            ack = await self.client.place_order(request, not_before=self._not_before())
            if ack.resent:
                self._may_still_land(client_id)
            return ack.order_id
        except DuplicateClientIdError as exc:
            self._halt(f"close {client_id}: {exc}")
            raise OrderIdentityError(f"closing position {pos.position_id}: {exc}") from None
        except (PositionNotFoundError, OrderRejectedError) as exc:
            if exc.earlier_attempt_unanswered:
                self._may_still_land(client_id)  # the re-send was refused; its unanswered original may still land
            if await self._exchange_position() is not None:
                raise LiveBrokerError(f"closing position {pos.position_id} was rejected: {exc}") from None
            log.info("position %s was already closed on the exchange (%s)", pos.position_id, exc)
            return None
        except (TransportError, RateLimitError) as exc:
            try:
                found: OrderInfo | None = await self.client.get_order_detail(client_id=client_id)
            except OrderNotFoundError:
                found = None
            if found is not None:
                why = order_mismatch(found, request, self._not_before())
                if why is not None:
                    self._halt(f"close {client_id}: the exchange's order {found.order_id} is not ours ({why})")
                    raise OrderIdentityError(f"closing position {pos.position_id}: order {found.order_id} under "
                                             f"our clientId {client_id} is not ours ({why})") from None
                log.warning("close order %s landed despite the failed answer (orderId %s)", client_id, found.order_id)
                return found.order_id
            self._may_still_land(client_id)  # not found proves nothing: the original may still be on its way in
            if await self._exchange_position() is None:
                return None  # closed anyway (TP/SL raced us): book it from history
            raise exc

    def _may_still_land(self, client_id: str) -> None:
        """An order sent with an unanswered attempt not found on the exchange: its original may land (and, where
        30042 covers only open orders, execute beside its re-send) until ``entry_life_sec`` from now. A
        reduce-only close cannot open anything, but landing late it would close the next position: no entry
        before then."""
        self._quiet_until = self._monotonic() + self.settings.entry_life_sec
        log.warning("order %s: an unanswered attempt may still land for %.0fs; no new entry until then", client_id,
                    self.settings.entry_life_sec)

    @contextlib.contextmanager
    def _exit_budget(self) -> Iterator[None]:
        """Run an exit: bypass the API circuit breaker and allow ``stop_budget_sec`` of retries (outermost wins)."""
        fresh = self._stop_until is None
        if fresh:
            self._stop_until = self._monotonic() + self.settings.stop_budget_sec
        try:
            with exit_path():
                yield
        finally:
            if fresh:
                self._stop_until = None

    def _stop_remaining(self) -> float:
        return 0.0 if self._stop_until is None else self._stop_until - self._monotonic()

    async def _fresh_connections(self, failures: int, exc: BaseException) -> None:
        """After every third transport failure in a row, drop the HTTP connection pool (dead sockets)."""
        if isinstance(exc, TransportError) and failures % 3 == 0:
            reset = getattr(getattr(self.client, "transport", None), "reset_session", None)
            if reset is not None:
                await reset()

    async def _retrying(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """``call()``, retried with backoff on transient exchange failures while the exit budget lasts.

        Outside an exit (no budget) it is a single call. Failures that are answers (rejections) are not retried.
        """
        delay = self.settings.flat_verify_interval_sec
        failures = 0
        while True:
            try:
                return await call()
            except (TransportError, RateLimitError, ExchangeUnavailableError) as exc:
                failures += 1
                remaining = self._stop_remaining()
                if remaining <= 0:
                    raise
                await self._fresh_connections(failures, exc)
                wait = min(delay, remaining)
                log.warning("%s failed (%s); retrying in %.2fs (%.1fs of the exit budget left)",
                            what, exc, wait, remaining)
                await self._sleep(wait)
                delay = min(delay * 2, max(self.settings.stop_backoff_max_sec, self.settings.flat_verify_interval_sec))


def close_request(symbol: str, side: Side, qty: Decimal, client_id: str) -> PlaceOrderRequest:
    """The close of a ONE_WAY position valid under every close-side reading: exit side, reduce-only, MARKET,
    no ``tradeSide`` and no ``positionId`` (see :meth:`BitunixBroker.close_position`)."""
    return PlaceOrderRequest(
        symbol=symbol, side=OrderSide(side.exit_order_side), qty=qty, order_type=OrderType.MARKET,
        trade_side=None, reduce_only=True, client_id=client_id,
    )


def rejection_reason(exc: BitunixError) -> str:
    if isinstance(exc, InsufficientBalanceError):
        return "insufficient_balance"
    if isinstance(exc, ExchangeUnavailableError):
        return "exchange_unavailable"
    if isinstance(exc, InvalidRequestError):
        return "invalid_request"
    return "rejected"
