"""Lake query latency: DuckDB views over the pick lake vs pyarrow/pandas, per-unit files vs per-day files.

Builds a pick lake with the project's own writer (one immutable file per station-day unit, as the
pick flow writes it) from REAL picks: PhaseNet picks of the Mesetas 2019 recordings, replicated
over days and renamed stations (a year of a ~100-station network at 10^7 rows). Then times typical
queries through ``quakelake.lakehouse.Lake`` (bound parameters) and, side by side, the same
answers from pyarrow datasets + pandas; and the same rows compacted into one file per day.

    .venv/bin/python benchmarks/lake.py [--rows 10000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("QUAKELAKE_SHARED", ROOT.parent / "shared"))
START = dt.date(2024, 1, 1)


def real_station_day_picks(data: Path):
    """Return one DataFrame per real station-day: PhaseNet picks, times as offsets from the day."""
    import pandas as pd

    from quakelake import picking, waveforms
    from quakelake.params import PickParams

    params = PickParams(models=["PhaseNet"], weights=["original"])
    spec = picking.ModelSpec("PhaseNet", "original")
    model = picking.load_model("PhaseNet", "original", picking.resolve_device("auto"))
    frames = []
    for unit in waveforms.station_days(waveforms.scan_archive(data).index):
        instruments, _ = waveforms.read_station_day(unit)
        picks = picking.within_day(picking.pick_streams(model, instruments, spec, params), unit.day)
        if len(picks):
            picks["offset"] = picks["time"] - pd.Timestamp(unit.day, tz="UTC")
            frames.append(picks.drop(columns=["time", "start_time", "end_time"]))
    return frames


def build_lake(root: Path, frames, rows: int) -> tuple[int, int, int]:
    """Write ~``rows`` replicated real picks, one file per (station, day); return rows, files, days."""
    import pandas as pd

    from quakelake.lakehouse import write_table

    per_unit = sum(len(f) for f in frames) / len(frames)
    units = max(1, round(rows / per_unit))
    days = min(366, max(1, units // 100))
    stations = max(1, -(-units // days))
    written = files = 0
    for d in range(days):
        day = START + dt.timedelta(days=d)
        day_ts = pd.Timestamp(day, tz="UTC")
        for s in range(stations):
            if files >= units:
                break
            base = frames[(d + s) % len(frames)]
            sta = f"S{s:03d}"
            df = base.assign(
                station=sta,
                station_id=base["network"] + "." + sta + "." + base["location"] + "." + base["band"],
                time=day_ts + base["offset"],
                run_id="bench",
            ).drop(columns=["offset"])
            df["pick_id"] = [hashlib.sha1(f"{sta}{day}{i}".encode()).hexdigest()[:20] for i in range(len(df))]
            write_table(root, "picks", df, f"PhaseNet.original.CM.{sta}.bench", {"day": day.isoformat()})
            written += len(df)
            files += 1
    return written, files, days


def compact(src: Path, dst: Path) -> int:
    """Write the same rows as one file per day partition; return the number of files."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 0
    for part in sorted((src / "picks").iterdir()):
        table = pa.concat_tables([pq.read_table(p) for p in sorted(part.glob("*.parquet"))])
        (dst / "picks" / part.name).mkdir(parents=True, exist_ok=True)
        pq.write_table(table, dst / "picks" / part.name / "day.parquet", compression="zstd")
        n += 1
    return n


def duckdb_queries(root: Path, days: int):
    from quakelake.lakehouse import Lake

    lake = Lake(root)
    month = (START, START + dt.timedelta(days=min(days, 31) - 1))
    week = (START, START + dt.timedelta(days=min(days, 7) - 1))
    return {
        "count per phase/day, 1 month": lambda: lake.query(
            "SELECT day, phase, count(*) AS n FROM picks WHERE day BETWEEN ? AND ? GROUP BY ALL ORDER BY ALL",
            list(month)),
        "one station, 1 week": lambda: lake.query(
            "SELECT time, phase, probability FROM picks WHERE station = ? AND day BETWEEN ? AND ? ORDER BY time",
            ["S007", *week]),
        "probability >= 0.8, 1 month": lambda: lake.query(
            "SELECT count(*) AS n FROM picks WHERE probability >= ? AND day BETWEEN ? AND ?", [0.8, *month]),
        "README: model, weights, phase": lambda: lake.query(
            "SELECT model, weights, phase, count(*) AS n FROM picks GROUP BY ALL ORDER BY ALL"),
    }


