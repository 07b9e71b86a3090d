"""Live preflight: one guided minimum-size round trip that checks the exchange answers the way our client expects.

Before the first autonomous live session the exchange has only ever met our mock. The preflight places the
minimum quantity (long, with exchange-side TP/SL), reads it back, reads the TP/SL as the exchange lists it
(``tpsl/get_pending_orders``), moves both legs a few ticks and reads the change back, cancels it and sees it gone,
closes the position with the same close form the broker uses, and reads history and wallet, checking at each
step that the answer is the one the client relies on.
It also records what it *observed* on the disputed points (docs/bitunix-dialects.md): which side the closing
fill carries, whether trades carry ``tradeSide``, how positions spell their side.

On any surprise it flattens the symbol (cancel all, close all, verify) and raises :class:`PreflightFailed`
whose message names the step, what was expected and what came back. It never retries a placement.

This module talks only to the exchange (client and venue); the command, the sealed record in live state and the
gate's check of it are :mod:`laptop_agents.session.preflight`.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from laptop_agents.bitunix import (
    AccountInfo,
    BitunixError,
    BitunixRestClient,
    MarginMode,
    OrderSide,
    OrderType,
    PlaceOrderRequest,
    PositionMode,
    PositionSide,
    StopType,
    TpslLeg,
    TpslModifyRequest,
    TpslOrderInfo,
    TradeInfo,
    new_client_id,
)
from laptop_agents.core.models import Side
from laptop_agents.execution.bitunix_booking import is_closing_fill
from laptop_agents.execution.bitunix_broker import close_request
from laptop_agents.execution.order_checks import SymbolRules

TPSL_DISTANCE = Decimal("0.05")  # TP/SL 5 % away: never triggers during a seconds-long round trip
TPSL_MOVE_TICKS = 5  # the modify step moves TP and SL this many price ticks up: still far from the price


class PreflightFailed(Exception):
    """A step answered unexpectedly; the account was flattened (``flat`` says whether that was verified)."""

    def __init__(self, step: str, expected: str, got: str, flat: bool) -> None:
        self.step, self.expected, self.got, self.flat = step, expected, got, flat
        state = "account flattened" if flat else "account NOT verified flat: close it on the exchange now"
        super().__init__(f"preflight step '{step}': expected {expected}, got {got} ({state})")


@dataclass
class PreflightReport:
    """What passed and what the exchange was seen to speak; stored in the live workspace."""

    symbol: str
    steps: list[str] = field(default_factory=list)
    observed: dict[str, Any] = field(default_factory=dict)
    wallet_before: str | None = None
    wallet_after: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PreflightSettings:
    symbol: str = "BTCUSDT"
    leverage: int = 2
    margin_mode: MarginMode = MarginMode.ISOLATION
    margin_coin: str = "USDT"
    poll_attempts: int = 20
    poll_interval_sec: float = 0.25


class _Check:
    """Collects step names; ``expect`` raises a mismatch the runner turns into flatten + PreflightFailed."""

    def __init__(self, report: PreflightReport) -> None:
        self.report = report
        self.step = "start"

    def begin(self, step: str) -> None:
        self.step = step

    def passed(self) -> None:
        self.report.steps.append(self.step)

    def expect(self, ok: bool, expected: str, got: Any) -> None:
        if not ok:
            raise _Mismatch(self.step, expected, str(got))


def _wallet(account: AccountInfo) -> Decimal:
    """Available + frozen + position margin; a field the exchange left out holds nothing."""
    return account.available + (account.frozen or Decimal(0)) + (account.margin or Decimal(0))


class _Mismatch(Exception):
    def __init__(self, step: str, expected: str, got: str) -> None:
        super().__init__(step)
        self.step, self.expected, self.got = step, expected, got


async def run_preflight(client: BitunixRestClient, settings: PreflightSettings) -> PreflightReport:
    """The round trip; raises PreflightFailed (after flattening) on the first unexpected answer."""
    report = PreflightReport(symbol=settings.symbol)
    check = _Check(report)
    try:
        await _steps(client, settings, check)
    except _Mismatch as exc:
        raise PreflightFailed(exc.step, exc.expected, exc.got, await _flatten(client, settings)) from None
    except BitunixError as exc:
        got = f"{type(exc).__name__}: {exc}"
        raise PreflightFailed(check.step, "a successful answer", got, await _flatten(client, settings)) from None
    return report


async def _steps(client: BitunixRestClient, s: PreflightSettings, c: _Check) -> None:
    symbol, report = s.symbol, c.report
    c.begin("read contract rules")
    pair = next((p for p in await client.trading_pairs([symbol]) if p.symbol == symbol), None)
    c.expect(pair is not None, f"{symbol} listed", "not listed")
    assert pair is not None
    rules = SymbolRules.from_pair(pair)
    c.expect(rules.tradable, "symbolStatus OPEN", pair.status)
    c.expect(rules.min_leverage <= s.leverage <= rules.max_leverage,
             f"leverage {s.leverage} within {rules.min_leverage}-{rules.max_leverage}", s.leverage)
    c.passed()

    c.begin("read account")
    account = await client.account(s.margin_coin)
    c.expect(account.position_mode is PositionMode.ONE_WAY, "positionMode ONE_WAY", account.position_mode)
    c.expect(not await client.get_pending_positions(symbol), "no open position on " + symbol, "a position")
    report.wallet_before = str(_wallet(account))
    c.passed()

    c.begin("set margin mode and leverage")
    await client.change_margin_mode(symbol, s.margin_mode, s.margin_coin)
    await client.change_leverage(symbol, s.leverage, s.margin_coin)
    c.passed()

    c.begin("open the minimum quantity with TP/SL")
    (ticker,) = [t for t in await client.tickers([symbol]) if t.symbol == symbol]
    price = ticker.last_price
    tick = rules.price_tick
    tp = (price * (1 + TPSL_DISTANCE) / tick).to_integral_value() * tick
    sl = (price * (1 - TPSL_DISTANCE) / tick).to_integral_value() * tick
    entry = PlaceOrderRequest(
        symbol=symbol, side=OrderSide.BUY, qty=rules.min_qty, order_type=OrderType.MARKET,
        client_id=new_client_id(), tp_price=tp, tp_stop_type=StopType.MARK_PRICE, tp_order_type=OrderType.MARKET,
        sl_price=sl, sl_stop_type=StopType.MARK_PRICE, sl_order_type=OrderType.MARKET,
    )
    ack = await client.place_order(entry)
    order = await _terminal(client, ack.order_id, s)
    c.expect(order.status.value == "FILLED" and order.filled_qty == rules.min_qty,
             f"FILLED {rules.min_qty}", f"{order.status.value} {order.filled_qty}")
    c.expect(order.tp_price == tp and order.sl_price == sl, f"TP {tp} / SL {sl} on the order",
             f"TP {order.tp_price} / SL {order.sl_price}")
    c.passed()

    c.begin("read the position")
    positions = [p for p in await client.get_pending_positions(symbol) if p.symbol == symbol]
    c.expect(len(positions) == 1, "one position", f"{len(positions)} positions")
    pos = positions[0]
    c.expect(pos.side is PositionSide.LONG and pos.qty == rules.min_qty, f"LONG {rules.min_qty}",
             f"{pos.side.value} {pos.qty}")
    c.passed()

    await _tpsl_steps(client, s, c, pos.position_id, pos.qty, tp, sl, tick)

    c.begin("close the position")
    close = close_request(symbol, Side.LONG, pos.qty, new_client_id())
    closed = await _terminal(client, (await client.place_order(close)).order_id, s)
    c.expect(closed.status.value == "FILLED", "close order FILLED", closed.status.value)
    left = [p for p in await client.get_pending_positions(symbol) if p.symbol == symbol]
    c.expect(not left, "no position after the close", f"{len(left)} position(s)")
    c.passed()

    c.begin("read history")
    trades = await _history(client, symbol, {ack.order_id, closed.order_id}, s)
    entry_fills = [t for t in trades if t.order_id == ack.order_id]
    closing = [t for t in trades if is_closing_fill(t, Side.LONG, ack.order_id)]
    c.expect(sum((t.qty for t in entry_fills), Decimal(0)) == rules.min_qty, f"entry fills for {rules.min_qty}",
             [(t.trade_id, str(t.qty)) for t in entry_fills])
    c.expect(bool(closing) and [t.order_id for t in closing] == [closed.order_id] * len(closing),
             f"closing fills of order {closed.order_id} only", [(t.trade_id, t.order_id) for t in closing])
    report.observed.update({
        "closing_fill_side": "position" if closing[0].side is OrderSide.BUY else "exit",
        "trade_side_field": closing[0].trade_side is not None,
        "position_mode": PositionMode.ONE_WAY.value,  # checked at "read account"
    })
    c.passed()

    c.begin("read the wallet")
    after = await client.account(s.margin_coin)
    wallet_after = _wallet(after)
    booked = sum(((t.realized_pnl or Decimal(0)) - (t.fee or Decimal(0)) for t in entry_fills + closing), Decimal(0))
    before = Decimal(report.wallet_before or "0")
    c.expect(wallet_after - before == booked, f"wallet moved by the fills' PnL - fees ({booked})",
             f"{wallet_after - before}")
    report.wallet_after = str(wallet_after)
    c.passed()


def _num(value: Decimal) -> str:
    """A price as one canonical string (``99750.0`` and ``99750`` are the same price)."""
    return format(value.normalize(), "f")


def _legs(orders: list[TpslOrderInfo]) -> str:
    """What the exchange holds, in one comparable line: ``TP 105000 / SL 95000`` (one price per leg found)."""
    tps = sorted(_num(o.tp.price) for o in orders if o.tp)
    sls = sorted(_num(o.sl.price) for o in orders if o.sl)
    return f"TP {','.join(tps) or 'none'} / SL {','.join(sls) or 'none'}"


async def _pending_tpsl(client: BitunixRestClient, s: PreflightSettings, position_id: str,
                        want: str | None) -> list[TpslOrderInfo]:
    """The position's pending TP/SL orders, re-read until they show ``want`` (the exchange may apply a change
    after answering: its docs say a successful answer is not the success of the operation)."""
    orders: list[TpslOrderInfo] = []
    for _ in range(s.poll_attempts):
        orders = [o for o in await client.get_pending_tpsl_orders(s.symbol, position_id=position_id)
                  if o.position_id == position_id]
        if _legs(orders) == want:
            break
        await asyncio.sleep(s.poll_interval_sec)
    return orders


async def _tpsl_steps(client: BitunixRestClient, s: PreflightSettings, c: _Check, position_id: str,
                      qty: Decimal, tp: Decimal, sl: Decimal, tick: Decimal) -> None:
    """Read the entry's TP/SL as the exchange lists it, move both legs a few ticks, read the change back,
    cancel it and see it gone: each answer compared with what the client sent.

    Whether the exchange holds one order for both legs or one per leg (dialect ``tpsl_legs``) is read, not
    assumed; every modify states the order's legs in full, so it means the same whether the exchange merges
    or replaces (dialect ``tpsl_modify``).
    """
    c.begin("read the pending TP/SL")
    want = f"TP {_num(tp)} / SL {_num(sl)}"
    orders = await _pending_tpsl(client, s, position_id, want)
    c.expect(_legs(orders) == want, f"{want} pending on position {position_id}",
             f"{_legs(orders)} in {len(orders)} order(s)")
    c.report.observed["tpsl_orders_per_entry"] = len(orders)
    c.passed()

    c.begin("modify the TP/SL")
    new_tp, new_sl = tp + TPSL_MOVE_TICKS * tick, sl + TPSL_MOVE_TICKS * tick
    for o in orders:
        def moved(leg: TpslLeg | None, price: Decimal) -> TpslLeg | None:
            if leg is None:
                return None
            return TpslLeg(price, leg.stop_type, OrderType.MARKET, None, leg.qty or qty)

        ack = await client.modify_tpsl_order(TpslModifyRequest(o.order_id, tp=moved(o.tp, new_tp),
                                                               sl=moved(o.sl, new_sl)))
        c.expect(ack.order_id == o.order_id, f"modify answered for order {o.order_id}", f"order {ack.order_id}")
    want_moved = f"TP {_num(new_tp)} / SL {_num(new_sl)}"
    after = await _pending_tpsl(client, s, position_id, want_moved)
    c.expect(_legs(after) == want_moved, f"{want_moved} after moving both legs {TPSL_MOVE_TICKS} ticks up",
             f"{_legs(after)} (the modify was answered as done)")
    c.expect(sorted(o.order_id for o in after) == sorted(o.order_id for o in orders),
             f"the same TP/SL order ids {sorted(o.order_id for o in orders)}",
             sorted(o.order_id for o in after))
    c.passed()

    c.begin("cancel the TP/SL")
    for o in after:
        ack = await client.cancel_tpsl_order(s.symbol, o.order_id)
        c.expect(ack.order_id == o.order_id, f"cancel answered for order {o.order_id}", f"order {ack.order_id}")
    left = await _pending_tpsl(client, s, position_id, "TP none / SL none")
    c.expect(not left, f"no TP/SL pending on position {position_id}", f"{_legs(left)} still pending")
    c.passed()


async def _terminal(client: BitunixRestClient, order_id: str, s: PreflightSettings) -> Any:
    for _ in range(s.poll_attempts):
        order = await client.get_order_detail(order_id=order_id)
        if not order.status.is_open:
            return order
        await asyncio.sleep(s.poll_interval_sec)
    return order


async def _history(client: BitunixRestClient, symbol: str, order_ids: set[str], s: PreflightSettings) -> list[TradeInfo]:
    """The round trip's fills (history may lag the order table: re-read a few times)."""
    trades: list[TradeInfo] = []
    for _ in range(s.poll_attempts):
        page = await client.get_history_trades(symbol, limit=100)
        trades = [t for t in page.trades if t.order_id in order_ids]
        if {t.order_id for t in trades} == order_ids:
            break
        await asyncio.sleep(s.poll_interval_sec)
    return trades


