"""Held requests (`rest_hold_*` faults + /admin/holds): a chosen REST call parked until the test decides."""

from __future__ import annotations

import json
import threading

import aiohttp
import pytest

from laptop_agents.mock_exchange.testing import AdminError

from .mx_client import API, run, signed_client


def _place(mx, client_id: str) -> int:
    """One signed market order from a thread; returns the HTTP status the client saw."""

    async def go() -> int:
        async with signed_client(mx.rest_url, timeout=30) as c:
            body = {"symbol": "BTCUSDT", "side": "BUY", "tradeSide": "OPEN", "qty": "0.01", "orderType": "MARKET",
                    "clientId": client_id}
            raw = json.dumps(body, separators=(",", ":"))
            async with c.session.post(mx.rest_url + API + "trade/place_order", data=raw.encode(),
                                      headers=c.headers({}, raw)) as resp:
                return resp.status

    return run(go(), timeout=30)


def _in_thread(fn, *args) -> tuple[threading.Thread, list]:
    out: list = []
    t = threading.Thread(target=lambda: out.append(fn(*args)), daemon=True)
    t.start()
    return t, out


def _accepted(mx) -> list[str]:
    return [r["clientId"] for r in mx.admin.events("order_request") if r["accepted"]]


def test_phase_after_processes_the_order_and_parks_only_the_answer(mx) -> None:
    mx.admin.set_faults(rest_hold_next=1, rest_hold_paths=["trade/place_order"], rest_hold_phase="after")
    t, out = _in_thread(_place, mx, "held1")
    held = mx.admin.wait_hold(10)
    assert held["path"].endswith("trade/place_order") and held["body"]["clientId"] == "held1"
    assert _accepted(mx) == ["held1"], "processed before the answer was parked"
    assert t.is_alive(), "the client is still waiting for its answer"
    assert mx.admin.release_holds("drop") == 1
    t.join(10)
    assert out == [504]
    assert mx.admin.holds()["holds"] == []
    kinds = [e["fault"] for e in mx.admin.events("fault")]
    assert kinds == ["rest_hold", "rest_hold_released"]


def test_phase_before_drop_never_reaches_the_exchange_and_proceed_does(mx) -> None:
    mx.admin.set_faults(rest_hold_next=2, rest_hold_paths=["trade/place_order"], rest_hold_phase="before")
    t, out = _in_thread(_place, mx, "b1")
    first = mx.admin.wait_hold(10)
    assert _accepted(mx) == []
    mx.admin.release_holds("drop", first["id"])
    t.join(10)
    assert out == [504] and _accepted(mx) == []
    t, out = _in_thread(_place, mx, "b2")
    mx.admin.wait_hold(10, after=1)
    assert _accepted(mx) == []
    mx.admin.release_holds("proceed")
    t.join(10)
    assert out == [200] and _accepted(mx) == ["b2"]


def test_skip_lets_matching_calls_through_and_other_paths_are_never_held(mx) -> None:
    mx.admin.set_faults(rest_hold_next=1, rest_hold_skip=1, rest_hold_paths=["trade/place_order"])

    async def tickers() -> int:
        async with aiohttp.ClientSession() as s, s.get(mx.rest_url + API + "market/tickers") as resp:
            return resp.status

    assert run(tickers()) == 200
    assert _place(mx, "s1") == 200  # skipped
    t, out = _in_thread(_place, mx, "s2")
    assert mx.admin.wait_hold(10)["body"]["clientId"] == "s2"
    mx.admin.release_holds("proceed")
    t.join(10)
    assert out == [200] and _accepted(mx) == ["s1", "s2"]
    assert mx.admin.faults()["rest_hold_next"] == 0


def test_a_forgotten_hold_is_dropped_after_its_time_and_waiting_for_none_times_out(mx) -> None:
    mx.admin.set_faults(rest_hold_next=1, rest_hold_s=0.2, rest_hold_phase="before")
    assert _place(mx, "f1") == 504
    assert _accepted(mx) == []
    with pytest.raises(AdminError, match="no request was held"):
        mx.admin.wait_hold(0.3, after=1)
    with pytest.raises(AdminError, match="400"):
        mx.admin.release_holds("explode")


def test_reset_drops_parked_requests(mx) -> None:
    mx.admin.set_faults(rest_hold_next=1, rest_hold_phase="before")
    t, out = _in_thread(_place, mx, "r1")
    mx.admin.wait_hold(10)
    mx.admin.reset()
    t.join(10)
    assert out == [504] and mx.admin.holds()["holds"] == []
