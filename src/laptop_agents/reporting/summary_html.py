"""summary.html: the page a person reads after a run. Self-contained (inline CSS and SVG)."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from laptop_agents.core.models import Trade, parse_utc, utc_iso
from laptop_agents.reporting.equity_chart import TradeMark, drawdown_pct, equity_chart_svg


@dataclass
class SessionSummary:
    run_id: str
    mode: str
    source: str
    started_at: str
    ended_at: str
    stopped_reason: str
    exit_code: int
    starting_equity: Decimal
    ending_equity: Decimal
    trades: list[Trade]
    equity_curve: list[tuple[str, Decimal]]
    config: dict[str, Any]
    config_hash: str
    event_counts: dict[str, int]
    candles_processed: int
    accounting_ok: bool
    accounting_detail: str
    breaker: dict[str, Any] = field(default_factory=dict)

    @property
    def net_pnl(self) -> Decimal:
        return sum((t.pnl for t in self.trades), Decimal(0))

    @property
    def fees(self) -> Decimal:
        return sum((t.fees for t in self.trades), Decimal(0))

    def to_json(self) -> dict[str, Any]:
        wins = [t for t in self.trades if t.pnl > 0]
        return {
            "run_id": self.run_id, "mode": self.mode, "source": self.source, "started_at": self.started_at,
            "ended_at": self.ended_at, "stopped_reason": self.stopped_reason, "exit_code": self.exit_code,
            "starting_equity": str(self.starting_equity), "ending_equity": str(self.ending_equity),
            "net_pnl": str(self.net_pnl), "fees": str(self.fees), "trade_count": len(self.trades),
            "win_count": len(wins), "candles_processed": self.candles_processed,
            "accounting_ok": self.accounting_ok, "accounting_detail": self.accounting_detail,
            "config_hash": self.config_hash, "event_counts": self.event_counts, "circuit_breaker": self.breaker,
        }


def _chart(s: SessionSummary) -> str:
    """The equity chart (time axis, trade markers, drawdown) from the recorder's curve and the run's trades."""
    curve = [(parse_utc(ts), float(v)) for ts, v in s.equity_curve]
    marks = [TradeMark(t.trade_id, t.side.value, t.entry_ts, t.exit_ts, float(t.pnl), t.exit_reason) for t in s.trades]
    return equity_chart_svg(curve, marks, starting_equity=float(s.starting_equity))


def max_drawdown_pct(s: SessionSummary) -> float:
    return min(drawdown_pct([float(v) for _, v in s.equity_curve]), default=0.0)


def render_summary_html(s: SessionSummary) -> str:
    e = html.escape
    pnl_class = "pos" if s.net_pnl >= 0 else "neg"
    ok = s.stopped_reason == "completed"
    rows = "\n".join(
        f"<tr><td>{e(t.trade_id)}</td><td>{e(t.side.value)}</td><td>{e(utc_iso(t.entry_ts))}</td>"
        f"<td>{e(utc_iso(t.exit_ts))}</td><td>{t.entry_price}</td><td>{t.exit_price}</td><td>{t.qty}</td>"
        f"<td>{t.fees}</td><td class=\"{'pos' if t.pnl >= 0 else 'neg'}\">{t.pnl}</td><td>{e(t.exit_reason)}</td></tr>"
        for t in s.trades
    ) or '<tr><td colspan="10" class="muted">No trades in this run.</td></tr>'
    counts = "".join(f"<tr><td>{e(k)}</td><td>{v}</td></tr>" for k, v in sorted(s.event_counts.items()))
    breaker = s.breaker
    breaker_line = (
        f"TRIPPED ({e(str(breaker.get('reason')))}: {e(str(breaker.get('detail')))})" if breaker.get("tripped")
        else f"ok (consecutive losses {breaker.get('consecutive_losses', 0)})"
    )
    config_json = e(json.dumps(s.config, indent=2))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>laptop-agents run {e(s.run_id)}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2rem auto;max-width:960px;color:#111;padding:0 1rem}}
h1{{font-size:1.4rem}} table{{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}}
td,th{{border-bottom:1px solid #ddd;padding:.3rem .5rem;text-align:left;font-size:.9rem}}
.kpis{{display:grid;grid-template-columns:repeat(5,1fr);gap:.75rem;margin:1rem 0}}
.kpi{{background:#f3f4f6;border-radius:8px;padding:.75rem}} .kpi b{{display:block;font-size:1.2rem}}
.pos{{color:#15803d}} .neg{{color:#b91c1c}} .muted{{color:#6b7280}} .axis{{font-size:11px;fill:#6b7280}}
.badge{{padding:.15rem .5rem;border-radius:4px;background:{'#dcfce7' if ok else '#fee2e2'}}}
pre{{background:#f3f4f6;padding:1rem;overflow:auto;font-size:.8rem}}
</style></head><body>
<h1>Session {e(s.run_id)}</h1>
<p>{e(s.mode)} · source {e(s.source)} · {e(s.started_at)} → {e(s.ended_at)} ·
stopped: <span class="badge" id="stopped-reason">{e(s.stopped_reason)}</span> (exit code {s.exit_code})</p>
<div class="kpis">
<div class="kpi">Final equity<b id="final-equity">{s.ending_equity:,.2f} USDT</b></div>
<div class="kpi">Net PnL<b class="{pnl_class}" id="net-pnl">{s.net_pnl:,.2f} USDT</b></div>
<div class="kpi">Trades<b id="trade-count">{len(s.trades)}</b></div>
<div class="kpi">Fees paid<b>{s.fees:,.2f} USDT</b></div>
<div class="kpi">Max drawdown<b class="{'neg' if max_drawdown_pct(s) < 0 else ''}" id="max-drawdown">{max_drawdown_pct(s):.2f}%</b></div>
</div>
<p>Starting equity {s.starting_equity:,.2f} USDT · candles processed {s.candles_processed} ·
accounting: <b class="{'pos' if s.accounting_ok else 'neg'}">{'no drift' if s.accounting_ok else 'DRIFT'}</b>
({e(s.accounting_detail)}) · circuit breaker: {breaker_line}</p>
<h2>Equity curve</h2>
{_chart(s)}
<h2>Trades</h2>
<table><thead><tr><th>id</th><th>side</th><th>entry</th><th>exit</th><th>entry price</th><th>exit price</th>
<th>qty</th><th>fees</th><th>pnl</th><th>exit reason</th></tr></thead><tbody>
{rows}
</tbody></table>
<h2>Events</h2><table><tbody>{counts}</tbody></table>
<h2>Config used</h2><p class="muted">config hash {e(s.config_hash)}</p><pre>{config_json}</pre>
</body></html>
"""


def write_summary(path_html: Path, path_json: Path, summary: SessionSummary) -> None:
    path_html.write_text(render_summary_html(summary), encoding="utf-8")
    path_json.write_text(json.dumps(summary.to_json(), indent=2) + "\n", encoding="utf-8")
