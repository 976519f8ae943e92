"""Near-real-time monitoring: latencies at 1x real time, and how many stations one process keeps up with.

1. **Latency.** The Salton Sea sample (16 stations x 3 components, 180 s at 100 Hz, repacked to
   SeedLink's 512-byte records, the same samples) is appended record by record to an SDS
   archive at 1x real time by a thread (``tests/replay.SDSReplay.play``) while ``Monitor.run()``
   follows it with a ``--cycle`` seconds cycle, PhaseNet picks and PyOcto events. Prints the
   p50/p95 latency (``quakelake.service.monitor.latencies``: commit time minus the delivery stamp of the
   record holding the pick sample; for events, first origin minus the delivery of the 4th
   station's P record) for provisional and final picks and for events, next to the targets; and
   for magnitudes, the first origin with an ML minus the same delivery (an ML waits for the
   S window + 10 s + 30 s of response-removal padding at its first station). The
   delivery stamp is the cycle that first saw the record; the replay's own write log gives the
   true delivery time, and the figures from it are printed too (they add up to one cycle).
2. **Capacity.** N stations are synthesised by copying the Salton Sea stations' records under
   new station codes (``S0001``...; ObsPy rewrites the miniSEED headers) and replayed as fast as
   the monitor takes them (``--cycle`` seconds of data per cycle, as at 1x; picks only: synthetic copies of 16 stations
   have no meaningful geometry for association). Prints the processing seconds per data second
   at each N; real time holds while it is < 1, so the capacity is about N / (s per data s).
   ``--shards 1 2``: also with the reading and picking sharded over K Dask worker processes
   (``quakelake monitor --shards K``: a LocalCluster of K workers, one thread each; 1 = the
   single process), side by side.

    .venv/bin/python benchmarks/monitor.py [--cycle 1.5] [--stations 32 128] [--seconds 120]
        [--shards 1 2]
"""

from __future__ import annotations

import argparse
import bisect
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("QUAKELAKE_SHARED", ROOT.parent / "shared"))
SALTON = SHARED / "data" / "phasenet_saltonsea_20201001"
sys.path.insert(0, str(ROOT / "tests"))

TARGETS = {"provisional": 15.0, "final": 35.0, "events": 45.0}


def setup_env(tmp: Path) -> None:
    """Point Prefect, matplotlib and SeisBench at folders under ``tmp`` (weights copied)."""
    os.environ.setdefault("PREFECT_HOME", str(tmp / "prefect"))
    os.environ.setdefault("MPLCONFIGDIR", str(tmp / "mpl"))
    if "SEISBENCH_CACHE_ROOT" not in os.environ:
        os.environ["SEISBENCH_CACHE_ROOT"] = str(tmp / "seisbench")
        shutil.copytree(SHARED / "seisbench_cache", tmp / "seisbench")


def _picker(model):
    from quakelake.params import PickParams
    from quakelake.picking import models as picking
    from quakelake.picking.streaming import StreamPicker

    return StreamPicker(model, picking.ModelSpec("PhaseNet", "original"), PickParams())


