"""End-to-end station-days per hour of the pick flow on 1 vs 2 Dask worker processes.

Same data, same weights, same flow; each configuration gets a fresh lake so no unit is
skipped. Each worker runs one task at a time with torch, ONNX Runtime and BLAS capped at one
thread (``ComputeSettings.threads_per_worker``), so two workers use the two cores without
oversubscribing them. Prints one line per configuration and the ratio (2 workers / 1 worker).

    .venv/bin/python benchmarks/scaleout.py                     # full 24-h days (Mesetas-built), 4 units
    .venv/bin/python benchmarks/scaleout.py --stations 4 --days 2 --engine seisbench
    .venv/bin/python benchmarks/scaleout.py --archive DIR [--repeat N]   # any archive as it is

By default the units are whole 24-h station-days built from the real Mesetas recordings
(:mod:`daydata`); ``--archive`` uses a folder as it is (``--repeat`` lists it several times as
separate station codes).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from daydata import FIRST_DAY, MESETAS, build_day_archive  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


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


def _matmul_seconds(_: int = 0) -> float:
    """Seconds of a fixed in-cache float32 matmul loop on one thread (the core's own speed)."""
    import numpy as np

    a = np.random.default_rng(0).random((128, 128), dtype=np.float32)
    t0 = time.perf_counter()
    for _ in range(15000):
        a @ a
    return time.perf_counter() - t0


def machine_ceiling() -> float:
    """Return the throughput of 2 one-thread processes over 1 on this machine, measured now.

    A compute-bound loop that needs no memory traffic: on 2 free physical cores it gives ~2.0x;
    vCPUs that share a physical core (hyper-threads of the host) or a busy host give less, and
    no scale-out of real work can beat it.
    """
    import multiprocessing as mp

    saved = dict(os.environ)
    os.environ.update({"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})
    try:
        with mp.get_context("spawn").Pool(2) as pool:
            pool.map(_matmul_seconds, [0, 0])  # start-up and imports out of the timing
            alone = pool.apply(_matmul_seconds)
            both = max(pool.map(_matmul_seconds, [0, 1]))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return 2 * alone / both


def unit_times(lake: Path) -> tuple[float, float]:
    """Return (span, busy) seconds of the lake's pick units from its ledger.

    span: first unit's start to last unit's end (each unit's start is its ``finished`` time less
    its ``seconds``); busy: the units' seconds summed. The run's total less the span is what the
    flow spends before the first unit starts and after the last one ends (cluster start, scan,
    the last commits); the first unit of each worker includes its model load.
    """
    from quakelake.lakehouse import Lake

    units = Lake(lake).read("units")
    units = units[(units["stage"] == "pick") & (units["status"] == "done")]
    import pandas as pd

    epoch = pd.Timestamp(0, tz="UTC")
    finished = (pd.to_datetime(units["finished"], utc=True) - epoch).dt.total_seconds()
    started = finished - units["seconds"]
    return float(finished.max() - started.min()), float(units["seconds"].sum())


def run(archive: Path, workers: int, lake: Path, engine: str, window=None) -> tuple[float, int]:
    """Run the pick flow on ``workers`` Dask worker processes; return (seconds, units done)."""
    from quakelake.config import PickParams, TimeWindow
    from quakelake.flows.compute import ComputeSettings
    from quakelake.flows.pick import pick_phases
    from quakelake.flows.runners import make_task_runner

    runner = make_task_runner(
        ComputeSettings(runner="dask-local", workers=workers, threads_per_worker=1)
    )
    params = PickParams(models=["PhaseNet"], weights=["original"], device="cpu", engine=engine)
    t0 = time.perf_counter()
    summary = pick_phases.with_options(task_runner=runner)(
        archive, lake, window=window or TimeWindow(), pick=params
    )
    return time.perf_counter() - t0, int(summary["done"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, default=None, help="an archive to use as it is")
    parser.add_argument("--repeat", type=int, default=1, help="copies of --archive (more units)")
    parser.add_argument("--stations", type=int, default=2, help="built archive: Mesetas stations")
    parser.add_argument("--days", type=int, default=2, help="built archive: 24-h days per station")
    parser.add_argument("--engine", default="auto", help="PickParams.engine (auto or seisbench)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="quakelake-scaleout-"))
    os.environ.setdefault("PREFECT_HOME", str(work / "prefect"))
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # as the CLI does
    from prefect.testing.utilities import prefect_test_harness

    try:
        window = None
        if args.archive is None:
            import datetime as dt

            from quakelake.config import TimeWindow

            archive = build_day_archive(
                work / "archive", args.days, MESETAS, stations=args.stations
            )
            window = TimeWindow(start=FIRST_DAY, end=FIRST_DAY + dt.timedelta(days=args.days - 1))
            print(
                f"data: {args.stations} Mesetas-built stations x {args.days} full days, engine {args.engine}"
            )
        else:
            archive = prepare_archive(args.archive, args.repeat, work / "archive")
        rates, steady = {}, {}
        os.environ.setdefault("SEISBENCH_CACHE_ROOT", str(work / "seisbench"))
        if not Path(os.environ["SEISBENCH_CACHE_ROOT"]).exists():
            shutil.copytree(
                ROOT.parent / "shared" / "seisbench_cache", os.environ["SEISBENCH_CACHE_ROOT"]
            )
        print(
            "machine ceiling (2 one-thread matmul processes / 1) before the runs: "
            f"{machine_ceiling():.2f}x"
        )
        with prefect_test_harness(server_startup_timeout=180):
            for n in args.workers:
                seconds, done = run(archive, n, work / f"lake-{n}", args.engine, window)
                rates[n] = done / seconds * 3600
                span, busy = unit_times(work / f"lake-{n}")
                steady[n] = done / span * 3600
                print(
                    f"{n} worker(s): {done} station-days in {seconds:.1f} s "
                    f"= {rates[n]:.0f} station-days/hour (includes cluster start); "
                    f"units from first start to last end {span:.1f} s = {steady[n]:.0f} "
                    f"station-days/hour, {busy / done:.1f} s per unit, outside the units "
                    f"{seconds - span:.1f} s"
                )
        print(f"machine ceiling after the runs: {machine_ceiling():.2f}x")
        if len(rates) >= 2:
            a, b = args.workers[0], args.workers[-1]
            print(
                f"ratio {b} vs {a} workers: {rates[b] / rates[a]:.2f}x end to end, "
                f"{steady[b] / steady[a]:.2f}x while units run "
                f"(cores on this machine: {os.cpu_count()})"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
