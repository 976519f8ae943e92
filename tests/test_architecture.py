"""Imports point one way: the science layer and the lakehouse never import Prefect."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "quakelake"
ENTRY_POINTS = {"cli", "demo", "__init__"}


def test_science_and_lakehouse_modules_do_not_import_prefect():
    modules = [f"quakelake.{p.stem}" for p in SRC.glob("*.py") if p.stem not in ENTRY_POINTS]
    modules += ["quakelake.lakehouse", "quakelake.params", "quakelake.catalogs"]
    for package in ("params", "catalogs"):
        modules += [f"quakelake.{package}.{p.stem}" for p in (SRC / package).glob("[a-z]*.py")]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        "print(sorted(m for m in sys.modules if m == 'prefect' or m.startswith('prefect.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert len(modules) >= 12
    assert out.stdout.strip() == "[]", f"science code pulled in Prefect: {out.stdout[:300]}"


def test_the_configuration_imports_no_science_stack():
    """Building a run's settings (every command, --help and bad input included) stays cheap.

    ``quakelake.config`` holds parameter models only: the science modules (and with them ObsPy,
    SciPy, pyproj, torch, pandas) load when a stage runs, not when options are checked.
    """
    heavy = ("obspy", "scipy", "pyproj", "torch", "seisbench", "pandas", "prefect", "duckdb")
    code = (
        "import sys\n"
        "from quakelake.config import RunConfig, build_config\n"
        "cfg = build_config(None, {'associate': {'associator': 'pyocto'}, 'download': {}})\n"
        "assert cfg.associate.associator == 'pyocto' and cfg.download.clients\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(heavy)!r}))\n"
        "print(sorted(m for m in sys.modules if m.startswith('quakelake.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    stack, ours = out.stdout.splitlines()
    assert stack == "[]"
    loaded = ast.literal_eval(ours)
    assert all(
        m.startswith(("quakelake.config", "quakelake.errors", "quakelake.params")) for m in loaded
    )


# ------------------------------------------------------------------------------ the layer graph
# Rank of each layer: a module may import its own layer or lower ones, never higher ones.
LAYERS = {
    "entry": 6,  # cli, demo, server, warm: the command line and its lasting processes
    "flows": 5,
    "tasks": 4,
    "blocks": 4,  # tasks may load blocks (secrets); blocks never import tasks or flows
    "science": 2,
    "lakehouse": 1,
    "base": 0,  # errors, params (and params.*), config: every layer may use them
}
ENTRY = {
    "quakelake.cli",
    "quakelake.cli.demo",
    "quakelake.service.server",
    "quakelake.service.warm",
}
BASE = {"quakelake.errors", "quakelake.params", "quakelake.config"}  # and quakelake.params.*

# Known edges against the design, each with the refactor that removes it (issue 10, section 3).
# The test fails on any new violation *and* on an entry here that no longer exists.
KNOWN_VIOLATIONS: set[tuple[str, str]] = set()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> str:
    if module in ENTRY or module.startswith("quakelake.cli."):
        return "entry"
    if module in BASE or module.startswith("quakelake.params."):
        return "base"
    sub = module.split(".")[1] if "." in module else ""
    return sub if sub in ("flows", "tasks", "blocks", "lakehouse") else "science"


def import_graph() -> dict[str, set[str]]:
    """Return every quakelake module's quakelake imports, those inside functions included."""
    import ast

    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.ImportFrom)
                and node.level == 0
                and (node.module or "").startswith("quakelake")
            ):
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    edges.add(sub if sub in modules else node.module)
            elif isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name.startswith("quakelake.")}
        graph[name] = {e for e in edges if e in modules and e not in (name, "quakelake")}
    return graph


def test_imports_point_down_the_layers():
    graph = import_graph()
    assert {
        "quakelake.cli",
        "quakelake.flows.pick",
        "quakelake.tasks.pick",
        "quakelake.picking.models",
        "quakelake.lakehouse.catalog",
        "quakelake.errors",
    } <= set(graph)
    upward = {
        (a, b)
        for a, targets in graph.items()
        for b in targets
        if LAYERS[_layer(b)] > LAYERS[_layer(a)]
    }
    assert upward - KNOWN_VIOLATIONS == set(), "imports against the layer order"
    assert KNOWN_VIOLATIONS - upward == set(), "fixed: remove these from KNOWN_VIOLATIONS"
    blocks_to_tasks = {
        (a, b)
        for a, targets in graph.items()
        for b in targets
        if _layer(a) == "blocks" and _layer(b) == "tasks"
    }
    assert blocks_to_tasks == set()


def test_no_import_cycles():
    """E.g. cli -> demo -> cli: every module can be understood (and imported) after what it uses."""
    graph = import_graph()
    cycles, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(path[path.index(nxt) :] + [nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_the_graph_sees_a_cycle_and_an_upward_import(tmp_path, monkeypatch):
    """The checks above are not vacuous: a planted demo -> cli import and lakehouse -> flows import show up."""
    import shutil

    fake = tmp_path / "quakelake"
    shutil.copytree(SRC, fake, ignore=shutil.ignore_patterns("__pycache__"))
    (fake / "demo.py").write_text(
        (fake / "demo.py").read_text() + "\nfrom quakelake.cli import main\n"
    )
    (fake / "lakehouse" / "schema.py").write_text(
        (fake / "lakehouse" / "schema.py").read_text()
        + "\nfrom quakelake.flows.pick import pick_phases\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "SRC", fake)
    graph = import_graph()
    assert "quakelake.cli" in graph["quakelake.cli.demo"]  # demo -> cli -> cli.commands -> demo
    assert "quakelake.cli.commands" in graph["quakelake.cli"]
    assert "quakelake.cli.demo" in graph["quakelake.cli.commands"]
    assert LAYERS[_layer("quakelake.flows.pick")] > LAYERS[_layer("quakelake.lakehouse.schema")]
    assert "quakelake.flows.pick" in graph["quakelake.lakehouse.schema"]
