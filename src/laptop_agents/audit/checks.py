"""The audit's checks: pure functions from RunEvidence to findings with evidence.

Each finding names the spec item it decides (success criterion S1-S7, failure
criterion F1-F8, or a rubric detail), its verdict, the evidence (the event, log
line, file or field that decided it) and, when it is not a pass, the gap's
priority as the spec defines them (critical / high / medium / low).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from laptop_agents.audit.evidence import RunEvidence
from laptop_agents.core import hard_limits as hl

PASS, FAIL, WARN, NA = "PASS", "FAIL", "WARN", "N/A"

AUTONOMY, DATA, RISK, LOGGING, SHUTDOWN, LIVE = (
    "10-Min Autonomy", "Data Stability", "Risk Controls", "Logging", "Shutdown", "Live Readiness",
)
CATEGORIES = [AUTONOMY, DATA, RISK, LOGGING, SHUTDOWN, LIVE]
REQUIRED_TRADE_COLUMNS = ["entry_ts", "exit_ts", "side", "entry_price", "exit_price", "qty", "pnl"]
REQUIRED_LOG_FIELDS = ("timestamp", "level", "message", "component")
AUTONOMY_MINUTES = 10.0


@dataclass(frozen=True)
class Finding:
    id: str
    category: str
    title: str
    status: str
    evidence: str
    priority: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "category": self.category, "title": self.title, "status": self.status,
                "evidence": self.evidence, "priority": self.priority}


def _d(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        return None


def _end_line(ev: RunEvidence) -> str:
    end = ev.session_end
    if end is None:
        return f"no SessionEnd in {ev.where('events.jsonl')}"
    return (f"events.jsonl SessionEnd stopped_reason={end.get('stopped_reason')!r} "
            f"duration_sec={end.get('duration_sec')} exit_code={end.get('exit_code')}")


def too_short(ev: RunEvidence) -> str | None:
    """Why this run cannot show the spec's 10 continuous minutes, or None when it is long enough.

    The spec's question is whether the app trades *10 minutes* unattended: a run
    that completed a shorter duration answers a different question, so it fails
    the criterion (a critical gap: exit 11), whatever else it shows. The
    audit's own edge-case runs are short on purpose and are judged by their own
    expectations (edge_cases.py), never by this.
    """
    start, end = ev.session_start, ev.session_end
    planned = start.get("duration_min") if start else None
    ran = end.get("duration_sec") if end else None
    need = AUTONOMY_MINUTES * 60
    if planned is None:
        return None  # service mode (no planned duration) or no SessionStart: judged elsewhere in S1
    ran_text = f"{ran:.0f} s" if isinstance(ran, (int, float)) else "an unknown time"
    if float(planned) < AUTONOMY_MINUTES:
        return (f"TOO SHORT for the 10-minute autonomy criterion: a {float(planned):g}-minute run (ran {ran_text} of "
                f"the {need:.0f} s the spec requires); the audit needs a {AUTONOMY_MINUTES:.0f}-minute run: "
                f"`la run --mode live-session --duration 10 --source mock --async`, then `la audit`")
    if isinstance(ran, (int, float)) and ran < need - 1:
        return f"TOO SHORT: ran {ran_text} of the {need:.0f} s the 10-minute autonomy criterion requires"
    return None


def success_criteria(ev: RunEvidence) -> list[Finding]:
    out: list[Finding] = []
    start, end = ev.session_start, ev.session_end
    reason = end.get("stopped_reason") if end else None

    # S1: the full duration, unattended
    planned = start.get("duration_min") if start else None
    ran = end.get("duration_sec") if end else None
    if start is None or end is None:
        out.append(Finding("S1", AUTONOMY, "Session ran for the full duration without intervention", FAIL,
                           f"SessionStart present: {start is not None}; {_end_line(ev)}", "critical"))
    elif planned is None:
        out.append(Finding("S1", AUTONOMY, "Session ran for the full duration without intervention", WARN,
                           f"SessionStart duration_min=None (service mode, ran {ran}s): no planned duration to check",
                           "low"))
    else:
        full = isinstance(ran, (int, float)) and ran >= float(planned) * 60 - 1 and reason == "completed"
        short = too_short(ev)
        status = PASS if full and short is None else FAIL
        detail = f"SessionStart duration_min={planned}; SessionEnd duration_sec={ran}, stopped_reason={reason!r}"
        if short is not None:
            detail = f"{short}; {detail}"
        out.append(Finding("S1", AUTONOMY, "Session ran for the full 10 minutes without intervention", status,
                           detail, None if status == PASS else "critical"))

    # S2: exit reason
    out.append(Finding("S2", AUTONOMY, "Exit reason is `completed`", PASS if reason == "completed" else FAIL,
                       _end_line(ev), None if reason == "completed" else "critical"))

    # S3: no CRITICAL/FATAL
    bad = [r for r in ev.system if str(r.get("level", "")).upper() in ("CRITICAL", "FATAL")]
    if not ev.files["system.jsonl"]:
        out.append(Finding("S3", LOGGING, "No CRITICAL or FATAL entries in system.jsonl", FAIL,
                           f"{ev.where('system.jsonl')} is missing", "high"))
    elif bad:
        first = bad[0]
        out.append(Finding("S3", LOGGING, "No CRITICAL or FATAL entries in system.jsonl", FAIL,
                           f"{len(bad)} line(s); first: {first.get('timestamp')} {first.get('level')} "
                           f"[{first.get('component')}] {first.get('message')}", "critical"))
    else:
        out.append(Finding("S3", LOGGING, "No CRITICAL or FATAL entries in system.jsonl", PASS,
                           f"{len(ev.system)} log lines, none CRITICAL/FATAL"))

    # S4: summary.html
    readable = "Final equity" in ev.summary_html and "</html>" in ev.summary_html
    out.append(Finding("S4", LOGGING, "summary.html exists and is viewable", PASS if readable else FAIL,
                       f"{ev.where('summary.html')}: " + ("present, shows final equity and trade count" if readable
                                                          else "missing or incomplete"),
                       None if readable else "high"))

    # S5: trades.csv valid
    out.append(_trades_valid(ev))
    # S6: no equity drift
    out.append(_equity_matches(ev))
    # S7: lock cleaned
    if ev.lock_held:
        pid = ev.lock_info.pid if ev.lock_info else "?"
        out.append(Finding("S7", SHUTDOWN, "PID lock cleaned up", WARN,
                           f"{ev.workspace.lock_path} is held by a running session (pid {pid})", "low"))
    elif ev.lock_exists:
        out.append(Finding("S7", SHUTDOWN, "PID lock cleaned up", FAIL,
                           f"{ev.workspace.lock_path} still exists and no process holds it (left over)", "critical"))
    else:
        out.append(Finding("S7", SHUTDOWN, "PID lock cleaned up", PASS, f"{ev.workspace.lock_path} absent"))
    return out


def _trades_valid(ev: RunEvidence) -> Finding:
    title = "trades.csv contains valid entries (entry_price, exit_price, pnl)"
    if not ev.files["trades.csv"]:
        return Finding("S5", LOGGING, title, FAIL, f"{ev.where('trades.csv')} is missing", "high")
    missing = [c for c in REQUIRED_TRADE_COLUMNS if c not in ev.trade_columns]
    if missing:
        return Finding("S5", LOGGING, title, FAIL, f"trades.csv lacks columns {missing}", "high")
    for i, row in enumerate(ev.trades, start=2):
        for col in ("entry_price", "exit_price", "qty"):
            value = _d(row.get(col))
            if value is None or value <= 0:
                return Finding("S5", LOGGING, title, FAIL, f"trades.csv line {i}: {col}={row.get(col)!r}", "high")
        if _d(row.get("pnl")) is None:
            return Finding("S5", LOGGING, title, FAIL, f"trades.csv line {i}: pnl={row.get('pnl')!r}", "high")
    if not ev.trades:
        return Finding("S5", LOGGING, title, NA, "no trades in this run (the criterion applies if trades occurred)")
    return Finding("S5", LOGGING, title, PASS, f"{len(ev.trades)} trades, every row has prices, qty and pnl")


def _equity_matches(ev: RunEvidence) -> Finding:
    title = "Ending equity matches calculated PnL (no drift)"
    end, summary = ev.session_end, ev.summary or {}
    start_eq = _d(summary.get("starting_equity")) if summary else None
    end_eq = _d(summary.get("ending_equity")) if summary else None
    if start_eq is None or end_eq is None:
        if end is None:
            return Finding("S6", RISK, title, FAIL, "no summary.json and no SessionEnd: equity cannot be checked",
                           "critical")
        start_eq, end_eq = _d(end.get("starting_equity")), _d(end.get("ending_equity"))
    pnl = sum((_d(r.get("pnl")) or Decimal(0) for r in ev.trades), Decimal(0))
    if start_eq is None or end_eq is None:
        return Finding("S6", RISK, title, FAIL, "starting/ending equity not recorded", "critical")
    if summary.get("accounting_ok") is False:
        return Finding("S6", RISK, title, FAIL, f"summary.json accounting: {summary.get('accounting_detail')}", "critical")
    restored_or_open = bool(end and end.get("open_position")) or bool(ev.events_named("StateRestored") and any(
        e.get("position_id") for e in ev.events_named("StateRestored")))
    if start_eq + pnl == end_eq:
        return Finding("S6", RISK, title, PASS,
                       f"ending {end_eq} = starting {start_eq} + sum(trades.csv pnl) {pnl}")
    if restored_or_open and summary.get("accounting_ok") is True:
        return Finding("S6", RISK, title, PASS,
                       f"ending {end_eq} vs starting {start_eq} + sum(pnl) {pnl}, corrected for a restored or open "
                       f"position's entry fee: {summary.get('accounting_detail')}")
    return Finding("S6", RISK, title, FAIL,
                   f"ending {end_eq} != starting {start_eq} + sum(trades.csv pnl) {pnl} (drift {end_eq - start_eq - pnl})",
                   "critical")


def failure_criteria(ev: RunEvidence) -> list[Finding]:
    end = ev.session_end
    reason = end.get("stopped_reason") if end else None
    trips = ev.events_named("CircuitBreakerTripped")
    stale = ev.events_named("StaleDataDetected")
    watchdog = ev.events_named("WatchdogTriggered")
    out = [
        Finding("F1", AUTONOMY, "Process did not crash and was not killed by the watchdog",
                FAIL if end is None or reason in ("error", "watchdog_heartbeat", "watchdog_memory") else PASS,
                _end_line(ev) if end else f"no SessionEnd: the process died without shutting down ({ev.where('events.jsonl')})",
                "critical" if end is None or reason == "error" else ("high" if reason and reason.startswith("watchdog") else None)),
        Finding("F2", DATA, "No stale_data shutdown (market data dropout > stale_data_timeout_sec)",
                FAIL if reason == "stale_data" or stale else PASS,
                (f"StaleDataDetected data_age_sec={stale[0].get('data_age_sec')} "
                 f"timeout={stale[0].get('stale_data_timeout_sec')}") if stale else f"no StaleDataDetected; {_end_line(ev)}",
                "high" if reason == "stale_data" or stale else None),
        Finding("F3", DATA, "No unrecovered FatalError from the market data provider",
                FAIL if reason == "data_error" else PASS,
                f"SessionEnd detail: {end.get('detail')}" if end and reason == "data_error" else "stopped_reason is not data_error",
                "high" if reason == "data_error" else None),
        Finding("F4", RISK, "Circuit breaker did not trip unexpectedly",
                WARN if trips else PASS,
                (f"CircuitBreakerTripped (CIRCUIT_BREAKER_TRIPPED) reason={trips[0].get('reason')} "
                 f"detail={trips[0].get('detail')!r} at {trips[0].get('timestamp')}") if trips
                else "no CircuitBreakerTripped in events.jsonl",
                "medium" if trips else None),
        Finding("F5", AUTONOMY, "Memory stayed under the watchdog limit",
                FAIL if reason == "watchdog_memory" else PASS,
                _watchdog_detail(watchdog, "watchdog_memory") or "no watchdog_memory trigger",
                "high" if reason == "watchdog_memory" else None),
        Finding("F6", AUTONOMY, "No heartbeat freeze",
                FAIL if reason == "watchdog_heartbeat" else PASS,
                _watchdog_detail(watchdog, "watchdog_heartbeat") or "no watchdog_heartbeat trigger",
                "high" if reason == "watchdog_heartbeat" else None),
        _config_valid(ev),
        Finding("F8", SHUTDOWN, "Lock file gone after the session ended",
                FAIL if ev.lock_exists and not ev.lock_held else PASS,
                f"{ev.workspace.lock_path} " + ("left over" if ev.lock_exists and not ev.lock_held else
                                               "held by a running session" if ev.lock_held else "absent"),
                "critical" if ev.lock_exists and not ev.lock_held else None),
    ]
    return out


def _watchdog_detail(events: list[dict[str, Any]], reason: str) -> str | None:
    for e in events:
        if e.get("reason") == reason:
            return f"WatchdogTriggered {e.get('detail')} at {e.get('timestamp')}"
    return None


def _config_valid(ev: RunEvidence) -> Finding:
    from pydantic import ValidationError

    from laptop_agents.core.config_models import validate_snapshot

    title = "Strategy config validated on startup"
    snap = ev.config_snapshot
    if snap is None:
        return Finding("F7", AUTONOMY, title, FAIL, f"{ev.where('config_snapshot.json')} missing", "high")
    try:
        validate_snapshot(snap)  # the config models are strict; a snapshot's decimals are JSON text
    except (KeyError, ValidationError, ValueError) as exc:
        text = str(exc).splitlines()[0]
        return Finding("F7", AUTONOMY, title, FAIL, f"config_snapshot.json does not validate: {text}", "critical")
    return Finding("F7", AUTONOMY, title, PASS,
                   f"config_snapshot.json validates (config hash {str(snap.get('config_hash'))[:12]})")


def risk_checks(ev: RunEvidence) -> list[Finding]:
    out: list[Finding] = []
    snap = (ev.config_snapshot or {}).get("risk") or {}
    ceilings = {"max_daily_loss_usd": hl.MAX_DAILY_LOSS_USD, "max_position_notional_usd": hl.MAX_POSITION_NOTIONAL_USD,
                "max_risk_per_trade_pct": hl.MAX_RISK_PER_TRADE_PCT}
    loose = [f"{k}={snap.get(k)} > {v}" for k, v in ceilings.items() if (_d(snap.get(k)) or Decimal(0)) > v]
    missing = [k for k in ceilings if k not in snap]
    out.append(Finding("R1", RISK, "Hard limits in force ($50/day, $200K notional, 1% per trade)",
                       FAIL if loose or missing else PASS,
                       "; ".join(loose + [f"{k} absent" for k in missing]) or
                       ", ".join(f"{k}={snap.get(k)}" for k in ceilings), "critical" if loose or missing else None))
    max_notional = _d(snap.get("max_position_notional_usd")) or hl.MAX_POSITION_NOTIONAL_USD
    over = []
    for e in ev.events_named("OrderSubmitted"):
        qty, price = _d(e.get("qty")), _d(e.get("reference_price"))
        if qty is not None and price is not None and qty * price > max_notional:
            over.append(f"{e.get('order_id')} notional {qty * price}")
    out.append(Finding("R2", RISK, "Every order within the max position notional", FAIL if over else PASS,
                       "; ".join(over[:3]) if over else f"{len(ev.events_named('OrderSubmitted'))} orders checked",
                       "critical" if over else None))
    daily_cap = _d(snap.get("max_daily_loss_usd")) or hl.MAX_DAILY_LOSS_USD
    loss = -min(Decimal(0), sum((_d(r.get("pnl")) or Decimal(0) for r in ev.trades), Decimal(0)))
    slack = daily_cap * Decimal("0.2")  # a stop can gap past its price: allow 20% before calling it a breach
    out.append(Finding("R3", RISK, "Realized loss within the daily loss limit", FAIL if loss > daily_cap + slack else PASS,
                       f"run loss {loss} vs max_daily_loss_usd {daily_cap}", "critical" if loss > daily_cap + slack else None))
    breaker = ev.breaker_state
    out.append(Finding("R4", RISK, "Circuit breaker state persisted (tripped, reason, consecutive_losses)",
                       PASS if breaker and {"tripped", "reason", "consecutive_losses"} <= breaker.keys() else FAIL,
                       (f"circuit_breaker_state.json tripped={breaker.get('tripped')} reason={breaker.get('reason')} "
                        f"consecutive_losses={breaker.get('consecutive_losses')}") if breaker
                       else f"{ev.workspace.state_dir / 'circuit_breaker_state.json'} missing",
                       None if breaker else "high"))
    return out


def logging_checks(ev: RunEvidence) -> list[Finding]:
    out: list[Finding] = []
    if not ev.files["events.jsonl"]:
        out.append(Finding("L1", LOGGING, "events.jsonl present with event types and timestamps", FAIL,
                           f"{ev.where('events.jsonl')} missing", "high"))
    else:
        bad = [e for e in ev.events if "event" not in e or "timestamp" not in e]
        names = {e.get("event") for e in ev.events}
        needed = {"SessionStart", "CandleProcessed", "SessionEnd"}
        status = PASS if not bad and needed <= names and not ev.torn_event_lines else FAIL
        out.append(Finding("L1", LOGGING, "events.jsonl present with event types and timestamps", status,
                           f"{len(ev.events)} events, types {sorted(n for n in names if n)}"
                           + (f"; {ev.torn_event_lines} unreadable line(s)" if ev.torn_event_lines else "")
                           + (f"; missing {sorted(needed - names)}" if needed - names else ""),
                           None if status == PASS else "high"))
    missing_fields = [r for r in ev.system if not all(k in r for k in REQUIRED_LOG_FIELDS)]
    out.append(Finding("L2", LOGGING, "system.jsonl lines carry timestamp, level, message, component",
                       FAIL if missing_fields or not ev.files["system.jsonl"] else PASS,
                       f"{len(missing_fields)} line(s) lack a field" if missing_fields else f"{len(ev.system)} lines",
                       "medium" if missing_fields or not ev.files["system.jsonl"] else None))
    return out


def shutdown_checks(ev: RunEvidence) -> list[Finding]:
    end = ev.session_end
    flat = end is not None and end.get("open_position") is False
    positions = (ev.broker_state or {}).get("positions")
    running = ev.lock_held
    return [
        Finding("D1", SHUTDOWN, "Positions closed at shutdown (close_all)",
                PASS if flat and not positions else (WARN if running else FAIL),
                f"SessionEnd open_position={end.get('open_position') if end else None}; "
                f"async_broker_state.json positions={len(positions) if isinstance(positions, list) else 'n/a'}",
                None if flat and not positions else ("low" if running else "critical")),
    ]


def live_not_assessed() -> list[Finding]:
    return [Finding("LR", LIVE, "Conversion-to-live readiness", NA,
                    "not assessed: run `la audit --live` for the live readiness review (credentials, signed opt-in, fees, order "
                    "checks, rate limits, alerts, guardrails, state separation, secrets in artifacts)",
                    "medium")]


def all_findings(ev: RunEvidence) -> list[Finding]:
    return (success_criteria(ev) + failure_criteria(ev) + risk_checks(ev) + logging_checks(ev)
            + shutdown_checks(ev))
