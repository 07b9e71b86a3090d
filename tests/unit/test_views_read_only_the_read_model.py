"""Static guard: the status views render the read model and nothing else of the runner.

Every view (/status, /healthz, /readyz, STATUS=, the gauges, the dashboard, the console status line) once read
runner internals and getattr-sniffed providers, so the views disagreed (a live service said ``mode: paper``).
The one attribute of a runner they may read is ``read_model`` (session/read_model.py); none may sniff with
``getattr``/``hasattr`` on the runner or a provider. ast over the source: no process, no import side effects.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "laptop_agents"
VIEWS = ["service/status.py", "service/http.py", "service/metrics.py", "service/notify.py", "service/sampler.py",
         "service/dashboard.py", "session/console.py"]
ALLOWED = {"read_model"}


def _root(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def offenders(source: str) -> list[str]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "runner" \
                and node.attr not in ALLOWED:
            found.append((node.lineno, f"runner.{node.attr}"))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr") \
                and node.args and _root(node.args[0]) in ("runner", "provider"):
            found.append((node.lineno, f"{node.func.id}({_root(node.args[0])}, ...)"))
    return [f"{line}: {what}" for line, what in sorted(found)]


def test_views_read_only_the_published_read_model() -> None:
    bad = {view: hits for view in VIEWS if (hits := offenders((SRC / view).read_text(encoding="utf-8")))}
    assert not bad, bad


def test_the_guard_catches_a_view_reading_runner_internals() -> None:
    planted = "def on_heartbeat(self, runner):\n    x = runner.paper.equity\n    y = getattr(runner, 'stay_up', None)\n"
    assert offenders(planted) == ["2: runner.paper", "3: getattr(runner, ...)"]
    assert offenders("def f(provider, event):\n    hasattr(provider.x, 'reconnects')\n    getattr(event, 'v')\n") \
        == ["2: hasattr(provider, ...)"]
