"""`la run --mode live-session --live --source bitunix` as a real subprocess against the mock exchange.

Credentials are encrypted and the opt-in signed with the same helpers as the other live tests; the
passphrase comes from a file named by LA_PASSPHRASE_FILE. The opt-in binds the config hash, so the
exchange URLs live in the test's settings.yaml and the flags repeat the same values.
"""

from __future__ import annotations

import csv
import json
import signal
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from laptop_agents.config_loader import load_config
from laptop_agents.mock_exchange.testing import (
    MockExchangeHandle,
    running_mock_exchange,
)
from laptop_agents.security.credentials import Credentials
from laptop_agents.security.credentials_file import (
    api_key_fingerprint,
    write_credentials_file,
)
from laptop_agents.security.optin import (
    build_payload,
    generate_operator_key,
    load_private_key,
    sign_payload,
    write_document,
)
from tests.conftest import LaEnv
from tests.live.conftest import KEY, SECRET, record_passed_preflight
from tests.security.helpers import FAST, passphrase_source
from tests.service.conftest import NotifyListener, notify_socket  # noqa: F401 - the fixture, used by name


@pytest.fixture
def mx() -> Iterator[MockExchangeHandle]:
    """Ten 1-minute bars per real second, pushed every 50 ms."""
    with running_mock_exchange(seed=5, time_scale=600, push_interval_ms=50) as handle:
        yield handle


def setup_live(la_env: LaEnv, mx: MockExchangeHandle, *, sign: bool = True, preflight: bool = True) -> None:
    """Encrypted credentials, a pinned operator key, exchange URLs in settings.yaml, a signed opt-in and (with
    ``preflight``) a passed preflight record for that config."""
    secrets_dir = la_env.root / "secrets"
    source = passphrase_source(secrets_dir)
    la_env.env["LA_PASSPHRASE_FILE"] = str(secrets_dir / "passphrase")
    creds = secrets_dir / "bitunix.credentials.enc"
    write_credentials_file(creds, Credentials(KEY, SECRET), source.read(), params=FAST)
    key_path = secrets_dir / "operator.key"
    pubkey = generate_operator_key(key_path)
    optin = la_env.root / "live_optin.json"
    la_env.edit_yaml("settings.yaml", bitunix={"rest_url": mx.rest_url, "ws_url": mx.public_ws_url,
                                               "private_ws_url": mx.private_ws_url},
                     live={"optin_public_key": pubkey, "optin_file": str(optin), "credentials_file": str(creds)})
    if sign:
        config = load_config(la_env.config_dir, env={})
        payload = build_payload(config, api_key_fingerprint(KEY), now=datetime.now(UTC))
        write_document(optin, sign_payload(payload, load_private_key(key_path)))
        if preflight:
            record_passed_preflight(la_env.workspace / "live", config)


def live_args(mx: MockExchangeHandle, minutes: str = "0.2") -> list[str]:
    return ["run", "--mode", "live-session", "--duration", minutes, "--live", "--source", "bitunix",
            "--rest-url", mx.rest_url, "--ws-url", mx.public_ws_url]


def live_lock(la_env: LaEnv) -> Path:
    return la_env.workspace / "live" / "async_session.lock"


def trades(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "trades.csv").open() as fh:
        return list(csv.DictReader(fh))


def assert_flat(mx: MockExchangeHandle) -> dict[str, Any]:
    account = mx.admin.account(KEY)
    assert account["positions"] == [] and account["openOrders"] == [], account
    return account


def assert_no_duplicate_orders(mx: MockExchangeHandle) -> None:
    accepted = [r for r in mx.admin.events("order_request", account=KEY) if r["accepted"]]
    assert not [r for r in accepted if r.get("duplicate")]
    ids = [r.get("clientId") for r in accepted if r.get("clientId")]
    assert len(ids) == len(set(ids)), "a clientId was accepted twice"


