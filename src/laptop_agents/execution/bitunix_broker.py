"""BitunixBroker: the Broker protocol on a real (or mock) Bitunix futures account.

Same face as :class:`~laptop_agents.execution.broker.PaperBrokerPort`, the same
books (:class:`~laptop_agents.core.ledger.Ledger`) and the same events
(OrderSubmitted; ExecutionFill and ExecutionExit from the ledger's constructors),
so the session, journal, metrics and reports cannot tell them apart. The
differences are where the truth lives and what can go wrong:

* **The exchange is the truth.** :meth:`start` reads the contract rules, sets
  leverage and margin mode, and reconciles local state with the exchange's
  positions and open orders. A failed query raises: "I could not ask" is never
  read as "flat".
* **Order identity.** Every order carries a clientId ``<prefix><tag><run><seq>``:
  the instance tag and the sequence persist in ``to_state()``, the run token is
  fresh random at every start, so a crash that loses the saved sequence can never
  make a restart reuse a clientId. After an ambiguous failure the REST client
  sends again (same clientId) only when a lookup proves the order absent; an
  order found under our clientId counts as ours only when it matches what we sent
  (symbol, side, qty, trade side, not older than what we had already seen).
  A mismatch halts entries (CRITICAL, the session stops: exit 8).
* **Checks before sending** (:mod:`order_checks`): quantity bounds and
  precision, TP/SL sides, price protection. A failed check or an exchange
  rejection becomes an ``OrderRejected`` event, not a crash. The current
  price comes from the public WebSocket ticker (:class:`LastPrice`, fed by the
  kline provider's connection) when it is fresher than its max age, else from
  REST ``market/tickers`` (one round trip more per entry).
* **TP/SL live on the exchange** (attached to the entry as ``tpPrice``/
  ``slPrice``), so they hold while this process is down. ``on_candle`` polls the
  position; when the exchange closed it, the exit is rebuilt from its trade
  history. If they fire between the entry's fill and the position query, the
  whole round trip is rebuilt from the trade history inside ``submit`` (the
  next ``on_candle``/``close_all`` hands the trade to the session's risk checks).
* **An entry is never abandoned**: ``submit`` runs to its end even if the
  session cancels its caller; ``close_all`` waits for it first.
* **Money** comes from the exchange's fills (price, fee, realized PnL), so
  ``equity == starting_equity + sum(trade.pnl) + adjustments`` and the
  exchange's wallet agree; any difference is logged and booked as an
  adjustment, never silently absorbed.
* **Shutdown** cancels every order, closes every position and verifies the
  account is flat by querying; otherwise :class:`NotFlatError` (exit code 10).
  Exits win: closing, cancelling, verifying and booking run on the transport's
  exit path (never paused by the API circuit breaker) and retry with backoff for
  ``stop_budget_sec`` (the session's ``shutdown_grace_sec``), with a fresh HTTP
  session after repeated transport failures.

The class is composed of parts, one job each, so each safety rule has one home:

* :mod:`~laptop_agents.execution.bitunix_orders` (:class:`OrderExecution`): order identity, sending, the lookup
  after an ambiguous answer, waiting for an order's end, the exit path's retries;
* :mod:`~laptop_agents.execution.bitunix_reconcile` (:class:`Reconciliation`): start-up reconciliation and
  exits read from the exchange's history;
* :mod:`~laptop_agents.execution.bitunix_booking` (:class:`LiveBooks`, pure): fills booked into the ledger
  exactly once;
* :mod:`~laptop_agents.execution.bitunix_settings`: the settings and the errors they all share.

This module keeps what the session calls: entries (submit, the pending entry), the per-candle check, closing,
flattening and shutdown, persistence. Order execution and reconciliation are bases rather than held objects
because they share one account's client, settings and clocks, which the watchdog swaps for a fresh event loop's
(:meth:`BitunixBroker.close_all_blocking`); the books are a held object (pure, swapped whole on restore).
"""

from __future__ import annotations

import asyncio
import logging
import secrets as _secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from laptop_agents.bitunix import (
    BitunixError,
    BitunixRestClient,
    DuplicateClientIdError,
    ExchangeUnavailableError,
    InsufficientBalanceError,
    InvalidRequestError,
    LastPrice,
    OrderRejectedError,
    OrderSide,
    OrderType,
    PlaceOrderRequest,
    PrivateStream,
    RateLimitError,
    TradeInfo,
    TransportError,
    exit_path,
)
from laptop_agents.core.account import CashAccountView
from laptop_agents.core.events import Event, EventName
from laptop_agents.core.ledger import LedgerError, money
from laptop_agents.core.models import (
    ZERO,
    Candle,
    OrderIntent,
    Position,
    Trade,
)
from laptop_agents.core.state_schema import LIVE_BROKER_KIND
from laptop_agents.execution.bitunix_booking import EXIT_WHILE_DOWN, LiveBooks, vwap
from laptop_agents.execution.bitunix_orders import close_request, rejection_reason
from laptop_agents.execution.bitunix_reconcile import Closed, Reconciliation
from laptop_agents.execution.bitunix_settings import (
    ClockSkewError,
    LiveBrokerError,
    LiveBrokerSettings,
    NotFlatError,
    OrderIdentityError,
    OtherInstanceError,
    ReconcileError,
)
from laptop_agents.execution.health import BrokerHealth
from laptop_agents.execution.order_checks import (
    OrderCheckFailed,
    SymbolRules,
    check_entry,
)

