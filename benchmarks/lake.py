"""Lake query latency at ~10^7 picks: DuckDB views (``Lake.query``) vs pyarrow.dataset, per-unit vs compacted files.

1. Picks the Mesetas 2019 sample once for real (``quakelake.waveforms`` + ``quakelake.picking``, the
   functions the pick flow's task calls, without Prefect), then REPLICATES those real picks over
   many days (times shifted by whole days) and station names until ``--rows`` rows, written with
   the project's writer (``quakelake.lakehouse.write_table``), one file per (station, day,
   model x weights) unit exactly as the pick flow names and partitions them.
2. Times typical queries through ``quakelake.lakehouse.Lake(root).query(sql, params)`` and the
   same answers computed with ``pyarrow.dataset`` (hive partitioning + filter, Arrow group-by),
   checks they agree; cold first run (page cache dropped for the lake's files) and the median
   of ``--repeat`` warm runs.
3. Compacts the same rows into one file per day (pyarrow, sorted by station_id, time) in a
   second lake with the same layout and times the same queries there.

    .venv/bin/python benchmarks/lake.py                      # 10^7 rows
    .venv/bin/python benchmarks/lake.py --rows 1e6 --days 60 --repeat 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("QUAKELAKE_SHARED", ROOT.parent / "shared"))
DAY0 = dt.date(2020, 1, 1)
OFFSET_COLS = ("time", "start_time", "end_time")


def _setup_env(tmp: Path) -> None:
    os.environ.setdefault("MPLCONFIGDIR", str(tmp / "mpl"))
    if "SEISBENCH_CACHE_ROOT" not in os.environ:
        os.environ["SEISBENCH_CACHE_ROOT"] = str(tmp / "seisbench")
        if (SHARED / "seisbench_cache").is_dir():
            shutil.copytree(SHARED / "seisbench_cache", tmp / "seisbench")


# --------------------------------------------------------------------------- real picks


def real_picks(data: Path, model: str, weights: list[str]) -> tuple[dict[str, list], float]:
    """Pick every station-day of ``data`` with each weights; return the real units' picks per weights.

    Each unit's picks keep their times as offsets from the start of their UTC day, so a copy can be
    placed on any day by a whole-day shift.
    """
    from quakelake import picking, waveforms
    from quakelake.params import PickParams

    t0 = time.perf_counter()
    params = PickParams(models=[model], weights=weights, device="cpu")
    units = waveforms.station_days(waveforms.scan_archive(data).index)
    readings = [(u, waveforms.read_station_day(u)[0]) for u in units]
    templates: dict[str, list] = {}
    for w in weights:
        spec = picking.ModelSpec(model, w)
        net = picking.load_model(model, w, "cpu")
        templates[w] = []
        for unit, instruments in readings:
            picks = picking.within_day(
                picking.pick_streams(net, instruments, spec, params), unit.day
            )
            midnight = pd.Timestamp(unit.day, tz="UTC")
            for col in OFFSET_COLS:
                picks[col] = picks[col] - midnight
            templates[w].append(picks)
    return templates, time.perf_counter() - t0


# --------------------------------------------------------------------------- lake generation


def _plan(templates: dict[str, list], rows: int, days: int) -> tuple[int, float]:
    """Return the stations per day needed for ``rows`` over ``days`` and the mean rows per station-day."""
    per_station_day = sum(sum(len(t) for t in units) / len(units) for units in templates.values())
    return max(1, math.ceil(rows / days / per_station_day)), per_station_day


def _write_days(args: tuple) -> tuple[int, int]:
    """Write every unit of the given days with ``write_table`` (runs in a worker process)."""
    from quakelake.lakehouse import write_table

    root, templates, model, stations, days = args
    rng = np.random.default_rng(days[0])
    rows = files = 0
    for d in days:
        day = DAY0 + dt.timedelta(days=d)
        midnight = pd.Timestamp(day, tz="UTC")
        for k in range(stations):
            sta = f"S{k:04d}"
            for w, units in templates.items():
                tpl = units[(d + k) % len(units)]  # the same real station-day for every weights
                if not len(tpl):
                    continue
                df = tpl.copy()
                for col in OFFSET_COLS:
                    df[col] = df[col] + midnight
                df["station"] = sta
                df["station_id"] = (
                    df["network"] + "." + sta + "." + df["location"] + "." + df["band"]
                )
                df["pick_id"] = np.frombuffer(
                    rng.bytes(10 * len(df)).hex().encode(), dtype="S20"
                ).astype(str)
                df.insert(1, "run_id", f"bench-{model}-{w}")
                name = f"{model}.{w}.{df['network'].iat[0]}.{sta}.bench0000000"
                write_table(root, "picks", df, name, {"day": day.isoformat()})
                rows += len(df)
                files += 1
    return rows, files


def build_lake(
    root: Path, templates: dict[str, list], model: str, stations: int, days: int, jobs: int
) -> tuple[int, float]:
    """Write the replicated picks, one file per unit; return rows and seconds."""
    t0 = time.perf_counter()
    work = [
        (root, templates, model, stations, list(range(d, min(d + 4, days))))
        for d in range(0, days, 4)
    ]
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            done = list(pool.map(_write_days, work))
    else:
        done = list(map(_write_days, work))
    return sum(r for r, _ in done), time.perf_counter() - t0


def compact(src: Path, dst: Path) -> float:
    """Rewrite each day's files of ``src`` as one zstd file in ``dst`` (sorted by station_id, time)."""
    t0 = time.perf_counter()
    for folder in sorted((src / "picks").iterdir()):
        files = sorted(str(p) for p in folder.glob("[!.]*.parquet"))
        table = ds.dataset(files, format="parquet").to_table()
        table = table.sort_by([("station_id", "ascending"), ("time", "ascending")])
        out = dst / "picks" / folder.name
        out.mkdir(parents=True)
        pq.write_table(table, out / "picks.compacted.parquet", compression="zstd")
    return time.perf_counter() - t0