def latency(tmp: Path, model, cycle_s: float, speed: float) -> dict:
    """Replay the Salton Sea sample at ``speed`` x real time under ``Monitor.run()``."""
    import numpy as np
    from replay import SDSReplay
    from seedlink_server import repack_512

    from quakelake.archive.live import SDSFollower
    from quakelake.archive.stations import read_stations
    from quakelake.association.live import LiveCatalog
    from quakelake.lakehouse import Lake
    from quakelake.params.association import PyOctoConfig
    from quakelake.service.monitor import (
        Monitor,
        MonitorSettings,
        MonitorSpec,
        latencies,
        live_magnitudes,
    )

    files = repack_512(sorted((SALTON / "mseed").glob("*.mseed")), tmp / "512")
    written: dict[str, tuple[list[float], list[float]]] = {}  # seed id -> (ends, walls)

    class LoggedReplay(SDSReplay):
        def _append(self, rec) -> None:
            super()._append(rec)
            ends, walls = written.setdefault(".".join(rec.key), ([], []))
            i = bisect.bisect_left(ends, float(rec.end))
            ends.insert(i, float(rec.end))
            walls.insert(i, time.time())

    rep = LoggedReplay(files, tmp / "sds")
    (tmp / "sds").mkdir(parents=True)
    stations = read_stations(SALTON / "stations.xml")
    spec = MonitorSpec(lake=str(tmp / "lake"), station_file=str(SALTON / "stations.xml"))
    catalog = LiveCatalog(
        stations, PyOctoConfig(), 300.0, "bench", magnitudes=live_magnitudes(spec, stations)
    )
    settings = MonitorSettings(
        name="bench", cycle_s=cycle_s, duration_s=(rep.end - rep.start) / speed + 60
    )
    lake = Lake(tmp / "lake")
    mon = Monitor(lake, SDSFollower(tmp / "sds"), _picker(model), catalog, settings)
    stop = threading.Event()
    player = rep.play(speed, stop)
    t0 = time.time()
    mon.run()
    stop.set()
    player.join(10)
    wall = time.time() - t0
    out = latencies(lake, "bench")

    def true_delivery(row) -> float | None:
        found = []
        for seed_id, (ends, walls) in written.items():
            if seed_id[:-1] != f"{row.station_id}.{row.band}":
                continue
            i = bisect.bisect_left(ends, row.time.timestamp())
            if i < len(ends):
                found.append(walls[i])
        return max(found) if found else None

    picks = lake.query(
        "SELECT station_id, band, time, status, epoch(committed) AS c FROM live_picks "
        "WHERE monitor = 'bench' AND status IN ('final', 'provisional')"
    )
    for status in ("provisional", "final"):
        sel = picks[picks["status"] == status]
        lat = [r.c - d for r in sel.itertuples() if (d := true_delivery(r)) is not None]
        if lat:
            out[f"{status} (replay log)"] = {
                "n": len(lat),
                "p50": float(np.percentile(lat, 50)),
                "p95": float(np.percentile(lat, 95)),
            }
    out["cycles"] = mon.cycles
    out["wall_s"] = wall
    out["events_final"] = len(catalog.preferred())
    return out


def synthesise(n: int, out: Path) -> list[Path]:
    """Write ``n`` stations: copies of the Salton Sea stations under codes S0001..."""
    import obspy

    originals = [obspy.read(str(p)) for p in sorted((SALTON / "mseed").glob("*.mseed"))]
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n):
        st = originals[i % len(originals)].copy()
        for tr in st:
            tr.stats.station = f"S{i + 1:04d}"
        path = out / f"S{i + 1:04d}.mseed"
        st.write(str(path), format="MSEED", reclen=512)
        files.append(path)
    return files


