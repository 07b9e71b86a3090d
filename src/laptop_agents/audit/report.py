"""The audit's deliverable: rubric, checklist and prioritized gaps, as a table, audit.md, audit.html and JSON."""

from __future__ import annotations

import html
import importlib.util
import json
import textwrap
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from laptop_agents.audit.checks import CATEGORIES, FAIL, LIVE, NA, PASS, WARN, Finding
from laptop_agents.audit.evidence import RunEvidence
from laptop_agents.core.models import utc_iso

PRIORITIES = ["critical", "high", "medium", "low"]


@dataclass
class ChecklistItem:
    component: str
    files: str
    status: str
    evidence: str


@dataclass
class AuditReport:
    run_id: str
    run_dir: str
    created_at: str
    findings: list[Finding]
    checklist: list[ChecklistItem]
    edge_cases: list[dict[str, Any]] = field(default_factory=list)
    live_checklist: list[ChecklistItem] = field(default_factory=list)
    mode: str = "paper"
    """paper, or live (`la audit --live`: the live readiness review, plus the newest/given live run if any)."""

    @property
    def title(self) -> str:
        if self.mode == "live":
            what = f"live run {self.run_id}" if self.run_id else "no live run yet"
            return f"QA autonomy audit, live readiness review ({what})"
        return f"QA autonomy audit of run {self.run_id}"

    @property
    def rubric(self) -> list[tuple[str, str, str]]:
        rows = []
        for cat in CATEGORIES:
            found = [f for f in self.findings if f.category == cat]
            statuses = {f.status for f in found}
            if not found or statuses == {NA}:
                verdict = "NOT ASSESSED"
            elif FAIL in statuses:
                verdict = FAIL
            elif WARN in statuses:
                verdict = WARN
            else:
                verdict = PASS
            deciding = [f for f in found if f.status == verdict] or found
            evidence = "; ".join(f"{f.id}: {f.evidence}" for f in deciding[:2])
            rows.append((cat, verdict, evidence))
        return rows

    @property
    def gaps(self) -> list[Finding]:
        open_ = [f for f in self.findings if f.status != PASS and f.priority]
        return sorted(open_, key=lambda f: PRIORITIES.index(f.priority or "low"))

    @property
    def ten_minute_autonomy(self) -> dict[str, Any] | None:
        """The spec's headline question (10 continuous unattended minutes), answered in one line; None if no run."""
        s1 = next((f for f in self.findings if f.id == "S1"), None)
        if s1 is None:
            return None
        return {"shown": s1.status == PASS, "status": s1.status, "evidence": s1.evidence}

    @property
    def autonomy_line(self) -> str | None:
        t = self.ten_minute_autonomy
        if t is None:
            return None
        return f"10-minute autonomy: {'SHOWN' if t['shown'] else 'NOT SHOWN'} ({t['status']}): {t['evidence']}"

    @property
    def has_critical(self) -> bool:
        return any(g.priority == "critical" for g in self.gaps)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "run_dir": self.run_dir, "created_at": self.created_at,
            "rubric": [{"category": c, "verdict": v, "evidence": e} for c, v, e in self.rubric],
            "gaps": [g.to_json() for g in self.gaps],
            "checklist": [vars(i) for i in self.checklist],
            "findings": [f.to_json() for f in self.findings],
            "edge_cases": self.edge_cases, "critical": self.has_critical, "mode": self.mode,
            "live_checklist": [vars(i) for i in self.live_checklist],
            "ten_minute_autonomy": self.ten_minute_autonomy,
        }