def test_live_session_trades_and_agrees_with_the_ledger(la_env: LaEnv, mx: MockExchangeHandle) -> None:
    # exits by our own close orders (time exit), so every trade_id is the exchange's positionId (matched below);
    # exchange-side TP/SL exits, including the fill/position-query race, are in test_live_session_faults.py
    la_env.edit_json("strategies/default.json", exits={"stop_atr_mult": 20, "take_profit_r": 20, "max_hold_candles": 10},
                     cooldown_candles=1)
    setup_live(la_env, mx)  # after the edit: the opt-in binds the config hash
    result = la_env.run(*live_args(mx, "0.15"))
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = la_env.latest.resolve()
    assert "-live-" in run_dir.name
    events = la_env.events()
    names = [e["event"] for e in events]
    assert names.index("StateRestored") < names.index("SessionStart")  # the exchange reconciliation
    assert events[names.index("StateRestored")]["source"] == "exchange"
    start = events[names.index("SessionStart")]
    assert start["mode"] == "live"
    end = events[-1]
    assert end["event"] == "SessionEnd" and end["stopped_reason"] == "completed"
    rows = trades(run_dir)
    assert len(rows) >= 2, "the session should open and close trades"
    fills = mx.admin.events("fill", account=KEY)
    assert len(fills) == 2 * len(rows), (len(fills), len(rows))
    for row in rows:  # trade by trade: the exchange's fills of that position are the trade
        mine = [f for f in fills if f["positionId"] == row["trade_id"]]
        assert len(mine) == 2, (row, mine)
        assert sum(Decimal(str(f["fee"])) for f in mine) == Decimal(row["fees"])
        assert sum(Decimal(str(f["realizedPNL"] or 0)) for f in mine) == Decimal(row["gross_pnl"])
        assert Decimal(row["pnl"]) == Decimal(row["gross_pnl"]) - Decimal(row["fees"])
    account = assert_flat(mx)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["accounting_ok"], summary.get("accounting_detail")
    assert Decimal(summary["ending_equity"]) == Decimal(str(account["balance"]))
    assert Decimal(summary["ending_equity"]) == Decimal(summary["starting_equity"]) + sum(Decimal(r["pnl"]) for r in rows)
    assert_no_duplicate_orders(mx)
    assert not live_lock(la_env).exists()
    assert not (la_env.workspace / "paper").exists(), "a live session never touches the paper directory"
    state = json.loads((la_env.workspace / "live" / "async_broker_state.json").read_text())
    assert state["kind"] == "bitunix_broker"
    for path in [*run_dir.iterdir(), *(la_env.workspace / "live").iterdir()]:
        assert SECRET not in path.read_text(errors="replace")
    assert SECRET not in result.stdout + result.stderr


def test_sigterm_mid_position_leaves_the_account_flat(la_env: LaEnv, mx: MockExchangeHandle) -> None:
    la_env.hold_positions()
    setup_live(la_env, mx)
    proc = la_env.start(*live_args(mx, "5"))
    la_env.wait_for_event("ExecutionFill", timeout=60)
    assert mx.admin.account(KEY)["positions"], "a position is open on the exchange"
    status = json.loads(la_env.run("status", "--live", "--json").stdout)
    assert status["state"] == "RUNNING" and status["pid"] == proc.pid and status["mode"] == "live"
    assert json.loads(la_env.run("status", "--json").stdout)["state"] == "STOPPED", "paper is another session"
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    assert la_env.events()[-1]["stopped_reason"] == "sigterm"
    exits = [e for e in la_env.events() if e["event"] == "ExecutionExit"]
    assert exits and exits[-1]["reason"] == "shutdown"
    assert_flat(mx)
    assert not live_lock(la_env).exists()
    assert_no_duplicate_orders(mx)


def test_kill_switch_exits_4_and_flat(la_env: LaEnv, mx: MockExchangeHandle) -> None:
    la_env.hold_positions()
    setup_live(la_env, mx)
    proc = la_env.start(*live_args(mx, "5"))
    la_env.wait_for_event("ExecutionFill", timeout=60)
    (la_env.workspace / "kill.txt").write_text("stop\n")
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 4, err[-3000:]
    assert la_env.events()[-1]["stopped_reason"] == "kill_switch"
    assert_flat(mx)
    assert not live_lock(la_env).exists()


def test_no_flag_is_paper_and_no_optin_is_refused_with_one_line(la_env: LaEnv, mx: MockExchangeHandle) -> None:
    setup_live(la_env, mx, sign=False)
    # without --live: a paper session on the exchange's market data, nothing sent to the private API
    paper = la_env.run("run", "--mode", "live-session", "--duration", "0.05", "--source", "bitunix",
                       "--rest-url", mx.rest_url, "--ws-url", mx.public_ws_url)
    assert paper.returncode == 0, paper.stderr[-3000:]
    assert next(e for e in la_env.events() if e["event"] == "SessionStart")["mode"] == "paper"
    assert not (la_env.workspace / "live").exists()
    assert mx.admin.events(["order_request", "request"], account=KEY) == []
    # --live without an opt-in: one line, non-zero, no request
    refused = la_env.run(*live_args(mx))
    assert refused.returncode == 2
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("la: error: live trading refused: no signed opt-in"), refused.stderr
    assert "Traceback" not in refused.stderr
    assert mx.admin.events(["order_request", "request"], account=KEY) == []
    assert mx.admin.events("order_request") == []
    assert not live_lock(la_env).exists()


