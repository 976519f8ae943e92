"""What the flow process spends to learn which model x weights it can pick with.

A Leonardo login node allows ~10 CPU-minutes per process, and the flow process may live there.
Before: the pick flow loaded every model x weights (``picking.available_specs``) just to check
it exists. Now: it lists the SeisBench cache (``flows.pick.cached_specs``) and the workers load.
Each variant runs in a fresh interpreter with the same modules imported, on a copy of the shared
weights cache; the script prints the CPU seconds of the check alone and their ratio.

    .venv/bin/python benchmarks/weights_check.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("QUAKELAKE_WEIGHTS", ROOT.parent / "shared" / "seisbench_cache"))
MODELS = ["PhaseNet", "EQTransformer"]
WEIGHTS = ["original", "volpick", "conservative", "instance"]

SETUP = (
    "import time; from quakelake import picking; from quakelake.flows.pick import cached_specs; "
    "from quakelake.params import PickParams; "
    f"p = PickParams(models={MODELS}, weights={WEIGHTS}); t0 = time.process_time(); "
)
CODE = {
    "load every model (before)": SETUP
    + ("s, w = picking.available_specs(p, 'cpu'); print(len(s), len(w), time.process_time() - t0)"),
    "list the cache (now)": SETUP
    + ("s, w = cached_specs(p); print(len(s), len(w), time.process_time() - t0)"),
}


def run(code: str, env: dict[str, str]) -> tuple[float, int, int]:
    """Return the CPU seconds of the check alone (imports excluded), combinations, missing."""
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    return float(out[2]), int(out[0]), int(out[1])


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(CACHE, Path(tmp) / "seisbench")
        env = {
            **os.environ,
            "SEISBENCH_CACHE_ROOT": str(Path(tmp) / "seisbench"),
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
        }
        print(f"{len(MODELS)} models x {len(WEIGHTS)} weights")
        figures = {}
        for name, code in CODE.items():
            cpu, found, missing = run(code, env)
            figures[name] = cpu
            print(f"{name:<28} CPU {cpu:7.3f} s  ({found} combinations, {missing} missing)")
        before, now = figures.values()
        print(f"CPU ratio before/now: {before / max(now, 1e-6):.0f}x")


if __name__ == "__main__":
    main()
