"""The layering of docs/architecture.md, proven statically: ast over src/laptop_agents, nothing is imported.

Why static and why every import statement counts (module level, inside a function, under ``TYPE_CHECKING``):
a lazy import still runs in production, and a type-only import is still a dependency for the type checker
and for the reader. Importing the modules instead would see only the imports that happened to run.

Each rule is one test. A failure lists every offending import as ``path:line: importer -> imported`` and
says why the rule exists. A rule that is still violated on main because its owner has not landed the fix yet
carries ``xfail(strict=True)`` with the owner's name: the moment the fix lands the test XPASSes, which fails
the run, so the mark is removed then and the rule guards from that day on.

Honest exceptions, each in its rule:

* ``laptop_agents.__main__`` imports ``cli``: it is the interpreter's entry point (``python -m
  laptop_agents``), not a module anything imports.
* ``agents/`` may import ``resilience/trading_circuit_breaker.py``: the supervisor consults the trading breaker,
  which is pure (values and an injected clock in, decisions out), like core. The rest of ``resilience/``
  (the API circuit breaker, retry, rate limiter) sleeps and reads the monotonic clock: it is the transport's
  tool, so the pure parts may not import it, and resilience/ itself needs nothing but core.
* ``core/clock.py`` reads the wall clock: it *is* the clock the shell injects.
* The venue may import ``security/`` for the API key pair type and the secret mask only
  (``security/credentials.py``, ``security/secret.py``): the encrypted credentials file and the live opt-in
  produce that type, and security/ may not import the venue.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "laptop_agents"
PKG = "laptop_agents"

IO_LIBRARIES = frozenset({
    "aiohttp", "apprise", "prometheus_client", "psutil", "sdnotify", "socket", "ssl", "subprocess", "urllib",
    "http", "requests", "asyncio", "threading", "signal", "selectors",
})
"""Network, processes, threads, the event loop: no part of core/ (nor the pure parts) touches them. Core does
write its own state and journal files today (core/state.py, core/orchestrator.py, core/logger.py), so plain
file modules are not in this list; moving that I/O out is a larger change than this session's."""

PURE_EXTRA = frozenset({"os", "pathlib", "io", "tempfile", "shutil", "sqlite3", "time", "random", "yaml",
                        "logging"})
"""Also off limits to agents/, paper/ and the trading breaker: files, the environment, clocks, randomness and
log output are handed in by the shell."""

WALL_CLOCK = frozenset({("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"), ("date", "today"),
                        ("time", "time"), ("time", "time_ns"), ("time", "monotonic"), ("time", "monotonic_ns"),
                        ("time", "perf_counter"), ("time", "perf_counter_ns")})


DYNAMIC_IMPORTS = frozenset({"import_module", "importlib.import_module", "__import__"})
"""Calls that import by name: counted when the name is a literal (a computed name cannot be checked statically)."""


@dataclass(frozen=True)
class Import:
    importer: str
    target: str
    """Fully qualified; ``from pkg import submodule`` resolves to the submodule."""
    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.importer} -> {self.target}"


@dataclass(frozen=True)
class Use:
    """A use of something a rule forbids that is not an import (``os.environ``, ``datetime.now()``)."""

    module: str
    what: str
    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.module} uses {self.what}"