def build_checklist(ev: RunEvidence, findings: list[Finding]) -> list[ChecklistItem]:
    by_id = {f.id: f for f in findings}
    n = {name: len(ev.events_named(name)) for name in (
        "SignalGenerated", "OrderSubmitted", "ExecutionFill", "ExecutionExit", "CandleProcessed", "StaleDataDetected",
        "WatchdogTriggered", "CircuitBreakerTripped", "WarmupCompleted", "StateRestored")}
    start = ev.session_start or {}
    settings = ((ev.config_snapshot or {}).get("settings") or {}).get("session") or {}

    def st(*ids: str) -> str:
        statuses = {by_id[i].status for i in ids if i in by_id}
        return FAIL if FAIL in statuses else WARN if WARN in statuses else PASS if PASS in statuses else NA

    lifecycle = n["OrderSubmitted"] and n["ExecutionFill"] and n["ExecutionExit"]
    resilience = [m for m in ("retry", "circuit", "rate_limiter")
                  if importlib.util.find_spec(f"laptop_agents.resilience.{m}") is None]
    return [
        ChecklistItem("Strategy Execution Loop", "async_session.py, agents/supervisor.py",
                      PASS if lifecycle else (NA if not n["SignalGenerated"] else FAIL),
                      f"SignalGenerated {n['SignalGenerated']} → OrderSubmitted {n['OrderSubmitted']} → ExecutionFill "
                      f"{n['ExecutionFill']} → ExecutionExit {n['ExecutionExit']}"),
        ChecklistItem("Market Data Stream", "data/providers/bitunix_ws.py, data/providers/mock.py",
                      st("F2", "F3"), f"source {start.get('source')}; {n['CandleProcessed']} candles; "
                                      f"{n['StaleDataDetected']} stale-data stops; stale_data_timeout_sec="
                                      f"{settings.get('stale_data_timeout_sec')}; warm-ups {n['WarmupCompleted']}"),
        ChecklistItem("Order Lifecycle", "paper/broker.py, execution/bitunix_broker.py",
                      PASS if n["OrderSubmitted"] == n["ExecutionFill"] and ev.broker_state is not None else
                      (NA if not n["OrderSubmitted"] else FAIL),
                      f"{n['OrderSubmitted']} orders, {n['ExecutionFill']} fills; broker state "
                      f"{'persisted' if ev.broker_state is not None else 'missing'}"),
        ChecklistItem("Position Reconciliation", "PaperBroker.on_candle()", st("S6"),
                      f"{by_id['S6'].evidence if 'S6' in by_id else ''}; restored positions {n['StateRestored']}"),
        ChecklistItem("Risk Management", "trading_circuit_breaker.py, core/hard_limits.py", st("R1", "R2", "R3", "R4"),
                      "; ".join(by_id[i].evidence for i in ("R1", "R4") if i in by_id)),
        ChecklistItem("Error Handling", "resilience/retry.py, circuit.py, rate_limiter.py",
                      FAIL if resilience else PASS,
                      f"missing modules {resilience}" if resilience else "retry, API circuit breaker and rate limiter present"),
        ChecklistItem("Logging/Telemetry", "core/logger.py, core/orchestrator.py", st("L1", "L2", "S3", "S4"),
                      ", ".join(f"{k}{'' if v else ' MISSING'}" for k, v in ev.files.items())),
        ChecklistItem("Watchdog", "AsyncRunner._threaded_watchdog()", st("F5", "F6"),
                      f"{n['WatchdogTriggered']} triggers; heartbeat_timeout_sec={settings.get('heartbeat_timeout_sec')}, "
                      f"max_memory_mb={settings.get('max_memory_mb')}"),
        ChecklistItem("Config Loading", "core/config_models.py", st("F7"), by_id["F7"].evidence if "F7" in by_id else ""),
        ChecklistItem("Startup/Shutdown", "async_session.py, la stop", st("S7", "F8", "D1"),
                      f"SessionStart {'yes' if ev.session_start else 'NO'}, SessionEnd "
                      f"{'yes' if ev.session_end else 'NO'}; {by_id['S7'].evidence if 'S7' in by_id else ''}"),
    ]


# the spec's "Conversion-to-Live Readiness Assessment" rows and "Critical Pre-Live Checks", each decided by LR findings
LIVE_ROWS: list[tuple[str, str, tuple[str, ...]]] = [
    ("Credentials", "security/credentials_file.py, secrets never logged, rotation", ("LR1", "LR10")),
    ("Slippage/Fees", "settings paper.maker_fee_bps/taker_fee_bps", ("LR3",)),
    ("Order Sizing", "execution/order_checks.py (exchange min/max)", ("LR4",)),
    ("Kill Switch", "alerts/router.py: alert when triggered", ("LR7",)),
    ("Max Loss Guardrails", "risk.yaml vs core/hard_limits.py", ("LR8",)),
    ("Monitoring/Alerting", "alerts/ (Apprise targets)", ("LR6",)),
    ("Paper/Live Separation", "signed opt-in, --live flag", ("LR2", "LR9")),
    ("State Isolation", ".workspace/paper vs .workspace/live", ("LR9",)),
    ("Rate limits enforced", "resilience/rate_limiter.py via the REST transport", ("LR5",)),
    ("Secrets never in logs/artifacts", "every file under the workspace", ("LR10",)),
]


