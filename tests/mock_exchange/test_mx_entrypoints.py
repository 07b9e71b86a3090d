"""Entry points: the CLI as a real process, option parsing, the programmatic APIs, and the import rule."""

from __future__ import annotations

import argparse
import ast
import json
import os
import signal
import subprocess
import sys
import urllib.request
from decimal import Decimal as D
from pathlib import Path

import pytest

import laptop_agents.mock_exchange as mock_pkg
from laptop_agents.mock_exchange import MockExchange, running_mock_exchange
from laptop_agents.mock_exchange.cli import add_arguments, config_from_args, main

from .mx_client import run, signed_client

PACKAGE_DIR = Path(mock_pkg.__file__).parent


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def start_cli(*extra: str, tmp_path: Path) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "laptop_agents.mock_exchange", "--host", "127.0.0.1", "--port", "0", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    return proc, line


def test_cli_process_serves_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    proc, line = start_cli("--seed", "3", "--ledger-file", str(ledger), "--fault-rest-error-status", "502",
                           "--dialect", "community", tmp_path=tmp_path)
    try:
        assert line.startswith("mock-exchange listening on http://127.0.0.1:"), line
        assert proc.stdout is not None and proc.stdout.readline().strip() == "mock-exchange dialect community"
        url = line.rsplit(" ", 1)[-1]
        assert not url.endswith(":0")
        with urllib.request.urlopen(url + "/api/v1/futures/market/tickers?symbols=BTCUSDT", timeout=5) as resp:
            body = json.loads(resp.read())
        assert body["code"] == 0 and body["data"][0]["symbol"] == "BTCUSDT"
        with urllib.request.urlopen(url + "/admin/faults", timeout=5) as resp:
            assert json.loads(resp.read())["faults"]["rest_error_status"] == 502
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    records = [json.loads(x) for x in ledger.read_text().splitlines()]
    assert records[0]["type"] == "admin" and records[-1]["type"] == "final_state"
    assert records[-1]["accounts"]["testkey"]["balance"] == "10000"


def test_cli_sigint_also_stops_cleanly(tmp_path: Path) -> None:
    proc, line = start_cli(tmp_path=tmp_path)
    assert "listening" in line
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=10)
    assert proc.returncode == 0


def test_cli_refuses_bad_options_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--host", "0.0.0.0"]) == 2
    assert "loopback" in capsys.readouterr().err
    assert main(["--tick-ms", "7"]) == 2
    assert main(["--fault-ws-stall", "maybe"]) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("- not a mapping\n")
    assert main(["--config", str(bad)]) == 2


def test_cli_exit_1_when_the_port_is_taken(tmp_path: Path) -> None:
    with running_mock_exchange() as mx:
        proc = subprocess.run(
            [sys.executable, "-m", "laptop_agents.mock_exchange", "--port", str(mx.port)],
            capture_output=True, text=True, timeout=20, cwd=tmp_path,
        )
    assert proc.returncode == 1 and "cannot listen" in proc.stderr


def test_config_file_and_flag_precedence(tmp_path: Path) -> None:
    cfg = tmp_path / "mock.yaml"
    cfg.write_text(
        "seed: 5\n"
        "time_scale: 30\n"
        "accounts:\n"
        "  - {api_key: alice, secret: a-secret, balance: 2500}\n"
        "faults: {rest_error_next: 3}\n"
        "rate_limits: {market: 4}\n"
    )
    config = config_from_args(parse("--config", str(cfg), "--time-scale", "60", "--account", "bob:b-secret",
                                    "--balance", "700", "--fault-rest-error-next", "1", "--rate-limit", "query=20",
                                    "--start-time", "2025-01-06T00:00:00Z", "--start-price", "60000"))
    assert config.seed == 5 and config.time_scale == 60
    assert [(a.api_key, str(a.balance)) for a in config.effective_accounts()] == [("alice", "2500"), ("bob", "700")]
    assert config.faults.rest_error_next == 1
    assert config.rate_limits["market"] == 4 and config.rate_limits["query"] == 20
    assert config.start_time_ms == 1736121600000 and config.symbols[0].start_price == 60000


def test_default_and_extra_accounts_by_flag() -> None:
    config = config_from_args(parse("--account", "k2:s2:123", "--balance", "50"))
    assert [(a.api_key, str(a.balance)) for a in config.effective_accounts()] == [("testkey", "50"), ("k2", "123")]
    only = config_from_args(parse("--no-default-account", "--account", "k3:s3"))
    assert [a.api_key for a in only.effective_accounts()] == ["k3"]
    json_cfg = config_from_args(parse("--faults", '{"ws_stall": true}', "--no-rate-limits", "--no-liquidation"))
    assert json_cfg.faults.ws_stall and not json_cfg.rate_limits_enabled and not json_cfg.liquidation