def capacity(tmp: Path, model, n: int, seconds: float, step_s: float, shards: int = 1) -> dict:
    """Process ``seconds`` of ``n`` synthetic stations in ``step_s`` cycles; time the cycles
    (``shards`` > 1: sharded over a LocalCluster of that many worker processes)."""
    from replay import SDSReplay

    from quakelake.archive.live import SDSFollower
    from quakelake.lakehouse import Lake
    from quakelake.service.monitor import Monitor, MonitorSettings, MonitorSpec, build_monitor

    base = tmp / f"cap{n}-{shards}"
    mseed = tmp / f"cap{n}-mseed"
    rep = SDSReplay(
        synthesise(n, mseed) if not mseed.is_dir() else sorted(mseed.glob("*")), base / "sds"
    )
    (base / "sds").mkdir(parents=True, exist_ok=True)
    if shards > 1:
        spec = MonitorSpec(
            lake=str(base / "lake"),
            sds=str(base / "sds"),
            from_start=True,
            name="cap",
            shards=shards,
        )
        mon = build_monitor(spec)
    else:
        mon = Monitor(
            Lake(base / "lake"),
            SDSFollower(base / "sds"),
            _picker(model),
            None,
            MonitorSettings(name="cap", provisional=True),
        )
    t = rep.start
    busy = cpu = 0.0
    data = 0.0
    windows = 0
    size0 = 0
    end = min(rep.end, rep.start + seconds)
    warm = rep.start + 40.0  # the first windows need 30 s of data: time the steady state
    while t < end:
        t += step_s
        rep.write_until(t)
        w0, c0 = time.perf_counter(), time.process_time()
        summary = mon.cycle()
        if t > warm:
            if not data:  # the catalog's size when the steady state starts
                size0 = (base / "lake" / "catalog.sqlite").stat().st_size
            busy += time.perf_counter() - w0
            cpu += time.process_time() - c0
            data += step_s
            windows += summary.windows
    from quakelake.lakehouse.catalog import ALIAS

    lake = mon.lake
    last = int(lake.history()["snapshot_id"].max())
    state_rows = int(
        lake.query(
            f"SELECT count(*) AS n FROM ducklake_table_insertions('{ALIAS}', 'main', "
            f"'monitor_state', 0, {last})"
        )["n"][0]
    )
    catalog = base / "lake" / "catalog.sqlite"
    lanes = len(mon.front.lane_states())
    mon.front.close()
    return {
        "shards": shards,
        "stations": n,
        "lanes": lanes,
        "state_rows_per_cycle": state_rows / max(mon.cycles, 1),
        "catalog_mb_per_hour": (catalog.stat().st_size - size0) / 1e6 * 3600 / data,
        "data_s": data,
        "wall_s": busy,
        "cpu_s": cpu,
        "s_per_data_s": busy / data,
        "cpu_per_data_s": cpu / data,
        "windows": windows,
        "capacity": n * data / busy,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cycle", type=float, default=1.5, help="monitor cycle, seconds")
    ap.add_argument("--speed", type=float, default=1.0, help="replay speed for the latencies")
    ap.add_argument("--stations", type=int, nargs="*", default=[128, 512])
    ap.add_argument("--seconds", type=float, default=120.0, help="data seconds per capacity run")
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument(
        "--shards",
        type=int,
        nargs="*",
        default=[1],
        help="capacity also with K shards on K Dask worker processes (1: one process)",
    )
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="quakelake-bench-monitor-"))
    setup_env(tmp)
    try:
        from quakelake import picking

        model = picking.load_model("PhaseNet", "original", "cpu")
        print(f"load: {os.getloadavg()[0]:.1f} (1-min), {os.cpu_count()} cores")
        if not args.skip_latency:
            lat = latency(tmp, model, args.cycle, args.speed)
            print(
                f"latency: {args.speed:g}x replay, cycle {args.cycle:g} s, {lat['cycles']} "
                f"commits in {lat['wall_s']:.0f} s, {lat['events_final']} events"
            )
            for key, value in lat.items():
                if not isinstance(value, dict):
                    continue
                target = TARGETS.get(key.split(" ")[0])
                verdict = (
                    ""
                    if target is None
                    else f"  target p95 <= {target:g} s: {'met' if value['p95'] <= target else 'MISSED'}"
                )
                print(
                    f"  {key:28s} n={value['n']:4d}  p50 {value['p50']:6.1f} s  "
                    f"p95 {value['p95']:6.1f} s{verdict}"
                )
        for n in args.stations:
            for k in args.shards:
                cap = capacity(tmp, model, n, args.seconds, args.cycle, k)
                cpu = f"{cap['cpu_per_data_s']:.3f} s CPU" + ("" if k == 1 else " coordinator")
                print(
                    f"capacity: {n:4d} stations x 3 comp x 100 Hz, {k} shard(s), "
                    f"{cap['data_s']:.0f} s of data: {cap['s_per_data_s']:.3f} s wall ({cpu}) "
                    f"per data s, {cap['windows']} windows -> ~{cap['capacity']:.0f} stations "
                    f"in real time (load {os.getloadavg()[0]:.1f})"
                )
                print(
                    f"  lake growth: {cap['state_rows_per_cycle']:.1f} state rows per cycle "
                    f"({cap['lanes']} lanes), catalog {cap['catalog_mb_per_hour']:.0f} MB per "
                    "hour of data before the hourly flush"
                )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