def build_live_checklist(findings: list[Finding], ev: RunEvidence | None) -> list[ChecklistItem]:
    by_id = {f.id: f for f in findings}
    items = []
    for area, files, ids in LIVE_ROWS:
        found = [by_id[i] for i in ids if i in by_id]
        statuses = {f.status for f in found}
        status = FAIL if FAIL in statuses else WARN if WARN in statuses else PASS if PASS in statuses else NA
        items.append(ChecklistItem(area, files, status, "; ".join(f"{f.id}: {f.evidence}" for f in found)))
    # broker shutdown: only a live run shows it (the review itself never trades)
    if ev is None:
        items.insert(6, ChecklistItem("Broker Shutdown", "BitunixBroker.shutdown()", NA,
                                      "not verifiable without trading: no live run audited yet (la audit --live places "
                                      "no order); audit the first live run with `la audit --live`"))
    else:
        end = ev.session_end or {}
        flat = end.get("open_position") is False and end.get("exit_code") != 10
        items.insert(6, ChecklistItem("Broker Shutdown", "BitunixBroker.shutdown()", PASS if flat else FAIL,
                                      f"live run {ev.run_id}: SessionEnd stopped_reason={end.get('stopped_reason')!r} "
                                      f"open_position={end.get('open_position')} exit_code={end.get('exit_code')}"))
    return items


def build_report(ev: RunEvidence | None, findings: list[Finding], edge_cases: list[dict[str, Any]] | None = None,
                 *, mode: str = "paper", run_dir: Any = None) -> AuditReport:
    live = any(f.id.startswith("LR") and f.id != "LR" for f in findings)
    return AuditReport(run_id=ev.run_id if ev else "", run_dir=str(ev.run_dir if ev else run_dir),
                       created_at=utc_iso(datetime.now(UTC)), findings=findings,
                       checklist=build_checklist(ev, findings) if ev else [], edge_cases=edge_cases or [],
                       live_checklist=build_live_checklist(findings, ev) if live else [], mode=mode)


# ----------------------------------------------------------------------------- rendering
def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def render_terminal(r: AuditReport) -> str:
    lines = [r.title, *([r.autonomy_line] if r.autonomy_line else []), "", "Pass/fail rubric"]
    for cat, verdict, evidence in r.rubric:
        lines.append(f"  {cat:<17} {verdict:<12} {_clip(evidence, 110)}")
    live = [f for f in r.findings if f.category == LIVE and f.id != "LR"]
    if live:
        lines += ["", "Live readiness checks"]
        for f in live:
            lines.append(f"  [{f.status:<4}] {f.id:<4} {f.title}" + (f" ({f.priority})" if f.status != PASS and f.priority else ""))
            lines += textwrap.wrap(f.evidence, 120, initial_indent=" " * 14, subsequent_indent=" " * 14)
    lines += ["", "Autonomy verification checklist"]
    if not r.checklist:
        lines.append("  not assessed: no run audited")
    for item in r.checklist:
        lines.append(f"  [{item.status:<4}] {item.component:<24} {_clip(item.evidence, 100)}")
    if r.live_checklist:
        lines += ["", "Conversion-to-live checklist"]
        for item in r.live_checklist:
            lines.append(f"  [{item.status:<4}] {item.component:<31} {_clip(item.evidence, 100)}")
    if r.edge_cases:
        lines += ["", "Edge cases (expected vs observed)"]
        for case in r.edge_cases:
            lines.append(f"  [{case['status']:<4}] {case['name']:<28} expected: {case['expected']}; "
                         f"observed: {_clip(case['observed'], 80)}")
    lines += ["", "Gaps (prioritized)"]
    if not r.gaps:
        lines.append("  none")
    for g in r.gaps:
        lines.append(f"  {(g.priority or '').upper():<9} {g.id:<4} {g.title}: {_clip(g.evidence, 100)}")
    lines += ["", "verdict: " + ("CRITICAL GAPS" if r.has_critical else "no critical gap")]
    return "\n".join(lines)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(r: AuditReport) -> str:
    out = [f"# {r.title}", "", f"Created {r.created_at}. Run directory `{r.run_dir}`.", "",
           *([f"**{r.autonomy_line}**", ""] if r.autonomy_line else []),
           "## Pass/fail rubric", "", "| Category | Verdict | Evidence |", "|---|---|---|"]
    out += [f"| {c} | {v} | {_md_cell(e)} |" for c, v, e in r.rubric]
    out += ["", "## Autonomy verification checklist", "", "| Component | Key files | Status | Evidence |", "|---|---|---|---|"]
    out += [f"| {i.component} | {i.files} | {i.status} | {_md_cell(i.evidence)} |" for i in r.checklist]
    if not r.checklist:
        out.append("| (not assessed: no run audited) | | N/A | |")
    if r.live_checklist:
        out += ["", "## Conversion-to-live checklist", "", "| Area | Where | Status | Evidence |", "|---|---|---|---|"]
        out += [f"| {i.component} | {i.files} | {i.status} | {_md_cell(i.evidence)} |" for i in r.live_checklist]
    if r.edge_cases:
        out += ["", "## Edge cases", "", "| Case | Expected | Observed | Status |", "|---|---|---|---|"]
        out += [f"| {c['name']} | {_md_cell(c['expected'])} | {_md_cell(c['observed'])} | {c['status']} |"
                for c in r.edge_cases]
    out += ["", "## Gaps (prioritized)", ""]
    if not r.gaps:
        out.append("None.")
    else:
        out += ["| Priority | Item | Finding | Evidence |", "|---|---|---|---|"]
        out += [f"| {g.priority} | {g.id} | {_md_cell(g.title)} | {_md_cell(g.evidence)} |" for g in r.gaps]
    out += ["", "## All findings", "", "| Id | Category | Check | Status | Evidence |", "|---|---|---|---|---|"]
    out += [f"| {f.id} | {f.category} | {_md_cell(f.title)} | {f.status} | {_md_cell(f.evidence)} |" for f in r.findings]
    return "\n".join(out) + "\n"