log = logging.getLogger("laptop_agents.execution.bitunix_broker")

STATE_KIND = LIVE_BROKER_KIND
ORDER_REJECTED = EventName.ORDER_REJECTED
"""Event name for an entry refused by our checks or by the exchange (add to core.events.EventName)."""

_UNKNOWN = object()

__all__ = [
    "EXIT_WHILE_DOWN", "ORDER_REJECTED", "STATE_KIND", "BitunixBroker", "ClockSkewError", "LiveBrokerError",
    "LiveBrokerSettings", "NotFlatError", "OrderIdentityError", "OtherInstanceError", "ReconcileError",
    "close_request",
]
"""The live broker's public face: the broker, its settings, its errors (the session maps them to exit codes),
its event and exit-reason names."""


@dataclass
class _PendingEntry:
    """What is needed to book an entry that was sent but whose fill could not be read yet."""

    order_id: str | None
    client_id: str
    order_side: str
    intent: OrderIntent
    stop_loss: Decimal
    take_profit: Decimal
    candle: Candle
    base: dict[str, Any]
    sent_at: datetime
    request: PlaceOrderRequest | None = None
    """Set while the order id is unknown (placement and lookup both failed): looked up by clientId first."""
    announced: list[Event] = field(default_factory=list)
    """OrderSubmitted once the lookup found it: kept until the whole follow-up succeeds, so it is never lost."""
    lands_until: float = 0.0
    """Monotonic time until which the request may still land (``entry_life_sec`` after its send): until then a
    lookup that finds nothing keeps the entry unknown; after it, absence is proven."""
    may_land_until: float = 0.0
    """The same moment on the wall clock (epoch seconds): what the saved state carries (``entry_in_flight``), so a
    restart after kill -9 waits it out before it reconciles (monotonic time does not survive the process)."""


class _EntryMayStillLand(Exception):
    """Not found under its clientId, but the request may still land: the entry stays unknown (not a failure)."""


