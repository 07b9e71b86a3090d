"""The mock's TP/SL endpoints are as strict as the sources agree, and vary only at the named dialect points.

Raw signed requests (an independent test client, tests/mock_exchange/mx_client.py), so requests our own client
never sends are refused with Bitunix's codes; every change is asserted from the mock's account view/ledger.
"""

from __future__ import annotations

from typing import Any

import pytest

from laptop_agents.mock_exchange.testing import running_mock_exchange
from tests.mock_exchange.mx_client import run, signed_client

OPEN = {"symbol": "BTCUSDT", "side": "BUY", "qty": "0.01", "orderType": "MARKET"}


async def _open(c: Any) -> tuple[str, float]:
    await c.post("trade/place_order", OPEN)
    (pos,) = (await c.get("position/get_pending_positions", {"symbol": "BTCUSDT"}))["data"]
    ticker = (await c.get("market/tickers", {"symbols": "BTCUSDT"}))["data"][0]
    return pos["positionId"], float(ticker["lastPrice"])


def test_strict_refusals_with_bitunix_codes() -> None:
    with running_mock_exchange(seed=4, time_scale=0, dialect="docs", rate_limits_enabled=False) as mx:

        async def scenario() -> dict[str, int]:
            async with signed_client(mx.rest_url) as c:
                pid, px = await _open(c)
                tp, sl = f"{px + 500:.1f}", f"{px - 500:.1f}"
                base = {"symbol": "BTCUSDT", "positionId": pid}
                cases = {
                    "no leg": {**base},
                    "number price": {**base, "tpPrice": px + 500, "tpQty": "0.01"},
                    "no qty": {**base, "tpPrice": tp},
                    "bad stop type": {**base, "tpPrice": tp, "tpQty": "0.01", "tpStopType": "INDEX"},
                    "limit without price": {**base, "slPrice": sl, "slQty": "0.01", "slOrderType": "LIMIT"},
                    "long sl above": {**base, "slPrice": tp, "slQty": "0.01"},
                    "too much": {**base, "slPrice": sl, "slQty": "0.02"},
                    "off step": {**base, "slPrice": f"{px - 500:.2f}1", "slQty": "0.01"},
                    "no position": {**base, "positionId": "42", "slPrice": sl, "slQty": "0.01"},
                }
                codes = {k: (await c.post("tpsl/place_order", body))["code"] for k, body in cases.items()}
                # accepted: MARK (the official Python SDK's spelling); then the position TP/SL takes no qty
                ok = await c.post("tpsl/place_order", {**base, "slPrice": sl, "slQty": "0.01", "slStopType": "MARK"})
                codes["MARK accepted"] = ok["code"]
                codes["position tpsl with qty"] = (await c.post("tpsl/position/place_order",
                                                                {**base, "slPrice": sl, "slQty": "0.01"}))["code"]
                codes["cancel without symbol"] = (await c.post("tpsl/cancel_order",
                                                               {"orderId": ok["data"]["orderId"]}))["code"]
                codes["cancel unknown"] = (await c.post("tpsl/cancel_order",
                                                        {"symbol": "BTCUSDT", "orderId": "7"}))["code"]
                codes["modify without qty"] = (await c.post("tpsl/modify_order",
                                                            {"orderId": ok["data"]["orderId"], "slPrice": sl}))["code"]
                return codes

        codes = run(scenario())
        assert codes == {
            "no leg": 30006, "number price": 10002, "no qty": 10002, "bad stop type": 10002,
            "limit without price": 10002, "long sl above": 30023, "too much": 30038, "off step": 10008,
            "no position": 30004, "MARK accepted": 0, "position tpsl with qty": 10002,
            "cancel without symbol": 10002, "cancel unknown": 20007, "modify without qty": 10002,
        }
        (held,) = mx.admin.account()["tpslOrders"]
        assert held["slStopType"] == "MARK_PRICE" and held["tpPrice"] is None  # only the accepted one