def arrow_queries(root: Path, days: int):
    import pyarrow as pa
    import pyarrow.dataset as ds

    part = ds.partitioning(pa.schema([("day", pa.string())]), flavor="hive")
    month = (START.isoformat(), (START + dt.timedelta(days=min(days, 31) - 1)).isoformat())
    week = (START.isoformat(), (START + dt.timedelta(days=min(days, 7) - 1)).isoformat())

    def dataset():
        return ds.dataset(str(root / "picks"), format="parquet", partitioning=part)

    def in_range(lo, hi):
        return (ds.field("day") >= lo) & (ds.field("day") <= hi)

    def count_phase_day():
        t = dataset().to_table(columns=["day", "phase"], filter=in_range(*month)).to_pandas()
        return t.groupby(["day", "phase"]).size().reset_index(name="n")

    def one_station():
        t = dataset().to_table(columns=["time", "phase", "probability"],
                               filter=in_range(*week) & (ds.field("station") == "S007"))
        return t.to_pandas().sort_values("time")

    def prob():
        return dataset().count_rows(filter=in_range(*month) & (ds.field("probability") >= 0.8))

    def readme():
        t = dataset().to_table(columns=["model", "weights", "phase"]).to_pandas()
        return t.groupby(["model", "weights", "phase"]).size().reset_index(name="n")

    return {"count per phase/day, 1 month": count_phase_day, "one station, 1 week": one_station,
            "probability >= 0.8, 1 month": prob, "README: model, weights, phase": readme}


def answer(value) -> object:
    """Reduce a query result to something comparable across engines."""
    if isinstance(value, int):
        return value
    if "n" in value.columns and len(value) == 1 and len(value.columns) == 1:
        return int(value["n"][0])
    return int(value["n"].sum()) if "n" in value.columns else len(value)


def timed(fn, repeat: int) -> tuple[float, float, object]:
    t0 = time.perf_counter()
    result = fn()
    cold = time.perf_counter() - t0
    warm = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        warm.append(time.perf_counter() - t0)
    return cold, statistics.median(warm), answer(result)


def folder_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in (root / "picks").rglob("*.parquet"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=float, default=1e7, help="approximate number of pick rows")
    parser.add_argument("--repeat", type=int, default=5, help="warm repetitions per query (median)")
    parser.add_argument("--data", type=Path, default=SHARED / "data" / "seismonitor_mesetas_2019" / "mseed")
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"benchmark data folder {args.data} is absent: pass --data DIR", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="quakelake-lakebench-"))
    if "SEISBENCH_CACHE_ROOT" not in os.environ and (SHARED / "seisbench_cache").is_dir():
        shutil.copytree(SHARED / "seisbench_cache", tmp / "seisbench")
        os.environ["SEISBENCH_CACHE_ROOT"] = str(tmp / "seisbench")
    try:
        t0 = time.perf_counter()
        frames = real_station_day_picks(args.data)
        pick_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        rows, files, days = build_lake(tmp / "units", frames, int(args.rows))
        build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        day_files = compact(tmp / "units", tmp / "days")
        compact_s = time.perf_counter() - t0
        unit_bytes, day_bytes = folder_bytes(tmp / "units"), folder_bytes(tmp / "days")
        print(f"rows: {rows:,} replicated real PhaseNet picks ({len(frames)} real Mesetas station-days, picked in "
              f"{pick_s:.1f} s) over {days} days x {files // days} stations")
        print(f"per-unit lake: {files:,} files, {unit_bytes / 1e6:.1f} MB, {unit_bytes / rows:.1f} bytes/pick "
              f"(written in {build_s:.1f} s)")
        print(f"per-day lake:  {day_files:,} files, {day_bytes / 1e6:.1f} MB, {day_bytes / rows:.1f} bytes/pick "
              f"(compacted in {compact_s:.1f} s)")
        print()
        header = f"{'query':<32}{'layout':<10}{'duckdb cold':>12}{'duckdb warm':>12}{'arrow warm':>12}{'ratio':>8}"
        print(header)
        print("-" * len(header))
        ok = True
        for layout in ("units", "days"):
            root = tmp / layout
            duck, arrow = duckdb_queries(root, days), arrow_queries(root, days)
            for name in duck:
                cold, warm, a = timed(duck[name], args.repeat)
                _, base, b = timed(arrow[name], args.repeat)
                ok &= a == b
                print(f"{name:<32}{layout:<10}{cold:>11.3f}s{warm:>11.3f}s{base:>11.3f}s{warm / base:>8.2f}"
                      + ("" if a == b else f"   MISMATCH {a} != {b}"))
        print(f"\nanswers agree between DuckDB views and pyarrow: {ok}   (ratio = duckdb warm / arrow warm)")
        return 0 if ok else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