def lake_files(root: Path) -> list[Path]:
    return [p for p in (root / "picks").rglob("*.parquet") if not p.name.startswith(".")]


def drop_page_cache(files: list[Path]) -> None:
    """Ask the kernel to forget the files' cached pages, so the next read comes from disk."""
    os.sync()
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


# --------------------------------------------------------------------------- queries


def queries(days: int) -> list[dict]:
    """The benchmark queries: SQL with bound parameters and the same answer with pyarrow."""
    d = [DAY0 + dt.timedelta(days=i) for i in range(days)]
    month = (d[0], d[min(29, days - 1)])
    week = (d[min(10, days - 1)], d[min(16, days - 1)])
    span = (d[0], d[min(9, days - 1)])
    station = "S0003"

    def day_range(lo, hi):
        return (ds.field("day") >= pa.scalar(lo, pa.date32())) & (
            ds.field("day") <= pa.scalar(hi, pa.date32())
        )

    def count_month(dset):
        t = dset.to_table(columns=["model", "weights", "phase", "day"], filter=day_range(*month))
        return (
            t.group_by(["model", "weights", "phase", "day"])
            .aggregate([([], "count_all")])
            .to_pandas()
        )

    def station_week(dset):
        cols = ["pick_id", "model", "weights", "phase", "time", "probability", "day"]
        f = (ds.field("station") == station) & day_range(*week)
        return dset.to_table(columns=cols, filter=f).to_pandas()

    def above(dset):
        f = (ds.field("probability") >= 0.9) & day_range(*span)
        return dset.to_table(
            columns=["station_id", "phase", "time", "probability"], filter=f
        ).to_pandas()

    def readme(dset):
        t = dset.to_table(columns=["model", "weights", "phase"])
        return t.group_by(["model", "weights", "phase"]).aggregate([([], "count_all")]).to_pandas()

    return [
        {
            "name": "count per model/phase/day, 30 days",
            "sql": "SELECT model, weights, phase, day, count(*) AS n FROM picks "
            "WHERE day BETWEEN ? AND ? GROUP BY ALL",
            "params": list(month),
            "arrow": count_month,
            "keys": ["model", "weights", "phase", "day"],
        },
        {
            "name": "one station's picks, 7 days",
            "sql": "SELECT pick_id, model, weights, phase, time, probability, day FROM picks "
            "WHERE station = ? AND day BETWEEN ? AND ? ORDER BY time",
            "params": [station, *week],
            "arrow": station_week,
            "keys": ["pick_id"],
        },
        {
            "name": "probability >= 0.9, 10 days",
            "sql": "SELECT station_id, phase, time, probability FROM picks "
            "WHERE probability >= ? AND day BETWEEN ? AND ?",
            "params": [0.9, *span],
            "arrow": above,
            "keys": ["station_id", "phase", "time"],
        },
        {
            "name": "README: model, weights, phase, count(*)",
            "sql": "SELECT model, weights, phase, count(*) AS n FROM picks GROUP BY ALL",
            "params": [],
            "arrow": readme,
            "keys": ["model", "weights", "phase"],
        },
    ]