class BitunixBroker(Reconciliation, CashAccountView):
    """One symbol, one-way position mode, at most one open position (like PaperBroker)."""

    name = "bitunix"

    def __init__(
        self,
        client: BitunixRestClient,
        settings: LiveBrokerSettings | None = None,
        *,
        client_factory: Callable[[], BitunixRestClient] | None = None,
        stream: PrivateStream | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] | None = None,
        last_price: LastPrice | None = None,
    ) -> None:
        self.client = client
        self.settings = settings or LiveBrokerSettings()
        self.symbol = self.settings.symbol
        if last_price is not None and last_price.symbol != self.symbol.upper():
            raise ValueError(f"last_price is for {last_price.symbol}, the broker trades {self.symbol}")
        self.ws_last_price = last_price
        """The WebSocket ticker's last price (None: every entry reads REST tickers)."""
        self.price_sources: Counter[str] = Counter()
        """Where each entry's price-protection price came from: ``ws`` (fresh ticker push) or ``rest``."""
        self._client_factory = client_factory
        self.stream = stream
        self.fill_notices: Counter[str] = Counter()
        """How each order's end was noticed: ``ws`` (private push) or ``poll`` (REST fallback)."""
        self._sleep = sleep
        self._monotonic = monotonic or (lambda: asyncio.get_running_loop().time())
        self.rules: SymbolRules | None = None
        self.books = LiveBooks(self.symbol)
        """Booking exchange fills exactly once (bitunix_booking.py); its ledger is this account's books."""
        self.ledger = self.books.ledger
        self.last_price: Decimal | None = None
        self._seq = 0
        self._tag = _secrets.token_hex(4)
        self._run = _secrets.token_hex(4)
        """Fresh at every start: clientIds of this life differ from every earlier one, saved sequence or not."""
        self._newest_seen: datetime | None = None
        """Exchange time of the newest order/fill seen: an order created before it is not one we just sent."""
        self.halted: str | None = None
        self._blind_since: float | None = None
        """Monotonic time of the first failed candle check in the current run of failures (None: last one worked)."""
        self._blind_checks = 0
        self.paused: str | None = None
        """Why entries were refused last (a position on the exchange this session did not open)."""
        """Why entries are halted (an order identity mismatch); the session stops on it (``check``)."""
        self._stop_until: float | None = None
        self._pending_entry: _PendingEntry | None = None
        self.persist: Callable[[], bool | None] | None = None
        """Saves this broker's state (the session's ``StateStore.write_ahead``): called right before an entry is sent
        and when it becomes unknown, so the state on disk names an entry that may still land (write-ahead; kill -9
        safe). ``False`` means it was not saved: the entry is then not sent."""
        self._sending: dict[str, Any] | None = None
        """The entry being sent (clientId, wall-clock time until which it may land), while its send is in flight."""
        self._restored_in_flight: dict[str, Any] | None = None
        """An entry the previous life had in flight (``entry_in_flight`` of its saved state): start() waits it out."""
        self._quiet_until: float | None = None
        """Monotonic time until which an order whose answer was lost (a close re-sent after "not found") may still
        land and execute again under its clientId: no new entry before it, so it finds no position to close."""
        self._seen_known = False
        """An entry sent but not booked (the exchange stopped answering after the send): booked first thing."""
        self._inflight: asyncio.Future[list[Event]] | None = None
        """The entry being submitted; it outlives a cancelled caller until close_all collects it."""
        self._restored = False
        self.started = False
        self.not_flat: str | None = None
        """The last verify_flat's verdict when it gave up (None: never failed)."""

    def __repr__(self) -> str:
        pos = f"{self.position.side.value} {self.position.qty}" if self.position else "flat"
        return f"BitunixBroker({self.symbol}, equity={self.cash}, {pos}, trades={len(self.trades)})"

    @property
    def adjustments(self) -> Decimal:
        """Wallet moves our trades do not explain (funding, transfers, manual trades), booked apart."""
        return self.ledger.adjustments

    def health(self) -> BrokerHealth:
        """Whether this broker can trade now, from facts it already holds (no request is sent).

        Healthy exactly when all hold: (1) ``start()`` reconciled the account with the exchange; (2) the REST
        API circuit breaker is CLOSED (open or half-open: the exchange failed repeatedly, entries are refused);
        (3) the last exchange round trip succeeded (the breaker counts no failure since the last good answer);
        (4) the last candle's position check worked (no run of failed checks, the blind run that stops the
        session after ``blind_stop_sec``); (5) entries are not halted by an order identity mismatch; (6) the last
        flat verification did not give up (the account was left not flat). An idle flat broker sends nothing, so
        "recent" is the last answer, not a clock: a quiet exchange is not an unhealthy one.
        """
        problems: list[str] = []
        breaker = self.client.transport.breaker
        state = breaker.state.value
        failures = breaker.consecutive_failures
        if not self.started:
            problems.append("not started: the account is not reconciled with the exchange")
        if state != "closed":
            problems.append(f"exchange API circuit breaker is {state}")
        if failures:
            problems.append(f"last exchange request failed ({failures} in a row)")
        if self._blind_since is not None:
            problems.append(f"position check failing ({self._blind_checks} candle(s) in a row)")
        if self.halted is not None:
            problems.append(f"entries halted: {self.halted}")
        if self.not_flat is not None:
            problems.append(self.not_flat)
        return BrokerHealth(self.name, tuple(problems), (("api_circuit", state), ("api_failures_in_a_row", failures),
                                                        ("failed_position_checks", self._blind_checks)))

    # ------------------------------------------------------------------ entries
    async def submit(self, intent: OrderIntent, candle: Candle, now: datetime) -> list[Event]:
        """Market entry with exchange-side TP/SL. Rejections become an OrderRejected event.

        The entry runs to its end even if the caller is cancelled (the session stops mid-entry): an order sent
        must be followed to its fill and booked, so :meth:`close_all` waits for it and closes what it opened.
        """
        self._require_started()
        prior: list[Event] = []
        if self._pending_entry is not None:
            events = await self._finish_pending(now)
            if (self._pending_entry is not None or self.position is not None
                    or any(e.name != ORDER_REJECTED for e in events)):
                return events + [Event(ORDER_REJECTED, now, symbol=self.symbol, side=intent.side.entry_order_side,
                                       position_side=intent.side, order_type="MARKET", qty=intent.qty,
                                       reason="previous_entry_unbooked" if self._pending_entry else "position_open",
                                       message="the previous entry is booked first", sent=False)]
            prior = events  # the previous entry is proven never placed: this one goes ahead
        if self.position is not None:
            raise RuntimeError("BitunixBroker.submit called with a position already open")
        task = asyncio.ensure_future(self._submit(intent, candle, now))
        self._inflight = task
        try:
            return prior + await asyncio.shield(task)
        finally:
            if task.done():
                self._inflight = None

    async def _settle_inflight(self) -> list[Event]:
        """Wait for an entry whose caller was cancelled; its events, so they still reach the journal."""
        task, self._inflight = self._inflight, None
        if task is None:
            return []
        if task.get_loop() is not asyncio.get_running_loop():
            # the watchdog's own loop: the frozen loop's entry cannot be awaited; the symbol-wide flatten covers it
            log.error("an entry was in flight on the frozen event loop; flattening the whole symbol")
            return []
        if not task.done():
            log.warning("an entry was in flight when the session stopped; waiting for it before flattening")
        try:
            return await asyncio.wait_for(asyncio.shield(task), self.settings.fill_timeout_sec + 5)
        except Exception as exc:  # noqa: BLE001 - the symbol-wide flatten and verify_flat are the judges
            log.error("the entry in flight at shutdown failed (%s: %s); flattening the whole symbol",
                      type(exc).__name__, exc)
            return []

    async def _submit(self, intent: OrderIntent, candle: Candle, now: datetime) -> list[Event]:
        assert self.rules is not None
        order_side = intent.side.entry_order_side
        if self.halted is not None:
            return [Event(ORDER_REJECTED, now, symbol=self.symbol, side=order_side, position_side=intent.side,
                          order_type="MARKET", qty=intent.qty, reason="entries_halted", message=self.halted,
                          sent=False)]
        if self._quiet_until is not None and self._monotonic() < self._quiet_until:
            left = self._quiet_until - self._monotonic()
            return [Event(ORDER_REJECTED, now, symbol=self.symbol, side=order_side, position_side=intent.side,
                          order_type="MARKET", qty=intent.qty, reason="previous_order_may_land", sent=False,
                          message=f"an earlier order whose answer was lost may still land for {left:.1f}s")]
        client_id = self._next_client_id()
        base: dict[str, Any] = {
            "client_id": client_id, "symbol": self.symbol, "side": order_side, "position_side": intent.side,
            "order_type": "MARKET", "qty": intent.qty, "reference_price": intent.reference_price,
        }
        try:
            last = self.ws_last_price.fresh() if self.ws_last_price is not None else None
            if last is None:
                tickers = await self.client.tickers([self.symbol])
                last = next(t.last_price for t in tickers if t.symbol == self.symbol)
                self.price_sources["rest"] += 1
            else:
                self.price_sources["ws"] += 1
            checked = check_entry(self.rules, intent, last)
        except OrderCheckFailed as exc:
            log.warning("entry refused before sending: %s", exc)
            return [Event(ORDER_REJECTED, now, **base, reason=exc.code, message=str(exc), sent=False)]
        except BitunixError as exc:
            # no current price, no price protection: skip this entry rather than trade blind (nothing was sent)
            reason = "exchange_unavailable" if isinstance(exc, ExchangeUnavailableError) else "price_unavailable"
            log.warning("entry skipped, cannot read the current price: %s", exc)
            return [Event(ORDER_REJECTED, now, **base, reason=reason, code=exc.code, message=str(exc), sent=False)]
        except StopIteration:
            raise LiveBrokerError(f"tickers did not include {self.symbol}") from None
        try:
            foreign_pos = await self._exchange_position()
        except BitunixError as exc:
            log.warning("entry skipped, cannot read the exchange's position: %s", exc)
            return [Event(ORDER_REJECTED, now, **base, reason="exchange_unavailable", code=exc.code, message=str(exc),
                          sent=False)]
        if foreign_pos is not None:
            # flat here, not there: another session (or a hand) opened it; entering would merge into it
            why = (f"position {foreign_pos.position_id} ({foreign_pos.side.value} {foreign_pos.qty}) is open on "
                   f"{self.symbol} but this session did not open it: another session or a manual trade on this account")
            if self.paused is None:
                self.paused = why
                log.critical("ENTRIES PAUSED: %s", why)
            return [Event(ORDER_REJECTED, now, **base, reason="foreign_position", message=why, sent=False)]
        request = PlaceOrderRequest(
            symbol=self.symbol, side=OrderSide(order_side), qty=checked.qty, order_type=OrderType.MARKET,
            client_id=client_id, tp_price=checked.take_profit, tp_stop_type=self.settings.stop_type,
            tp_order_type=OrderType.MARKET, sl_price=checked.stop_loss, sl_stop_type=self.settings.stop_type,
            sl_order_type=OrderType.MARKET,
        )
        if not self._write_ahead(client_id):
            # a restart could not know this entry was sent: never send what the disk cannot name (the session
            # stops on the disk error the store recorded)
            return [Event(ORDER_REJECTED, now, **base, reason="state_not_saved", sent=False,
                          message="the live state could not be saved before sending the entry")]
        try:
            ack = await self.client.place_order(request, not_before=self._not_before())
            order_id = ack.order_id
        except DuplicateClientIdError as exc:
            self._sending = None  # an answer: the identity error halts entries, nothing of ours is left to land
            self._halt(f"entry {client_id}: {exc}")
            return [Event(ORDER_REJECTED, now, **base, reason="order_identity", code=exc.code, message=str(exc),
                          sent=True)]
        except (InsufficientBalanceError, OrderRejectedError, InvalidRequestError, ExchangeUnavailableError) as exc:
            self._sending = None  # refused by the exchange: it cannot land
            reason = rejection_reason(exc)
            log.warning("entry %s rejected: %s", client_id, exc)
            return [Event(ORDER_REJECTED, now, **base, reason=reason, code=exc.code, message=str(exc), sent=True)]
        except (TransportError, RateLimitError) as exc:
            # the request (every attempt of it was signed by now) may land on the exchange until this moment
            lands_until = self._monotonic() + self.settings.entry_life_sec
            may_land_until = time.time() + self.settings.entry_life_sec
            failure = exc  # the lambda below outlives the except clause's name
            try:
                # did it land? The answer decides whether a fill must be booked: the lookup gets the exits'
                # treatment (never blocked by the API breaker, retried for the exit budget)
                with self._exit_budget():
                    found = await self._retrying(f"looking up entry {client_id}",
                                                 lambda: self._lookup_after_failure(request, failure))
            except OrderIdentityError as ident:
                self._sending = None
                self._halt(str(ident))
                return [Event(ORDER_REJECTED, now, **base, reason="order_identity", message=str(ident), sent=True)]
            except (TransportError, RateLimitError, ExchangeUnavailableError) as lookup_exc:
                # still unknown: keep it pending; the next successful lookup books it (or finds it absent),
                # and no new entry is sent meanwhile
                self._pending_entry = _PendingEntry(None, client_id, order_side, intent, checked.stop_loss,
                                                    checked.take_profit, candle, base, now, request,
                                                    lands_until=lands_until, may_land_until=may_land_until)
                self._sending = None  # handed to the pending entry, which names it in the saved state
                self._save()  # no event follows: the state on disk must name the unknown entry now
                log.critical("entry %s: placement failed (%s) and the lookup failed too (%s); order state unknown: "
                             "la looks it up again before anything else and sends no new entry until then",
                             client_id, exc, lookup_exc)
                return []
            if found is None:
                # not found is no proof while the request may still land (held on its way in): it stays unknown,
                # looked up again before anything else, and no new entry is sent until it is found or cannot land
                self._pending_entry = _PendingEntry(None, client_id, order_side, intent, checked.stop_loss,
                                                    checked.take_profit, candle, base, now, request,
                                                    lands_until=lands_until, may_land_until=may_land_until)
                self._sending = None  # handed to the pending entry, which names it in the saved state
                self._save()  # no event follows: the state on disk must name the unknown entry now
                log.warning("entry %s: no answer (%s) and not found on the exchange yet; it may still land, so la "
                            "sends no new entry until it is found or can no longer land (%.0fs)", client_id, exc,
                            self.settings.entry_life_sec)
                return []
            order_id = found.order_id
        self._sending = None  # on the exchange now: nothing left that may land later
        events = [
            Event(
                EventName.ORDER_SUBMITTED, now, order_id=order_id, **{**base, "qty": checked.qty},
                stop_loss=checked.stop_loss, take_profit=checked.take_profit,
            )
        ]
        pending = _PendingEntry(order_id, client_id, order_side, intent, checked.stop_loss, checked.take_profit,
                                candle, base, now)
        try:
            return events + await self._follow_entry(pending, now)
        except (TransportError, RateLimitError, ExchangeUnavailableError) as exc:
            # sent (and maybe filled), but the exchange stopped answering before we could book it: never lose it.
            # OrderSubmitted goes out now; the fill is booked by the next successful query (on_candle/close_all),
            # and no new entry is sent until then.
            self._pending_entry = pending
            log.critical("entry %s (orderId %s) was sent but following it failed (%s); NOT booked yet: la books it "
                         "on the next successful query and sends no new entry until then", client_id, order_id, exc)
            return events

    async def _follow_entry(self, p: _PendingEntry, now: datetime) -> list[Event]:
        """Wait for the entry's end and book it (fill, and the whole round trip if the exchange already closed it).

        A failed query raises before anything is booked, so the caller may simply try again later.
        """
        client_id, intent, candle, base = p.client_id, p.intent, p.candle, p.base
        events: list[Event] = []
        if p.order_id is None:
            assert p.request is not None
            found = await self._lookup_after_failure(p.request, TransportError("earlier placement answer lost"))
            if found is None and self._monotonic() < p.lands_until:
                raise _EntryMayStillLand(client_id)
            if found is None:
                return [Event(ORDER_REJECTED, now, **base, reason="not_placed", message="the lookup proves it absent",
                              sent=True)]
            p.order_id = found.order_id
            p.announced.append(Event(EventName.ORDER_SUBMITTED, now, order_id=found.order_id,
                                     **{**base, "qty": found.qty}, stop_loss=p.stop_loss, take_profit=p.take_profit))
        order_id = p.order_id
        events += p.announced
        order = await self._await_terminal(order_id)
        if order.filled_qty <= 0:
            events.append(Event(ORDER_REJECTED, now, **base, order_id=order_id, reason="not_filled",
                                message=f"order ended {order.status.value} without a fill", sent=True))
            return events
        pos = await self._exchange_position()  # a failed query raises: never read as "already closed"
        entry_trades: list[TradeInfo] = []
        closing: list[TradeInfo] | None = None
        if pos is None:
            # filled, and the exchange-side TP/SL (or a liquidation) closed it before we looked: rebuild the
            # round trip from the exchange's own trade history, entry and exit at their real prices and fees
            entry_trades, closing, position_id = await self._round_trip_trades(order, intent.side)
            log.warning("entry %s filled and position %s was closed by the exchange before la saw it open; "
                        "booking the round trip from the exchange's trade history", order_id, position_id)
        else:
            position_id = pos.position_id
        fee = money(order.fee if order.fee is not None else sum((t.fee or ZERO for t in entry_trades), ZERO))
        price = (order.avg_price or (pos.avg_open_price if pos is not None else None) or vwap(entry_trades)
                 or p.take_profit)
        opened = Position(
            position_id=position_id, side=intent.side, qty=order.filled_qty, entry_price=price,
            entry_ts=p.sent_at, entry_fee=fee, stop_loss=p.stop_loss, take_profit=p.take_profit,
        )
        fill = self.books.book_entry(opened, order_id=order_id, client_id=client_id, now=now)
        self.last_price = candle.close
        events.append(fill)
        if closing is not None:
            exit_events, trade = await self._book_exit(opened, None, None, now, now, fills=closing)
            events += exit_events
            if trade is not None:
                self.books.unreported.append(trade)  # submit returns events only: on_candle reports it (breaker)
        return events

    async def _finish_pending(self, now: datetime, *, may_stop: bool = True) -> list[Event]:
        """Book the entry that was sent while the exchange stopped answering; [] (still pending) if it still fails.

        ``may_stop=False`` (the flattening shutdown): a blind run past ``blind_stop_sec`` is logged, never raised,
        since the raise exists to start that very shutdown and must not skip its flatten."""
        pending = self._pending_entry
        if pending is None:
            return []
        try:
            with exit_path():  # booking what already happened is never paused by the API breaker (only new risk is)
                events = await self._retrying(f"booking entry {pending.order_id}",
                                              lambda: self._follow_entry(pending, now))
        except (TransportError, RateLimitError, ExchangeUnavailableError) as exc:
            self._failed_check(f"entry {pending.client_id} (orderId {pending.order_id}) could not be booked", exc,
                               may_stop=may_stop)
            return []
        except _EntryMayStillLand:
            self._checked()  # the exchange answered: not found yet, and the request may still land
            return []
        self._checked()
        self._pending_entry = None
        if pending.order_id is None:
            log.warning("entry %s given up: not on the exchange, and it can no longer land", pending.client_id)
        else:
            log.warning("entry %s (orderId %s) booked after the exchange answered again", pending.client_id,
                        pending.order_id)
        return events

    # ------------------------------------------------------------------ exits
    async def on_candle(self, candle: Candle, now: datetime) -> Closed:
        """Age the position; if the exchange closed it (TP/SL/liquidation), book the exit."""
        self.last_price = candle.close
        booked = await self._finish_pending(now)
        if booked:
            trade = self.books.unreported.pop(0) if self.books.unreported and self.position is None else None
            return booked, trade
        pos = self.position
        if pos is None:
            if self._pending_entry is None:
                self._checked()  # nothing held, nothing unbooked: nothing to be blind to
            if self.books.unreported:  # booked (and its events published) by submit; the session's risk checks need it
                return [], self.books.unreported.pop(0)
            return [], None
        pos.bars_held += 1
        try:
            exch = await self._exchange_position()
            if exch is not None and exch.position_id == pos.position_id:
                pos.qty = exch.qty
                self._checked()
                return [], None
            closed = await self._book_exit(pos, None, None, now, now)
        except (TransportError, RateLimitError, ExchangeUnavailableError) as exc:
            # a blip is weather: the position stays ours (no new entry), and the next candle asks again; an exit
            # the exchange made meanwhile is booked then, from its history (nothing is booked before the reads).
            # An outage is not: past blind_stop_sec of failed checks the session stops (and flattens).
            self._failed_check(f"position {pos.position_id} could not be checked", exc)
            return [], None
        self._checked()
        return closed

    def _checked(self) -> None:
        """A candle's check with the exchange worked (or there was nothing to check): the blind run is over."""
        if self._blind_since is not None:
            log.warning("the exchange answered again after %d failed candle check(s)", self._blind_checks)
        self._blind_since, self._blind_checks = None, 0

    def _failed_check(self, what: str, exc: BaseException, *, may_stop: bool = True) -> None:
        """A candle's check failed past its retries: absorbed while the run of failures is shorter than
        ``blind_stop_sec`` (asked again next candle); beyond it, :class:`ExchangeUnavailableError`, which the
        session classifies as an ordinary outage (exit 12) and answers with its flattening shutdown. Measured in
        time, not candles: a fast feed must not stop on a blip, a slow one must not run blind for many bars."""
        now = self._monotonic()
        if self._blind_since is None:
            self._blind_since = now
        self._blind_checks += 1
        blind = now - self._blind_since
        if self._blind_checks >= 2 and blind >= self.settings.blind_stop_sec and may_stop:
            raise ExchangeUnavailableError(
                f"{what} on {self._blind_checks} candles in a row for {blind:.0f}s, longer than the "
                f"{self.settings.blind_stop_sec:.0f}s a live session may run blind (session.stale_data_timeout_sec)"
                f"; last error: {exc}") from None
        # one ERROR per run of failures, the rest at DEBUG: a fast feed must not flood the console (a full stderr
        # pipe blocks the whole session) while the exchange is down
        level = logging.ERROR if self._blind_checks == 1 else logging.DEBUG
        log.log(level, "%s (%s); asking again each candle, stopping if it lasts over %.0fs (%d failed in a row, %.0fs)",
                what, exc, self.settings.blind_stop_sec, self._blind_checks, blind)

    async def close_position(self, reason: str, price: Decimal, exit_ts: datetime, now: datetime) -> Closed:
        """Market-close the open position (reduce-only); ``price`` is only a reference here.

        An exit: it runs on the transport's exit path (the API circuit breaker never blocks it) and keeps
        retrying a failing exchange with backoff for ``stop_budget_sec``.

        The close form is one every reading accepts: the broker trades ONE_WAY only (checked at start), and
        there an exit-side reduce-only order without ``tradeSide``/``positionId`` can only reduce the
        position. ``tradeSide=CLOSE`` is avoided on purpose: its ``side`` means the position's side in the
        docs (close long = BUY) and the exit side in community clients (docs/bitunix-dialects.md).
        """
        pos = self.position
        if pos is None:
            return [], None
        with self._exit_budget():
            client_id = self._next_client_id()
            request = close_request(self.symbol, pos.side, pos.qty, client_id)
            close_order_id = await self._retrying(f"closing position {pos.position_id}",
                                                  lambda: self._send_close(pos, request))
            if close_order_id is not None:
                await self._retrying(f"waiting for close order {close_order_id}",
                                     lambda: self._await_terminal(close_order_id))
            return await self._book_exit(pos, close_order_id, reason, exit_ts, now)

    def _write_ahead(self, client_id: str) -> bool:
        """Before an entry's send: save state naming it, with the latest wall-clock time it may land (every
        attempt the client may make, then ``entry_life_sec``), so a restart after kill -9 mid-send waits it out.
        False (and nothing left in flight) when the save failed: the entry must not be sent."""
        cfg = getattr(self.client, "config", None)
        attempts = max(1, cfg.retry.max_attempts) if cfg is not None else 1
        span = attempts * ((cfg.timeout_sec + cfg.retry.max_delay_sec) if cfg is not None else 0.0)
        self._sending = {"client_id": client_id,
                         "may_land_until": round(time.time() + span + self.settings.entry_life_sec, 3)}
        if self._save():
            return True
        self._sending = None
        return False

    def _save(self) -> bool:
        """Persist now; False only when the persister says the state was not saved."""
        if self.persist is None:
            return True
        return self.persist() is not False

    def _entry_in_flight(self) -> dict[str, Any] | None:
        """The entry that may still land, for the saved state: unknown after a lost answer, or being sent now.

        ``_sending`` is cleared only on a definite outcome (answered, refused, handed to the pending entry), never
        because a caller stopped waiting: a shutdown that gives up on a hanging send must still save it, so a
        restart waits until it can no longer land (its ``may_land_until``) instead of entering beside it."""
        p = self._pending_entry
        if p is not None and p.order_id is None:
            return {"client_id": p.client_id, "may_land_until": round(p.may_land_until, 3)}
        if self._sending is not None and time.time() < float(self._sending["may_land_until"]):
            return dict(self._sending)
        return None

    # ------------------------------------------------------------------ flatten and shutdown
    async def close_all(self, reason: str, now: datetime) -> Closed:
        """Close our position, then cancel every order and close every position of the symbol; verify flat.

        Every step is an exit: never blocked by the API circuit breaker, retried for ``stop_budget_sec``.
        """
        with self._exit_budget():
            return await self._close_all(reason, now)

    async def _close_all(self, reason: str, now: datetime) -> Closed:
        settled = await self._settle_inflight()
        settled += await self._outlive_unknown_entry(now)
        events: list[Event] = []
        trade: Trade | None = None
        pos = self.position
        if pos is not None:
            price = self.last_price if self.last_price is not None else pos.entry_price
            try:
                events, trade = await self.close_position(reason, price, now, now)
            except (BitunixError, LiveBrokerError) as exc:
                # keep going: the exchange-wide flatten below is the second line; verify_flat is the judge
                log.error("closing position %s failed (%s); flattening the whole symbol", pos.position_id, exc)
        await self.flatten_exchange()
        if self.position is not None:  # closed by the flatten, not by our order: book it from history
            events, trade = await self._book_exit(self.position, None, reason, now, now)
        if pos is None and trade is None:
            if self.books.unreported:
                trade = self.books.unreported.pop(0)  # booked by submit, not yet reported by on_candle: the breaker needs it
            try:  # the flatten may have closed something la had not booked (an entry cut off on a frozen loop)
                await self._retrying("reading the wallet", lambda: self._check_wallet("close_all"))
            except BitunixError as exc:
                log.warning("could not re-read the wallet after flattening (%s); equity may lag the exchange", exc)
        return settled + events, trade

    async def _outlive_unknown_entry(self, now: datetime) -> list[Event]:
        """Book the pending entry; one that may still land is looked up until it is found or can no longer land
        (within the exit budget), so it cannot land after the flatten that ends the session. A failing exchange
        never raises out of here (no blind stop): the flatten after it is always attempted."""
        events = await self._finish_pending(now, may_stop=False)
        while (p := self._pending_entry) is not None and p.order_id is None and self._monotonic() < p.lands_until:
            if self._stop_remaining() <= 0:
                log.critical("entry %s may still land on the exchange after this session flattens (%.1fs left of "
                             "its possible life): check the account", p.client_id, p.lands_until - self._monotonic())
                break
            await self._sleep(min(self.settings.flat_verify_interval_sec, max(0.0, p.lands_until - self._monotonic())))
            events += await self._finish_pending(now, may_stop=False)
        return events

    async def flatten_exchange(self) -> None:
        """Cancel all orders and close all positions on the symbol, then prove it by querying."""
        try:
            await self.client.cancel_all_orders(self.symbol)
            if await self._exchange_position() is not None:
                await self.client.close_all_position(self.symbol)
        except BitunixError as exc:
            log.error("flatten request failed (%s); verifying and retrying", exc)
        await self.verify_flat()

    async def verify_flat(self) -> None:
        """Query until no position and no open order remain, re-flattening between queries, with backoff.

        Gives up (:class:`NotFlatError`) only after ``flat_verify_attempts`` queries *and* the exit budget are
        both spent: a blip of a few seconds ends flat.
        """
        problem, seen = "unknown", ""
        delay = self.settings.flat_verify_interval_sec
        attempt = failures = 0
        while True:
            attempt += 1
            try:
                positions = [p for p in await self.client.get_pending_positions(self.symbol) if p.symbol == self.symbol]
                orders = [o for o in (await self.client.get_pending_orders(self.symbol, limit=100)).orders
                          if o.status.is_open]
            except BitunixError as exc:
                problem = f"{seen}cannot query the account ({exc})"
                failures += 1
                await self._fresh_connections(failures, exc)
            else:
                if not positions and not orders:
                    return
                problem = f"{len(positions)} position(s) and {len(orders)} open order(s) remain"
                seen = f"{problem}, then "
                try:
                    if orders:
                        await self.client.cancel_all_orders(self.symbol)
                    if positions:
                        await self.client.close_all_position(self.symbol)
                except BitunixError as exc:
                    problem += f"; flatten request failed ({exc})"
            if attempt >= self.settings.flat_verify_attempts and self._stop_remaining() <= 0:
                break
            await self._sleep(delay)
            delay = min(delay * 2, max(self.settings.stop_backoff_max_sec, self.settings.flat_verify_interval_sec))
        self.not_flat = f"account is NOT flat on {self.symbol}: {problem}"
        raise NotFlatError(f"{self.not_flat}; close it on the exchange now")

    async def shutdown(self, reason: str, now: datetime) -> Closed:
        """close_all + verification; closes the HTTP session whatever happens."""
        try:
            return await self.close_all(reason, now)
        finally:
            if self.stream is not None:
                await self.stream.close()
            await self.client.close()

    def close_all_blocking(self, reason: str, now: datetime) -> Closed:
        """For the watchdog thread when the event loop is frozen: flatten through a fresh client on a fresh loop."""
        if self._client_factory is None:
            raise LiveBrokerError("close_all_blocking needs a client_factory")

        async def run() -> Closed:
            self._stop_until = None  # the frozen loop's exit (if any) never finishes: this one gets a full budget
            original = self.client
            self.client = self._client_factory()  # type: ignore[misc]
            saved_stream, self.stream = self.stream, None  # bound to the frozen loop: poll instead
            saved_monotonic = self._monotonic
            self._monotonic = lambda: asyncio.get_running_loop().time()
            try:
                return await self.close_all(reason, now)
            finally:
                await self.client.close()
                self.client = original
                self.stream = saved_stream
                self._monotonic = saved_monotonic

        return asyncio.run(run())

    # ------------------------------------------------------------------ persistence
    def to_state(self) -> dict[str, Any]:
        """Plain data for the live state file; holds no credential (not even a fingerprint of the secret)."""
        state = {
            "broker": self.name,
            "symbol": self.symbol,
            **self.books.to_state(),  # the books, entry order, trades, unreported trades
            "last_price": None if self.last_price is None else str(self.last_price),
            "seq": self._seq,
            "client_tag": self._tag,
            "exchange_seen_at": None if self._newest_seen is None else self._newest_seen.isoformat(),
            "booked_fills": list(self.books.booked),
        }
        in_flight = self._entry_in_flight()
        if in_flight is not None:  # only while an entry may still land: the usual state file is unchanged
            state["entry_in_flight"] = in_flight
        return state

    def restore(self, data: dict[str, Any]) -> None:
        """Load a previous ``to_state()``; :meth:`start` then reconciles it with the exchange."""
        if data.get("symbol") != self.symbol:
            raise ReconcileError(f"live state is for {data.get('symbol')}, this broker trades {self.symbol}")
        try:
            books = LiveBooks.from_state(self.symbol, data)
            self.last_price = None if data.get("last_price") is None else Decimal(data["last_price"])
            self._seq = int(data["seq"])
            self._tag = str(data["client_tag"])
            in_flight = data.get("entry_in_flight")
            if in_flight is not None:
                if not isinstance(in_flight, dict) or not isinstance(in_flight.get("client_id"), str):
                    raise ValueError("entry_in_flight must name a client_id")
                float(in_flight["may_land_until"])
            self._restored_in_flight = in_flight
            seen = data.get("exchange_seen_at", _UNKNOWN)
            self._seen_known = seen is not _UNKNOWN  # older state files: la cannot tell what it had seen
            self._newest_seen = None if seen in (None, _UNKNOWN) else datetime.fromisoformat(str(seen))
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            raise ReconcileError(f"live broker state is malformed: {type(exc).__name__}: {exc}") from None
        self.books, self.ledger = books, books.ledger  # the account view reads the same ledger the books book
        self._restored = True

    def verify_accounting(self) -> None:
        """equity == starting + sum(trade pnl) + adjustments - entry fee of the open position."""
        try:
            self.ledger.verify()
        except LedgerError as exc:
            raise ReconcileError(str(exc)) from None

    def _require_started(self) -> None:
        if not self.started:
            raise LiveBrokerError("BitunixBroker.start() must run before trading")
