"""REST fault injection as an aiohttp middleware: 5xx answers, hung and held requests on ``/api/`` paths.

It sits outside the API pipeline so a faulted request looks like a transport failure (non-envelope body,
HTTP status other than 200), exactly what a client's retry logic must handle. With phase ``after`` the
request is processed first and only the answer is lost. A *held* request (:mod:`.holds`) waits for the
test's decision, which lets a test act (kill the client) at that exact point of the conversation.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Middleware

from .holds import HeldRequest
from .rest import API_PREFIX

if TYPE_CHECKING:
    from .server import MockExchange

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def rest_fault_middleware(exchange: MockExchange) -> Middleware:
    def dated(resp: web.StreamResponse) -> web.StreamResponse:
        # like any HTTP server, stamp the answer with the exchange's own wall clock (skew fault included):
        # the only server time a client can read (no server-time endpoint is documented)
        if not resp.prepared:
            resp.headers["Date"] = formatdate(exchange.wall.now_ms() / 1000, usegmt=True)
        return resp

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(API_PREFIX):
            return await handler(request)
        hold = exchange.faults.rest_hold(request.path)
        if hold is not None:
            return dated(await _held(exchange, request, handler, hold.phase, hold.hold_s))
        fault = exchange.faults.rest_fault(request.path)
        if fault is None:
            return dated(await handler(request))
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
        return dated(web.Response(
            status=fault.status,
            text=f"<html><body><h1>{fault.status}</h1>injected fault</body></html>",
            content_type="text/html",
        ))

    return middleware


def _dropped(status: int = 504) -> web.Response:
    return web.Response(status=status, text=f"<html><body><h1>{status}</h1>held request dropped</body></html>",
                        content_type="text/html")


async def _held(exchange: MockExchange, request: web.Request, handler: Handler, phase: str, hold_s: float) -> web.StreamResponse:
    """Park the call (after processing it, for phase ``after``) until the test releases it."""
    response = await handler(request) if phase == "after" else None
    raw = await request.read()
    try:
        body = json.loads(raw) if raw.strip() else dict(request.query)
    except ValueError:
        body = raw.decode(errors="replace")
    account = request.headers.get("api-key")
    held: HeldRequest = exchange.holds.park(request.path, phase, account, body)  # type: ignore[arg-type]
    exchange.ledger.record("fault", fault="rest_hold", path=request.path, phase=phase, holdId=held.hold_id,
                           account=account)
    action = await exchange.holds.wait_decision(held, hold_s)
    exchange.ledger.record("fault", fault="rest_hold_released", path=request.path, phase=phase,
                           holdId=held.hold_id, action=action, account=account)
    if action == "drop":
        return _dropped()
    if response is not None:
        return response
    return await handler(request)
