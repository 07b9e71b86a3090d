"""Reconciliation: making the live books agree with the Bitunix account, where the exchange is the truth.

Why its own module: at start-up, and whenever a position is gone, the broker must learn what happened on the
exchange without guessing. This part reads (contract rules, account mode, open orders, positions, the trade
history) and hands the fills it finds to the books (:class:`~laptop_agents.execution.bitunix_booking.LiveBooks`),
which book each exactly once:

* **start-up** (:meth:`Reconciliation.start`): refuse foreign orders and another la instance's orders or
  position (two sessions on one account), cancel our stale orders, resume, book or adopt the position, book
  the round trips the exchange completed while la was down, set leverage and margin mode, and adopt the wallet.
  A failed query raises: "I could not ask" is never read as "flat".
* **exits** (:meth:`Reconciliation._book_exit`): a position closed by our order, by the exchange's TP/SL, by a
  liquidation or by hand is booked from its closing fills in the trade history (which can lag the position
  table, so a short fall is re-read), then the wallet is re-read: any difference is an adjustment.

:class:`Reconciliation` is a part (a base) of :class:`~laptop_agents.execution.bitunix_broker.BitunixBroker`,
on top of :class:`~laptop_agents.execution.bitunix_orders.OrderExecution`, whose lookups and exit-path retries
it uses.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from laptop_agents.bitunix import (
    BitunixError,
    OrderInfo,
    OrderNotFoundError,
    OrderSide,
    PositionInfo,
    PositionMode,
    PositionSide,
    TradeInfo,
)
from laptop_agents.core.events import Event, EventName
from laptop_agents.core.ledger import Ledger, money
from laptop_agents.core.models import ZERO, Position, Side, Trade
from laptop_agents.execution.bitunix_booking import (
    EXIT_WHILE_DOWN,
    LiveBooks,
    fills_covering,
    is_closing_fill,
    trade_key,
    wallet_balance,
)
from laptop_agents.execution.bitunix_orders import OrderExecution
from laptop_agents.execution.bitunix_settings import (
    ClockSkewError,
    LiveBrokerError,
    OtherInstanceError,
    ReconcileError,
)
from laptop_agents.execution.order_checks import SymbolRules

log = logging.getLogger("laptop_agents.execution.bitunix_broker")

Closed = tuple[list[Event], Trade | None]
SIDE_OF_POSITION = {PositionSide.LONG: Side.LONG, PositionSide.SHORT: Side.SHORT}


class Reconciliation(OrderExecution):
    """Start-up reconciliation and exits read from the exchange's history (see the module doc)."""

    name: str
    books: LiveBooks
    ledger: Ledger
    rules: SymbolRules | None
    started: bool
    _restored: bool
    """The books came from a state file (a restart), not from the wallet."""
    _seen_known: bool
    """The state file recorded the newest exchange time seen (older ones did not): the while-down walk can run."""
    _restored_in_flight: dict[str, Any] | None
    """An entry the previous life had in flight (``entry_in_flight`` of its saved state): start() waits it out."""

    def _refuse_other_instance_position(self, exch: PositionInfo, trades: Iterable[TradeInfo]) -> None:
        """A position la does not know of, opened (newest opening fill) by an la with another tag: refuse."""
        side = SIDE_OF_POSITION[exch.side]
        opening = [t for t in trades if t.symbol == self.symbol and t.side is OrderSide(side.entry_order_side)
                   and self._is_ours(t.client_id)]
        if not opening:
            return  # opened by hand (or beyond the page): adopted, as always
        newest = max(opening, key=trade_key)
        if self._other_instance(newest.client_id):
            raise OtherInstanceError(
                f"position {exch.position_id} on {self.symbol} was opened by another la instance (tag "
                f"{self._tag_of(newest.client_id)}, order {newest.order_id}): another session trades this account; "
                "stop it first (or close the position on the exchange if that session is gone)"
            )

    async def start(self, now: datetime) -> list[Event]:
        """Read rules, reconcile with the exchange, set leverage/margin mode. Raises on any doubt."""
        s = self.settings
        await self._outlive_previous_entry()
        pairs = await self.client.trading_pairs([self.symbol])
        pair = next((p for p in pairs if p.symbol == self.symbol), None)
        self._check_clock()
        if pair is None:
            raise LiveBrokerError(f"exchange does not list {self.symbol}")
        self.rules = SymbolRules.from_pair(pair)
        if not self.rules.tradable:
            raise LiveBrokerError(f"{self.symbol} is not open for trading on the exchange ({pair.status})")
        if not self.rules.min_leverage <= s.leverage <= self.rules.max_leverage:
            raise LiveBrokerError(
                f"leverage {s.leverage} is outside {self.symbol}'s range {self.rules.min_leverage}-{self.rules.max_leverage}"
            )
        account = await self.client.account(s.margin_coin)
        if account.position_mode is PositionMode.HEDGE:
            raise LiveBrokerError("the account is in HEDGE position mode; this broker trades ONE_WAY only")
        positions = [p for p in await self.client.get_pending_positions(self.symbol) if p.symbol == self.symbol]
        orders = [o for o in (await self.client.get_pending_orders(self.symbol, limit=100)).orders if o.status.is_open]
        since = self._newest_seen  # restored: the exchange time of the newest record the last life had seen
        history = await self.client.get_history_trades(self.symbol, limit=self.settings.history_page_limit)
        for seen in (*(o.created for o in orders), *(t.created for t in history.trades)):
            self._saw(seen)  # an order created before these is not one we are about to send
        events: list[Event] = []
        details: dict[str, Any] = {}
        foreign = [o for o in orders if not self._is_ours(o.client_id)]
        if foreign:
            raise ReconcileError(
                f"{len(foreign)} open order(s) on {self.symbol} not placed by la (e.g. orderId {foreign[0].order_id}); "
                "cancel them on the exchange before starting a live session"
            )
        # la saves its state (with its instance tag) at start, so la orders or an la-opened position that carry
        # another tag -- or any la tag when this workspace has no state at all -- are another session's
        others = [o for o in orders if self._other_instance(o.client_id)]
        if others:
            raise OtherInstanceError(
                f"{len(others)} open order(s) on {self.symbol} carry another la instance's tag "
                f"({self._tag_of(others[0].client_id)}, e.g. clientId {others[0].client_id}): another session trades "
                "this account; stop it first (or cancel its orders on the exchange if it is gone)"
            )
        if orders:
            result = await self.client.cancel_orders(self.symbol, order_ids=[o.order_id for o in orders])
            if result.failed:
                first = result.failed[0]
                raise ReconcileError(
                    f"could not cancel stale order {first.order_id} on {self.symbol}: {first.error_msg}"
                )
            details["cancelled_stale_orders"] = [o.client_id for o in orders]
            log.warning("cancelled %d stale la order(s) left open on %s", len(orders), self.symbol)
        if len(positions) > 1:
            raise ReconcileError(f"{len(positions)} positions open on {self.symbol}; expected at most one")
        exchange_pos = positions[0] if positions else None
        if exchange_pos is not None and (self.ledger.position is None or self.ledger.position.position_id != exchange_pos.position_id):
            self._refuse_other_instance_position(exchange_pos, history.trades)
        skip = {self.books.entry_order_id} if self.books.entry_order_id else set()
        events += await self._reconcile_position(exchange_pos, now, details)
        if self._restored and self._seen_known:
            walked = await self._book_while_down(since, skip | set(self.books.booked), now, details)
            events += walked
            if walked and "adopted_position" in details:
                await self._drop_adopted_if_booked(details)
        if exchange_pos is None:
            await self.client.change_margin_mode(self.symbol, s.margin_mode, s.margin_coin)
            await self.client.change_leverage(self.symbol, s.leverage, s.margin_coin)
        else:
            log.warning(
                "position open on %s: leverage/margin mode left as the exchange has them (%s, %sx)",
                self.symbol, exchange_pos.margin_mode, exchange_pos.leverage,
            )
        wallet = wallet_balance(account)  # cancelling stale orders frees margin but does not change the wallet
        if not self._restored:
            self.ledger.start_from_wallet(wallet)  # an adopted position's fee counts into the starting equity
        else:
            self.books.adopt_wallet(wallet, "start-up")
        self.started = True
        events.append(
            Event(
                EventName.STATE_RESTORED, now, source="exchange", broker=self.name, symbol=self.symbol,
                equity=self.ledger.cash, position_id=self.ledger.position.position_id if self.ledger.position else None,
                position_side=self.ledger.position.side if self.ledger.position else None,
                qty=self.ledger.position.qty if self.ledger.position else None, **details,
            )
        )
        return events

    async def _outlive_previous_entry(self) -> None:
        """The previous life (killed) may have had an entry on its way in: reconcile only once it can no longer
        land, so the position read below adopts it (or the while-down walk books its round trip) instead of this
        life entering beside it. Found under its clientId: it landed (one request lands once), nothing to wait
        for. Otherwise wait until its saved deadline, at most ``entry_life_sec``: a dead process signs nothing, so
        whatever it sent expires within one life of its death, and its death was before this start."""
        record, self._restored_in_flight = self._restored_in_flight, None
        if record is None:
            return
        left = min(float(record["may_land_until"]) - time.time(), self.settings.entry_life_sec)
        if left <= 0:
            return
        try:
            await self.client.get_order_detail(client_id=str(record["client_id"]))
            return  # it landed: the reconciliation below finds it
        except OrderNotFoundError:
            pass
        except BitunixError as exc:
            log.warning("could not look up entry %s of the last session (%s); waiting as if it were on its way",
                        record["client_id"], exc)
        log.warning("entry %s was on its way to the exchange when the last session ended and is not there yet; "
                    "waiting %.1fs until it can no longer land before reconciling", record["client_id"], left)
        await self._sleep(left)

    def _check_clock(self) -> None:
        """Refuse to start when the local clock is further from the exchange's than its receive window."""
        clock = getattr(getattr(self.client, "transport", None), "clock", None)
        if clock is None or not clock.known:
            return
        offset = clock.offset_ms
        if clock.least_skew_ms > self.settings.recv_window_ms:  # certainly beyond it, not just maybe
            raise ClockSkewError(
                f"the local clock is {abs(offset) / 1000:.1f}s {'behind' if offset > 0 else 'ahead of'} the "
                f"exchange's (receive window {self.settings.recv_window_ms / 1000:.0f}s); sync it "
                "(e.g. `timedatectl set-ntp true` or chronyc makestep) and start again"
            )
        if offset:
            log.warning("the exchange's clock is %+.1fs from the local one; signing with the exchange's time",
                        offset / 1000)

    async def _book_while_down(self, since: datetime | None, skip: set[str], now: datetime,
                               details: dict[str, Any]) -> list[Event]:
        """Round trips the exchange opened and closed while la was down, booked as trades (``exchange_while_down``).

        kill -9 between an entry's send and the next state save, then the exchange-side TP/SL closes it: the
        restart finds no position and the round trip would show only as a wallet "adjustment". The fills after
        the last exchange time la had recorded (``since``), minus those booked already (``skip``), are walked
        in exchange order in one-way mode (the net position returns to zero = one round trip). Only round trips
        whose entry is one of our orders (our clientId prefix and tag) are booked; anything else stays an
        adjustment, as before. The position still open at the end (if any) is the adoption path's.
        """
        start_ms = None if since is None else int(since.timestamp() * 1000)  # None: the last life saw nothing yet
        page = await self.client.get_history_trades(self.symbol, start_time=start_ms,
                                                    limit=self.settings.history_page_limit)
        fills = sorted((t for t in page.trades
                        if t.symbol == self.symbol and (since is None or (t.created is not None and t.created > since))
                        and t.trade_id not in skip and t.order_id not in skip),
                       key=trade_key)
        events: list[Event] = []
        ours = f"{self.settings.client_id_prefix}{self._tag}"
        net = ZERO
        opening: list[TradeInfo] = []
        closing: list[TradeInfo] = []
        for t in fills:
            signed = t.qty if t.side is OrderSide.BUY else -t.qty
            if net and t.reduce_only and (signed > 0) == (net > 0):
                signed = -signed  # a reduce-only fill reported with the position's side (a dialect)
            if not net or (signed > 0) == (net > 0):
                opening.append(t)
            else:
                closing.append(t)
            net += signed
            if net:
                continue
            if opening and (opening[0].client_id or "").startswith(ours):
                event = self.books.book_round_trip(opening, closing, now)
                if event is not None:
                    events.append(event)
                    for f in opening + closing:
                        self._saw(f.created)
            opening, closing = [], []
        if events:
            details["booked_while_down"] = [e.data["trade_id"] for e in events]
            log.warning("booked %d round trip(s) the exchange completed while la was down (reason %s)",
                        len(events), EXIT_WHILE_DOWN)
        return events

    async def _drop_adopted_if_booked(self, details: dict[str, Any]) -> None:
        """The position adopted from the first read may have closed before the walk's history read (its TP/SL
        fired during reconciliation): the walk booked that round trip, so the adoption is stale. Re-read; if it
        is gone and its closing fills are booked, drop it (nothing left to book for it)."""
        pos = self.ledger.position
        if pos is None or await self._exchange_position() is not None:
            return
        closing, booked = await self._closing_trades_split(pos)
        if booked and not closing:
            self.books.forget(pos)
            details.pop("adopted_position", None)
            details["adopted_then_booked"] = pos.position_id

    async def _reconcile_position(self, exch: PositionInfo | None, now: datetime, details: dict[str, Any]) -> list[Event]:
        local = self.ledger.position
        if exch is None:
            if local is None:
                return []
            # closed while we were away (TP/SL, liquidation, manual): book it from the exchange's history
            details["closed_while_offline"] = local.position_id
            events, _ = await self._book_exit(local, None, "closed_while_offline", now, now)
            return events
        side = SIDE_OF_POSITION[exch.side]
        entry_price = exch.avg_open_price or (exch.entry_value / exch.qty if exch.entry_value and exch.qty else None)
        if entry_price is None:
            raise ReconcileError(f"position {exch.position_id} has no entry price; cannot adopt it")
        if local is not None and local.position_id == exch.position_id:
            local.qty = exch.qty
            local.entry_price = entry_price
            details["resumed_position"] = exch.position_id
            return []
        if local is not None:
            # ours closed, another one opened (by hand?) meanwhile: book ours, then adopt the new one
            events, _ = await self._book_exit(local, None, "closed_while_offline", now, now)
        else:
            events = []
        stop, target = ZERO, ZERO
        adopted = Position(
            position_id=exch.position_id, side=side, qty=exch.qty, entry_price=entry_price,
            entry_ts=exch.created or now, entry_fee=money(exch.fee or ZERO), stop_loss=stop, take_profit=target,
        )
        # restored books: the adopted position's entry fee is already out of the wallet: book it like an entry;
        # fresh books start from the wallet and count it into the starting equity (start_from_wallet)
        self.books.adopt(adopted, charge_fee=self._restored)
        details["adopted_position"] = exch.position_id
        log.warning(
            "adopted %s position %s (%s @ %s) from the exchange; its TP/SL are unknown to la and stay as the "
            "exchange has them; the strategy's exits (max hold, kill switch, shutdown) manage it",
            side.value, exch.position_id, exch.qty, entry_price,
        )
        return events

    async def _round_trip_trades(self, order: OrderInfo, side: Side) -> tuple[list[TradeInfo], list[TradeInfo], str]:
        """The entry's fills and the fills that closed it again, from the symbol's trade history.

        One-way mode and one position at a time: the exit-side fills that follow the entry's last fill, in
        exchange order (time, then tradeId), reduce that position until it is flat. History can lag the
        position table, so a short fall is re-read a few times; a query failure raises, never "flat".
        """
        limit = self.settings.history_page_limit
        found = "no entry fills"
        for attempt in range(self.settings.flat_verify_attempts):
            page = await self.client.get_history_trades(self.symbol, order_id=order.order_id, limit=limit)
            entry = sorted((t for t in page.trades if t.order_id == order.order_id), key=trade_key)
            if sum((t.qty for t in entry), ZERO) >= order.filled_qty and entry:
                last = trade_key(entry[-1])
                first_time = entry[0].created or order.created
                start_ms = int(first_time.timestamp() * 1000) if first_time is not None else None
                later = await self.client.get_history_trades(self.symbol, start_time=start_ms, limit=limit)
                closing = fills_covering(
                    (t for t in sorted(later.trades, key=trade_key)
                     if is_closing_fill(t, side, order.order_id) and trade_key(t) > last),
                    order.filled_qty,
                )
                closed_qty = sum((t.qty for t in closing), ZERO)
                if closed_qty == order.filled_qty:
                    return entry, closing, self._round_trip_position_id(entry + closing, side, order)
                found = f"closing fills for {closed_qty} of {order.filled_qty}"
            else:
                found = f"entry fills for {sum((t.qty for t in entry), ZERO)} of {order.filled_qty}"
            if attempt + 1 < self.settings.flat_verify_attempts:
                await self._sleep(self.settings.flat_verify_interval_sec)
        raise ReconcileError(
            f"entry {order.order_id} filled but no position is open on {self.symbol}, and the exchange's trade "
            f"history does not explain it ({found}); check the account on the exchange"
        )

    def _round_trip_position_id(self, trades: list[TradeInfo], side: Side, order: OrderInfo) -> str:
        """The exchange's positionId if a record carries it (trade or private CLOSE push), else the entry order's."""
        ids = {t.position_id for t in trades if t.position_id}
        if len(ids) == 1:
            return ids.pop()
        if self.stream is not None:
            known = {t.trade_id for t in self.ledger.trades}
            opened = min((t.created for t in trades if t.created is not None), default=None)
            for push in reversed(self.stream.closed_positions.values()):
                if (push.symbol == self.symbol and SIDE_OF_POSITION.get(push.side) is side
                        and push.position_id not in known
                        and (opened is None or push.created is None or push.created >= opened)):
                    return push.position_id
        return f"order-{order.order_id}"

    async def _book_exit(
        self, pos: Position, close_order_id: str | None, reason: str | None, exit_ts: datetime, now: datetime,
        *, fills: list[TradeInfo] | None = None,
    ) -> Closed:
        """Rebuild the exit from the exchange's trades of this position (or the closing ``fills`` given); update
        equity; emit ExecutionExit."""
        closing: list[TradeInfo]
        if fills is None:
            closing, booked_already = await self._retrying(f"reading the closing trades of {pos.position_id}",
                                                           lambda: self._closing_trades_split(pos))
        else:
            closing, booked_already = self.books.split_booked(fills)
        for t in closing:
            self._saw(t.created)
        if booked_already and not closing:
            self.books.forget(pos)  # booked by another path (while-down walk, an earlier exit)
            return [], None
        for _ in range(self.settings.flat_verify_attempts - 1):
            if closing or await self._retrying("reading the position", self._exchange_position) is not None:
                break
            # gone, but its closing fills are not in the history yet (the history can lag the position table)
            await self._sleep(self.settings.flat_verify_interval_sec)
            closing, booked_already = await self._retrying(f"reading the closing trades of {pos.position_id}",
                                                           lambda: self._closing_trades_split(pos))
            if booked_already and not closing:
                self.books.forget(pos)
                return [], None
        if not closing:
            if await self._retrying("reading the position", self._exchange_position) is not None:
                return [], None  # still open after all (e.g. a partial close): nothing to book yet
            raise ReconcileError(
                f"position {pos.position_id} is gone from the exchange but its closing trades were not found"
            )
        trade = self.books.book_exit(pos, closing, close_order_id=close_order_id, reason=reason, exit_ts=exit_ts)
        try:
            await self._retrying("reading the wallet", lambda: self._check_wallet("exit " + pos.position_id))
        except BitunixError as exc:  # booked from the exchange's fills already; the next wallet read adopts drift
            log.warning("could not re-read the wallet after booking %s (%s); equity may lag the exchange",
                        pos.position_id, exc)
        return [self.books.exit_event(trade, pos, now)], trade

    async def _closing_trades_split(self, pos: Position) -> tuple[list[TradeInfo], bool]:
        """:meth:`_closing_trades` minus fills booked already, and whether any closing fill was booked already."""
        return self.books.split_booked(await self._closing_trades(pos, include_booked=True))

    async def _closing_trades(self, pos: Position, *, include_booked: bool = False) -> list[TradeInfo]:
        """The position's fills that reduced it: every exit-side trade of this position except the entry's.

        The query asks for this position's trades, but the reference does not document history-trade filters
        (and one public client reports the exchange ignoring ``positionId``). So records naming another
        position are dropped; and if the exit fills still add up to more than
        the position ever held, the page holds other positions' exits too: only the newest fills up to its
        size count (the position is gone, so those are its close). Nothing is ever booked twice.
        """
        page = await self.client.get_history_trades(
            self.symbol, position_id=pos.position_id, limit=self.settings.history_page_limit
        )
        closing = sorted(
            (t for t in page.trades
             if is_closing_fill(t, pos.side, self.books.entry_order_id)
             and (not t.position_id or t.position_id == pos.position_id)
             and (include_booked or t.trade_id not in self.books.booked)),
            key=trade_key,
        )
        if sum((t.qty for t in closing), ZERO) <= pos.qty:
            return closing
        log.warning("trade history for position %s holds more exit fills than it held (%s); the exchange ignored "
                    "the position filter: booking only its newest fills", pos.position_id, pos.qty)
        return fills_covering(reversed(closing), pos.qty)[::-1]

    async def _check_wallet(self, when: str) -> None:
        account = await self.client.account(self.settings.margin_coin)
        self.books.adopt_wallet(wallet_balance(account), when)
