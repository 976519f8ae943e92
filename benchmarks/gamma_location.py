"""GaMMA's location solves on the Salton Sea day: this tree's ``calc_loc`` against a baseline's.

One process: ``quakelake.association.associate(picks, stations, GammaConfig())`` on the 180-s
Salton Sea PhaseNet picks (175 picks, ~1,700 L-BFGS-B location solves), with
``quakelake.association.gamma_location.calc_loc`` taken from this tree ("new") or from the
baseline's ``gamma_location.py`` ("old": a git revision, ``main`` by default, or a source tree),
after one warm-up association each (numba compiled, eikonal tables cached). The two alternate
``--repeat`` times; printed: the median wall and CPU seconds of each, the ratio, and whether
the events and assignments are the same (they must be: the solves are bit-equal). Then the
location solves of one association alone (recorded, then solved by each, alternating): CPU.

Usage::

    PYTHONPATH=src python benchmarks/gamma_location.py [--baseline-rev main | --baseline-src OLD/src]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pandas as pd  # noqa: E402

from quakelake.archive.stations import read_stations  # noqa: E402
from quakelake.association import associate as asc  # noqa: E402
from quakelake.association import gamma_location  # noqa: E402
from quakelake.params.association import GammaConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("QUAKELAKE_SHARED", ROOT.parent / "shared"))
SALTON = SHARED / "data" / "phasenet_saltonsea_20201001"
MODULE = "src/quakelake/association/gamma_location.py"


def baseline_module(rev: str, src: Path | None):
    """Import the baseline's ``gamma_location.py`` (from ``src`` or git ``rev``) as its own module."""
    if src is not None:
        path = src / "quakelake" / "association" / "gamma_location.py"
    else:
        text = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{rev}:{MODULE}"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        path = Path(tempfile.mkdtemp()) / "gamma_location_baseline.py"
        path.write_text(text)
    spec = importlib.util.spec_from_file_location("gamma_location_baseline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-rev", default="main", help="git revision of the baseline")
    parser.add_argument("--baseline-src", type=Path, help="a baseline source tree instead")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    picks = pd.read_csv(SALTON / "DERIVED_phasenet_ref_picks_first180s.csv")
    stations = read_stations(SALTON / "stations.xml")
    old = baseline_module(args.baseline_rev, args.baseline_src)
    variants = {"old": old.calc_loc, "new": gamma_location.calc_loc}
    seconds: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    results = {}

    def run(name: str) -> tuple[float, float]:
        gamma_location.calc_loc = variants[name]  # what faster_locations installs in GaMMA
        wall, cpu = time.perf_counter(), time.process_time()
        res = asc.associate(picks, stations, GammaConfig())
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        results[name] = res
        return wall, cpu

    for name in variants:  # warm-up: numba compiles, eikonal tables cached
        run(name)
    for _ in range(args.repeat):
        for name in variants:
            seconds[name].append(run(name))
    gamma_location.calc_loc = variants["new"]

    # the location solves alone: each variant solves every recorded solve of one association
    solves: list[tuple[tuple, dict]] = []

    def kept(*a, **k):
        solves.append((a, k))
        return variants["new"](*a, **k)

    gamma_location.calc_loc = kept
    asc.associate(picks, stations, GammaConfig())
    gamma_location.calc_loc = variants["new"]
    alone: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeat):
        for name, calc_loc in variants.items():
            cpu = time.process_time()
            for a, k in solves:
                calc_loc(*a, **k)
            alone[name].append(time.process_time() - cpu)

    same = all(
        getattr(results["old"], part).equals(getattr(results["new"], part))
        for part in ("events", "assignments")
    )
    print(f"\nload (1 min): {os.getloadavg()[0]:.2f}; {args.repeat} interleaved runs each, median")
    medians = {}
    for name, runs in seconds.items():
        medians[name] = (
            statistics.median(w for w, _ in runs),
            statistics.median(c for _, c in runs),
        )
        print(f"{name}: wall {medians[name][0]:.3f} s, cpu {medians[name][1]:.3f} s")
    print(
        f"ratio old/new: wall {medians['old'][0] / medians['new'][0]:.2f}, "
        f"cpu {medians['old'][1] / medians['new'][1]:.2f}; "
        f"events and assignments identical: {same}"
    )
    solo = {name: statistics.median(runs) for name, runs in alone.items()}
    print(
        f"the {len(solves)} calc_loc solves alone, cpu: old {solo['old']:.3f} s, "
        f"new {solo['new']:.3f} s, ratio {solo['old'] / solo['new']:.2f}"
    )
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
