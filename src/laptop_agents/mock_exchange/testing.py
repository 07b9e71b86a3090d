"""Helpers for tests in any package: run the mock in a background thread and drive it synchronously.

::

    from laptop_agents.mock_exchange.testing import running_mock_exchange

    with running_mock_exchange(seed=7, time_scale=60) as mx:
        client = MyBitunixClient(base_url=mx.rest_url, ws_url=mx.public_ws_url, key="testkey", secret="testsecret")
        mx.admin.set_faults(rest_error_next=2)
        ...
        fills = mx.admin.events("fill")

The server gets its own event loop in a daemon thread, listens on 127.0.0.1 with a free port, and is
stopped (connections closed, final state written to the ledger) when the ``with`` block exits. The admin
client speaks HTTP with the standard library, so it works from any thread and needs no event loop. For
async tests use :class:`~laptop_agents.mock_exchange.server.MockExchange` directly
(``async with MockExchange(...) as ex``).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from .config import MockExchangeConfig
from .dialects import env_dialect
from .server import MockExchange

T = TypeVar("T")


class AdminError(RuntimeError):
    """The admin API refused a call (HTTP 4xx/5xx); the message carries its explanation."""


class AdminClient:
    """Synchronous client of the ``/admin`` API (see :mod:`laptop_agents.mock_exchange.admin`)."""

    def __init__(self, base_url: str, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None, query: dict[str, Any] | None = None
    ) -> Any:
        url = self.base_url + path
        if query:
            clean = {k: v for k, v in query.items() if v is not None}
            if clean:
                url += "?" + urllib.parse.urlencode(clean)
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise AdminError(f"{method} {path} -> HTTP {exc.code}: {exc.read().decode(errors='replace')}") from None

    def faults(self) -> dict[str, Any]:
        """Current fault settings."""
        return self._call("GET", "/admin/faults")["faults"]

    def set_faults(self, **settings: Any) -> dict[str, Any]:
        """Patch fault settings (see :class:`~.faults.FaultSettings`); returns the full new settings."""
        return self._call("POST", "/admin/faults", settings)["faults"]

    def drop_ws(self, mode: str = "abort") -> int:
        """Drop every WebSocket connection now; returns how many were dropped."""
        return int(self._call("POST", "/admin/ws/drop", {"mode": mode})["dropped"])

    def reset(self, faults: bool = True, accounts: bool = True, ledger: bool = True, rate_limits: bool = True) -> None:
        """Clear faults, restore accounts to their starting balances, clear the ledger and rate limits."""
        body = {"faults": faults, "accounts": accounts, "ledger": ledger, "rate_limits": rate_limits}
        self._call("POST", "/admin/reset", body)

    def ledger(
        self, type: str | Iterable[str] | None = None, account: str | None = None, since: int | None = None
    ) -> dict[str, Any]:
        """``{"events": [...], "accounts": {...}, "lastSeq": n}``, filtered by record type(s)/account/seq."""
        types = type if isinstance(type, str) or type is None else ",".join(type)
        return self._call("GET", "/admin/ledger", query={"type": types, "account": account, "since": since})

    def events(
        self, type: str | Iterable[str] | None = None, account: str | None = None, since: int | None = None
    ) -> list[dict[str, Any]]:
        """Just the ledger records (see :meth:`ledger`)."""
        return self.ledger(type, account, since)["events"]

    def account(self, api_key: str = "testkey") -> dict[str, Any]:
        """Balance, positions and open orders of one account as the exchange sees them."""
        return self.ledger(type="none", account=api_key)["accounts"][api_key]

    def state(self) -> dict[str, Any]:
        return self._call("GET", "/admin/state")

    def set_price(self, price: str | float | int, symbol: str = "BTCUSDT") -> dict[str, Any]:
        """Make the next tick exactly ``price`` (LIMIT orders, TP/SL and liquidations react at once)."""
        return self._call("POST", "/admin/price", {"price": str(price), "symbol": symbol})

    def advance_clock(self, ms: int) -> int:
        """Move the market clock forward by ``ms``; returns the new market time."""
        return int(self._call("POST", "/admin/clock", {"advance_ms": ms})["marketTime"])

    def holds(self, wait_s: float = 0.0, after: int = 0) -> dict[str, Any]:
        """``{"holds": [...], "total": n}``: parked REST calls (waits up to ``wait_s`` for one newer than ``after``)."""
        return self._call("GET", "/admin/holds", query={"wait_s": wait_s, "after": after})

    def wait_hold(self, timeout_s: float = 30.0, after: int = 0) -> dict[str, Any]:
        """The first parked REST call (see :mod:`.holds`); AdminError if none is parked within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AdminError(f"no request was held within {timeout_s}s")
            held = self.holds(min(remaining, 5.0), after)["holds"]
            if held:
                return held[0]

    def release_holds(self, action: str = "proceed", hold_id: int | None = None) -> int:
        """Let parked calls go on (``proceed``) or answer them 504 (``drop``); returns how many."""
        body: dict[str, Any] = {"action": action}
        if hold_id is not None:
            body["id"] = hold_id
        return int(self._call("POST", "/admin/holds/release", body)["released"])

    def add_account(
        self, api_key: str, secret: str, balance: str | int = "10000", position_mode: str = "ONE_WAY"
    ) -> dict[str, Any]:
        body = {"api_key": api_key, "secret": secret, "balance": str(balance), "position_mode": position_mode}
        return self._call("POST", "/admin/accounts", body)