def render_html(r: AuditReport) -> str:
    e = html.escape
    color = {PASS: "#dcfce7", FAIL: "#fee2e2", WARN: "#fef9c3", NA: "#f3f4f6", "NOT ASSESSED": "#f3f4f6"}

    def table(head: list[str], rows: list[list[str]], status_col: int | None) -> str:
        body = "".join(
            "<tr>" + "".join(
                f'<td style="background:{color.get(c, "")}">{e(c)}</td>' if i == status_col else f"<td>{e(c)}</td>"
                for i, c in enumerate(row)) + "</tr>" for row in rows)
        return f"<table><thead><tr>{''.join(f'<th>{e(h)}</th>' for h in head)}</tr></thead><tbody>{body}</tbody></table>"

    parts = [
        (f"<h1>{e(r.title)}</h1><p>{e(r.created_at)} · {e(r.run_dir)} · "
         f"<b>{'CRITICAL GAPS' if r.has_critical else 'no critical gap'}</b></p>"
         + (f"<p><b>{e(r.autonomy_line)}</b></p>" if r.autonomy_line else "")),
        "<h2>Pass/fail rubric</h2>", table(["Category", "Verdict", "Evidence"], [list(x) for x in r.rubric], 1),
        "<h2>Autonomy verification checklist</h2>",
        table(["Component", "Key files", "Status", "Evidence"],
              [[i.component, i.files, i.status, i.evidence] for i in r.checklist], 2)
        if r.checklist else "<p>Not assessed: no run audited.</p>",
    ]
    if r.live_checklist:
        parts += ["<h2>Conversion-to-live checklist</h2>",
                  table(["Area", "Where", "Status", "Evidence"],
                        [[i.component, i.files, i.status, i.evidence] for i in r.live_checklist], 2)]
    if r.edge_cases:
        parts += ["<h2>Edge cases</h2>", table(["Case", "Expected", "Observed", "Status"],
                                               [[c["name"], c["expected"], c["observed"], c["status"]] for c in r.edge_cases], 3)]
    parts += ["<h2>Gaps (prioritized)</h2>",
              table(["Priority", "Item", "Finding", "Evidence"], [[g.priority or "", g.id, g.title, g.evidence] for g in r.gaps], None)
              if r.gaps else "<p>None.</p>",
              "<h2>All findings</h2>",
              table(["Id", "Category", "Check", "Status", "Evidence"],
                    [[f.id, f.category, f.title, f.status, f.evidence] for f in r.findings], 3)]
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2rem auto;padding:0 1rem}"
             "table{border-collapse:collapse;width:100%;margin-bottom:1.5rem}"
             "td,th{border-bottom:1px solid #ddd;padding:.3rem .5rem;text-align:left;font-size:.85rem;vertical-align:top}")
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>audit {e(r.run_id)}</title>'
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n")


def write_outputs(r: AuditReport, run_dir: Any) -> None:
    from pathlib import Path

    d = Path(run_dir)
    (d / "audit.md").write_text(render_markdown(r), encoding="utf-8")
    (d / "audit.html").write_text(render_html(r), encoding="utf-8")
    (d / "audit.json").write_text(json.dumps(r.to_json(), indent=2) + "\n", encoding="utf-8")


__all__ = ["LIVE", "AuditReport", "build_report", "render_html", "render_markdown", "render_terminal", "write_outputs"]