async def _flatten(client: BitunixRestClient, s: PreflightSettings) -> bool:
    """Cancel all, close all, cancel any TP/SL order left, and prove it; True when verified flat.

    A TP/SL order outliving its position is not exposure, but whether the exchange drops it with the position is
    undocumented: one left behind is cancelled and counts as "not flat yet"."""
    for _ in range(3):
        try:
            await client.cancel_all_orders(s.symbol)
            if [p for p in await client.get_pending_positions(s.symbol) if p.symbol == s.symbol]:
                await client.close_all_position(s.symbol)
            positions = [p for p in await client.get_pending_positions(s.symbol) if p.symbol == s.symbol]
            orders = [o for o in (await client.get_pending_orders(s.symbol, limit=100)).orders if o.status.is_open]
            tpsl = [] if positions else await client.get_pending_tpsl_orders(s.symbol)
            for t in tpsl:
                await client.cancel_tpsl_order(s.symbol, t.order_id)
            if not positions and not orders and not tpsl:
                return True
        except BitunixError:
            pass
        await asyncio.sleep(s.poll_interval_sec)
    return False


PREFLIGHT_STEPS = ("read contract rules", "read account", "set margin mode and leverage",
                   "open the minimum quantity with TP/SL", "read the position", "read the pending TP/SL",
                   "modify the TP/SL", "cancel the TP/SL", "close the position",
                   "read history", "read the wallet")
"""Every step a passing preflight records, in order; a record missing one did not come from a full pass."""