def test_running_mock_exchange_handle(tmp_path: Path) -> None:
    ledger = tmp_path / "l.jsonl"
    with running_mock_exchange(seed=9, time_scale=0, ledger_file=ledger,
                               accounts=[{"api_key": "ak", "secret": "as", "balance": "321"}]) as mx:
        assert mx.host == "127.0.0.1" and mx.port > 0
        assert mx.rest_url == f"http://127.0.0.1:{mx.port}"
        assert mx.public_ws_url == f"ws://127.0.0.1:{mx.port}/public/"
        assert mx.private_ws_url == f"ws://127.0.0.1:{mx.port}/private/"
        assert mx.config.seed == 9
        assert mx.call(lambda ex: str(ex.engine.accounts["ak"].wallet)) == "321"
        assert mx.admin.account("ak")["balance"] == "321"
        t = mx.admin.advance_clock(120_000)
        assert mx.admin.state()["marketTime"] == t
        thread = mx._thread
    assert not thread.is_alive()
    assert json.loads(ledger.read_text().splitlines()[-1])["type"] == "final_state"


def test_async_api() -> None:
    async def scenario() -> None:
        async with MockExchange(seed=4, time_scale=0) as ex:
            async with signed_client(ex.rest_url) as c:
                assert (await c.market_order("BUY", "0.01"))["code"] == 0
            ex.set_faults(ws_stall=True)
            assert ex.faults.settings.ws_stall
            assert ex.ledger_snapshot(types=["fill"])["events"][0]["qty"] == "0.01"
            ex.reset()
            assert ex.account_summary("testkey")["balance"] == "10000"
        with pytest.raises(RuntimeError):
            _ = ex.rest_url  # stopped: no address

    run(scenario())


def test_admin_reset_restores_accounts_and_keeps_ids_unique(mx) -> None:
    async def scenario() -> str:
        async with signed_client(mx.rest_url) as c:
            return (await c.market_order("BUY", "0.01", clientId="x"))["data"]["orderId"]

    first = run(scenario())
    assert mx.admin.account()["balance"] != "10000"
    mx.admin.reset()
    acct = mx.admin.account()
    assert acct["balance"] == "10000" and acct["positions"] == []
    assert [e.get("action") for e in mx.admin.events()] == ["reset"]  # the ledger restarts with the reset
    second = run(scenario())  # clientId usable again after a reset, order ids never reused
    assert second != first


def test_ledger_endpoint_filters(mx) -> None:
    async def scenario() -> None:
        async with signed_client(mx.rest_url) as c:
            await c.market_order("BUY", "0.01")
            await c.market_order("SELL", "0.01")

    run(scenario())
    everything = mx.admin.ledger()
    assert everything["lastSeq"] == everything["events"][-1]["seq"]
    fills = mx.admin.events("fill")
    assert len(fills) == 2 and all({"fee", "realizedPNL", "balance", "price", "qty"} <= set(f) for f in fills)
    since = mx.admin.events(since=fills[0]["seq"])
    assert since[0]["seq"] > fills[0]["seq"]
    assert mx.admin.events(["fill", "order_request"], account="testkey")
    assert mx.admin.events(account="nobody") == []
    summary = everything["accounts"]["testkey"]
    assert D(summary["balance"]) - D(summary["startingBalance"]) == D(summary["realizedPNL"]) - D(summary["fees"])


def test_only_loopback_addresses() -> None:
    with pytest.raises(ValueError, match="loopback"):
        MockExchange(host="0.0.0.0")


def test_the_mock_imports_nothing_else_from_laptop_agents() -> None:
    """Hard rule: the mock shares no code with the client it is meant to test."""
    offenders = []
    for path in PACKAGE_DIR.glob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                if name.startswith("laptop_agents") and not name.startswith("laptop_agents.mock_exchange"):
                    offenders.append(f"{path.name}: {name}")
    assert offenders == []


def test_server_binds_only_to_loopback(mx) -> None:
    addresses = mx.call(lambda ex: ex._runner.addresses)
    assert all(addr[0] == "127.0.0.1" for addr in addresses)


def test_started_twice_is_an_error() -> None:
    async def scenario() -> None:
        async with MockExchange() as ex:
            with pytest.raises(RuntimeError):
                await ex.start()
        await ex.stop()  # idempotent

    run(scenario())
