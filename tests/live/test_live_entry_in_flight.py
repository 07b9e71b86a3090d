"""An entry whose placement answer never came is never sent twice, whatever the exchange still holds.

The exchange may still be holding the original request (queued on its way in) when our clientId lookup finds
nothing: "absent now" proves nothing while that request can still land. Re-sending then doubles the position
wherever 30042 covers only *open* orders (``duplicate_client_id=open_only``: a filled entry's clientId is free
again). The mock's holds pin the moment down: the entry is parked before the exchange processes it, the client
times out and looks it up (absent), and only then is the original let through (or dropped). Asserted from the
mock's ledger, under every dialect preset.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from laptop_agents.bitunix import BitunixRestClient, Credentials, ExchangeUnavailableError
from laptop_agents.core.events import EventName
from laptop_agents.core.models import Side
from laptop_agents.core.state import StateManager
from laptop_agents.core.state_schema import LIVE_BROKER_KIND
from laptop_agents.execution.bitunix_broker import ORDER_REJECTED, BitunixBroker, LiveBrokerSettings
from laptop_agents.mock_exchange.testing import MockExchangeHandle, running_mock_exchange
from laptop_agents.session.state_store import StateStore
from tests.live.conftest import (
    KEY,
    SECRET,
    T0,
    accepted_orders,
    candle,
    intent,
    ledger_fills,
    price_of,
    rest_config,
    run,
)

pytestmark = pytest.mark.dialects  # runs once per mock dialect preset (docs/bitunix-dialects.md)

HOLD_ENTRY = {"rest_hold_next": 1, "rest_hold_paths": ["trade/place_order"], "rest_hold_phase": "before",
              "rest_hold_s": 30}


class _Clock:
    """The broker's monotonic clock, which the test may move past an entry's possible life."""

    def __init__(self) -> None:
        self.skip = 0.0

    def __call__(self) -> float:
        return asyncio.get_running_loop().time() + self.skip


def _broker(mx: MockExchangeHandle, clock: _Clock) -> BitunixBroker:
    cfg = rest_config(mx, timeout_sec=0.5)

    def factory() -> BitunixRestClient:
        return BitunixRestClient(cfg, Credentials(KEY, SECRET))

    return BitunixBroker(factory(), LiveBrokerSettings(leverage=5), client_factory=factory, monotonic=clock)


async def _entry_parked_then(mx: MockExchangeHandle, broker: BitunixBroker, action: str) -> list[object]:
    """Send an entry the exchange parks; once the client has given up on the answer (timed out, looked it up,
    found nothing), release the original with ``action`` (``503``: no hold, a 5xx answer before processing,
    which the client cannot tell from a request still on its way in). The submit's own events."""
    await broker.start(T0)
    p = price_of(mx)
    if action == "503":
        mx.admin.set_faults(rest_error_next=1, rest_fault_paths=["trade/place_order"], rest_fault_phase="before")
        return list(await broker.submit(intent(Side.LONG, p), candle(p), T0))
    mx.admin.set_faults(**HOLD_ENTRY)
    submit = asyncio.ensure_future(broker.submit(intent(Side.LONG, p), candle(p), T0))
    await asyncio.to_thread(mx.admin.wait_hold, 10)
    events = await asyncio.wait_for(submit, 30)
    await asyncio.to_thread(mx.admin.release_holds, action)
    return list(events)


def test_an_entry_still_held_by_the_exchange_is_booked_when_it_lands_never_sent_again() -> None:
    with running_mock_exchange(seed=11, time_scale=0) as mx:
        clock = _Clock()

        async def scenario() -> tuple[list[object], list[object], list[object], BitunixBroker]:
            broker = _broker(mx, clock)
            sent = await _entry_parked_then(mx, broker, "proceed")
            await asyncio.to_thread(lambda: _wait(lambda: len(ledger_fills(mx)) >= 1))
            p = price_of(mx)
            # the next candle meets the unknown entry first: it is looked up again, found, booked
            again, _ = await broker.on_candle(candle(p, 1), T0)
            assert broker.position is not None and broker.position.qty == Decimal("0.01")
            closed, _trade = await broker.close_all("shutdown", T0)
            return sent, list(again), list(closed), broker

        sent, again, _closed, broker = run(scenario)
        names = [e.name for e in sent + again]  # type: ignore[attr-defined]
        orders = accepted_orders(mx)
        assert len(orders) == 2, [(o["clientId"], o.get("request", {}).get("side")) for o in orders]  # entry + close
        assert len({o["clientId"] for o in orders}) == 2
        assert EventName.EXECUTION_FILL in names
        assert not mx.admin.account(KEY)["positions"]
        assert len(broker.trades) == 1


