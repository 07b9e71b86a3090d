"""The private Bitunix WebSocket as a *doorbell* for the broker: order and position pushes.

Why a doorbell and not the source of truth: pushes can be dropped, delayed or
arrive garbled (the mock injects all three), and a missed push must never mean a
missed fill. So the broker waits on a push to learn *when* an order finished,
then reads the order once over REST for the numbers it books; when the stream is
down or silent it simply falls back to polling. The stream makes fills fast and
cheap; REST keeps them right.

Login follows the documented scheme (``ws_login_message``: timestamp in seconds,
double SHA-256). The API key travels in the login frame on the wire only; frames
are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from laptop_agents.bitunix.errors import MalformedMessage
from laptop_agents.bitunix.schemas import (
    WsLoginAck,
    WsOrderPush,
    WsPositionPush,
    parse_ws_message,
)
from laptop_agents.bitunix.signing import new_nonce, ws_login_message
from laptop_agents.security.credentials import Credentials

log = logging.getLogger("laptop_agents.bitunix.private_stream")

PRIVATE_CHANNELS = ("order", "position", "balance")
_MAX_TRACKED_ORDERS = 1000


@dataclass
class StreamStats:
    """Counters for metrics and tests."""

    connects: int = 0
    login_failures: int = 0
    pushes: int = 0
    malformed: int = 0
    disconnects: int = 0


class PrivateStream:
    """Keeps one logged-in private connection alive (reconnecting) and indexes order pushes by orderId."""

    def __init__(
        self,
        url: str,
        credentials: Credentials,
        *,
        ping_interval_sec: float = 15.0,
        login_timeout_sec: float = 5.0,
        reconnect_delay_sec: float = 0.5,
        max_reconnect_delay_sec: float = 10.0,
        wall_clock_sec: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self._credentials = credentials
        self.ping_interval_sec = ping_interval_sec
        self.login_timeout_sec = login_timeout_sec
        self.reconnect_delay_sec = reconnect_delay_sec
        self.max_reconnect_delay_sec = max_reconnect_delay_sec
        self._wall = wall_clock_sec
        self._orders: OrderedDict[str, WsOrderPush] = OrderedDict()
        self._waiters: dict[str, asyncio.Event] = {}
        self.closed_positions: OrderedDict[str, WsPositionPush] = OrderedDict()
        self.stats = StreamStats()
        self._logged_in = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._closing = False

    def __repr__(self) -> str:
        return f"PrivateStream({self.url}, connected={self.connected})"

    @property
    def connected(self) -> bool:
        """Logged in right now (pushes can arrive)."""
        return self._logged_in.is_set()

    # ------------------------------------------------------------------ lifecycle
    async def start(self, wait_sec: float | None = None) -> bool:
        """Start the connection task; wait up to ``wait_sec`` for the first login. True if logged in."""
        if self._task is None:
            self._session = aiohttp.ClientSession()
            self._task = asyncio.create_task(self._run(), name="bitunix-private-ws")
        try:
            await asyncio.wait_for(self._logged_in.wait(), wait_sec if wait_sec is not None else self.login_timeout_sec)
        except TimeoutError:
            log.warning("private WebSocket not logged in yet; fills fall back to REST polling")
        return self.connected

    async def close(self) -> None:
        self._closing = True
        self._logged_in.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self) -> None:
        delay = self.reconnect_delay_sec
        while not self._closing:
            try:
                await self._connect_once()
                delay = self.reconnect_delay_sec
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure means: reconnect after a pause
                log.warning("private WebSocket error (%s: %s); reconnecting", type(exc).__name__, exc)
            self._logged_in.clear()
            if self._closing:
                return
            self.stats.disconnects += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_reconnect_delay_sec)

    async def _connect_once(self) -> None:
        assert self._session is not None
        async with self._session.ws_connect(self.url, heartbeat=None, autoping=True) as ws:
            self.stats.connects += 1
            login = ws_login_message(
                api_key=self._credentials.api_key,
                secret_key=self._credentials.secret_key,
                nonce=new_nonce(),
                timestamp_sec=int(self._wall()),
            )
            await ws.send_json(login)
            pinger = asyncio.create_task(self._ping(ws))
            try:
                await self._read(ws)
            finally:
                pinger.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pinger

    async def _ping(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while True:
            await asyncio.sleep(self.ping_interval_sec)
            await ws.send_json({"op": "ping", "ping": int(self._wall())})

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        login_deadline = asyncio.get_running_loop().time() + self.login_timeout_sec
        while True:
            timeout = None if self.connected else max(0.01, login_deadline - asyncio.get_running_loop().time())
            try:
                msg = await ws.receive(timeout=timeout)
            except TimeoutError:
                self.stats.login_failures += 1
                raise ConnectionError("no login acknowledgement") from None
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING,
                            aiohttp.WSMsgType.ERROR):
                raise ConnectionError(f"connection closed ({msg.type.name})")
            if msg.type is not aiohttp.WSMsgType.TEXT:
                self.stats.malformed += 1
                continue
            try:
                parsed = parse_ws_message(msg.data)
            except MalformedMessage:
                self.stats.malformed += 1
                continue
            if isinstance(parsed, WsLoginAck):
                if not parsed.success:
                    self.stats.login_failures += 1
                    raise ConnectionError("private WebSocket login refused")
                self._logged_in.set()
                await ws.send_json({"op": "subscribe", "args": [{"ch": ch} for ch in PRIVATE_CHANNELS]})
                log.info("private WebSocket logged in")
            elif isinstance(parsed, WsOrderPush):
                self.stats.pushes += 1
                self._on_order(parsed)
            elif isinstance(parsed, WsPositionPush):
                self.stats.pushes += 1
                if parsed.event is not None and parsed.event.value == "CLOSE":
                    self.closed_positions[parsed.position_id] = parsed
                    while len(self.closed_positions) > _MAX_TRACKED_ORDERS:
                        self.closed_positions.popitem(last=False)

    def _on_order(self, push: WsOrderPush) -> None:
        self._orders[push.order_id] = push
        self._orders.move_to_end(push.order_id)
        while len(self._orders) > _MAX_TRACKED_ORDERS:
            self._orders.popitem(last=False)
        if not push.status.is_open:
            waiter = self._waiters.get(push.order_id)
            if waiter is not None:
                waiter.set()

    # ------------------------------------------------------------------ queries
    def order(self, order_id: str) -> WsOrderPush | None:
        return self._orders.get(order_id)

    async def wait_order_terminal(self, order_id: str, timeout_sec: float) -> WsOrderPush | None:
        """The push saying ``order_id`` finished (filled/cancelled), or None after ``timeout_sec``."""
        known = self._orders.get(order_id)
        if known is not None and not known.status.is_open:
            return known
        waiter = self._waiters.setdefault(order_id, asyncio.Event())
        try:
            await asyncio.wait_for(waiter.wait(), timeout_sec)
        except TimeoutError:
            return None
        finally:
            self._waiters.pop(order_id, None)
        return self._orders.get(order_id)
