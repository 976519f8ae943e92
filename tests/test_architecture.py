"""Imports point one way: the science layer and the lakehouse never import Prefect."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "quakelake"
ENTRY_POINTS = {"cli", "demo", "__init__"}


def test_science_and_lakehouse_modules_do_not_import_prefect():
    modules = [f"quakelake.{p.stem}" for p in SRC.glob("*.py") if p.stem not in ENTRY_POINTS]
    modules += ["quakelake.lakehouse"]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        "print(sorted(m for m in sys.modules if m == 'prefect' or m.startswith('prefect.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert len(modules) >= 12
    assert out.stdout.strip() == "[]", f"science code pulled in Prefect: {out.stdout[:300]}"