def _normal(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    df = df.rename(columns={"count_all": "n"}).copy()
    for col in df.columns:
        if col == "day":
            df[col] = pd.to_datetime(df[col].astype(str)).dt.strftime("%Y-%m-%d")
        elif col == "time":
            df[col] = (
                pd.to_datetime(df[col], utc=True).astype("datetime64[us, UTC]").astype("int64")
            )
        elif col == "n":
            df[col] = df[col].astype("int64")
        elif col == "probability":
            df[col] = df[col].astype("float32")
    return df[sorted(df.columns)].sort_values(keys, ignore_index=True)


def agree(a: pd.DataFrame, b: pd.DataFrame, keys: list[str]) -> bool:
    a, b = _normal(a, keys), _normal(b, keys)
    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return False
    return all(np.array_equal(a[c].to_numpy(), b[c].to_numpy()) for c in a.columns)


def timed(fn, files: list[Path], repeat: int) -> tuple[object, float, float]:
    """Return fn's result, its cold seconds (page cache dropped) and the median of warm runs."""
    drop_page_cache(files)
    t0 = time.perf_counter()
    result = fn()
    cold = time.perf_counter() - t0
    warm = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        warm.append(time.perf_counter() - t0)
    return result, cold, statistics.median(warm)


def run_queries(root: Path, days: int, repeat: int) -> list[dict]:
    from quakelake.lakehouse import Lake

    lake = Lake(root)
    files = lake_files(root)
    part = ds.partitioning(pa.schema([("day", pa.date32())]), flavor="hive")
    out = []
    for q in queries(days):
        duck, d_cold, d_warm = timed(lambda q=q: lake.query(q["sql"], q["params"]), files, repeat)
        arrow, a_cold, a_warm = timed(
            lambda q=q: q["arrow"](ds.dataset(root / "picks", format="parquet", partitioning=part)),
            files,
            repeat,
        )
        out.append(
            {
                "query": q["name"],
                "rows": len(duck),
                "duck_cold": d_cold,
                "duck": d_warm,
                "arrow_cold": a_cold,
                "arrow": a_warm,
                "agree": agree(duck, arrow, q["keys"]),
            }
        )
    # Where DuckDB's time goes: the same 30-day count straight from read_parquet without
    # union_by_name (which makes DuckDB open every file's footer to unify schemas).
    import duckdb

    first = queries(days)[0]
    glob = str(root / "picks") + "/*/[!.]*.parquet"
    raw_sql = first["sql"].replace(
        "FROM picks",
        f"FROM read_parquet('{glob}', hive_partitioning=true, hive_types={{'day': 'DATE'}})",
    )

    def raw():
        con = duckdb.connect()
        try:
            return con.execute(raw_sql, first["params"]).df()
        finally:
            con.close()

    result, r_cold, r_warm = timed(raw, files, repeat)
    out.append(
        {
            "query": "(30-day count, read_parquet w/o union_by_name)",
            "rows": len(result),
            "duck_cold": r_cold,
            "duck": r_warm,
            "arrow_cold": out[0]["arrow_cold"],
            "arrow": out[0]["arrow"],
            "agree": agree(
                result,
                first["arrow"](ds.dataset(root / "picks", format="parquet", partitioning=part)),
                first["keys"],
            ),
        }
    )
    # What every Lake.query pays before DuckDB runs: listing the lake's files to create views.
    t0 = time.perf_counter()
    for _ in range(repeat):
        lake.connect().close()
    out.append(
        {
            "query": "(Lake.connect only: list files, create views)",
            "rows": 0,
            "duck_cold": float("nan"),
            "duck": (time.perf_counter() - t0) / repeat,
            "arrow_cold": float("nan"),
            "arrow": float("nan"),
            "agree": True,
        }
    )
    return out


def size_line(label: str, root: Path, rows: int) -> tuple[int, int]:
    files = lake_files(root)
    total = sum(p.stat().st_size for p in files)
    print(
        f"{label:<28}{len(files):>10,} files{total / 2**20:>10.1f} MiB{total / rows:>8.1f} bytes/pick"
        f"{total / len(files) / 1024:>9.1f} KiB/file"
    )
    return len(files), total


def print_table(title: str, results: list[dict]) -> None:
    print(f"\n{title}")
    head = (
        f"{'query':<48}{'rows':>9}{'duckdb cold':>12}{'duckdb med':>11}"
        f"{'arrow cold':>11}{'arrow med':>10}{'arrow/duck':>11}  agree"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        ratio = r["arrow"] / r["duck"] if r["duck"] and not math.isnan(r["arrow"]) else float("nan")
        print(
            f"{r['query']:<48}{r['rows']:>9,}{r['duck_cold']:>12.3f}{r['duck']:>11.3f}"
            f"{r['arrow_cold']:>11.3f}{r['arrow']:>10.3f}{ratio:>11.2f}  {'yes' if r['agree'] else 'NO'}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=SHARED / "data" / "seismonitor_mesetas_2019" / "mseed"
    )
    parser.add_argument("--rows", type=float, default=1e7, help="pick rows to write (default 1e7)")
    parser.add_argument(
        "--days",
        type=int,
        default=366,
        help="days the rows span; stations per day follow from --rows (default 366)",
    )
    parser.add_argument("--model", default="PhaseNet")
    parser.add_argument("--weights", nargs="+", default=["original", "volpick"])
    parser.add_argument(
        "--repeat", type=int, default=5, help="warm runs per query (median reported)"
    )
    parser.add_argument("--jobs", type=int, default=2, help="processes writing the lake")
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"benchmark data folder {args.data} is absent: pass --data DIR", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="quakelake-lakebench-"))
    try:
        _setup_env(tmp)
        templates, pick_s = real_picks(args.data, args.model, args.weights)
        real = sum(len(t) for units in templates.values() for t in units)
        n_units = len(next(iter(templates.values())))
        stations, per_sd = _plan(templates, int(args.rows), args.days)
        print(
            f"real picks: {real:,} from {n_units} station-days of {args.data.parent.name} "
            f"({args.model} x {', '.join(args.weights)}, picked in {pick_s:.1f} s)"
        )
        print(
            f"lake rows are these REAL picks REPLICATED: each (station, day, weights) file is a copy of "
            f"one real station-day's picks, shifted by whole days and renamed S0000..S{stations - 1:04d}, "
            f"new pick_ids; {per_sd:.0f} rows per station-day over all weights"
        )

        lake, packed = tmp / "lake", tmp / "lake_compacted"
        rows, gen_s = build_lake(lake, templates, args.model, stations, args.days, args.jobs)
        print(
            f"wrote {rows:,} rows: {args.days} days x {stations} stations x {len(args.weights)} weights "
            f"with quakelake.lakehouse.write_table in {gen_s:.1f} s ({args.jobs} processes)"
        )
        comp_s = compact(lake, packed)
        print(
            f"compacted to one file per day (pyarrow, sorted by station_id, time) in {comp_s:.1f} s\n"
        )
        size_line("one file per unit", lake, rows)
        size_line("one file per day (compacted)", packed, rows)

        per_unit = run_queries(lake, args.days, args.repeat)
        print_table(
            f"Per-unit lake ({stations * len(args.weights)} files/day), seconds; cold = page cache "
            f"dropped, med = median of {args.repeat} warm runs",
            per_unit,
        )
        per_day = run_queries(packed, args.days, args.repeat)
        print_table("Compacted lake (1 file/day), seconds", per_day)

        print("\nEffect of compaction (DuckDB Lake.query, warm median):")
        for a, b in zip(per_unit, per_day, strict=True):
            print(
                f"  {a['query']:<48}{a['duck']:>8.3f} -> {b['duck']:.3f} s ({a['duck'] / b['duck']:.1f}x)"
            )
        ok = all(r["agree"] for r in per_unit + per_day)
        print(
            f"\nanswers agree (DuckDB vs pyarrow, both lakes, row by row): {'yes' if ok else 'NO'}"
        )
        return 0 if ok else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