def test_kill9_with_open_position_then_restart_adopts_it(la_env: LaEnv, mx: MockExchangeHandle) -> None:
    la_env.hold_positions()
    setup_live(la_env, mx)
    proc = la_env.start(*live_args(mx, "5"))
    fill = la_env.wait_for_event("ExecutionFill", timeout=60)
    la_env.wait_for(lambda: (la_env.workspace / "live" / "async_broker_state.json").exists()
                    and json.loads((la_env.workspace / "live" / "async_broker_state.json").read_text())["positions"],
                    timeout=10, what="the position persisted")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    positions = mx.admin.account(KEY)["positions"]
    assert len(positions) == 1
    orders_before = [r for r in mx.admin.events("order_request", account=KEY) if r["accepted"]]
    assert live_lock(la_env).exists()

    result = la_env.run(*live_args(mx, "0.1"))
    assert result.returncode == 0, result.stderr[-3000:]
    events = la_env.events()
    restored = [e for e in events if e["event"] == "StateRestored"]
    assert restored and restored[0].get("resumed_position") == fill["position_id"], restored
    assert any(e["event"] == "LockRecovered" for e in events)
    fills_after = [e for e in events if e["event"] == "ExecutionFill"]
    exits = [e for e in events if e["event"] == "ExecutionExit"]
    assert exits and exits[0]["position_id"] == fill["position_id"]
    assert fills_after == [], "the adopted position is held (no TP/SL in reach, no time exit): no new entry"
    assert exits[0]["reason"] == "session_end"
    orders = [r for r in mx.admin.events("order_request", account=KEY) if r["accepted"]]
    assert len(orders) == len(orders_before) + 1, "the restart sent only the close of the adopted position"
    assert_no_duplicate_orders(mx)
    assert_flat(mx)
    rows = trades(la_env.latest.resolve())
    assert rows[0]["trade_id"] == fill["position_id"]
    summary = json.loads((la_env.latest.resolve() / "summary.json").read_text())
    assert summary["accounting_ok"], summary.get("accounting_detail")
    assert Decimal(summary["ending_equity"]) == Decimal(str(mx.admin.account(KEY)["balance"]))


def test_serve_live_trades_serves_status_and_stops_flat(la_env: LaEnv, mx: MockExchangeHandle,
                                                       notify_socket: NotifyListener) -> None:
    """`la serve --live` on the mock: it trades, and every view of the one read model says live: /status,
    /readyz (broker healthy: the live broker's own verdict), the systemd STATUS= line (a NOTIFY_SOCKET this test
    owns), `la status --live` (json and text) and the metric labels."""
    import urllib.error
    import urllib.request

    la_env.hold_positions()
    setup_live(la_env, mx)
    proc = la_env.start("serve", "--live", "--source", "bitunix", "--rest-url", mx.rest_url, "--ws-url",
                        mx.public_ws_url, "--http-port", "0", extra_env={"NOTIFY_SOCKET": str(notify_socket.path)})
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first.startswith("la serve: endpoint http://127.0.0.1:"), first
    url = first.split("endpoint ", 1)[1].split()[0]

    def get(path: str) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(url + path, timeout=5) as resp:
                return dict(json.loads(resp.read()))
        except urllib.error.HTTPError as err:
            return dict(json.loads(err.read()))

    la_env.wait_for_event("ExecutionFill", timeout=60)
    la_env.wait_for(lambda: get("/status")["position"] is not None, timeout=10, what="/status shows the position")
    status = get("/status")
    assert status["mode"] == "live" and status["session_mode"] == "service" and status["source"] == "bitunix"
    assert status["broker"]["broker"] == "bitunix" and status["broker_healthy"] is True, status["broker"]
    la_env.wait_for(lambda: get("/readyz").get("ready") is True, timeout=10, what="/readyz ready")
    assert get("/readyz")["broker"] == "bitunix" and get("/readyz")["broker_healthy"] is True
    ready = notify_socket.wait_for("READY=1")
    trading = [m for t, m in notify_socket.lines("STATUS=") if t >= ready[0][0]]
    assert trading and trading[0].startswith("STATUS=trading: live mode, bitunix BTCUSDT:"), trading
    cli = json.loads(la_env.run("status", "--live", "--json").stdout)
    assert cli["state"] == "RUNNING" and cli["mode"] == "live" and cli["pid"] == proc.pid
    assert cli["broker_healthy"] is True
    assert set(cli) <= set(status), set(cli) - set(status)
    human = la_env.run("status", "--live").stdout
    assert human.startswith("RUNNING") and " mode live " in human, human
    assert json.loads(la_env.run("status", "--json").stdout)["mode"] == "paper", "paper is another workspace"
    metrics = urllib.request.urlopen(url + "/metrics", timeout=5).read().decode()
    assert 'mode="live"' in metrics and 'laptop_agents_ready{mode="live",symbol="BTCUSDT"} 1.0' in metrics
    assert 'laptop_agents_broker_healthy{mode="live",symbol="BTCUSDT"} 1.0' in metrics
    assert SECRET not in metrics
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    assert any(m.startswith("STATUS=stopped: sigterm (exit 0); live mode") for _, m in notify_socket.messages), \
        notify_socket.lines("STATUS=")
    start = next(e for e in la_env.events() if e["event"] == "SessionStart")
    assert start["mode"] == "live" and start["session_mode"] == "service"
    assert la_env.events()[-1]["stopped_reason"] == "sigterm"
    assert_flat(mx)
    assert not live_lock(la_env).exists()
