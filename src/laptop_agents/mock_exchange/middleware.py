"""REST fault injection as an aiohttp middleware: 5xx answers and hung requests on ``/api/`` paths.

It sits outside the API pipeline so a faulted request looks like a transport failure (non-envelope body,
HTTP status other than 200), exactly what a client's retry logic must handle. With phase ``after`` the
request is processed first and only the answer is lost.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from .rest import API_PREFIX

if TYPE_CHECKING:
    from .server import MockExchange

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def rest_fault_middleware(exchange: MockExchange) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(API_PREFIX):
            return await handler(request)
        fault = exchange.faults.rest_fault(request.path)
        if fault is None:
            return await handler(request)
        if fault.phase == "after":
            await handler(request)
        exchange.ledger.record(
            "fault",
            fault="rest_" + fault.kind,
            path=request.path,
            phase=fault.phase,
            status=fault.status,
            account=request.headers.get("api-key"),
        )
        if fault.kind == "hang":
            await exchange.wait_stopping(fault.hang_s)
        return web.Response(
            status=fault.status,
            text=f"<html><body><h1>{fault.status}</h1>injected fault</body></html>",
            content_type="text/html",
        )

    return middleware
