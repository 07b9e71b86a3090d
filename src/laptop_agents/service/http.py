"""The service's HTTP endpoint, served by aiohttp on the session's own event loop.

Why the session's loop and not a thread: a scrape that answers proves the loop
is alive; if the loop freezes, /metrics and /healthz stop answering and
Prometheus' `up` goes to 0, exactly the signal we want. Handlers only read
in-memory state, so they cost microseconds of loop time.

The listening socket is bound before the session starts (`bind()`), so a busy
port is a start-up error with a clear message rather than a silent,
metric-less service, and port 0 resolves to a real port we can log.

Endpoints: /metrics (Prometheus text), /healthz (loop heartbeat fresh: 200,
else 503), /readyz (data fresh, broker healthy, not stopping), /status (JSON),
and with `--dashboard`, / (a small self-refreshing page over /status).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from laptop_agents.core.errors import ConfigError
from laptop_agents.service.dashboard import DASHBOARD_HTML
from laptop_agents.service.metrics import ServiceMetrics
from laptop_agents.service.status import (
    RecentEvents,
    health,
    readiness,
    status_payload,
)
from laptop_agents.session.async_session import AsyncRunner, SessionHooks
from laptop_agents.session.read_model import SessionSnapshot

log = logging.getLogger("laptop_agents.service.http")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9478


@dataclass(frozen=True)
class HttpOptions:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    dashboard: bool = False


def bind(options: HttpOptions) -> socket.socket:
    """Bind and listen now; ConfigError (exit 2) if the address is unusable."""
    try:
        infos = socket.getaddrinfo(options.host, options.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"--http-host {options.host!r}: {exc.strerror}") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
        sock.listen(64)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {options.host}:{options.port} ({exc.strerror}); "
                          "choose another --http-port (0 picks a free one)") from None
    sock.setblocking(False)
    if not ipaddress.ip_address(sock.getsockname()[0]).is_loopback:
        log.warning("the endpoint listens on %s, beyond loopback: it has no authentication; "
                    "firewall it or put an authenticating proxy in front", options.host)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


class ServiceHttp(SessionHooks):
    """Starts the aiohttp server when the session starts, closes it when the session has finished."""

    def __init__(self, sock: socket.socket, options: HttpOptions, metrics: ServiceMetrics,
                 recent: RecentEvents, extra: Callable[[], dict[str, Any]] | None = None) -> None:
        self.sock = sock
        self.options = options
        self.metrics = metrics
        self.recent = recent
        self.extra = extra or (dict)
        self.url = url_of(sock)
        self._runner: AsyncRunner | None = None
        self._server: asyncio.base_events.Server | None = None
        self._app_runner: web.AppRunner | None = None

    @property
    def started(self) -> bool:
        return self._server is not None

    # ------------------------------------------------------------------ app
    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/status", self._status)
        app.router.add_get("/", self._index)
        if self.options.dashboard:
            app.router.add_get("/dashboard", self._dashboard)
        return app

    def _live(self) -> SessionSnapshot | None:
        """The session's latest published read model (None before the session started)."""
        return None if self._runner is None else self._runner.read_model

    async def _metrics(self, request: web.Request) -> web.Response:
        live = self._live()
        if live is not None:
            self.metrics.sample(live)  # ages are only meaningful measured now
        return web.Response(body=self.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        live = self._live()
        if live is None:
            return web.json_response({"healthy": False, "problems": ["session not started"]}, status=503)
        ok, body = health(live)
        return web.json_response(body, status=200 if ok else 503)

    async def _readyz(self, request: web.Request) -> web.Response:
        live = self._live()
        if live is None:
            return web.json_response({"ready": False, "problems": ["session not started"]}, status=503)
        ok, body = readiness(live)
        return web.json_response(body, status=200 if ok else 503)

    async def _status(self, request: web.Request) -> web.Response:
        live = self._live()
        if live is None:
            return web.json_response({"state": "STARTING"}, status=503)
        body = status_payload(live, self.recent, self.extra())
        return web.json_response(body, dumps=_dumps, headers={"Cache-Control": "no-store"})

    async def _index(self, request: web.Request) -> web.Response:
        if self.options.dashboard:
            return await self._dashboard(request)
        return web.Response(text="laptop-agents: /metrics /healthz /readyz /status (start with --dashboard for a live page)\n")

    async def _dashboard(self, request: web.Request) -> web.Response:
        return web.Response(text=DASHBOARD_HTML, content_type="text/html",
                            headers={"Cache-Control": "no-store", "Content-Security-Policy":
                                     "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'"})

    # ------------------------------------------------------------------ hooks
    def on_started(self, runner: AsyncRunner) -> None:
        self._runner = runner  # only its published read model is read (`runner.read_model`)
        asyncio.get_running_loop().create_task(self._start(), name="http-endpoint")

    async def _start(self) -> None:
        try:
            app_runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
            await app_runner.setup()
            self._app_runner = app_runner
            loop = asyncio.get_running_loop()
            server = app_runner.server
            if server is None:  # setup() creates it; aiohttp types it optional for before that
                raise RuntimeError("aiohttp AppRunner.setup() made no server")
            self._server = await loop.create_server(server, sock=self.sock)
            log.info("serving %s (/metrics /healthz /readyz /status%s)", self.url,
                     " and the dashboard at /" if self.options.dashboard else "")
        except Exception:
            log.critical("could not start the HTTP endpoint on %s; trading continues without it", self.url,
                         exc_info=True)

    def on_finished(self, runner: AsyncRunner) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # the watchdog thread's emergency path: the process exits right after, taking the socket
        if self._server is not None:
            self._server.close()  # stop accepting; in-flight responses finish with the loop
        else:
            self.sock.close()


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=str)
