"""Canary: recognisable fake key/secret values run through the whole live path and must never surface.

Searched: every file written under the test's directory (system log, a root-level debug log that also
catches aiohttp and friends, events.jsonl, the live state file, the encrypted credentials file), the metrics
exposition, reprs of the broker/grant/credentials, and the text of every exception raised on the way.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from laptop_agents.bitunix import AuthError, BitunixRestClient, Credentials
from laptop_agents.core.logger import flush_logging, setup_logging
from laptop_agents.core.models import Side
from laptop_agents.core.state import StateManager
from laptop_agents.execution.bitunix_broker import STATE_KIND
from laptop_agents.mock_exchange.testing import running_mock_exchange
from laptop_agents.security.credentials_file import api_key_fingerprint
from laptop_agents.security.secret import install_masking_filter
from laptop_agents.service.metrics import MetricsObserver, ServiceMetrics
from laptop_agents.session.live_gate import LiveStart, start_live_broker
from laptop_agents.session.workspace import BROKER_STATE_NAME
from tests.live.conftest import candle, intent, price_of, record_passed_preflight, rest_config, run
from tests.security.helpers import NOW, LiveSetup

SAVED_AT = datetime(2026, 11, 29, tzinfo=UTC)  # the state files' saved_at stamp (written, never read back)

CANARY_KEY = "CANARYKEYz9q8w7e6r5t4"
CANARY_SECRET = "CANARYSECRETm1n2b3v4c5x6"


@pytest.mark.slow
def test_canary_key_and_secret_never_appear(tmp_path: Path) -> None:
    setup_logging(tmp_path / "run" / "system.jsonl", console_level=logging.CRITICAL)
    root = logging.getLogger()
    debug_all = logging.FileHandler(tmp_path / "run" / "debug_all.log", encoding="utf-8")
    debug_all.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    old_level = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(debug_all)
    package_filter = install_masking_filter()
    root_filter = install_masking_filter(root)
    texts: list[str] = []
    try:
        with running_mock_exchange(seed=9, time_scale=0,
                                   accounts=[{"api_key": CANARY_KEY, "secret": CANARY_SECRET}]) as mx:
            setup = LiveSetup(tmp_path / "live-setup", api_key=CANARY_KEY, secret=CANARY_SECRET)
            request = LiveStart(True, setup.optin_path, setup.pubkey, setup.credentials_path, setup.config,
                                setup.source, rest_config(mx), preflight_file=record_passed_preflight(
                                    tmp_path / "live", setup.config, at=NOW, account=api_key_fingerprint(CANARY_KEY),
                                    secret=CANARY_SECRET, rest_url=mx.rest_url))
            metrics = ServiceMetrics("live", "BTCUSDT")
            observer = MetricsObserver(metrics)
            events_file = tmp_path / "run" / "events.jsonl"

            async def scenario() -> None:
                broker, grant, events = await start_live_broker(request, now=NOW)
                mx.admin.set_faults(rest_error_next=1, rest_fault_paths=["trade/place_order"], rest_fault_phase="after")
                p = price_of(mx)
                events += await broker.submit(intent(Side.LONG, p), candle(p), NOW)
                closed, _ = await broker.close_position("max_hold", p, NOW, NOW)
                events += closed
                events += (await broker.shutdown("session_end", NOW))[0]
                with events_file.open("w") as fh:
                    for e in events:
                        observer(e)
                        fh.write(json.dumps(e.to_record(), default=str) + "\n")
                        texts.append(repr(e))
                StateManager(tmp_path / "live").save(BROKER_STATE_NAME, STATE_KIND, broker.to_state(), saved_at=SAVED_AT)
                texts.extend([repr(broker), str(broker), repr(grant), repr(grant.credentials), f"{grant.credentials}"])
                # an authentication failure: the error text and its log line must not carry the secret
                async with BitunixRestClient(rest_config(mx), Credentials(CANARY_KEY, CANARY_SECRET + "x")) as bad:
                    with pytest.raises(AuthError) as err:
                        await bad.account()
                texts.append(str(err.value))
                texts.append(repr(err.value))
                logging.getLogger("laptop_agents.test").error("auth failed: %s", err.value, exc_info=err.value)
                # a careless log line: the masking filter is the safety net
                logging.getLogger("laptop_agents.test").debug("leak attempt %s / %s", CANARY_KEY, CANARY_SECRET)
                logging.getLogger("aiohttp.client").debug("header api-key=%s", CANARY_KEY)

            run(scenario)
            texts.append(generate_latest(metrics.registry).decode())
            assert mx.admin.account(CANARY_KEY)["positions"] == []
    finally:
        flush_logging()
        root.removeHandler(debug_all)
        debug_all.close()
        for logger, filt in ((root, root_filter), (logging.getLogger("laptop_agents"), package_filter)):
            logger.removeFilter(filt)
            for handler in logger.handlers:
                handler.removeFilter(filt)
        root.setLevel(old_level)
        setup_logging(None)

    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "system.jsonl" and p.stat().st_size > 0 for p in files)
    assert any(p.name == BROKER_STATE_NAME for p in files)
    assert "***" in (tmp_path / "run" / "debug_all.log").read_text()
    for path in files:
        data = path.read_bytes()
        for canary in (CANARY_KEY, CANARY_SECRET):
            assert canary.encode() not in data, f"{canary[:9]}… leaked into {path.relative_to(tmp_path)}"
    for text in texts:
        assert CANARY_KEY not in text and CANARY_SECRET not in text, text[:200]