@dataclass
class Graph:
    modules: dict[str, Path] = field(default_factory=dict)
    imports: list[Import] = field(default_factory=list)
    uses: list[Use] = field(default_factory=list)


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def part_of(module: str) -> str:
    """``laptop_agents.core.models`` → ``core``; ``laptop_agents.cli`` → ``cli``; the package itself → ``""``."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else ""


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def build_graph(root: Path) -> Graph:
    graph = Graph()
    for path in sorted(root.rglob("*.py")):
        graph.modules[module_name(root, path)] = path
    for module, path in graph.modules.items():
        rel = str(path.relative_to(root.parent.parent)) if root.parent.parent in path.parents else str(path)
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    graph.imports.append(Import(module, alias.name, rel, node.lineno))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = module.split(".") if is_package else module.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                for alias in node.names:
                    sub = f"{source}.{alias.name}"
                    graph.imports.append(Import(module, sub if sub in graph.modules else source, rel, node.lineno))
            elif isinstance(node, ast.Attribute):
                name = _dotted(node)
                if name in ("os.environ", "os.getenv", "os.putenv", "os.unsetenv"):
                    graph.uses.append(Use(module, name, rel, node.lineno))
            elif isinstance(node, ast.Call) and _dotted(node.func) in DYNAMIC_IMPORTS:
                first = node.args[0] if node.args else None
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    graph.imports.append(Import(module, first.value, rel, node.lineno))
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = _dotted(node.func.value)
                if owner and (owner.rsplit(".", 1)[-1], node.func.attr) in WALL_CLOCK:
                    graph.uses.append(Use(module, f"{owner}.{node.func.attr}()", rel, node.lineno))
    return graph


def ours(target: str) -> bool:
    return target == PKG or target.startswith(PKG + ".")


def top_level(target: str) -> str:
    return target.split(".", 1)[0]


def internal_imports(graph: Graph, parts: Iterable[str]) -> Iterable[Import]:
    wanted = set(parts)
    return (i for i in graph.imports if part_of(i.importer) in wanted and ours(i.target))


def outside(allowed_parts: set[str], allowed_modules: frozenset[str] = frozenset()) -> Callable[[Import], bool]:
    """A predicate: does this import reach outside the allowed parts (and single allowed modules)?"""

    def bad(i: Import) -> bool:
        return part_of(i.target) not in allowed_parts and i.target not in allowed_modules

    return bad


# --------------------------------------------------------------------------- the rules
def nothing_imports_cli(g: Graph) -> list[str]:
    return [str(i) for i in g.imports if (i.target == f"{PKG}.cli" or i.target.startswith(f"{PKG}.cli."))
            and i.importer not in (f"{PKG}.cli", f"{PKG}.__main__")]


def venue_internals_stay_inside(g: Graph) -> list[str]:
    return [str(i) for i in g.imports if i.target.startswith(f"{PKG}.bitunix.") and part_of(i.importer) != "bitunix"]


def core_imports_nothing_of_ours(g: Graph) -> list[str]:
    return [str(i) for i in internal_imports(g, ["core"]) if part_of(i.target) != "core"]


def core_imports_no_io_library(g: Graph) -> list[str]:
    return [str(i) for i in g.imports if part_of(i.importer) == "core" and top_level(i.target) in IO_LIBRARIES]


def core_reads_no_config_file_or_environment(g: Graph) -> list[str]:
    found = [str(i) for i in g.imports if part_of(i.importer) == "core" and top_level(i.target) == "yaml"]
    return found + [str(u) for u in g.uses if part_of(u.module) == "core" and u.what.startswith("os.")]


PURE_PARTS = ("core", "agents", "paper")
PURE_MODULES = frozenset({f"{PKG}.resilience.trading_circuit_breaker"})


def _pure(module: str) -> bool:
    return part_of(module) in PURE_PARTS or module in PURE_MODULES


def pure_parts_read_no_wall_clock(g: Graph) -> list[str]:
    return [str(u) for u in g.uses if _pure(u.module) and u.module != f"{PKG}.core.clock" and u.what.endswith("()")]


def agents_paper_resilience_import_only_core(g: Graph) -> list[str]:
    rules = {
        "agents": outside({"core", "agents"}, PURE_MODULES),
        "paper": outside({"core", "paper"}),
        "resilience": outside({"core", "resilience"}),
    }
    return [str(i) for i in internal_imports(g, rules) if rules[part_of(i.importer)](i)]


def pure_parts_import_no_io(g: Graph) -> list[str]:
    forbidden = IO_LIBRARIES | PURE_EXTRA
    return [str(i) for i in g.imports if _pure(i.importer) and part_of(i.importer) != "core"
            and top_level(i.target) in forbidden]


def security_imports_only_core(g: Graph) -> list[str]:
    bad = outside({"core", "security"})
    return [str(i) for i in internal_imports(g, ["security"]) if bad(i)]


def venue_imports_only_below(g: Graph) -> list[str]:
    bad = outside({"core", "resilience", "bitunix"},
                  frozenset({f"{PKG}.security.credentials", f"{PKG}.security.secret"}))
    return [str(i) for i in internal_imports(g, ["bitunix"]) if bad(i)]


def data_imports_no_execution(g: Graph) -> list[str]:
    bad = outside({"core", "resilience", "bitunix", "data"})
    return [str(i) for i in internal_imports(g, ["data"]) if bad(i)]


def execution_imports_only_below(g: Graph) -> list[str]:
    bad = outside({"core", "paper", "resilience", "bitunix", "execution"})
    return [str(i) for i in internal_imports(g, ["execution"]) if bad(i)]


def mock_exchange_shares_no_client_code(g: Graph) -> list[str]:
    bad = outside({"mock_exchange", "core"})
    return [str(i) for i in internal_imports(g, ["mock_exchange"]) if bad(i)]


def only_the_cli_imports_service(g: Graph) -> list[str]:
    return [str(i) for i in g.imports if part_of(i.target) == "service" and ours(i.target)
            and part_of(i.importer) not in ("service", "cli", "__main__")]


@dataclass(frozen=True)
class Rule:
    check: Callable[[Graph], list[str]]
    why: str
    owner: str | None = None
    """Who is fixing it on main; None = holds today."""


RULES: dict[str, Rule] = {r.check.__name__: r for r in [
    Rule(nothing_imports_cli, "cli.py only parses and dispatches; whatever two commands share lives below it"),
    Rule(venue_internals_stay_inside, "outside bitunix/ import only `from laptop_agents.bitunix import ...` "
                                      "(its __all__), so the venue can be reshaped without touching callers"),
    Rule(core_imports_nothing_of_ours, "core/ is the pure centre: stdlib and pydantic only"),
    Rule(core_imports_no_io_library, "core/ does no network, process or thread work"),
    Rule(core_reads_no_config_file_or_environment, "loading config files and the environment belongs to the "
                                                   "shell (config_loader.py); core keeps the models"),
    Rule(pure_parts_read_no_wall_clock, "core/, agents/, paper/, the trading breaker take time from an injected "
                                        "clock (core/clock.py is that clock)"),
    Rule(agents_paper_resilience_import_only_core, "strategy, supervisor, paper broker and breakers depend on core "
                                                   "only (agents may consult the pure trading breaker)"),
    Rule(pure_parts_import_no_io, "agents/, paper/, the trading breaker: no files, env, sockets, sleeps, "
                                  "randomness or logging of their own"),
    Rule(security_imports_only_core, "security/ (secrets, credentials file, opt-in) imports no execution/, "
                                     "session/ or venue: the gate is wired from above"),
    Rule(venue_imports_only_below, "bitunix/ -> core, resilience, security's credential/secret types only; never "
                                   "data/, execution/, session/, service/, cli"),
    Rule(data_imports_no_execution, "data/ -> core, resilience, bitunix (the market-data side never reaches the "
                                    "order side)"),
    Rule(execution_imports_only_below, "execution/ -> core, paper, resilience, bitunix; the live gate (security/) "
                                       "and the workspace (session/) are wired by session/compose.py"),
    Rule(mock_exchange_shares_no_client_code, "the mock verifies and shapes messages on its own, so a client bug "
                                              "cannot be mirrored by the mock and hidden"),
    Rule(only_the_cli_imports_service, "service/ (la serve) is a top layer: session and below never import it"),
]}


@pytest.fixture(scope="module")
def graph() -> Graph:
    return build_graph(SRC)


def _param(name: str) -> object:
    rule = RULES[name]
    marks = [pytest.mark.xfail(strict=True, reason=f"being fixed by {rule.owner}")] if rule.owner else []
    return pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("name", [_param(n) for n in RULES])
def test_layering_rule_holds(graph: Graph, name: str) -> None:
    rule = RULES[name]
    offenders = rule.check(graph)
    assert not offenders, f"{name}: {rule.why}\n  " + "\n  ".join(offenders)


def test_the_graph_sees_all_of_src(graph: Graph) -> None:
    """Guards the guard: an empty or partial walk would make every rule pass."""
    assert f"{PKG}.session.async_session" in graph.modules
    assert f"{PKG}.bitunix" in graph.modules
    assert len(graph.imports) > 500
    importers = {part_of(i.importer) for i in graph.imports}
    assert {"core", "agents", "paper", "resilience", "security", "bitunix", "data", "execution", "session",
            "service", "mock_exchange", "cli"} <= importers


def test_every_rule_reports_a_planted_violation(tmp_path: Path) -> None:
    """Each rule fires on a tree that breaks it, in every import form: absolute, relative (``from ..x``),
    ``from package import submodule``, lazy inside a function, under TYPE_CHECKING, and
    ``importlib.import_module`` with a literal name."""
    files = {
        "__init__.py": "",
        "cli.py": "",
        "__main__.py": "from laptop_agents import cli\n",
        "service/__init__.py": "",
        "service/serve.py": "def f():\n    from laptop_agents import cli\n",
        "bitunix/__init__.py": "from laptop_agents.bitunix.rest import Client\n",
        "bitunix/rest.py": "from laptop_agents.execution import broker\nfrom laptop_agents.security import optin\n",
        "data/__init__.py": "",
        "data/feed.py": "from ..bitunix import rest\nfrom laptop_agents.execution.broker import B\n",
        "core/__init__.py": "",
        "core/conf.py": ("import os\nimport yaml\nimport aiohttp\nfrom datetime import datetime\n"
                         "from laptop_agents.session import x\nV = os.environ.get('A')\nT = datetime.now()\n"),
        "core/clock.py": "import time\nT = time.monotonic()\n",
        "agents/__init__.py": "",
        "agents/s.py": ("import time\nfrom laptop_agents.resilience.circuit import C\n"
                        "from laptop_agents.resilience.trading_circuit_breaker import B\nT = time.time()\n"),
        "resilience/__init__.py": "",
        "resilience/circuit.py": "from laptop_agents.data import feed\n",
        "resilience/trading_circuit_breaker.py": "",
        "security/__init__.py": "",
        "security/optin.py": ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                              "    from laptop_agents.bitunix import Client\n"),
        "execution/__init__.py": "",
        "execution/broker.py": "from laptop_agents.session.workspace import W\n",
        "mock_exchange/__init__.py": "",
        "mock_exchange/server.py": "from laptop_agents.bitunix.signing import sign\n",
        "session/__init__.py": "",
        "session/x.py": "from laptop_agents.service import serve\n",
        "session/y.py": "import importlib\nM = importlib.import_module('laptop_agents.cli')\n",
    }
    root = tmp_path / "src" / "laptop_agents"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    g = build_graph(root)
    expected = {
        "nothing_imports_cli": ["service.serve -> laptop_agents.cli", "session.y -> laptop_agents.cli"],
        "venue_internals_stay_inside": ["data.feed -> laptop_agents.bitunix.rest",
                                        "mock_exchange.server -> laptop_agents.bitunix.signing"],
        "core_imports_nothing_of_ours": ["core.conf -> laptop_agents.session"],
        "core_imports_no_io_library": ["core.conf -> aiohttp"],
        "core_reads_no_config_file_or_environment": ["core.conf -> yaml", "core.conf uses os.environ"],
        "pure_parts_read_no_wall_clock": ["core.conf uses datetime.now()", "agents.s uses time.time()"],
        "agents_paper_resilience_import_only_core": ["agents.s -> laptop_agents.resilience.circuit",
                                                     "resilience.circuit -> laptop_agents.data.feed"],
        "pure_parts_import_no_io": ["agents.s -> time"],
        "security_imports_only_core": ["security.optin -> laptop_agents.bitunix"],
        "venue_imports_only_below": ["bitunix.rest -> laptop_agents.execution.broker",
                                     "bitunix.rest -> laptop_agents.security.optin"],
        "data_imports_no_execution": ["data.feed -> laptop_agents.execution.broker"],
        "execution_imports_only_below": ["execution.broker -> laptop_agents.session.workspace"],
        "mock_exchange_shares_no_client_code": ["mock_exchange.server -> laptop_agents.bitunix.signing"],
        "only_the_cli_imports_service": ["session.x -> laptop_agents.service.serve"],
    }
    assert set(expected) == set(RULES)
    for name, wanted in expected.items():
        report = "\n".join(RULES[name].check(g))
        for item in wanted:
            assert item in report, f"{name} missed {item!r}; reported:\n{report}"
    # the honest exceptions stay quiet
    assert "__main__" not in "\n".join(nothing_imports_cli(g))
    assert "core.clock" not in "\n".join(pure_parts_read_no_wall_clock(g))
    assert "trading_circuit_breaker" not in "\n".join(agents_paper_resilience_import_only_core(g))