class MockExchangeHandle:
    """A mock exchange running in a background thread.

    Attributes: ``exchange`` (the :class:`MockExchange`; touch its state only through :meth:`call`),
    ``config``, ``host``, ``port``, ``rest_url`` (``http://127.0.0.1:PORT``), ``public_ws_url``
    (``ws://127.0.0.1:PORT/public/``), ``private_ws_url`` and ``admin`` (an :class:`AdminClient`).
    """

    admin: AdminClient

    def __init__(self, config: MockExchangeConfig | None = None, **options: Any) -> None:
        options.setdefault("port", 0)
        # CI runs the live suite once per dialect preset: LA_MOCK_DIALECT picks it unless a test names one
        preset = env_dialect()
        if config is None and preset is not None and "dialect" not in options:
            options["dialect"] = preset
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="mock-exchange", daemon=True)
        self._config = config
        self._options = options
        self.exchange: MockExchange | None = None

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    def start(self, timeout_s: float = 15.0) -> MockExchangeHandle:
        self._thread.start()

        async def create() -> MockExchange:
            ex = MockExchange(self._config, **self._options)
            await ex.start()
            return ex

        try:
            self.exchange = asyncio.run_coroutine_threadsafe(create(), self._loop).result(timeout_s)
        except BaseException:
            self._shutdown_loop()
            raise
        self.admin = AdminClient(self.rest_url)
        return self

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.exchange is not None:
            try:
                asyncio.run_coroutine_threadsafe(self.exchange.stop(), self._loop).result(timeout_s)
            finally:
                self._shutdown_loop()

    def _shutdown_loop(self) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def call(self, fn: Callable[[MockExchange], T], timeout_s: float = 10.0) -> T:
        """Run ``fn(exchange)`` on the exchange's loop thread and return its result."""
        exchange = self._require()

        async def run() -> T:
            return fn(exchange)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout_s)

    def _require(self) -> MockExchange:
        if self.exchange is None:
            raise RuntimeError("the mock exchange is not running")
        return self.exchange

    @property
    def config(self) -> MockExchangeConfig:
        return self._require().config

    @property
    def host(self) -> str:
        return self._require().host

    @property
    def port(self) -> int:
        return self._require()._require_port()

    @property
    def rest_url(self) -> str:
        return self._require().rest_url

    @property
    def public_ws_url(self) -> str:
        return self._require().public_ws_url

    @property
    def private_ws_url(self) -> str:
        return self._require().private_ws_url


@contextmanager
def running_mock_exchange(config: MockExchangeConfig | None = None, **options: Any) -> Iterator[MockExchangeHandle]:
    """Run a mock exchange on 127.0.0.1 (free port) for the duration of the ``with`` block.

    ``config`` and ``options`` are :class:`~.config.MockExchangeConfig` fields (e.g. ``seed``, ``time_scale``,
    ``accounts``, ``faults``, ``ledger_file``); see its docstring for every option.
    """
    handle = MockExchangeHandle(config, **options).start()
    try:
        yield handle
    finally:
        handle.stop()
