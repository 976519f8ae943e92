"""End-to-end station-days per hour of the pick flow on 1 vs 2 Dask worker processes.

Same data, same weights, same flow; each configuration gets a fresh lake so no unit is
skipped. Prints one line per configuration and the ratio (2 workers / 1 worker).

    .venv/bin/python benchmarks/scaleout.py [--archive DIR] [--repeat N] [--workers 1 2]

The default archive is the Salton Sea set (16 station-days of 180 s each, PhaseNet original
weights); ``--repeat`` lists it several times as separate archives copies to make the run longer.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ARCHIVE = ROOT.parent / "shared" / "data" / "phasenet_saltonsea_20201001" / "mseed"


def prepare_archive(source: Path, repeat: int, into: Path) -> Path:
    """Return an archive holding ``repeat`` copies of ``source`` as distinct station codes."""
    from obspy import read

    if repeat <= 1:
        return source
    into.mkdir(parents=True)
    for k in range(repeat):
        for path in sorted(source.glob("*.mseed")):
            st = read(str(path))
            for tr in st:
                tr.stats.station = (tr.stats.station[:3] + str(k))[:5]
            st.write(str(into / f"{k}.{path.name}"), format="MSEED")
    return into


def run(archive: Path, workers: int, lake: Path) -> tuple[float, int]:
    """Run the pick flow on ``workers`` Dask worker processes; return (seconds, units done)."""
    from quakelake.compute import ComputeSettings
    from quakelake.config import PickParams
    from quakelake.flows.pick import pick_phases
    from quakelake.flows.runners import make_task_runner

    runner = make_task_runner(ComputeSettings(runner="dask-local", workers=workers))
    params = PickParams(models=["PhaseNet"], weights=["original"], device="cpu")
    t0 = time.perf_counter()
    summary = pick_phases.with_options(task_runner=runner)(archive, lake, pick=params)
    return time.perf_counter() - t0, int(summary["done"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, default=DEFAULT_ARCHIVE)
    parser.add_argument("--repeat", type=int, default=1, help="copies of the archive (more units)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="quakelake-scaleout-"))
    os.environ.setdefault("PREFECT_HOME", str(work / "prefect"))
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from prefect.testing.utilities import prefect_test_harness

    try:
        archive = prepare_archive(args.archive, args.repeat, work / "archive")
        rates = {}
        with prefect_test_harness(server_startup_timeout=120):
            for n in args.workers:
                seconds, done = run(archive, n, work / f"lake-{n}")
                rates[n] = done / seconds * 3600
                print(f"{n} worker(s): {done} station-days in {seconds:.1f} s "
                      f"= {rates[n]:.0f} station-days/hour (includes cluster start)")
        if len(rates) >= 2:
            a, b = args.workers[0], args.workers[-1]
            print(f"ratio {b} vs {a} workers: {rates[b] / rates[a]:.2f}x "
                  f"(cores on this machine: {os.cpu_count()})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
