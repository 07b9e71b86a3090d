"""State files are validated semantically: no mutated file loads into an impossible account or breaker.

Each attack seen in issue 13 is reproduced (paper equity −10000 / 0 / Infinity / 1e30 / NaN, qty −5 / 1e6, entry
price 0, ``trades: {}``, ``seq: -100``; breaker ``consecutive_losses: -50``, ``daily_realized_pnl: 1000000``,
``peak_equity: -1``, ``"tripped": "maybe"``), then hypothesis mutates any field of a real state into hostile values
and asserts the loader either refuses or yields a possible state.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from laptop_agents.core.config_models import PaperSettings
from laptop_agents.core.errors import StateError
from laptop_agents.core.models import OrderIntent, Side
from laptop_agents.core.state import StateManager
from laptop_agents.core.state_schema import (
    MAX_MONEY,
    StateInvalid,
    check_breaker_state,
    check_live_state,
    check_paper_state,
)
from laptop_agents.paper.broker import PaperBroker
from laptop_agents.resilience.trading_circuit_breaker import BreakerState
from laptop_agents.session.state_store import BREAKER_KIND, BROKER_KIND, check_workspace_state
from laptop_agents.session.workspace import BREAKER_STATE_NAME, BROKER_STATE_NAME, Workspace
from tests.unit.helpers import T0, flat

SAVED_AT = datetime(2026, 11, 29, tzinfo=UTC)  # the state files' saved_at stamp (written, never read back)

D = Decimal
SETTINGS = PaperSettings()


def paper_account() -> PaperBroker:
    """Two closed trades (a loss, then a loss) and an open long: every field of the file is populated."""
    b = PaperBroker(SETTINGS)
    for i, exit_price in ((0, "99000"), (3, "99500")):
        b.submit(OrderIntent(Side.LONG, D("0.01"), D("90000"), D("110000"), D("100000")), flat(i, "100000"), T0)
        b.close_position("manual", D(exit_price), flat(i + 1, exit_price).ts, T0)
    b.submit(OrderIntent(Side.LONG, D("0.01"), D("90000"), D("110000"), D("100000")), flat(6, "100000"), T0)
    b.on_candle(flat(7, "100100"), T0)
    return b


def paper_state() -> dict[str, Any]:
    return json.loads(json.dumps(paper_account().to_state()))


def breaker_state() -> dict[str, Any]:
    b = paper_account()
    pnls = [t.pnl for t in b.trades]
    return BreakerState(consecutive_losses=2, peak_equity=D("10000"), trading_day="2026-01-01",
                        daily_realized_pnl=sum(pnls, D(0))).to_dict()


def _set(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(data)
    node: Any = out
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[int(keys[-1]) if isinstance(node, list) else keys[-1]] = value
    return out


def _via_json(data: dict[str, Any]) -> dict[str, Any]:
    """What json.loads gives back for the file a tamperer wrote (NaN and Infinity included)."""
    return json.loads(json.dumps(data))


PAPER_ATTACKS = [
    ("equity", "-10000"), ("equity", "0"), ("equity", "Infinity"), ("equity", float("inf")), ("equity", 1e30),
    ("equity", "1e30"), ("equity", float("nan")), ("starting_equity", "-1"), ("positions.0.qty", "-5"),
    ("positions.0.qty", "1e6"), ("positions.0.entry_price", "0"), ("positions.0.side", "UP"),
    ("positions.0.bars_held", True), ("trades", {}), ("seq", -100), ("seq", "7"), ("trades.0.pnl", "751"),
    ("trades.0.fees", "-3"), ("last_price", "-1"), ("symbol", "../../etc"),
]


@pytest.mark.parametrize(("field", "value"), PAPER_ATTACKS, ids=[f"{f}={v!r}" for f, v in PAPER_ATTACKS])
def test_impossible_paper_state_is_refused_naming_the_field(field: str, value: Any) -> None:
    bad = _via_json(_set(paper_state(), field, value))
    with pytest.raises(StateInvalid) as info:
        PaperBroker.from_state(SETTINGS, bad)
    top = field.split(".")[0]
    assert str(info.value).startswith(top), str(info.value)  # names the field (and shows the value)


BREAKER_ATTACKS = [
    ("consecutive_losses", -50), ("consecutive_losses", 3), ("consecutive_losses", 2.0),
    ("daily_realized_pnl", "1000000"), ("daily_realized_pnl", float("nan")), ("peak_equity", "-1"),
    ("peak_equity", "100"), ("tripped", "maybe"), ("tripped", 1), ("reason", "consecutive_losses"),
    ("trading_day", "yesterday"),
]


@pytest.mark.parametrize(("field", "value"), BREAKER_ATTACKS, ids=[f"{f}={v!r}" for f, v in BREAKER_ATTACKS])
def test_impossible_breaker_state_is_refused(field: str, value: Any) -> None:
    b = paper_account()
    bad = _via_json(_set(breaker_state(), field, value))
    with pytest.raises(StateInvalid, match=f"^{field}"):
        check_breaker_state(bad, equity=b.equity, trade_pnls=[t.pnl for t in b.trades])


def test_real_states_pass_and_a_breaker_one_trade_behind_is_tolerated() -> None:
    b = paper_account()
    pnls = [t.pnl for t in b.trades]
    check_paper_state(paper_state())
    check_breaker_state(breaker_state(), equity=b.equity, trade_pnls=pnls)
    # written just before the broker file's last trade (a crash between the two writes)
    behind = _set(_set(breaker_state(), "daily_realized_pnl", str(pnls[0])), "consecutive_losses", 1)
    check_breaker_state(behind, equity=b.equity, trade_pnls=pnls)
    check_breaker_state(BreakerState().to_dict(), equity=b.equity, trade_pnls=pnls)  # a new day, a reset


def test_live_state_attacks_are_refused() -> None:
    b = paper_account()
    live = {**b.to_state(), "broker": "bitunix", "adjustments": "0", "entry_order_id": None,
            "unreported_trades": [], "client_tag": "abc"}
    check_live_state(_via_json(live))
    for field, value in (("equity", "NaN"), ("positions.0.qty", "-5"), ("positions.0.entry_price", "0"),
                         ("trades", {}), ("seq", -1), ("unreported_trades", ["T9"]), ("adjustments", "1e30")):
        with pytest.raises(StateInvalid, match=f"^{field.split('.')[0]}"):
            check_live_state(_via_json(_set(live, field, value)))


# --------------------------------------------------------------------------- fuzz: no impossible state loads
HOSTILE = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-10**40, max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "NaN", "-Infinity", "1e30", "-5", "0", "maybe", "LONG", "SHORT", "2026-01-01T00:00:00Z",
                     "1e-30", "99999999999", "0.00000001"]),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def _paths(data: Any, prefix: str = "") -> list[str]:
    out = []
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else []
    for key, value in items:
        path = f"{prefix}{key}"
        out.append(path)
        out += _paths(value, path + ".")
    return out


PAPER = paper_state()
BREAKER = breaker_state()
ACCOUNT = paper_account()
PNLS = [t.pnl for t in ACCOUNT.trades]
PAPER_PATHS = _paths(PAPER)
BREAKER_PATHS = _paths(BREAKER)


def _possible_account(b: PaperBroker) -> None:
    assert b.equity.is_finite() and 0 < b.equity <= MAX_MONEY
    assert b.starting_equity.is_finite() and b.starting_equity > 0
    assert b._seq >= 0 and isinstance(b.trades, list)
    if b.position is not None:
        assert b.position.qty > 0 and b.position.entry_price > 0 and b.position.side in (Side.LONG, Side.SHORT)
        assert b.position.qty * b.position.entry_price <= D("220000")
    for t in b.trades:
        assert t.qty > 0 and t.entry_price > 0 and t.exit_price > 0 and t.fees >= 0 and t.pnl == t.gross_pnl - t.fees
    b.verify_accounting()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=st.lists(st.tuples(st.sampled_from(PAPER_PATHS), HOSTILE), min_size=1, max_size=3))
def test_no_mutated_paper_state_loads_into_an_impossible_account(mutations: list[tuple[str, Any]]) -> None:
    data = PAPER
    for path, value in mutations:
        try:
            data = _set(data, path, value)
        except (KeyError, IndexError, TypeError, ValueError):
            continue  # an earlier mutation removed the parent
    try:
        b = PaperBroker.from_state(SETTINGS, _via_json(data))
    except (KeyError, ValueError, TypeError, ArithmeticError):  # the session maps all of these to exit 8
        return
    _possible_account(b)


@settings(max_examples=200, deadline=None)
@given(mutations=st.lists(st.tuples(st.sampled_from(BREAKER_PATHS), HOSTILE), min_size=1, max_size=3))
def test_no_mutated_breaker_state_loads_into_an_impossible_breaker(mutations: list[tuple[str, Any]]) -> None:
    account, pnls = ACCOUNT, PNLS
    data = BREAKER
    for path, value in mutations:
        data = _set(data, path, value)
    data = _via_json(data)
    try:
        check_breaker_state(data, equity=account.equity, trade_pnls=pnls)
        s = BreakerState.from_dict(data)
    except (KeyError, ValueError, TypeError, ArithmeticError):
        return
    assert type(s.tripped) is bool and (not s.tripped or s.reason in ("max_drawdown", "consecutive_losses", "daily_loss"))
    assert type(s.consecutive_losses) is int and 0 <= s.consecutive_losses <= 2  # the account ends with 2 losses
    assert s.peak_equity is None or (s.peak_equity.is_finite() and s.peak_equity >= account.equity)
    assert s.daily_realized_pnl in (D(0), pnls[-1], pnls[0] + pnls[1], pnls[0])


# --------------------------------------------------------------------------- the workspace check (doctor, status)
def test_workspace_check_names_the_file_in_one_line(tmp_path: Path) -> None:
    ws = Workspace(tmp_path, "paper")
    states = StateManager(ws.state_dir)
    states.save(BROKER_STATE_NAME, BROKER_KIND, paper_state(), saved_at=SAVED_AT)
    states.save(BREAKER_STATE_NAME, BREAKER_KIND, _set(breaker_state(), "daily_realized_pnl", "1000000"), saved_at=SAVED_AT)
    before = ws.breaker_state_path.read_bytes()
    with pytest.raises(StateError) as info:
        check_workspace_state(ws)
    message = str(info.value)
    assert "\n" not in message and str(ws.breaker_state_path) in message and "daily_realized_pnl = '1000000'" in message
    assert ws.breaker_state_path.read_bytes() == before


LIVE = {**PAPER, "broker": "bitunix", "adjustments": "0", "entry_order_id": None, "unreported_trades": [],
        "client_tag": "abc"}
LIVE_PATHS = _paths(LIVE)


@settings(max_examples=150, deadline=None)
@given(mutations=st.lists(st.tuples(st.sampled_from(LIVE_PATHS), HOSTILE), min_size=1, max_size=2))
def test_no_mutated_live_state_passes_with_impossible_values(mutations: list[tuple[str, Any]]) -> None:
    data = LIVE
    for path, value in mutations:
        try:
            data = _set(data, path, value)
        except (KeyError, IndexError, TypeError, ValueError):
            continue
    data = _via_json(data)
    try:
        check_live_state(data)
    except StateInvalid:
        return
    money = [D(str(data["equity"])), D(str(data["starting_equity"]))]
    assert all(m.is_finite() and 0 <= m <= MAX_MONEY for m in money)
    for p in data["positions"] + data["trades"]:
        assert D(str(p["qty"])) > 0 and D(str(p["entry_price"])) > 0 and p["side"] in ("LONG", "SHORT")
    assert type(data["seq"]) is int and data["seq"] >= 0 and isinstance(data["trades"], list)
