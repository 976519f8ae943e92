"""Latency of ``quakelake serve`` (fdsnws-event over HTTP) on synthetic lakes of 10^4 and 10^6 events.

1. Writes a synthetic catalogue straight into a lake through the lakehouse writer
   (``stage_table`` + ``Lake.commit``, one events and one assignments file per UTC day, as the
   associate task partitions them): ``--events`` events over ``--days`` days, uniform in a
   2 x 2 degree box and 0-30 km depth, Gutenberg-Richter magnitudes (b = 1, M >= 0), six
   assigned picks per event.
2. Serves it with uvicorn on 127.0.0.1 (the app ``quakelake serve`` runs) and times typical
   requests end to end (urllib, the answer read in full), ``--repeat`` times each after one
   warm-up, each repetition on another day / month / event:

   * ``day``: one UTC day, text format;
   * ``month M>=2``: 30 days, ``minmagnitude=2``, text;
   * ``M>=4 QuakeML``: the whole lake, ``minmagnitude=4``, QuakeML;
   * ``event+arrivals``: one ``eventid`` with ``includearrivals=true``, QuakeML;
   * ``asofdate day``: the day query at the snapshot before the last commit;
   * ``page poll``: ``/api/state`` (what the page asks every 3 s).

   Prints p50/p95 per request and lake size.

    .venv/bin/python benchmarks/serve.py                          # 10^4 and 10^6 events
    .venv/bin/python benchmarks/serve.py --sizes 1e4 --repeat 50
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
DAY0 = dt.date(2020, 1, 1)


def synthetic_lake(root: Path, n_events: int, days: int, seed: int = 0) -> list[str]:
    """Write ``n_events`` events (and six assignments each) over ``days`` days; return some ids."""
    from quakelake.lakehouse import Lake, stage_table

    rng = np.random.default_rng(seed)
    per_day = np.full(days, n_events // days)
    per_day[: n_events - per_day.sum()] += 1
    lake = Lake(root)
    changes = []
    sample: list[str] = []
    for d, n in enumerate(per_day):
        day = DAY0 + dt.timedelta(days=d)
        t0 = pd.Timestamp(day, tz="UTC")
        seconds = np.sort(rng.uniform(0, 86400, n))
        ids = [f"synth-{d:04d}-{i:06d}" for i in range(n)]
        times = t0 + pd.to_timedelta(seconds, unit="s")
        events = pd.DataFrame(
            {
                "event_id": ids,
                "run_id": "bench",
                "associator": "pyocto",
                "config_fingerprint": "bench",
                "pick_source": "lake-PhaseNet-original",
                "time": times,
                "latitude": rng.uniform(42.0, 44.0, n),
                "longitude": rng.uniform(12.0, 14.0, n),
                "depth_km": rng.uniform(0.0, 30.0, n),
                "magnitude": np.minimum(-np.log10(rng.uniform(1e-7, 1.0, n)), 7.0),
                "magnitude_type": "ML",
                "n_picks": 6,
                "n_p": 3,
                "n_s": 3,
                "n_stations": 3,
                "score": 1.0,
                "rms_residual_s": 0.2,
            }
        )
        k = np.repeat(np.arange(n), 6)
        assignments = pd.DataFrame(
            {
                "event_id": np.asarray(ids)[k],
                "pick_id": [
                    f"{ids[i]}-p{j}" for i, j in zip(k, np.tile(np.arange(6), n), strict=True)
                ],
                "run_id": "bench",
                "associator": "pyocto",
                "config_fingerprint": "bench",
                "station_id": [f"XX.S{j:02d}." for j in np.tile(np.arange(3).repeat(2), n)],
                "phase": np.tile(["P", "S"], 3 * n),
                "time": times[k]
                + pd.to_timedelta(np.tile([2.0, 3.5, 4.0, 7.0, 6.0, 10.5], n), unit="s"),
                "residual_s": rng.normal(0, 0.2, 6 * n),
            }
        )
        part = {"day": day.isoformat()}
        name = f"bench.{day.isoformat()}"
        changes.append(stage_table(root, "events", events, name, part, name))
        changes.append(stage_table(root, "assignments", assignments, name, part, name))
        sample.extend(ids[:: max(1, n // 3)])
        if len(changes) >= 60:
            lake.commit(changes, run_id="bench", message="synthetic events")
            changes = []
    if changes:
        lake.commit(changes, run_id="bench", message="synthetic events")
    return sample


def timed(url: str, repeat: int, vary) -> tuple[float, float, int, int]:
    """Return p50, p95 (ms), the last status and answer size of ``repeat`` GETs of ``vary(i)``."""
    status, size = 0, 0
    with urllib.request.urlopen(url + vary(-1), timeout=120) as r:  # warm-up
        r.read()
    times = []
    for i in range(repeat):
        t = time.perf_counter()
        with urllib.request.urlopen(url + vary(i), timeout=120) as r:
            body = r.read()
            status, size = r.status, len(body)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return (
        statistics.median(times),
        times[min(len(times) - 1, int(round(0.95 * len(times))) - 1)],
        status,
        size,
    )


def bench(n_events: int, days: int, repeat: int, folder: Path) -> None:
    from test_serve import running

    from quakelake.lakehouse import Lake

    root = folder / f"lake-{n_events}-{days}"
    t = time.perf_counter()
    ids_file = folder / f"lake-{n_events}-{days}.ids"
    if ids_file.is_file():  # --folder: a lake written by an earlier run
        sample = ids_file.read_text().split()
    else:
        sample = synthetic_lake(root, n_events, days)
        ids_file.write_text("\n".join(sample))
    built = time.perf_counter() - t
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    history = Lake(root).history()
    before_last = str(
        pd.Timestamp(history["time"].iloc[-2]).tz_convert("UTC").tz_localize(None).isoformat()
    )
    print(
        f"\n{n_events:,} events over {days} days ({6 * n_events:,} assignments): written in "
        f"{built:.1f} s, {size / 1e6:.1f} MB, {len(history)} snapshots"
    )
    from quakelake.lakehouse.published import LakeReader

    t = time.perf_counter()
    reader = LakeReader(Lake(root))
    reader.count_events(reader.snapshot())
    reader.close()
    print(
        f"in-memory copy of the events table made in {time.perf_counter() - t:.1f} s (once per change)"
    )
    rng = np.random.default_rng(1)
    day_of = [DAY0 + dt.timedelta(days=int(d)) for d in rng.integers(0, days, repeat + 1)]
    ev_of = [sample[int(i)] for i in rng.integers(0, len(sample), repeat + 1)]
    q = "/fdsnws/event/1/query?"

    def day(i):
        d = day_of[i]
        return f"{q}format=text&starttime={d}T00:00:00&endtime={d}T23:59:59.999"

    def month(i):
        d = day_of[i]
        return f"{q}format=text&minmagnitude=2&starttime={d}&endtime={d + dt.timedelta(days=30)}"

    requests = {
        "day (text)": day,
        "month M>=2 (text)": month,
        "M>=4 (QuakeML)": lambda i: f"{q}minmagnitude=4",
        "event+arrivals (QuakeML)": lambda i: f"{q}eventid={ev_of[i]}&includearrivals=true",
        "asofdate day (text)": lambda i: day(i) + f"&asofdate={before_last}",
        "page poll /api/state": lambda i: "/api/state",
    }
    with running(root) as url:
        print(f"{'request':<26} {'p50 ms':>8} {'p95 ms':>8} {'status':>6} {'bytes':>10}")
        for label, vary in requests.items():
            p50, p95, status, nbytes = timed(url, repeat, vary)
            print(f"{label:<26} {p50:>8.1f} {p95:>8.1f} {status:>6} {nbytes:>10,}")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", nargs="+", type=float, default=[1e4, 1e6], help="events per lake")
    ap.add_argument(
        "--days", type=int, default=365, help="days the events spread over (default 365)"
    )
    ap.add_argument("--repeat", type=int, default=30, help="timed requests per query (default 30)")
    ap.add_argument(
        "--folder",
        type=Path,
        help="keep the synthetic lakes here and reuse them on the next run (default: a temporary folder)",
    )
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="quakelake-serve-bench-") as tmp:
        folder = args.folder or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for n in args.sizes:
            bench(int(n), args.days, args.repeat, folder)
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
