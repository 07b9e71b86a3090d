"""`la audit`: wiring of evidence → checks → report, plus edge cases, a run-then-audit mode and `--live`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from laptop_agents.core.errors import ExitCode, UsageError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", metavar="ID", help="audit this run id (default: the latest run; with --live the latest live run)")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of the table")
    p.add_argument("--edge-cases", action="store_true",
                   help="also run the spec's edge cases (kill switch, stale data, breaker, SIGTERM, memory) "
                        "in a scratch workspace on mock data (about 1.5 minutes)")
    p.add_argument("--run-session", type=float, metavar="MIN",
                   help="first run a paper session of MIN minutes on mock data, then audit it")
    p.add_argument("--live", action="store_true",
                   help="conversion-to-live readiness review (credentials, signed opt-in, fees, order checks, rate "
                        "limits, alerts with a test notification, kill-switch alert, guardrails, paper/live "
                        "separation, secrets in artifacts) plus the latest (or --run) live run; places no order")


def run_from_args(args: argparse.Namespace, workspace, config_dir: Path) -> int:  # type: ignore[no-untyped-def]
    from laptop_agents.audit.checks import all_findings, live_not_assessed
    from laptop_agents.audit.edge_cases import run_edge_cases
    from laptop_agents.audit.evidence import load_run, resolve_run_dir
    from laptop_agents.audit.report import build_report, render_terminal, write_outputs

    live = bool(getattr(args, "live", False))
    if live and args.run_session is not None:
        raise UsageError("--run-session runs a paper session; it cannot be combined with --live")
    if args.run_session is not None:
        cmd = [sys.executable, "-m", "laptop_agents", "run", "--mode", "live-session", "--duration",
               str(args.run_session), "--source", "mock", "--async", "--workspace", str(workspace.root),
               "--config-dir", str(config_dir)]
        print(f"running a {args.run_session:g}-minute paper session on mock data before the audit...", file=sys.stderr)
        if args.run_session < 10:
            print(f"note: a {args.run_session:g}-minute run cannot show the spec's 10 minutes of autonomy; the audit "
                  "will fail that criterion (exit 11)", file=sys.stderr)
        subprocess.run(cmd, env=os.environ.copy(), check=False)
    if live:
        from laptop_agents.audit.live import live_readiness, resolve_live_run

        run_dir = resolve_live_run(workspace, args.run)
        evidence = load_run(run_dir, workspace) if run_dir is not None else None
        findings = (all_findings(evidence) if evidence is not None else []) + live_readiness(config_dir, workspace.root)
        out_dir = run_dir
        if out_dir is None:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            out_dir = workspace.root / "audits" / f"{stamp}-live-readiness"
            out_dir.mkdir(parents=True, exist_ok=True)
    else:
        run_dir = resolve_run_dir(workspace, args.run)
        from laptop_agents.audit.live import is_live_run

        if is_live_run(run_dir) and workspace.mode != "live":
            # a live run's lock and state live under <workspace>/live: judge it by those, not the paper ones
            workspace = dataclasses.replace(workspace, mode="live")
        evidence = load_run(run_dir, workspace)
        findings = all_findings(evidence) + live_not_assessed()
        out_dir = run_dir
    edge = []
    if args.edge_cases:
        edge = run_edge_cases(config_dir, progress=lambda name: print(f"edge case: {name}...", file=sys.stderr))
    report = build_report(evidence, findings, edge, mode="live" if live else "paper", run_dir=out_dir)
    write_outputs(report, out_dir)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(render_terminal(report))
        print(f"\nwrote {out_dir / 'audit.md'}, {out_dir / 'audit.html'}, {out_dir / 'audit.json'}")
    failed_edges = any(c["status"] != "PASS" for c in edge)
    return ExitCode.AUDIT_CRITICAL if report.has_critical or failed_edges else ExitCode.OK