@pytest.mark.parametrize("dialect", ["docs", "hostile"])
def test_dialect_points_legs_answer_and_modify(dialect: str) -> None:
    """docs: one order for both legs, `{orderId}`, modify keeps legs not sent; hostile: one order per leg, a
    list answer, modify replaces (a leg not sent is removed), the other leg's fields refused on a split order."""
    with running_mock_exchange(seed=4, time_scale=0, dialect=dialect) as mx:

        async def scenario() -> tuple[Any, list[dict[str, Any]], list[dict[str, Any]], int]:
            async with signed_client(mx.rest_url) as c:
                pid, px = await _open(c)
                body = {"symbol": "BTCUSDT", "positionId": pid, "tpPrice": f"{px + 500:.1f}", "tpQty": "0.01",
                        "slPrice": f"{px - 500:.1f}", "slQty": "0.01"}
                ack = (await c.post("tpsl/place_order", body))["data"]
                pending = (await c.get("tpsl/get_pending_orders", {"symbol": "BTCUSDT"}))["data"]
                first = pending[-1]["id"]  # newest first: the oldest is the TP (or the combined) order
                code = (await c.post("tpsl/modify_order", {"orderId": first, "tpPrice": f"{px + 600:.1f}",
                                                           "tpQty": "0.01"}))["code"]
                other = (await c.post("tpsl/modify_order", {"orderId": first, "slPrice": f"{px - 600:.1f}",
                                                            "slQty": "0.01"}))["code"]
                after = (await c.get("tpsl/get_pending_orders", {"symbol": "BTCUSDT"}))["data"]
                return ack, pending, after, code * 100000 + other

        ack, pending, after, codes = run(scenario())
        if dialect == "docs":
            assert isinstance(ack, dict) and len(pending) == 1 and codes == 0
            (o,) = after  # merge: the SL modify kept the TP just set
            assert o["tpPrice"] and o["slPrice"] and float(o["tpPrice"]) - float(o["slPrice"]) == 1200
        else:
            assert isinstance(ack, list) and len(ack) == 2 and len(pending) == 2
            assert {a["orderId"] for a in ack} == {p["id"] for p in pending}
            assert codes == 10002  # the TP order took the TP change and refused SL fields
            tp_order = next(o for o in after if o["tpPrice"])
            assert tp_order["slPrice"] is None and tp_order["tpQty"] == "0.01"
        assert all(set(o) >= {"id", "positionId", "symbol", "base", "quote", "tpQty", "slQty"} for o in after)
        assert mx.admin.account()["tpslOrders"] == [dict(o, kind="TPSL") for o in reversed(after)]


def test_tpsl_channel_pushes_create_update_close() -> None:
    """The private ``tpsl`` channel (docs' TP/SL order channel, tradingiq's observed values) carries every change."""
    import aiohttp

    from tests.mock_exchange.mx_client import recv_until, ws_login

    with running_mock_exchange(seed=4, time_scale=0, dialect="docs") as mx:

        async def scenario() -> list[dict[str, Any]]:
            async with aiohttp.ClientSession() as session, session.ws_connect(mx.private_ws_url) as ws:
                await ws_login(ws)
                await ws.send_json({"op": "subscribe", "args": [{"ch": "tpsl"}]})
                async with signed_client(mx.rest_url) as c:
                    pid, px = await _open(c)
                    body = {"symbol": "BTCUSDT", "positionId": pid, "slPrice": f"{px - 500:.1f}", "slQty": "0.01"}
                    oid = (await c.post("tpsl/place_order", body))["data"]["orderId"]
                    await c.post("tpsl/modify_order", {"orderId": oid, "slPrice": f"{px - 400:.1f}", "slQty": "0.01"})
                    await c.post("tpsl/cancel_order", {"symbol": "BTCUSDT", "orderId": oid})
                return [(await recv_until(ws, lambda m: m.get("ch") == "tpsl"))["data"] for _ in range(3)]

        pushes = run(scenario())
    assert [p["event"] for p in pushes] == ["CREATE", "UPDATE", "CLOSE"]
    assert [p["status"] for p in pushes] == ["NEW", "NEW", "CANCELED"]
    first = pushes[0]
    assert first["type"] == "TPSL" and first["slStopType"] == "Last" and first["slOrderType"] == "Market"
    assert first["side"] == "Buy" and first["slQty"] == "0.01" and first["tpPrice"] is None
    assert float(pushes[1]["slPrice"]) - float(first["slPrice"]) == 100
