"""Peak memory of one picking worker over consecutive 24-h station-days: engine vs SeisBench classify.

Each configuration runs in its own fresh process (one worker, as a Dask worker would be) that
picks the station-days one after the other through the pick task's body
(``quakelake.tasks.pick.pick_one``: read_station_day, picking, day filter, atomic
Parquet write into a lake) and samples its resident set size after every unit. Prints, per
configuration, the RSS after the first unit, the peak, the last and the growth from unit 5 to
the end (flat = no leak), plus the per-unit samples.

    .venv/bin/python benchmarks/memory.py [--days 30] [--baseline-days 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from daydata import FIRST_DAY, MESETAS, build_day_archive  # noqa: E402


def worker(archive: Path, lake: Path, days: int, engine: str, threads: int) -> None:
    """Pick ``days`` station-days in this process; print one JSON line per unit with the RSS."""
    import resource

    import psutil
    import torch

    torch.set_num_threads(threads)
    from quakelake.archive import waveforms
    from quakelake.config import PickParams, StationSelection, TimeWindow
    from quakelake.picking.models import ModelSpec
    from quakelake.tasks.pick import pick_one

    window = TimeWindow(start=FIRST_DAY, end=FIRST_DAY + dt.timedelta(days=days - 1))
    units = waveforms.station_days(waveforms.scan_archive(archive).index, window)
    params = PickParams(engine=engine, device="cpu")
    proc = psutil.Process()
    for k, unit in enumerate(units):
        result = pick_one(
            unit,
            ModelSpec("PhaseNet", "original"),
            params,
            StationSelection(),
            lake,
            "memory",
            force=True,
        )
        print(
            json.dumps(
                {
                    "unit": k,
                    "key": unit.key,
                    "status": result.status,
                    "rows": result.rows,
                    "seconds": round(result.seconds, 2),
                    "rss_mb": proc.memory_info().rss / 2**20,
                    "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                }
            ),
            flush=True,
        )


def run(archive: Path, lake: Path, days: int, engine: str, threads: int) -> list[dict]:
    """Run :func:`worker` in a fresh interpreter; return its per-unit samples."""
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        str(archive),
        str(lake),
        str(days),
        engine,
        str(threads),
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        a = sys.argv[2:]
        worker(Path(a[0]), Path(a[1]), int(a[2]), a[3], int(a[4]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--days", type=int, default=30, help="consecutive station-days for the engine"
    )
    parser.add_argument(
        "--baseline-days", type=int, default=5, help="station-days for SeisBench classify"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the worker")
    parser.add_argument("--source", type=Path, default=MESETAS)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="quakelake-memory-"))
    root = Path(__file__).resolve().parents[1]
    shared = Path(os.environ.get("QUAKELAKE_SHARED", root.parent / "shared"))
    os.environ.setdefault("PREFECT_HOME", str(tmp / "prefect"))
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("SEISBENCH_CACHE_ROOT", str(tmp / "seisbench"))
    if not Path(os.environ["SEISBENCH_CACHE_ROOT"]).exists():
        shutil.copytree(shared / "seisbench_cache", os.environ["SEISBENCH_CACHE_ROOT"])
    try:
        archive = build_day_archive(
            tmp / "archive", max(args.days, args.baseline_days), args.source, stations=1
        )
        for engine, days in (("seisbench", args.baseline_days), ("auto", args.days)):
            if days <= 0:
                continue
            samples = run(archive, tmp / f"lake-{engine}", days, engine, args.threads)
            rss = [s["rss_mb"] for s in samples]
            peak = max(s["peak_mb"] for s in samples)
            tail = rss[min(4, len(rss) - 1) :]
            label = "SeisBench classify" if engine == "seisbench" else "QuakeLake engine"
            print(
                f"{label:<20} {len(samples)} station-days ({samples[0]['key'].rsplit('.', 1)[0]}), "
                f"torch threads {args.threads}: RSS after unit 1 {rss[0]:.0f} MB, peak {peak:.0f} MB, "
                f"last {rss[-1]:.0f} MB, growth unit 5..end {tail[-1] - tail[0]:+.0f} MB, "
                f"{sum(s['seconds'] for s in samples) / len(samples):.1f} s/unit"
            )
            print("  RSS per unit (MB): " + " ".join(f"{r:.0f}" for r in rss))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
