"""The live gating matrix: every missing or broken requirement refused with its own line, and no request sent."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from laptop_agents.bitunix.transport import BitunixTransport
from laptop_agents.config_loader import load_config
from laptop_agents.core.config_models import AppConfig
from laptop_agents.mock_exchange.testing import running_mock_exchange
from laptop_agents.security.credentials_file import api_key_fingerprint
from laptop_agents.security.errors import LiveGateRefused
from laptop_agents.security.optin import (
    build_payload,
    check_live_gate,
    generate_operator_key,
    load_private_key,
    remember_optin,
    sign_payload,
    write_document,
)
from laptop_agents.security.passphrase import PassphraseSource
from laptop_agents.session.live_gate import LiveStart, start_live_broker
from tests.live.conftest import record_passed_preflight, rest_config, run
from tests.security.helpers import NOW, LiveSetup, passphrase_source, write_config


def _variant_config(root: Path, edit: Callable[[Path], None]) -> AppConfig:
    write_config(root)
    edit(root)
    return load_config(root, env={})


def _cases(setup: LiveSetup, tmp: Path) -> dict[str, Callable[[LiveStart], LiveStart]]:
    """Each case breaks exactly one requirement of an otherwise valid start."""

    def other_key_signature(req: LiveStart) -> LiveStart:
        other = tmp / "intruder.key"
        generate_operator_key(other)
        setup.sign(api_key_fingerprint("testkey"), key_path=other)
        return req

    def altered_after_signing(req: LiveStart) -> LiveStart:
        doc = json.loads(setup.optin_path.read_text())
        doc["payload"]["limits"]["max_daily_loss_usd"] = "5000"
        setup.optin_path.write_text(json.dumps(doc))
        return req

    def unsigned(req: LiveStart) -> LiveStart:
        doc = json.loads(setup.optin_path.read_text())
        doc["signature"] = None
        setup.optin_path.write_text(json.dumps(doc))
        return req

    def wrong_account(req: LiveStart) -> LiveStart:
        setup.sign(api_key_fingerprint("someone-elses-key"))
        return req

    def plaintext(req: LiveStart) -> LiveStart:
        plain = tmp / "plain.env"
        plain.write_text("BITUNIX_API_KEY=testkey\nBITUNIX_SECRET_KEY=testsecret\n")
        return replace(req, credentials_path=plain)

    def tampered(req: LiveStart) -> LiveStart:
        bad = tmp / "tampered.enc"
        doc = json.loads(setup.credentials_path.read_text())
        doc["metadata"]["label"] = "edited"
        bad.write_text(json.dumps(doc))
        return replace(req, credentials_path=bad)

    def edit_settings(root: Path) -> None:
        path = root / "settings.yaml"
        path.write_text(path.read_text().replace("stale_data_timeout_sec: 30", "stale_data_timeout_sec: 31"))

    def edit_risk(root: Path) -> None:
        path = root / "risk.yaml"
        path.write_text(path.read_text().replace("risk_per_trade_pct: 0.05", "risk_per_trade_pct: 0.04"))

    def edit_symbol(root: Path) -> None:
        path = root / "strategies" / "default.json"
        path.write_text(path.read_text().replace("BTCUSDT", "ETHUSDT"))

    def signed_span(created: datetime, expires: datetime) -> None:
        """Sign an opt-in with any lifetime (`la live optin create` would refuse to make these)."""
        payload = replace(build_payload(setup.config, api_key_fingerprint("testkey"), now=NOW),
                          created_at=created, expires_at=expires)
        write_document(setup.optin_path, sign_payload(payload, load_private_key(setup.key_path)))

    def valid_to_2099(req: LiveStart) -> LiveStart:  # issue 13: created in 2030, valid to 2099
        signed_span(datetime(2030, 1, 1, tzinfo=UTC), datetime(2099, 1, 1, tzinfo=UTC))
        return req

    def created_tomorrow(req: LiveStart) -> LiveStart:  # a 7-day window that starts tomorrow
        signed_span(NOW + timedelta(days=1), NOW + timedelta(days=8))
        return req

    def replayed(req: LiveStart) -> LiveStart:  # the account already used an opt-in signed a day later
        ledger = tmp / "optin_ledger.json"
        remember_optin(ledger, replace(build_payload(setup.config, api_key_fingerprint("testkey"), now=NOW)))
        signed_span(NOW - timedelta(days=1), NOW + timedelta(days=6))
        return replace(req, optin_ledger=ledger)

    return {
        "validity_too_long": valid_to_2099,
        "created_in_future": created_tomorrow,
        "replayed_optin": replayed,
        "no_live_flag": lambda r: replace(r, flag=False),
        "no_pinned_key": lambda r: replace(r, pinned_pubkey=None),
        "no_optin": lambda r: replace(r, optin_path=tmp / "missing-optin.json"),
        "bad_optin": lambda r: (setup.optin_path.write_text("{not json"), r)[1],
        "unsigned_optin": unsigned,
        "bad_signature:other_key": other_key_signature,
        "bad_signature:altered": altered_after_signing,
        "expired": lambda r: r,  # run with a clock 8 days later
        "no_credentials": lambda r: replace(r, credentials_path=tmp / "missing.enc"),
        "plaintext_credentials": plaintext,
        "no_passphrase": lambda r: replace(r, passphrase_source=PassphraseSource(env={}, docker_dir=tmp / "none")),
        "wrong_passphrase": lambda r: replace(r, passphrase_source=passphrase_source(tmp / "wp", "not the right one")),
        "tampered_credentials": tampered,
        "wrong_account": wrong_account,
        "wrong_symbol": lambda r: replace(r, config=_variant_config(tmp / "c_sym", edit_symbol)),
        "limits_changed": lambda r: replace(r, config=_variant_config(tmp / "c_risk", edit_risk)),
        "config_changed": lambda r: replace(r, config=_variant_config(tmp / "c_set", edit_settings)),
    }


CASE_NAMES = [
    "no_live_flag", "no_pinned_key", "no_optin", "bad_optin", "unsigned_optin", "bad_signature:other_key",
    "bad_signature:altered", "expired", "no_credentials", "plaintext_credentials", "no_passphrase",
    "wrong_passphrase", "tampered_credentials", "wrong_account", "wrong_symbol", "limits_changed", "config_changed",
    "validity_too_long", "created_in_future", "replayed_optin",
]


@pytest.mark.slow
def test_gating_matrix_each_refusal_has_its_own_message_and_sends_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[str] = []
    original_send = BitunixTransport._send

    async def counting_send(self: BitunixTransport, method: str, path: str, *args: Any) -> Any:
        sent.append(f"{method} {path}")
        return await original_send(self, method, path, *args)

    monkeypatch.setattr(BitunixTransport, "_send", counting_send)
    messages: dict[str, str] = {}
    with running_mock_exchange(seed=5, time_scale=0) as mx:
        for name in CASE_NAMES:
            case_dir = tmp_path / name.replace(":", "_")
            case_dir.mkdir()
            setup = LiveSetup(case_dir)
            base = LiveStart(True, setup.optin_path, setup.pubkey, setup.credentials_path, setup.config,
                             setup.source, rest_config(mx),
                             preflight_file=record_passed_preflight(case_dir / "live", setup.config, at=NOW,
                                                                    rest_url=mx.rest_url))
            request = _cases(setup, case_dir)[name](base)
            now = NOW + timedelta(days=8) if name == "expired" else NOW
            with pytest.raises(LiveGateRefused) as err:
                run(lambda request=request, now=now: start_live_broker(request, now=now))
            reason = name.split(":")[0]
            assert err.value.reason == reason, (name, str(err.value))
            text = str(err.value)
            assert text.startswith("live trading refused: ") and "\n" not in text
            assert "testsecret" not in text
            messages[name] = text
        assert sent == [], f"a refused start sent requests: {sent}"
        assert mx.admin.events(["order_request", "request"]) == []
        assert len(set(messages.values())) == len(messages), "every case needs its own message"

        # control: the same setup, unbroken, starts and talks to the exchange
        setup = LiveSetup(tmp_path / "valid")
        ok = LiveStart(True, setup.optin_path, setup.pubkey, setup.credentials_path, setup.config,
                       setup.source, rest_config(mx),
                       preflight_file=record_passed_preflight(tmp_path / "valid" / "live", setup.config, at=NOW,
                                                              rest_url=mx.rest_url))

        async def start_and_stop() -> None:
            broker, grant, _ = await start_live_broker(ok, now=NOW)
            assert grant.account_fingerprint == api_key_fingerprint("testkey") and broker.started
            assert "testsecret" not in repr(grant) and "testkey" not in repr(grant)
            await broker.shutdown("test", NOW)

        run(start_and_stop)
        assert sent and mx.admin.events("request")


@pytest.mark.single_dialect("the opt-in ledger in the workspace: no exchange is involved")
def test_optin_ledger_refuses_an_older_optin_and_remembers_the_newest(tmp_path: Path) -> None:
    """The live workspace remembers the newest opt-in each account used; an older one is refused (no replay)."""
    setup = LiveSetup(tmp_path)
    ledger = tmp_path / "live" / "optin_ledger.json"

    def gate(now: datetime) -> Any:
        return check_live_gate(True, setup.optin_path, setup.pubkey, setup.credentials_path, setup.source,
                               setup.config, now=now, optin_ledger=ledger)

    old_doc = setup.optin_path.read_bytes()  # created NOW
    gate(NOW)
    setup.sign(api_key_fingerprint("testkey"), now=NOW + timedelta(days=2))
    gate(NOW + timedelta(days=2))  # a newer opt-in replaces the old one
    assert json.loads(ledger.read_text())["accounts"][api_key_fingerprint("testkey")]["created_at"].startswith(
        "2026-11-25T12:00")
    setup.optin_path.write_bytes(old_doc)  # put the older (still unexpired) consent back
    with pytest.raises(LiveGateRefused) as err:
        gate(NOW + timedelta(days=3))
    assert err.value.reason == "replayed_optin" and "\n" not in str(err.value)
    ledger.write_text("{broken")
    with pytest.raises(LiveGateRefused, match="opt-in ledger .* cannot be read"):
        gate(NOW + timedelta(days=3))
    # a created_at a little ahead of our clock (skew within the tolerance) is accepted
    ledger.unlink()
    setup.sign(api_key_fingerprint("testkey"), now=NOW + timedelta(minutes=4))
    assert gate(NOW).payload.created_at == NOW + timedelta(minutes=4)
