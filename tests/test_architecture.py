"""Imports point one way: each package imports only its own rank or lower ones.

The ranks, from the bottom (ARCHITECTURE.md, "Layout and the import rule")::

    errors -> ids, params -> lakehouse -> catalogs, archive -> picking -> association
           -> analysis -> tasks, blocks -> flows -> service -> cli

Prefect is imported only by tasks, blocks, flows, service and cli; no module imports another
module's ``_private`` name. ``[tool.ruff.lint.flake8-tidy-imports]`` in ``pyproject.toml`` bans
Prefect in the other packages, so the editor gives the same answer as these tests.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "quakelake"

# Package (or top-level module) of quakelake -> rank. A module may import modules of its own
# package and of packages with a lower or equal rank; equal ranks must not form a cycle
# (test_no_import_cycles) and blocks never import tasks.
RANKS = {
    "errors": 0,
    "exports": 0,  # the lazy re-export helper of the packages' __init__
    "ids": 1,
    "params": 1,
    "config": 1,  # RunConfig: the parameter models of every stage together
    "lakehouse": 2,
    "catalogs": 3,
    "archive": 3,
    "picking": 4,
    "association": 5,
    "analysis": 6,
    "tasks": 7,
    "blocks": 7,
    "flows": 8,
    "service": 9,
    "cli": 10,
}
PREFECT_PACKAGES = {"tasks", "blocks", "flows", "service", "cli"}


def _module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(module: str) -> str:
    """Return the ranked package of ``quakelake.<package>[.<module>...]``."""
    return module.split(".")[1] if "." in module else ""


def _imports(path: Path) -> list[ast.ImportFrom | ast.Import]:
    tree = ast.parse(path.read_text())
    return [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom | ast.Import)]


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    """Return every quakelake module's quakelake imports, those inside functions included."""
    modules = {_module_name(p, src): p for p in src.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges: set[str] = set()
        for node in _imports(path):
            if isinstance(node, ast.ImportFrom):
                if node.level or not (node.module or "").startswith("quakelake"):
                    continue
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    edges.add(sub if sub in modules else node.module or "")
            else:
                edges |= {a.name for a in node.names if a.name.startswith("quakelake.")}
        graph[name] = {e for e in edges if e in modules and e not in (name, "quakelake")}
    return graph


def unranked(src: Path = SRC) -> set[str]:
    """Return the modules whose package has no rank (a new package must be placed first)."""
    return {m for m in import_graph(src) if m != "quakelake" and package_of(m) not in RANKS}


def rank_violations(src: Path = SRC) -> set[tuple[str, str]]:
    """Return the imports ``(a, b)`` where ``a`` imports a module of a higher rank."""
    graph = import_graph(src)
    bad = set()
    for a, targets in graph.items():
        for b in targets:
            pa, pb = package_of(a), package_of(b)
            if pa in RANKS and pb in RANKS and RANKS[pb] > RANKS[pa]:
                bad.add((a, b))
            if pa == "blocks" and pb == "tasks":
                bad.add((a, b))
    return bad


def prefect_imports(src: Path = SRC) -> set[str]:
    """Return the modules outside tasks, blocks, flows, service and cli that import Prefect."""
    bad = set()
    for path in src.rglob("*.py"):
        module = _module_name(path, src)
        if package_of(module) in PREFECT_PACKAGES:
            continue
        for node in _imports(path):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            if any(n == "prefect" or n.startswith("prefect.") for n in names):
                bad.add(module)
    return bad


def private_imports(src: Path = SRC) -> set[tuple[str, str]]:
    """Return ``(module, name)`` where a module imports another module's ``_private`` name."""
    bad = set()
    for path in src.rglob("*.py"):
        module = _module_name(path, src)
        for node in _imports(path):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("quakelake"):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        bad.add((module, f"{node.module}.{alias.name}"))
    return bad


def import_cycles(src: Path = SRC) -> list[list[str]]:
    graph = import_graph(src)
    cycles: list[list[str]] = []
    state: dict[str, str] = {}

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
    return cycles


# ------------------------------------------------------------------------------------ the tree
def test_every_module_lies_in_a_ranked_package():
    graph = import_graph()
    assert {
        "quakelake.cli",
        "quakelake.flows.pick",
        "quakelake.tasks.pick",
        "quakelake.picking.models",
        "quakelake.association.plan",
        "quakelake.analysis.evaluation",
        "quakelake.archive.waveforms",
        "quakelake.lakehouse.catalog",
        "quakelake.ids",
        "quakelake.errors",
    } <= set(graph)
    assert unranked() == set()
    # No science module lies flat in src/quakelake any more: only the base modules do.
    assert {p.stem for p in SRC.glob("*.py")} == {"__init__", "errors", "exports", "ids", "config"}


def test_imports_point_down_the_ranks():
    assert rank_violations() == set()


def test_prefect_only_in_tasks_blocks_flows_service_and_cli():
    assert prefect_imports() == set()


def test_no_module_imports_another_modules_private_name():
    assert private_imports() == set()


def test_no_import_cycles():
    """E.g. cli -> demo -> cli: every module can be understood (and imported) after what it uses."""
    assert import_cycles() == []


def test_the_checks_fail_on_planted_violations(tmp_path):
    """The checks above are not vacuous: each planted violation is reported, and only those."""
    fake = tmp_path / "quakelake"
    shutil.copytree(SRC, fake, ignore=shutil.ignore_patterns("__pycache__"))

    def plant(relative: str, line: str) -> None:
        path = fake / relative
        path.write_text(path.read_text() + f"\n{line}\n")

    plant("archive/sds.py", "from quakelake.picking.models import load_model")  # 3 -> 4
    plant("lakehouse/schema.py", "from quakelake.flows.pick import pick_phases")  # 2 -> 8
    plant("blocks/lake.py", "from quakelake.tasks.retry import transient_only")  # blocks -> tasks
    plant("picking/weights.py", "import prefect")
    plant("association/velocity.py", "from prefect.logging import get_run_logger")
    plant("analysis/report.py", "from quakelake.analysis.evaluation import _utc")
    plant("cli/demo.py", "from quakelake.cli import main")  # demo -> cli -> commands -> demo
    (fake / "newstage").mkdir()
    (fake / "newstage" / "__init__.py").write_text("")

    assert rank_violations(fake) == {
        ("quakelake.archive.sds", "quakelake.picking.models"),
        ("quakelake.lakehouse.schema", "quakelake.flows.pick"),
        ("quakelake.blocks.lake", "quakelake.tasks.retry"),
    }
    assert prefect_imports(fake) == {"quakelake.picking.weights", "quakelake.association.velocity"}
    assert private_imports(fake) == {
        ("quakelake.analysis.report", "quakelake.analysis.evaluation._utc")
    }
    assert any("quakelake.cli.demo" in c and "quakelake.cli" in c for c in import_cycles(fake))
    assert unranked(fake) == {"quakelake.newstage"}


# ------------------------------------------------------------------------- what loads at run time
def test_science_and_lakehouse_packages_do_not_load_prefect():
    """Importing every module below tasks loads no Prefect, not even through a dependency."""
    modules = sorted(
        m
        for m in import_graph()
        if m != "quakelake" and RANKS.get(package_of(m), 99) < RANKS["tasks"]
    )
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        "print(sorted(m for m in sys.modules if m == 'prefect' or m.startswith('prefect.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert len(modules) >= 60
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


def test_a_package_names_its_public_functions_without_loading_them():
    """``from quakelake.picking import load_model`` works; importing the package loads no model code."""
    code = (
        "import sys\n"
        "import quakelake.picking, quakelake.association, quakelake.archive, quakelake.analysis\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pandas', 'torch', 'duckdb')))\n"
        "from quakelake.picking import load_model\n"
        "from quakelake.association import associate\n"
        "from quakelake.archive import scan_archive\n"
        "from quakelake.lakehouse import atomic_write\n"
        "print(load_model.__module__, associate.__name__, scan_archive.__module__, atomic_write.__module__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded, names = out.stdout.splitlines()
    assert loaded == "[]"
    # ``associate`` is the submodule (a submodule's name is never shadowed by a re-export).
    assert names == (
        "quakelake.picking.models quakelake.association.associate "
        "quakelake.archive.waveforms quakelake.lakehouse.atomic"
    )


def test_ruff_bans_prefect_outside_the_prefect_packages():
    """The editor's answer (ruff TID251) equals the test's: Prefect in picking is an error."""
    root = Path(__file__).resolve().parents[1]
    code = "from prefect import flow\nfrom prefect.tasks import task\n\nprint(flow, task)\n"

    def ruff(filename: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise"]
            + ["--stdin-filename", filename, "-"],
            input=code,
            capture_output=True,
            text=True,
            cwd=root,
        )

    science = ruff("src/quakelake/picking/planted.py")
    assert science.returncode == 1
    assert [
        line.split(": ")[1].split()[0] for line in science.stdout.splitlines() if ": TID" in line
    ] == [
        "TID251",
        "TID251",
    ]
    for allowed in ("flows", "tasks", "blocks", "service", "cli"):
        out = ruff(f"src/quakelake/{allowed}/planted.py")
        assert out.returncode == 0, (allowed, out.stdout)
