"""Debian's real Prometheus scraping a real `la serve` paper session.

Every PromQL expression in the Grafana dashboard and in the alert rules must
return data; promtool must accept the shipped config and rules; the breaker
alert must fire when `--scenario losing_streak` trips the breaker. (Grafana
itself cannot be installed here: its dashboards are validated by their queries.)
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, LaEnv
from tests.service.conftest import skip_or_fail, start_serve, wait_until

pytestmark = pytest.mark.slow

OPS = REPO / "ops" / "prometheus"
CONFIG = OPS / "prometheus.yml"
RULES = OPS / "rules" / "laptop-agents.rules.yml"
DASHBOARD = REPO / "grafana" / "dashboards" / "laptop-agents.json"
COMPARISON = re.compile(r" (==|!=|>=|<=|>|<) (?!bool )")


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        skip_or_fail(f"{name} not installed (apt-get install prometheus)")
    return path  # type: ignore[return-value]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, expr) for every target, with Grafana's variables replaced as Grafana would."""
    dash = json.loads(DASHBOARD.read_text())
    out = []
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$__rate_interval", "10s").replace("$mode", ".+").replace("$symbol", ".+")
            out.append((panel["title"], expr))
    return out


def rule_queries() -> list[tuple[str, str]]:
    """(alert, expr with `bool` added to its comparison): the margin series exist whether or not it fires."""
    out = []
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            expr = rule["expr"]
            assert len(COMPARISON.findall(expr)) == 1, f"{rule['alert']}: one top-level comparison expected"
            out.append((rule["alert"], COMPARISON.sub(r" \1 bool ", expr)))
    return out


class Prometheus:
    def __init__(self, binary: str, workdir: Path, target_port: int) -> None:
        cfg = yaml.safe_load(CONFIG.read_text())
        cfg["global"].update({"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"})
        cfg["rule_files"] = [str(RULES)]
        job = next(j for j in cfg["scrape_configs"] if j["job_name"] == "laptop-agents")
        job["static_configs"] = [{"targets": [f"127.0.0.1:{target_port}"]}]
        self.config = workdir / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(cfg))
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (workdir / "prometheus.log").open("w")
        self.proc = subprocess.Popen(
            [binary, f"--config.file={self.config}", f"--web.listen-address=127.0.0.1:{self.port}",
             f"--storage.tsdb.path={workdir / 'tsdb'}", "--storage.tsdb.retention.time=1h"],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=workdir,
        )

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.url}/api/v1/{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        with urllib.request.urlopen(url, timeout=5) as resp:
            body = json.loads(resp.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.api("query", query=expr)["result"]

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.log.close()


@pytest.fixture
def prometheus_binary() -> str:
    return _tool("prometheus")


def test_promtool_accepts_config_and_rules() -> None:
    promtool = _tool("promtool")
    for args in (["check", "config", str(CONFIG)], ["check", "rules", str(RULES)]):
        result = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SUCCESS" in result.stdout + result.stderr


def test_dashboard_is_complete() -> None:
    dash = json.loads(DASHBOARD.read_text())
    titles = " ".join(p["title"].lower() for p in dash["panels"])
    for needed in ("equity", "pnl", "drawdown", "position", "data age", "order flow", "latency", "breaker",
                   "kill switch", "memory", "heartbeat"):
        assert needed in titles, needed
    # one datasource variable: provisioned, it resolves to our datasource; on a manual import, to the one chosen
    # for the __inputs entry DS_PROMETHEUS
    uids = {p["datasource"]["uid"] for p in dash["panels"] if "datasource" in p}
    uids |= {t["datasource"]["uid"] for p in dash["panels"] for t in p.get("targets", []) if "datasource" in t}
    assert uids == {"${datasource}"}
    variable = next(v for v in dash["templating"]["list"] if v["name"] == "datasource")
    assert variable["type"] == "datasource" and variable["query"] == "prometheus"
    assert [i["name"] for i in dash["__inputs"]] == ["DS_PROMETHEUS"]
    assert variable["current"]["value"] == "${DS_PROMETHEUS}"
    # a stat panel asks for one value (instant), never a range too (Grafana would show both)
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            want = (False, True) if panel["type"] == "stat" else (True, False)
            assert (target.get("range"), target.get("instant")) == want, (panel["title"], target["expr"])


@pytest.fixture
def scraped_session(la_env: LaEnv, prometheus_binary: str, tmp_path: Path) -> Iterator[tuple[Any, Prometheus]]:
    served = start_serve(la_env, "--scenario", "losing_streak")
    port = int(served.url.rsplit(":", 1)[1])
    prom = Prometheus(prometheus_binary, tmp_path, port)
    try:
        yield served, prom
    finally:
        prom.stop()
        if served.proc.poll() is None:
            served.proc.send_signal(signal.SIGTERM)
            served.proc.wait(timeout=30)


def test_real_prometheus_scrapes_session_and_every_query_returns_data(scraped_session: tuple[Any, Prometheus]) -> None:
    served, prom = scraped_session
    promtool = _tool("promtool")
    check = subprocess.run([promtool, "check", "config", str(prom.config)], capture_output=True, text=True,
                           timeout=60, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    wait_until(prom.ready, 30, "Prometheus ready")
    wait_until(lambda: [r for r in prom.query('up{job="laptop-agents"}') if r["value"][1] == "1"], 30,
               "a successful scrape of la serve")

    # the breaker trips (5 losing trades) and the rule fires
    def firing() -> list[dict[str, Any]]:
        return [a for a in prom.api("alerts")["alerts"]
                if a["labels"]["alertname"] == "LaptopAgentsBreakerTripped" and a["state"] == "firing"]

    alerts = wait_until(firing, 60, "LaptopAgentsBreakerTripped firing")
    assert alerts[0]["labels"]["reason"] == "consecutive_losses"
    assert alerts[0]["labels"]["mode"] == "paper" and alerts[0]["labels"]["symbol"] == "BTCUSDT"
    assert served.status()["breaker"]["tripped"] is True

    queries = dashboard_queries() + rule_queries()
    assert len(queries) >= 30

    def empty() -> list[tuple[str, str]]:
        return [(title, expr) for title, expr in queries if not prom.query(expr)]

    missing: list[tuple[str, str]] = []
    try:
        wait_until(lambda: not (missing.__setitem__(slice(None), empty()) or missing), 30, "data for every query")
    except AssertionError:
        pytest.fail("queries without data:\n" + "\n".join(f"  {t}: {e}" for t, e in missing))

    # spot-check values against the session itself
    equity = float(prom.query('laptop_agents_equity_usdt{mode="paper",symbol="BTCUSDT"}')[0]["value"][1])
    assert 9000 < equity < 10000, "losing_streak loses money"
    filled = float(prom.query("sum(laptop_agents_orders_filled_total)")[0]["value"][1])
    assert filled >= 5
    rules = prom.api("rules")["groups"][0]["rules"]
    assert all(r["health"] == "ok" for r in rules), [(r["name"], r.get("lastError")) for r in rules]