@pytest.mark.parametrize("lost", ["drop", "503"])
def test_an_entry_that_never_lands_is_given_up_only_after_it_can_no_longer_land(lost: str) -> None:
    with running_mock_exchange(seed=11, time_scale=0) as mx:
        clock = _Clock()

        async def scenario() -> tuple[list[object], list[object], list[object]]:
            broker = _broker(mx, clock)
            sent = await _entry_parked_then(mx, broker, lost)
            p = price_of(mx)
            # within the original request's possible life: still unknown, nothing new is sent
            early = await broker.submit(intent(Side.LONG, p), candle(p, 1), T0)
            assert broker.position is None
            clock.skip = broker.settings.entry_life_sec + 1  # now it can no longer land: absent is proven
            late = await broker.submit(intent(Side.LONG, p), candle(p, 2), T0)  # given up; this entry goes
            assert broker.position is not None and broker.position.qty == Decimal("0.01")
            await broker.close_all("shutdown", T0)
            return list(sent), list(early), list(late)

        sent, early, late = run(scenario)
        assert [e.name for e in sent] == []  # type: ignore[attr-defined]
        assert [(e.name, e.data.get("reason")) for e in early] == [  # type: ignore[attr-defined]
            (ORDER_REJECTED, "previous_entry_unbooked")]
        assert [(e.name, e.data.get("reason")) for e in late][:3] == [  # type: ignore[attr-defined]
            (ORDER_REJECTED, "not_placed"), (EventName.ORDER_SUBMITTED, None), (EventName.EXECUTION_FILL, None)]
        orders = accepted_orders(mx)
        assert len(orders) == 2 and len(ledger_fills(mx)) == 2  # the second entry and its close, nothing else
        assert not mx.admin.account(KEY)["positions"]


@pytest.mark.slow
def test_the_flattening_shutdown_after_a_blind_stop_still_flattens_what_the_unknown_entry_opened() -> None:
    """The blind stop (exit 12) raised while the unknown entry cannot be looked up must not skip the flatten:
    the session stops *because* of it, and the entry landed meanwhile (open on the exchange, never booked)."""
    with running_mock_exchange(seed=11, time_scale=0) as mx:
        clock = _Clock()

        async def scenario() -> None:
            cfg = rest_config(mx, timeout_sec=0.5)

            def factory() -> BitunixRestClient:
                return BitunixRestClient(cfg, Credentials(KEY, SECRET))

            broker = BitunixBroker(factory(), LiveBrokerSettings(leverage=5, blind_stop_sec=0.01, stop_budget_sec=1.0),
                                   client_factory=factory, monotonic=clock)
            assert await _entry_parked_then(mx, broker, "proceed") == []
            await asyncio.to_thread(lambda: _wait(lambda: len(ledger_fills(mx)) >= 1))
            mx.admin.set_faults(rest_error_share=1.0, rest_fault_paths=["trade/get_order_detail"])
            p = price_of(mx)
            await broker.on_candle(candle(p, 1), T0)  # the first failed check is absorbed
            await asyncio.sleep(0.02)
            with pytest.raises(ExchangeUnavailableError):  # the blind stop: the session's exit-12 shutdown follows
                await broker.on_candle(candle(p, 2), T0)
            await broker.close_all("shutdown", T0)  # must not raise before flattening

        run(scenario)
        assert not mx.admin.account(KEY)["positions"]  # the exchange's truth: the landed entry was flattened


