"""`la audit --live`: the conversion-to-live readiness review, as a real subprocess on real files.

A fully ready setup (encrypted credentials, passphrase file, pinned key and signed opt-in, alert target on a
local HTTP receiver) passes every LR check and delivers one test notification; each broken requirement is then
caught by its own check, with evidence, and the critical ones make `la audit --live` exit 11.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from laptop_agents.config_loader import load_config
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
from tests.live.conftest import record_passed_preflight
from tests.security.helpers import FAST, passphrase_source
from tests.service.receivers import WebhookReceiver

API_KEY = "ak_3f9c2e7d1b5a48c6e0f2a9d7"
SECRET = "sk_9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b"
PASSPHRASE = "operator passphrase 1"
LR_IDS = [f"LR{i}" for i in range(1, 11)]


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver()
    yield r
    r.close()


class Ready:
    """A live-ready installation under la_env.root; each test breaks one thing."""

    def __init__(self, la_env: LaEnv, alert_url: str | None) -> None:
        self.env = la_env
        self.secrets = la_env.root / "secrets"
        passphrase_source(self.secrets, PASSPHRASE)
        la_env.env["LA_PASSPHRASE_FILE"] = str(self.secrets / "passphrase")
        self.creds = self.secrets / "bitunix.credentials.enc"
        write_credentials_file(self.creds, Credentials(API_KEY, SECRET), passphrase_source(self.secrets, PASSPHRASE).read(),
                               params=FAST)
        self.key = self.secrets / "operator.key"
        self.pubkey = generate_operator_key(self.key)
        self.optin = la_env.root / "live_optin.json"
        la_env.edit_yaml("settings.yaml", live={"optin_public_key": self.pubkey, "optin_file": str(self.optin),
                                                "credentials_file": str(self.creds)})
        if alert_url:
            (la_env.config_dir / "alerts.yaml").write_text(yaml.safe_dump({"urls": [alert_url]}))
        self.sign()
        # paper and live state files, as sessions leave them
        (la_env.workspace / "paper").mkdir(parents=True)
        (la_env.workspace / "paper" / "session_status.json").write_text(json.dumps({"running": False}))
        (la_env.workspace / "live").mkdir(exist_ok=True)
        (la_env.workspace / "live" / "async_broker_state.json").write_text(
            json.dumps({"schema_version": 1, "kind": "bitunix_broker", "symbol": "BTCUSDT", "positions": []}))
        run = la_env.workspace / "runs" / "20260101T000000Z-paper-abc123"
        run.mkdir(parents=True)
        (run / "system.jsonl").write_text(json.dumps({"level": "INFO", "message": "api key sha256:0123 loaded"}) + "\n")

    def sign(self, *, now: datetime | None = None, valid_for: timedelta = timedelta(days=7)) -> None:
        config = load_config(self.env.config_dir, env={})
        payload = build_payload(config, api_key_fingerprint(API_KEY), now=now or datetime.now(UTC), valid_for=valid_for)
        write_document(self.optin, sign_payload(payload, load_private_key(self.key)))
        record_passed_preflight(self.env.workspace / "live", config, account=api_key_fingerprint(API_KEY))

    def audit(self, *extra: str) -> tuple[int, dict]:
        r = self.env.run("audit", "--live", "--json", *extra)
        assert "Traceback" not in r.stderr, r.stderr
        for secret in (API_KEY, SECRET, PASSPHRASE):
            assert secret not in r.stdout and secret not in r.stderr
        return r.returncode, json.loads(r.stdout)


def lr(report: dict, fid: str) -> dict:
    return next(f for f in report["findings"] if f["id"] == fid)


def gap(report: dict, fid: str) -> dict | None:
    return next((g for g in report["gaps"] if g["id"] == fid), None)


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --------------------------------------------------------------------------- ready
def test_ready_setup_passes_every_live_check(la_env: LaEnv, receiver: WebhookReceiver) -> None:
    ready = Ready(la_env, receiver.url)
    code, report = ready.audit()
    assert code == 0, report["gaps"]
    for fid in LR_IDS:
        assert lr(report, fid)["status"] == "PASS", lr(report, fid)
    assert report["mode"] == "live" and report["critical"] is False
    assert next(r for r in report["rubric"] if r["category"] == "Live Readiness")["verdict"] == "PASS"
    assert not [g for g in report["gaps"] if g["id"].startswith("LR")]
    # the test notification really arrived, once
    assert len(receiver.received) == 1 and "audit test notification" in receiver.received[0]["title"]
    # evidence names files, fields and values
    assert str(ready.creds) in lr(report, "LR1")["evidence"] and api_key_fingerprint(API_KEY) in lr(report, "LR1")["evidence"]
    assert "days left" in lr(report, "LR2")["evidence"] and "config_hash" in lr(report, "LR2")["evidence"]
    assert "taker_fee_bps=6" in lr(report, "LR3")["evidence"]
    assert "0.00005 → qty_below_min, 60000 → qty_above_max (nothing sent)" in lr(report, "LR4")["evidence"]
    assert "place_order 9.0/s ≤ 10/s" in lr(report, "LR5")["evidence"]
    assert "json://***" in lr(report, "LR6")["evidence"] and "delivered" in lr(report, "LR6")["evidence"]
    assert "kill_switch alert (critical)" in lr(report, "LR7")["evidence"]
    assert "risk.max_daily_loss_usd=50 (limit 50)" in lr(report, "LR8")["evidence"]
    assert "refuses (no_live_flag)" in lr(report, "LR9")["evidence"]
    assert "none found" in lr(report, "LR10")["evidence"]
    # the checklist and every output carry it; no live run yet: written under audits/
    assert [i["component"] for i in report["live_checklist"]][:3] == ["Credentials", "Slippage/Fees", "Order Sizing"]
    out = Path(report["run_dir"])
    assert out.parent == la_env.workspace / "audits"
    assert "LR10" in (out / "audit.md").read_text() and "Conversion-to-live checklist" in (out / "audit.html").read_text()
    table = la_env.run("audit", "--live")
    assert table.returncode == 0 and "Live readiness checks" in table.stdout and "[PASS] LR6" in table.stdout
    assert table.stderr == ""  # the order-check probe's expected refusals are not printed


# --------------------------------------------------------------------------- broken, one at a time
def test_plaintext_credentials_fail_critical(la_env: LaEnv, receiver: WebhookReceiver) -> None:
    ready = Ready(la_env, receiver.url)
    ready.creds.write_text(f"BITUNIX_API_KEY={API_KEY}\nBITUNIX_SECRET_KEY={SECRET}\n")
    code, report = ready.audit()
    f = lr(report, "LR1")
    assert code == 11 and f["status"] == "FAIL" and f["priority"] == "critical"
    assert "PLAINTEXT" in f["evidence"] and str(ready.creds) in f["evidence"]


def test_wrong_passphrase_fails_critical(la_env: LaEnv, receiver: WebhookReceiver) -> None:
    ready = Ready(la_env, receiver.url)
    (ready.secrets / "passphrase").write_text("not the right passphrase\n")
    code, report = ready.audit()
    f = lr(report, "LR1")
    assert code == 11 and f["status"] == "FAIL" and f["priority"] == "critical"
    assert "WRONG PASSPHRASE" in f["evidence"] and "LA_PASSPHRASE_FILE" in f["evidence"]
    # without the values the scan is only a pattern scan: said so
    assert lr(report, "LR10")["status"] == "WARN"


def test_missing_optin_fails_critical(la_env: LaEnv, receiver: WebhookReceiver) -> None:
    ready = Ready(la_env, receiver.url)
    ready.optin.unlink()
    code, report = ready.audit()
    f = lr(report, "LR2")
    assert code == 11 and f["status"] == "FAIL" and f["priority"] == "critical"
    assert "MISSING" in f["evidence"] and str(ready.optin) in f["evidence"]


def test_expired_optin_fails_critical(la_env: LaEnv, receiver: WebhookReceiver) -> None:
    ready = Ready(la_env, receiver.url)
    ready.sign(now=datetime.now(UTC) - timedelta(days=10), valid_for=timedelta(days=7))
    code, report = ready.audit()
    f = lr(report, "LR2")
    assert code == 11 and f["status"] == "FAIL" and "EXPIRED" in f["evidence"] and f["priority"] == "critical"


def test_optin_expiring_soon_warns_with_days_left(la_env: LaEnv, receiver: WebhookReceiver) -> None:
    ready = Ready(la_env, receiver.url)
    ready.sign(valid_for=timedelta(days=1))
    code, report = ready.audit()
    f = lr(report, "LR2")
    assert code == 0 and f["status"] == "WARN" and "days left" in f["evidence"] and gap(report, "LR2")


def test_optin_for_another_config_hash_fails_critical(la_env: LaEnv, receiver: WebhookReceiver) -> None:
    ready = Ready(la_env, receiver.url)
    la_env.edit_yaml("settings.yaml", session={"stale_data_timeout_sec": 20.0})  # config changes after signing
    code, report = ready.audit()
    f = lr(report, "LR2")
    assert code == 11 and f["status"] == "FAIL" and "config_hash" in f["evidence"] and f["priority"] == "critical"


def test_missing_or_stale_live_preflight_fails_critical_as_the_gate_would(la_env: LaEnv, receiver: WebhookReceiver) -> None:
    ready = Ready(la_env, receiver.url)
    record = la_env.workspace / "live" / "preflight.json"
    assert "live preflight passed" in lr(report := ready.audit()[1], "LR2")["evidence"], report
    config = load_config(la_env.config_dir, env={})
    record_passed_preflight(record.parent, config, account=api_key_fingerprint(API_KEY),
                            at=datetime.now(UTC) - timedelta(days=8))
    code, report = ready.audit()
    f = lr(report, "LR2")
    assert code == 11 and f["status"] == "FAIL" and f["priority"] == "critical"
    assert "preflight_stale" in f["evidence"] and "la live preflight" in f["evidence"]


def test_no_alert_target_fails(la_env: LaEnv) -> None:
    ready = Ready(la_env, None)
    code, report = ready.audit()
    f = lr(report, "LR6")
    assert f["status"] == "FAIL" and "no alert target" in f["evidence"] and f["priority"] == "high"
    assert lr(report, "LR7")["status"] == "FAIL"  # a kill-switch alert would reach nobody
    assert code == 0  # high, not critical


def test_unreachable_alert_target_fails(la_env: LaEnv) -> None:
    ready = Ready(la_env, f"json://127.0.0.1:{closed_port()}/alerts")
    _, report = ready.audit()
    f = lr(report, "LR6")
    assert f["status"] == "FAIL" and "delivery FAILED" in f["evidence"] and "json://***" in f["evidence"]
    assert "127.0.0.1" not in f["evidence"]  # target URLs are secrets: masked


def test_secret_planted_in_an_artifact_fails_critical(la_env: LaEnv, receiver: WebhookReceiver) -> None:
    ready = Ready(la_env, receiver.url)
    leak = la_env.workspace / "runs" / "20260101T000000Z-paper-abc123" / "system.jsonl"
    with leak.open("a") as fh:
        fh.write(json.dumps({"level": "DEBUG", "message": f"signing with {SECRET}"}) + "\n")
    code, report = ready.audit()
    f = lr(report, "LR10")
    assert code == 11 and f["status"] == "FAIL" and f["priority"] == "critical"
    assert "the API secret key in" in f["evidence"] and str(leak) in f["evidence"]
    assert SECRET not in json.dumps(report)


def test_secret_looking_pattern_in_live_state_fails(la_env: LaEnv, receiver: WebhookReceiver) -> None:
    ready = Ready(la_env, receiver.url)
    (la_env.workspace / "live" / "detached_session.out").write_text("BITUNIX_API_KEY=AKIAxxxxxxxxxxxxxxxxxxxx\n")
    code, report = ready.audit()
    f = lr(report, "LR10")
    assert code == 11 and f["status"] == "FAIL" and "detached_session.out" in f["evidence"]


def test_fees_differing_from_reference(la_env: LaEnv, receiver: WebhookReceiver) -> None:
    ready = Ready(la_env, receiver.url)
    la_env.edit_yaml("settings.yaml", paper={"maker_fee_bps": 0, "taker_fee_bps": 1})
    ready.sign()  # the opt-in follows the config: only the fees are wrong
    code, report = ready.audit()
    f = lr(report, "LR3")
    assert f["status"] == "FAIL" and f["priority"] == "high"
    assert "paper.taker_fee_bps=1" in f["evidence"] and "VIP0 maker 2 / taker 6" in f["evidence"]
    assert code == 0


def test_shared_state_file_fails_critical(la_env: LaEnv, receiver: WebhookReceiver) -> None:
    ready = Ready(la_env, receiver.url)
    live_state = la_env.workspace / "live" / "circuit_breaker_state.json"
    paper_state = la_env.workspace / "paper" / "circuit_breaker_state.json"
    paper_state.write_text("{}")
    os.link(paper_state, live_state)
    code, report = ready.audit()
    f = lr(report, "LR9")
    assert code == 11 and f["status"] == "FAIL" and "same file" in f["evidence"]


@pytest.mark.parametrize("value", ["enable", "TRUE"])
def test_kill_switch_judged_by_the_sessions_own_rule(la_env: LaEnv, receiver: WebhookReceiver, value: str) -> None:
    """LA_KILL_SWITCH=enable stops a live session at once, so the audit must not call the switch inactive."""
    ready = Ready(la_env, receiver.url)
    la_env.env["LA_KILL_SWITCH"] = value
    _, report = ready.audit()
    assert lr(report, "LR7")["status"] == "WARN" and "ACTIVE" in lr(report, "LR7")["evidence"], lr(report, "LR7")


def test_usage_errors_are_one_line(la_env: LaEnv) -> None:
    r = la_env.run("audit", "--live", "--run-session", "1")
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = la_env.run("audit", "--live", "--run", "nope")
    assert r.returncode == 2 and "no run 'nope'" in r.stderr and "Traceback" not in r.stderr


# --------------------------------------------------------------------------- a live run, same rubric
@pytest.mark.slow
def test_audits_the_latest_live_run_with_the_same_rubric(la_env: LaEnv, receiver: WebhookReceiver) -> None:
    ready = Ready(la_env, receiver.url)
    la_env.run("run", "--mode", "live-session", "--duration", "0.04", "--source", "mock", "--candle-interval", "0.01")
    paper_run = la_env.latest.resolve()
    live_run = paper_run.with_name(paper_run.name.replace("-paper-", "-live-"))
    shutil.copytree(paper_run, live_run)
    snap = json.loads((live_run / "config_snapshot.json").read_text())
    snap["mode"] = "live"
    (live_run / "config_snapshot.json").write_text(json.dumps(snap))
    code, report = ready.audit()
    assert report["run_id"] == live_run.name and (live_run / "audit.md").exists()
    ids = {f["id"] for f in report["findings"]}
    assert {"S2", "S6", "F1", "R1", "L1", "D1"} <= ids and set(LR_IDS) <= ids
    assert next(i for i in report["live_checklist"] if i["component"] == "Broker Shutdown")["status"] == "PASS"
    _, by_id = ready.audit("--run", live_run.name)
    assert by_id["run_id"] == live_run.name
    r = la_env.run("audit", "--live", "--run", paper_run.name)
    assert r.returncode == 2 and "paper run" in r.stderr
    assert code in (0, 11)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_real_live_session_on_the_mock_exchange_is_audited(la_env: LaEnv, receiver: WebhookReceiver) -> None:
    """`la run --live` against the mock exchange, then `la audit --live`: the live run, its state and logs."""
    from laptop_agents.mock_exchange.testing import running_mock_exchange
    from tests.live.test_live_session_e2e import live_args, setup_live

    (la_env.config_dir / "alerts.yaml").write_text(yaml.safe_dump({"urls": [receiver.url]}))
    with running_mock_exchange(seed=5, time_scale=600, push_interval_ms=50) as mx:
        setup_live(la_env, mx)
        result = la_env.run(*live_args(mx, "0.1"))
        assert result.returncode == 0, result.stderr[-2000:]
    live_run = la_env.latest.resolve()
    assert "-live-" in live_run.name
    r = la_env.run("audit", "--live", "--json")
    assert "Traceback" not in r.stderr, r.stderr
    report = json.loads(r.stdout)
    assert report["run_id"] == live_run.name and report["mode"] == "live"
    for fid in LR_IDS:
        assert lr(report, fid)["status"] == "PASS", lr(report, fid)
    assert "kind" in lr(report, "LR9")["evidence"] and "live=bitunix_broker" in lr(report, "LR9")["evidence"]
    assert lr(report, "F1")["status"] == "PASS" and lr(report, "D1")["status"] == "PASS"
    assert next(i for i in report["live_checklist"] if i["component"] == "Broker Shutdown")["status"] == "PASS"
    assert (live_run / "audit.html").exists()
