"""`la audit --live`: the conversion-to-live readiness review (spec section 4), run before any money moves.

Places no order and sends no signed request: it reads the config, decrypts the
credentials in memory (to prove the passphrase opens them and to know the values
to scan for), verifies the signed opt-in offline, exercises the order checks,
the rate limiter and the alert router in-process, and sends one test
notification through Apprise to every configured alert target.

Each check is one Finding (LR1-LR10) in the "Live Readiness" rubric category.
Evidence names files, settings fields and values, never a secret: credentials
appear only as their ``sha256:`` fingerprint, alert URLs only masked.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from laptop_agents.audit.checks import FAIL, LIVE, NA, PASS, WARN, Finding
from laptop_agents.core import hard_limits as hl
from laptop_agents.core.models import utc_iso
from laptop_agents.session.workspace import BROKER_STATE_NAME, Workspace

# --------------------------------------------------------------------------- reference facts (shared/reference/bitunix-api.md)
REFERENCE = "shared/reference/bitunix-api.md"
FEE_TIERS: dict[str, tuple[Decimal, Decimal]] = {  # maker, taker in bps ("## Fees")
    "VIP0": (Decimal(2), Decimal(6)), "VIP1": (Decimal(2), Decimal(5)),
    "VIP2": (Decimal("1.6"), Decimal(5)), "VIP3": (Decimal("1.4"), Decimal(4)),
    "VIP4": (Decimal("1.2"), Decimal("3.75")), "VIP5": (Decimal(1), Decimal("3.5")),
    "VIP6": (Decimal("0.8"), Decimal("3.15")), "VIP7": (Decimal("0.6"), Decimal(3)),
}
DOCUMENTED_RATES = {  # requests per second ("Rate limits")
    "market": 10.0, "query": 10.0, "place_order": 10.0, "batch_order": 5.0, "cancel": 5.0, "flash_close": 5.0,
    "tpsl": 10.0,
}
REFERENCE_PAIR: dict[str, Any] = {  # BTCUSDT example of market/trading_pairs
    "symbol": "BTCUSDT", "base": "BTC", "quote": "USDT", "minTradeVolume": "0.0001", "basePrecision": 4,
    "quotePrecision": 1, "minLeverage": 1, "maxLeverage": 125, "defaultLeverage": 20,
    "maxLimitOrderVolume": "100000", "maxMarketOrderVolume": "50000", "priceProtectScope": "0.02",
    "symbolStatus": "OPEN",
}
SPEC_HARD_LIMITS = {"MAX_DAILY_LOSS_USD": Decimal(50), "MAX_POSITION_NOTIONAL_USD": Decimal(200000),
                    "MAX_RISK_PER_TRADE_PCT": Decimal(1)}
OPTIN_WARN_DAYS = 3.0
SCAN_MAX_BYTES = 256 * 1024 * 1024
MIN_SECRET_LEN = 6
SECRET_PATTERNS = [
    ("a private key block", re.compile(rb"-----BEGIN (?!ENCRYPTED)[A-Z ]*PRIVATE KEY-----")),
    ("an API key/secret/passphrase assignment", re.compile(
        rb"(?i)(?:api[_-]?key|secret[_-]?key|api[_-]?secret|passphrase|password)[\"']?\s*[:=]\s*[\"']?"
        rb"(?!\*)[A-Za-z0-9+/_\-]{12,}")),
    ("a Slack token", re.compile(rb"xox[abprs]-[A-Za-z0-9-]{10,}")),
    ("a Slack webhook URL", re.compile(rb"hooks\.slack\.com/services/[A-Za-z0-9/]{10,}")),
]
CREDENTIAL_REASONS = {"no_credentials", "plaintext_credentials", "bad_credentials", "no_passphrase",
                      "wrong_passphrase", "tampered_credentials"}


@dataclass
class LiveContext:
    """What the checks share: config, resolved paths, and (in memory only) the decrypted secrets."""

    config_dir: Path
    workspace_root: Path
    env: Mapping[str, str]
    now: datetime
    config: Any
    credentials_path: Path
    optin_path: Path
    account: str | None = None          # fingerprint proven by decryption
    header_account: str | None = None   # fingerprint read from the header (unverified)
    secrets: list[tuple[str, bytes]] = field(default_factory=list, repr=False)
    alert_settings: Any = None
    passphrase_file: Path | None = None  # where the passphrase was read (not scanned: it is the secret's home)
    alerts_delivered: bool = False

    def __repr__(self) -> str:
        return f"LiveContext({self.config_dir}, {self.workspace_root})"


def _resolve(value: str) -> Path:
    """Settings paths are relative to the working directory, exactly as `la run --live` reads them."""
    return Path(value).expanduser().absolute()


def _where(path: Path, field_name: str, value: str) -> str:
    return f"{path} ({field_name})" if str(path) == value else f"{path} ({field_name}={value!r})"


def _days(delta: timedelta) -> float:
    return delta.total_seconds() / 86400


# --------------------------------------------------------------------------- LR1 credentials
def check_credentials(ctx: LiveContext) -> Finding:
    from laptop_agents.security.credentials_file import (
        api_key_fingerprint,
        load_credentials,
        read_header,
    )
    from laptop_agents.security.errors import (
        CredentialsFileError,
        CredentialsTamperedError,
        PassphraseUnavailableError,
        PlaintextCredentialsError,
        WrongPassphraseError,
    )
    from laptop_agents.security.passphrase import PassphraseSource

    title = "Credentials encrypted and decryptable with the configured passphrase"
    live = ctx.config.settings.live
    where = _where(ctx.credentials_path, "live.credentials_file", live.credentials_file)
    if not ctx.credentials_path.is_file():
        return Finding("LR1", LIVE, title, FAIL, f"{where}: no such file (create it with `la secrets encrypt`)",
                       "critical")
    try:
        header = read_header(ctx.credentials_path)
    except PlaintextCredentialsError:
        return Finding("LR1", LIVE, title, FAIL, f"{where}: holds PLAINTEXT API keys (not encrypted); encrypt it with "
                       "`la secrets encrypt --in <file> --out <file.enc> --shred`", "critical")
    except CredentialsFileError as exc:
        return Finding("LR1", LIVE, title, FAIL, f"{where}: {exc}", "critical")
    ctx.header_account = header.fingerprint or None
    source = PassphraseSource(name=live.passphrase_name, env=ctx.env)
    try:
        passphrase = source.read()
    except PassphraseUnavailableError as exc:
        return Finding("LR1", LIVE, title, FAIL, f"{where}: encrypted, but the passphrase is unavailable: {exc}",
                       "critical")
    found = next(((d, p) for d, p in source.candidates() if p.is_file()), None)
    used = f"{found[0]} ({found[1]})" if found else source.describe()
    ctx.passphrase_file = found[1] if found else None
    try:
        creds = load_credentials(ctx.credentials_path, passphrase)
    except WrongPassphraseError:
        return Finding("LR1", LIVE, title, FAIL, f"{where}: WRONG PASSPHRASE from {used}: it does not open this file",
                       "critical")
    except (CredentialsTamperedError, CredentialsFileError) as exc:
        return Finding("LR1", LIVE, title, FAIL, f"{where}: {exc}", "critical")
    ctx.account = api_key_fingerprint(creds.api_key)
    ctx.secrets = [(label, value.encode("utf-8")) for label, value in (
        ("the API key", creds.api_key), ("the API secret key", creds.secret_key), ("the credentials passphrase",
                                                                                   passphrase.reveal()))
        if len(value) >= MIN_SECRET_LEN]
    mode = stat.S_IMODE(ctx.credentials_path.stat().st_mode)
    created = header.metadata.get("created_at")
    age = ""
    try:
        from laptop_agents.core.models import parse_utc

        age = f", created {created} ({_days(ctx.now - parse_utc(str(created))):.0f} days ago; rotate with `la secrets rotate`)"
    except (TypeError, ValueError):
        pass
    detail = (f"{where}: {header.metadata.get('exchange', '?')} credentials, scrypt n={header.kdf.n} r={header.kdf.r} + "
              f"AES-256-GCM, decrypted in memory with the passphrase from {used}; account {ctx.account}{age}; "
              f"file mode {mode:04o}")
    if mode & 0o077:
        return Finding("LR1", LIVE, title, WARN, detail + " (readable by group/others: chmod 600)", "medium")
    return Finding("LR1", LIVE, title, PASS, detail)


# --------------------------------------------------------------------------- LR2 opt-in
def check_optin(ctx: LiveContext) -> Finding:
    from laptop_agents.security.errors import LiveGateRefused, OptInError
    from laptop_agents.security.optin import (
        check_live_gate,
        limits_in_force,
        parse_public_key,
        read_document,
        verify_signature,
    )
    from laptop_agents.security.passphrase import PassphraseSource

    title = "Signed live opt-in present, valid, unexpired, bound to this account, symbol, limits and config"
    config = ctx.config
    live = config.settings.live
    where = _where(ctx.optin_path, "live.optin_file", live.optin_file)
    if not live.optin_public_key:
        return Finding("LR2", LIVE, title, FAIL, "settings live.optin_public_key is not set: no operator key is pinned "
                       "(`la live optin keygen`)", "critical")
    try:
        pinned = parse_public_key(live.optin_public_key)
    except OptInError as exc:
        return Finding("LR2", LIVE, title, FAIL, f"settings live.optin_public_key: {exc}", "critical")
    if not ctx.optin_path.is_file():
        return Finding("LR2", LIVE, title, FAIL, f"{where}: MISSING (create with `la live optin create`, then `sign`)",
                       "critical")
    try:
        payload, signature = read_document(ctx.optin_path)
        verify_signature(payload, signature, pinned)
    except OptInError as exc:
        return Finding("LR2", LIVE, title, FAIL, f"{where}: {exc}", "critical")
    problems: list[str] = []
    notes: list[str] = [f"{where}: Ed25519 signature valid for pinned key {live.optin_public_key[:20]}…"]
    left = _days(payload.expires_at - ctx.now)
    if left <= 0:
        problems.append(f"EXPIRED at {utc_iso(payload.expires_at)} ({-left:.1f} days ago)")
    else:
        notes.append(f"expires_at {utc_iso(payload.expires_at)} ({left:.1f} days left)")
    account = ctx.account or ctx.header_account
    if account is None:
        notes.append(f"account_fingerprint {payload.account_fingerprint} not verifiable (credentials unreadable, see LR1)")
    elif account != payload.account_fingerprint:
        problems.append(f"account_fingerprint {payload.account_fingerprint} != credentials' {account}")
    else:
        notes.append(f"account {account} = credentials" + ("" if ctx.account else " (header only, not decrypted)"))
    if payload.symbol != config.strategy.symbol:
        problems.append(f"symbol {payload.symbol} != strategy.symbol {config.strategy.symbol}")
    else:
        notes.append(f"symbol {payload.symbol} = strategy.symbol")
    limits = limits_in_force(config)
    changed = sorted(k for k in set(limits) | set(payload.limits) if limits.get(k) != payload.limits.get(k))
    if changed:
        problems.append("limits differ: " + ", ".join(f"{k} opt-in {payload.limits.get(k)} vs config {limits.get(k)}"
                                                       for k in changed))
    else:
        notes.append("limits match (" + ", ".join(f"{k}={v}" for k, v in limits.items()) + ")")
    if payload.config_hash != config.config_hash:
        problems.append(f"config_hash {payload.config_hash[:12]} != current config hash {config.config_hash[:12]} "
                        "(config changed since signing: review, then create and sign a new opt-in)")
    else:
        notes.append(f"config_hash {payload.config_hash[:12]} = current config")
    if problems:
        return Finding("LR2", LIVE, title, FAIL, f"{where}: " + "; ".join(problems), "critical")
    # cross-check with the real gate (offline: it decrypts, it never builds a client)
    try:
        check_live_gate(True, ctx.optin_path, live.optin_public_key, ctx.credentials_path,
                        PassphraseSource(name=live.passphrase_name, env=ctx.env), config, now=ctx.now)
        notes.append("check_live_gate accepts it")
    except LiveGateRefused as exc:
        if exc.reason not in CREDENTIAL_REASONS:
            return Finding("LR2", LIVE, title, FAIL, f"{where}: the live gate refuses: {exc} (reason {exc.reason})",
                           "critical")
        notes.append(f"check_live_gate refuses for a credentials reason ({exc.reason}, see LR1)")
    preflight = _preflight_state(ctx, account)
    if preflight.startswith("FAIL "):
        return Finding("LR2", LIVE, title, FAIL, f"the live gate refuses: {preflight[5:]}", "critical")
    notes.append(preflight)
    if account is None:
        return Finding("LR2", LIVE, title, WARN, "; ".join(notes), "medium")
    if left < OPTIN_WARN_DAYS:
        return Finding("LR2", LIVE, title, WARN, "; ".join(notes) + f" (under {OPTIN_WARN_DAYS:g} days: sign a new one)",
                       "medium")
    return Finding("LR2", LIVE, title, PASS, "; ".join(notes))


def _preflight_state(ctx: LiveContext, account: str | None) -> str:
    """The gate's preflight requirement, read through the gate's own loader: "FAIL <why>" or a note."""
    from laptop_agents.security.errors import LiveGateRefused
    from laptop_agents.session.live_gate import preflight_path
    from laptop_agents.session.preflight import require_preflight

    path = preflight_path(Workspace(ctx.workspace_root, "live"))
    if account is None:
        return f"live preflight {path} not verifiable (account unknown, see LR1)"
    max_age = timedelta(hours=ctx.config.settings.live.preflight_max_age_hours)
    try:
        # the audit cannot unlock the credentials: the record's seal is checked by the live gate itself
        record = require_preflight(path, account, ctx.config.config_hash, ctx.now, max_age,
                                   rest_url=ctx.config.settings.bitunix.rest_url, seal_key=None)
    except LiveGateRefused as exc:
        return f"FAIL {exc} (reason {exc.reason})"
    observed = ", ".join(f"{k}={v}" for k, v in record["observed"].items())
    return (f"live preflight passed {record['at']} for this account and config ({observed}; its seal is verified "
            "by the live gate)")


# --------------------------------------------------------------------------- LR3 fees
def check_fees(ctx: LiveContext) -> Finding:
    title = "Fees configured as the reference Bitunix schedule (maker/taker)"
    paper = ctx.config.settings.paper
    maker, taker = paper.maker_fee_bps, paper.taker_fee_bps
    ref_m, ref_t = FEE_TIERS["VIP0"]
    got = (f"{ctx.config_dir / 'settings.yaml'} paper.maker_fee_bps={maker}, paper.taker_fee_bps={taker} vs {REFERENCE} VIP0 maker "
           f"{ref_m} / taker {ref_t} bps")
    tier = next((name for name, (m, t) in FEE_TIERS.items() if m == maker and t == taker), None)
    if tier == "VIP0":
        return Finding("LR3", LIVE, title, PASS, got + ": match")
    if tier is not None:
        return Finding("LR3", LIVE, title, PASS, got + f": match the {tier} tier (confirm the account is {tier})")
    if maker < ref_m or taker < ref_t:
        return Finding("LR3", LIVE, title, FAIL, got + ": DIFFERENT and below the reference with no matching VIP tier "
                       "(costs underestimated)", "high")
    return Finding("LR3", LIVE, title, WARN, got + ": different (above the reference: conservative; calibrate)",
                   "medium")


# --------------------------------------------------------------------------- LR4 order checks
def _broker_probe(rules: Any, symbol: str, price: Decimal, qty: str) -> tuple[str, list[str]]:
    """Submit one entry through BitunixBroker.submit on a client that cannot reach any exchange.

    Returns (outcome, client calls). ``outcome`` is the OrderRejected reason, ``sent`` if the broker tried to place
    the order (the fake client refuses, nothing leaves the process), or ``error: …``.
    """
    from types import SimpleNamespace

    from laptop_agents.core.models import Candle, OrderIntent, Side
    from laptop_agents.execution.bitunix_broker import BitunixBroker, LiveBrokerSettings

    class NoNetworkClient:
        def __init__(self) -> None:
            self.calls: list[str] = []

        async def tickers(self, symbols: Any = None) -> list[Any]:
            self.calls.append("tickers")
            return [SimpleNamespace(symbol=symbol, last_price=price, mark_price=price)]

        def __getattr__(self, name: str) -> Any:
            async def refuse(*_a: Any, **_k: Any) -> Any:
                self.calls.append(name)
                raise RuntimeError(f"audit probe: {name} refused (no request leaves the audit)")
            return refuse

    client = NoNetworkClient()
    broker = BitunixBroker(client, LiveBrokerSettings(symbol=symbol))  # type: ignore[arg-type]
    broker.rules = rules
    broker.started = True
    intent = OrderIntent(Side.LONG, Decimal(qty), price * Decimal("0.99"), price * Decimal("1.01"), price)
    candle = Candle(datetime(2026, 1, 1, tzinfo=UTC), price, price, price, price, Decimal(1), symbol)
    import logging

    from laptop_agents.execution import bitunix_broker

    quiet = getattr(bitunix_broker, "log", logging.getLogger("laptop_agents.execution"))
    was, quiet.disabled = quiet.disabled, True  # "entry refused" warnings are the expected outcome here
    try:
        events = asyncio.run(broker.submit(intent, candle, datetime.now(UTC)))
    except Exception as exc:  # noqa: BLE001 - any escape means the check did not stop the order
        return ("sent" if set(client.calls) - {"tickers"} else f"error: {type(exc).__name__}"), client.calls
    finally:
        quiet.disabled = was
    rejected = [e for e in events if e.name == "OrderRejected"]
    if rejected and set(client.calls) <= {"tickers"}:
        return str(rejected[0].data.get("reason")), client.calls
    return "sent", client.calls


def check_order_checks(ctx: LiveContext) -> Finding:
    from laptop_agents.bitunix import parse_trading_pairs
    from laptop_agents.core.models import OrderIntent, Side
    from laptop_agents.execution.order_checks import (
        OrderCheckFailed,
        SymbolRules,
        check_entry,
    )

    title = "Exchange min/max order checks active, trading-pair limits known"
    rules = SymbolRules.from_pair(parse_trading_pairs([REFERENCE_PAIR])[0])
    price = Decimal(95000)
    intent = OrderIntent(Side.LONG, Decimal("0.01"), price * Decimal("0.99"), price * Decimal("1.01"), price)
    try:
        check_entry(rules, intent, price)
        normal = "accepted"
    except OrderCheckFailed as exc:
        normal = exc.code
    below, _ = _broker_probe(rules, REFERENCE_PAIR["symbol"], price, "0.00005")
    above, _ = _broker_probe(rules, REFERENCE_PAIR["symbol"], price, "60000")
    paper = ctx.config.settings.paper
    configured = {"min_qty": paper.min_qty, "lot_size": paper.lot_size, "tick_size": paper.tick_size}
    reference = {"min_qty": rules.min_qty, "lot_size": rules.qty_step, "tick_size": rules.price_tick}
    differs = [f"paper.{k}={configured[k]} (exchange {reference[k]})" for k in configured if configured[k] != reference[k]]
    detail = (f"BitunixBroker.submit with {REFERENCE_PAIR['symbol']} rules from market/trading_pairs "
              f"(minTradeVolume {rules.min_qty}, maxMarketOrderVolume {rules.max_market_qty}, qty step {rules.qty_step}, "
              f"tick {rules.price_tick}) on a client that cannot send: qty 0.00005 → {below}, 60000 → {above} "
              f"(nothing sent); check_entry qty 0.01 → {normal}; configured "
              + ", ".join(f"paper.{k}={v}" for k, v in configured.items()))
    if (below, above, normal) != ("qty_below_min", "qty_above_max", "accepted"):
        return Finding("LR4", LIVE, title, FAIL, detail, "high")
    if ctx.config.strategy.symbol != REFERENCE_PAIR["symbol"]:
        return Finding("LR4", LIVE, title, WARN, detail + f"; limits known only for {REFERENCE_PAIR['symbol']}; "
                       f"{ctx.config.strategy.symbol}'s come from the exchange at start", "medium")
    if differs:
        return Finding("LR4", LIVE, title, WARN, detail + "; differs from the exchange: " + ", ".join(differs), "medium")
    return Finding("LR4", LIVE, title, PASS, detail + f" = {REFERENCE} BTCUSDT")


# --------------------------------------------------------------------------- LR5 rate limits
def check_rate_limits(ctx: LiveContext) -> Finding:
    from laptop_agents.bitunix import BitunixTransport, EndpointGroup, RestConfig

    title = "Rate limits configured at or below the documented Bitunix rates"
    clock = [0.0]

    async def fake_sleep(sec: float) -> None:
        clock[0] += sec

    # the transport the live session builds (RestConfig with the configured URL); no request is made
    transport = BitunixTransport(RestConfig(base_url=ctx.config.settings.bitunix.rest_url),
                                 monotonic=lambda: clock[0], sleep=fake_sleep)
    measured: dict[str, float] = {}

    async def measure() -> None:
        for group in EndpointGroup:
            start = clock[0]
            n = 21
            for _ in range(n):
                await transport.limiter.acquire(group)
            measured[group.value] = (n - 1) / (clock[0] - start) if clock[0] > start else float("inf")

    asyncio.run(measure())
    parts, over = [], []
    for name, documented in DOCUMENTED_RATES.items():
        got = measured.get(name)
        if got is None:
            over.append(f"{name}: no limiter")
            continue
        parts.append(f"{name} {got:.1f}/s ≤ {documented:g}/s" if got <= documented + 1e-9 else
                     f"{name} {got:.1f}/s > {documented:g}/s")
        if got > documented + 1e-9:
            over.append(parts[-1])
    detail = (f"measured pacing of the live REST client's limiter (rate_headroom {transport.config.rate_headroom}, "
              f"20 calls per group, fake clock): " + ", ".join(parts) + f" (documented: {REFERENCE})")
    if over:
        return Finding("LR5", LIVE, title, FAIL, detail + "; OVER: " + "; ".join(over), "high")
    return Finding("LR5", LIVE, title, PASS, detail)


# --------------------------------------------------------------------------- LR6 alerts
def _send_test(url: str, now: datetime) -> tuple[bool, str]:
    import apprise

    from laptop_agents.alerts.notifier import _silence_apprise

    _silence_apprise()
    target = apprise.Apprise()
    if not target.add(url):
        return False, "not a valid Apprise URL"
    try:
        ok = bool(target.notify(title="[la] audit test notification",
                                body=f"la audit --live on {socket.gethostname()} at {utc_iso(now)}: test notification "
                                     "(no action needed)", notify_type=apprise.NotifyType.INFO))
    except Exception as exc:  # noqa: BLE001 - a plugin failing is a delivery failure, reported as such
        return False, f"delivery raised {type(exc).__name__}"
    return ok, "delivered" if ok else "delivery FAILED"


def check_alerts(ctx: LiveContext) -> Finding:
    from laptop_agents.alerts.config import load_alert_settings, mask_url
    from laptop_agents.core.errors import ConfigError

    title = "Alert targets configured and a test notification delivered"
    try:
        settings = load_alert_settings(ctx.config_dir, ctx.env)
    except ConfigError as exc:
        return Finding("LR6", LIVE, title, FAIL, str(exc), "high")
    ctx.alert_settings = settings
    if not settings.urls:
        return Finding("LR6", LIVE, title, FAIL, f"no alert target: neither $LA_ALERT_URLS_FILE nor "
                       f"{ctx.config_dir / 'alerts.yaml'} lists an Apprise URL", "high")
    results = [(mask_url(u), *_send_test(u, ctx.now)) for u in settings.urls]
    detail = f"{len(settings.urls)} target(s) from {settings.source}: " + ", ".join(
        f"{m} {text}" for m, _, text in results)
    if not all(ok for _, ok, _ in results):
        return Finding("LR6", LIVE, title, FAIL, detail, "high")
    ctx.alerts_delivered = True
    return Finding("LR6", LIVE, title, PASS, detail)


# --------------------------------------------------------------------------- LR7 kill switch alert
def check_kill_switch_alert(ctx: LiveContext) -> Finding:
    from laptop_agents.alerts.model import AlertKind, Severity
    from laptop_agents.alerts.router import AlertRouter
    from laptop_agents.core.events import Event, EventName
    from laptop_agents.session.kill_switch import KillSwitch

    title = "Kill switch activation raises an operator alert"

    class Capture:
        def __init__(self) -> None:
            self.alerts: list[Any] = []

        def send(self, alert: Any) -> str:
            self.alerts.append(alert)
            return "queued"

    capture = Capture()
    router = AlertRouter(capture, "live", ctx.config.strategy.symbol)  # type: ignore[arg-type]
    router(Event(EventName.KILL_SWITCH_ACTIVATED, ctx.now, detail="audit probe"))
    mapped = [a for a in capture.alerts if a.kind is AlertKind.KILL_SWITCH]
    n = len(ctx.alert_settings.urls) if ctx.alert_settings is not None else 0
    ws = Workspace(ctx.workspace_root, "live")
    # the session's own rule (any LA_KILL_SWITCH value but empty/0/false/no/off; any kill.txt, dangling link too)
    why = KillSwitch(ws.kill_files(), ctx.env).reason()
    active = [why] if why else []
    detail = (f"AlertRouter maps KillSwitchActivated → {mapped[0].kind.value} alert ({mapped[0].severity.value})"
              if mapped else "AlertRouter does NOT alert on KillSwitchActivated")
    detail += (f" to {n} target(s) ({'test delivered, LR6' if ctx.alerts_delivered else 'not delivering, LR6'}); "
               "sent by both `la serve --live` and `la run --live` when targets are configured; kill switch now "
               + (f"ACTIVE ({', '.join(active)}): a live start would stop at once" if active else "inactive"))
    if not mapped or mapped[0].severity is not Severity.CRITICAL:
        return Finding("LR7", LIVE, title, FAIL, detail, "high")
    if not ctx.alerts_delivered:
        return Finding("LR7", LIVE, title, FAIL, detail, "high")
    if active:
        return Finding("LR7", LIVE, title, WARN, detail, "low")
    return Finding("LR7", LIVE, title, PASS, detail)


# --------------------------------------------------------------------------- LR8 guardrails
def check_guardrails(ctx: LiveContext) -> Finding:
    title = "Loss guardrails reviewed against the hard limits"
    risk = ctx.config.risk
    cb = risk.circuit_breaker
    live = ctx.config.settings.live
    rows = [
        ("risk.max_daily_loss_usd", risk.max_daily_loss_usd, hl.MAX_DAILY_LOSS_USD),
        ("risk.circuit_breaker.max_drawdown_pct", cb.max_drawdown_pct, hl.MAX_DRAWDOWN_PCT),
        ("risk.circuit_breaker.max_consecutive_losses", Decimal(cb.max_consecutive_losses),
         Decimal(hl.MAX_CONSECUTIVE_LOSSES)),
        ("risk.max_position_notional_usd", risk.max_position_notional_usd, hl.MAX_POSITION_NOTIONAL_USD),
        ("risk.max_risk_per_trade_pct", risk.max_risk_per_trade_pct, hl.MAX_RISK_PER_TRADE_PCT),
        ("risk.risk_per_trade_pct", risk.risk_per_trade_pct, risk.max_risk_per_trade_pct),
        ("risk.max_leverage", risk.max_leverage, hl.MAX_LEVERAGE),
    ]
    effective_leverage = min(Decimal(live.leverage), risk.max_leverage)
    shown = [f"{name}={value} (limit {limit})" for name, value, limit in rows]
    shown.append(f"live.leverage={live.leverage} (effective {effective_leverage}, capped by risk.max_leverage)")
    shown.append(f"circuit_breaker.action={cb.action}")
    over = [f"{name}={value} > {limit}" for name, value, limit in rows if value > limit]
    loosened = [f"core/hard_limits.py {k}={getattr(hl, k)} looser than the spec's {v}"
                for k, v in SPEC_HARD_LIMITS.items() if getattr(hl, k) > v]
    if over or loosened:
        return Finding("LR8", LIVE, title, FAIL, "; ".join(over + loosened) + "; " + ", ".join(shown), "critical")
    if Decimal(live.leverage) > risk.max_leverage:
        return Finding("LR8", LIVE, title, WARN, ", ".join(shown) + " (live.leverage is above the cap: set it "
                       "explicitly)", "low")
    return Finding("LR8", LIVE, title, PASS, ", ".join(shown) + ": all within the hard limits")


# --------------------------------------------------------------------------- LR9 separation
def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() or p.is_symlink()] if root.is_dir() else []


def check_separation(ctx: LiveContext) -> Finding:
    import json

    from laptop_agents.execution.bitunix_broker import STATE_KIND as LIVE_KIND
    from laptop_agents.paper.broker import STATE_KIND as PAPER_KIND
    from laptop_agents.security.errors import LiveGateRefused
    from laptop_agents.security.optin import check_live_gate
    from laptop_agents.security.passphrase import PassphraseSource

    title = "Paper and live state separated (directories, locks, files); live needs an explicit flag"
    paper, live = Workspace(ctx.workspace_root, "paper"), Workspace(ctx.workspace_root, "live")
    problems: list[str] = []
    p_dir, l_dir = paper.state_dir.resolve(), live.state_dir.resolve()
    if p_dir == l_dir or p_dir in l_dir.parents or l_dir in p_dir.parents:
        problems.append(f"state directories overlap: {paper.state_dir} → {p_dir}, {live.state_dir} → {l_dir}")
    if paper.lock_path.resolve() == live.lock_path.resolve():
        problems.append(f"one lock for both modes: {paper.lock_path}")
    inodes: dict[tuple[int, int], Path] = {}
    for f in _files(paper.state_dir):
        if f.is_symlink():
            problems.append(f"{f} is a symlink (to {os.readlink(f)})")
            continue
        st = f.stat()
        inodes[(st.st_dev, st.st_ino)] = f
    for f in _files(live.state_dir):
        if f.is_symlink():
            problems.append(f"{f} is a symlink (to {os.readlink(f)})")
            continue
        st = f.stat()
        if (st.st_dev, st.st_ino) in inodes:
            problems.append(f"{f} is the same file as {inodes[(st.st_dev, st.st_ino)]}")

    def kind(path: Path) -> str | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return str(data.get("kind")) if isinstance(data, dict) and data.get("kind") else None

    p_kind, l_kind = kind(paper.state_dir / BROKER_STATE_NAME), kind(live.state_dir / BROKER_STATE_NAME)
    if p_kind is not None and LIVE_KIND in str(p_kind):
        problems.append(f"{paper.state_dir / BROKER_STATE_NAME} holds live broker state ({p_kind})")
    if l_kind is not None and PAPER_KIND in str(l_kind):
        problems.append(f"{live.state_dir / BROKER_STATE_NAME} holds paper broker state ({l_kind})")
    try:
        check_live_gate(False, ctx.optin_path, ctx.config.settings.live.optin_public_key, ctx.credentials_path,
                        PassphraseSource(name=ctx.config.settings.live.passphrase_name, env=ctx.env), ctx.config,
                        now=ctx.now)
        problems.append("check_live_gate(flag=False) did NOT refuse: live possible without --live")
        gate = "accepted without the flag"
    except LiveGateRefused as exc:
        gate = f"refuses ({exc.reason})"
    detail = (f"paper state {paper.state_dir} (lock {paper.lock_path.name}, {len(_files(paper.state_dir))} files), "
              f"live state {live.state_dir} (lock {live.lock_path.name}, {len(_files(live.state_dir))} files), "
              f"no shared file; broker state kinds paper={p_kind or 'none'} live={l_kind or 'none'}; run ids carry the "
              f"mode (runs/<ts>-live-<id>); without --live check_live_gate {gate}")
    if problems:
        return Finding("LR9", LIVE, title, FAIL, "; ".join(problems) + f" | {detail}", "critical")
    return Finding("LR9", LIVE, title, PASS, detail)


# --------------------------------------------------------------------------- LR10 secrets in artifacts
def _scan_file(path: Path, secrets: list[tuple[str, bytes]]) -> list[str]:
    """What was found in ``path`` (labels only, never a value)."""
    found: list[str] = []
    overlap = max([len(v) for _, v in secrets] + [256])
    tail = b""
    try:
        with path.open("rb") as fh:
            while True:
                chunk = fh.read(1 << 20)
                if not chunk:
                    break
                buf = tail + chunk
                for label, value in secrets:
                    if label not in found and value in buf:
                        found.append(label)
                for label, pattern in SECRET_PATTERNS:
                    if label not in found and pattern.search(buf):
                        found.append(label)
                tail = buf[-overlap:]
    except OSError:
        return []
    return found


def check_secret_scan(ctx: LiveContext) -> Finding:
    title = "No secret in any artifact (workspace runs, state, logs; config)"
    roots = [ctx.workspace_root, ctx.config_dir]
    # the homes of secrets are not artifacts: the encrypted credentials, the passphrase file, the alert URL files
    skip = {ctx.credentials_path.resolve(), (ctx.config_dir / "alerts.yaml").resolve()}
    if ctx.passphrase_file is not None:
        skip.add(ctx.passphrase_file.resolve())
    if ctx.env.get("LA_ALERT_URLS_FILE", "").strip():
        skip.add(Path(ctx.env["LA_ALERT_URLS_FILE"].strip()).resolve())
    scanned, size, hits, too_big = 0, 0, [], []
    seen: set[Path] = set()
    for root in roots:
        if not root.is_dir():
            continue
        for dirpath, _dirs, names in os.walk(root, followlinks=False):
            for name in names:
                path = Path(dirpath) / name
                if path.is_symlink() or not path.is_file():
                    continue
                real = path.resolve()
                if real in skip or real in seen:
                    continue
                seen.add(real)
                st = path.stat()
                if st.st_size > SCAN_MAX_BYTES:
                    too_big.append(str(path))
                    continue
                scanned += 1
                size += st.st_size
                for label in _scan_file(path, ctx.secrets):
                    hits.append(f"{label} in {path}")
    what = ("the decrypted API key, API secret and passphrase values and secret-looking patterns" if ctx.secrets
            else "secret-looking patterns only (credentials not decrypted, see LR1)")
    detail = (f"scanned {scanned} files ({size / 1e6:.1f} MB) under {ctx.workspace_root} and {ctx.config_dir} "
              f"for {what}")
    if too_big:
        detail += (f"; NOT scanned, over {SCAN_MAX_BYTES // 1_000_000} MB: {', '.join(too_big[:3])}"
                   + (f" (and {len(too_big) - 3} more)" if len(too_big) > 3 else ""))
    if hits:
        return Finding("LR10", LIVE, title, FAIL, f"SECRET FOUND: {'; '.join(hits[:5])}"
                       + (f" (and {len(hits) - 5} more)" if len(hits) > 5 else "") + f" | {detail}", "critical")
    if not ctx.secrets:
        return Finding("LR10", LIVE, title, WARN, detail + ": none found, but the values themselves were not checked",
                       "high")
    if too_big:
        return Finding("LR10", LIVE, title, WARN, detail + ": none found in what was scanned", "medium")
    return Finding("LR10", LIVE, title, PASS, detail + ": none found")


# --------------------------------------------------------------------------- entry point
def live_readiness(config_dir: Path, workspace_root: Path, *, env: Mapping[str, str] | None = None,
                   now: datetime | None = None) -> list[Finding]:
    """Every LR check, in order. ConfigError (one line) if the config itself does not load."""
    from laptop_agents.config_loader import load_config

    env = os.environ if env is None else env
    config = load_config(config_dir, env=env)
    live = config.settings.live
    ctx = LiveContext(config_dir=Path(config_dir).absolute(), workspace_root=Path(workspace_root).absolute(), env=env,
                      now=now or datetime.now(UTC), config=config,
                      credentials_path=_resolve(live.credentials_file), optin_path=_resolve(live.optin_file))
    out: list[Finding] = []
    try:
        for check in (check_credentials, check_optin, check_fees, check_order_checks, check_rate_limits, check_alerts,
                      check_kill_switch_alert, check_guardrails, check_separation, check_secret_scan):
            out.append(check(ctx))
    finally:
        ctx.secrets.clear()
    return out


# --------------------------------------------------------------------------- which run
def is_live_run(run_dir: Path) -> bool:
    import json

    try:
        snap = json.loads((run_dir / "config_snapshot.json").read_text(encoding="utf-8"))
        if isinstance(snap, dict) and snap.get("mode"):
            return snap.get("mode") == "live"
    except (OSError, ValueError):
        pass
    return "-live-" in run_dir.name


def resolve_live_run(workspace: Workspace, run_id: str | None) -> Path | None:
    """`--run ID` (must be a live run) or the newest live run; None when no live run exists yet."""
    from laptop_agents.core.errors import UsageError

    if run_id:
        path = workspace.runs_dir / run_id
        if not path.is_dir():
            raise UsageError(f"no run {run_id!r} in {workspace.runs_dir}")
        if not is_live_run(path):
            raise UsageError(f"run {run_id!r} is a paper run; drop --live to audit it")
        return path
    if not workspace.runs_dir.is_dir():
        return None
    runs = sorted((p for p in workspace.runs_dir.iterdir() if p.is_dir() and not p.is_symlink() and is_live_run(p)),
                  key=lambda p: p.name)
    return runs[-1] if runs else None


__all__ = ["NA", "is_live_run", "live_readiness", "resolve_live_run"]