def test_a_send_still_hanging_at_shutdown_stays_in_the_saved_state() -> None:
    """The shutdown's wait for the entry in flight (and its end, giving up on it) must not drop the write-ahead:
    the state saved meanwhile still names the entry until it is answered or can no longer land."""
    with running_mock_exchange(seed=11, time_scale=0) as mx:
        clock = _Clock()

        async def scenario() -> tuple[dict[str, object], dict[str, object]]:
            cfg = rest_config(mx, timeout_sec=20)  # the send hangs: no timeout of ours ends it during the test

            def factory() -> BitunixRestClient:
                return BitunixRestClient(cfg, Credentials(KEY, SECRET))

            broker = BitunixBroker(factory(), LiveBrokerSettings(leverage=5, stop_budget_sec=1.0),
                                   client_factory=factory, monotonic=clock)
            await broker.start(T0)
            p = price_of(mx)
            mx.admin.set_faults(**HOLD_ENTRY)
            caller = asyncio.ensure_future(broker.submit(intent(Side.LONG, p), candle(p), T0))
            await asyncio.to_thread(mx.admin.wait_hold, 10)
            caller.cancel()  # SIGTERM: the session stops waiting for the entry
            await asyncio.gather(caller, return_exceptions=True)
            closing = asyncio.ensure_future(broker.close_all("shutdown", T0))
            while broker._inflight is not None:  # close_all has taken the entry in flight and waits for it
                await asyncio.sleep(0.01)
            during = broker.to_state()
            await asyncio.to_thread(mx.admin.release_holds, "drop")
            await closing
            after = broker.to_state()
            await broker.client.close()
            return during, after

        during, after = run(scenario)
        assert "entry_in_flight" in during, sorted(during)
        assert float(during["entry_in_flight"]["may_land_until"]) > 0  # type: ignore[index]
        assert not mx.admin.account(KEY)["positions"]


def test_an_entry_whose_write_ahead_cannot_be_saved_is_never_sent(tmp_path: Path) -> None:
    """The write-ahead is what lets a restart after kill -9 wait the entry out: unsaved, the entry is not sent."""
    blocked = tmp_path / "state"
    blocked.write_text("a file where the state directory must be")  # every save fails with a disk (path) error
    with running_mock_exchange(seed=11, time_scale=0) as mx:
        clock = _Clock()

        async def scenario() -> tuple[list[object], StateStore]:
            broker = _broker(mx, clock)
            store = StateStore(StateManager(blocked), broker.to_state, dict, LIVE_BROKER_KIND,
                               now=lambda: datetime.now(UTC))
            broker.persist = store.write_ahead
            await broker.start(T0)
            p = price_of(mx)
            events = list(await broker.submit(intent(Side.LONG, p), candle(p), T0))
            assert broker.to_state().get("entry_in_flight") is None
            await broker.close_all("shutdown", T0)
            return events, store

        events, store = run(scenario)
        assert [(e.name, e.data.get("reason"), e.data.get("sent")) for e in events] == [  # type: ignore[attr-defined]
            (ORDER_REJECTED, "state_not_saved", False)]
        assert accepted_orders(mx) == [] and ledger_fills(mx) == []  # the exchange's truth: nothing was sent
        assert store.write_error is not None and store.write_error.filename is not None


def test_a_resent_close_refused_by_the_exchange_still_holds_entries_back_while_its_original_may_land() -> None:
    """The close's first attempt is parked (unanswered, not found), the re-send is refused (30004: the position
    is gone, as after a TP/SL race): the parked original may still land and close the next position, so no
    entry goes until it can no longer land."""
    with running_mock_exchange(seed=11, time_scale=0) as mx:
        clock = _Clock()

        async def scenario() -> list[object]:
            broker = _broker(mx, clock)
            await broker.start(T0)
            p = price_of(mx)
            await broker.submit(intent(Side.LONG, p), candle(p), T0)
            assert broker.position is not None
            mx.admin.set_faults(**HOLD_ENTRY, reject_orders_next=1, reject_orders_code=30004)
            await broker.close_all("shutdown", T0)  # the refused re-send; the flatten closes the position
            later = list(await broker.submit(intent(Side.LONG, p), candle(p, 1), T0))
            await asyncio.to_thread(mx.admin.release_holds, "drop")
            await broker.client.close()
            return later

        later = run(scenario)
        assert [(e.name, e.data.get("reason")) for e in later] == [  # type: ignore[attr-defined]
            (ORDER_REJECTED, "previous_order_may_land")]
        assert len(accepted_orders(mx)) == 1  # the first entry only: no new entry reached the exchange
        assert not mx.admin.account(KEY)["positions"]


def _wait(predicate: object, timeout: float = 10) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("timed out waiting for the released entry to fill")
