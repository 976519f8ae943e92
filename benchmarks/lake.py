"""Lake size and query latency at ~10^7 picks: the layout before the catalog vs the DuckLake lake.

1. Picks the Mesetas 2019 sample once for real (``quakelake.archive.waveforms`` + ``quakelake.picking.models``, the
   functions the pick flow's task calls, without Prefect), then REPLICATES those real picks over
   many days (times shifted by whole days) and station names until ``--rows`` rows, one file per
   (station, day, model x weights) unit exactly as the pick flow names and partitions them.
2. Writes them twice: as bare files (the layout before the catalog, read through read_parquet
   views) and as staged files committed to the DuckLake catalog (``stage_table`` +
   ``Lake.commit``, in batches), then compacts the catalog lake (``quakelake lake compact`` +
   ``vacuum``).
3. Prints bytes per pick of each and times the same queries over both (``Lake.query``), checked
   against pyarrow.dataset's answers; cold first run (page cache dropped) and the median of
   ``--repeat`` warm runs; and ``Lake.connect()``.

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
    from quakelake.archive import waveforms
    from quakelake.params import PickParams
    from quakelake.picking import models as picking

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


def _write_days(args: tuple) -> tuple[int, list]:
    """Write every unit of the given days (runs in a worker process).

    ``legacy``: bare files of the layout before the catalog (one per unit, no catalog);
    otherwise staged files (what a pick worker writes) returned for the flow-side commit.
    """
    from quakelake.lakehouse import stage_table, to_arrow
    from quakelake.lakehouse.writer import file_path, write_atomic

    root, templates, model, stations, days, legacy = args
    rng = np.random.default_rng(days[0])
    rows, changes = 0, []
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
                name = f"{model}.{w}.{df['network'].iat[0]}.{sta}.--.HH.bench0000000"
                partition = {"day": day.isoformat()}
                if legacy:
                    write_atomic(file_path(root, "picks", partition, name), to_arrow("picks", df))
                else:
                    changes.append(stage_table(root, "picks", df, name, partition, name[:-13]))
                rows += len(df)
    return rows, changes


def build_lake(
    root: Path,
    templates: dict[str, list],
    model: str,
    stations: int,
    days: int,
    jobs: int,
    legacy: bool,
) -> tuple[int, float]:
    """Write the replicated picks, one file per unit (committed in batches); return rows, seconds."""
    from quakelake.lakehouse import Lake

    t0 = time.perf_counter()
    work = [
        (root, templates, model, stations, list(range(d, min(d + 4, days))), legacy)
        for d in range(0, days, 4)
    ]
    rows = 0
    with ProcessPoolExecutor(jobs) as pool:
        for n, changes in pool.map(_write_days, work):
            rows += n
            for i in range(0, len(changes), 200):
                Lake(root).commit(changes[i : i + 200], run_id="bench", message="bench")
    return rows, time.perf_counter() - t0


def lake_files(root: Path) -> list[Path]:
    """The lake's picks data files: the catalog's when it has one, else the folder's."""
    from quakelake.lakehouse import Lake

    lake = Lake(root)
    if lake.exists():
        return lake.files("picks")
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

    def per_station(dset):
        t = dset.to_table(
            columns=["model", "weights", "station", "phase", "probability"],
            filter=day_range(*month),
        )
        return (
            t.group_by(["model", "weights", "station", "phase"])
            .aggregate([([], "count_all"), ("probability", "mean")])
            .to_pandas()
            .rename(columns={"probability_mean": "mean_probability"})
        )

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
            "name": "analyzer: per model/weights/station, 30 days",
            "sql": "SELECT model, weights, station, phase, count(*) AS n, "
            "avg(probability) AS mean_probability FROM picks WHERE day BETWEEN ? AND ? GROUP BY ALL",
            "params": list(month),
            "arrow": per_station,
            "keys": ["model", "weights", "station", "phase"],
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
        elif col == "mean_probability":
            df[col] = df[col].astype("float64").round(5)
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


class _LegacyViews:
    """How the lake was read before the catalog: one read_parquet view over the folder's files."""

    def __init__(self, root: Path):
        self.glob = str(root / "picks") + "/*/[!.]*.parquet"

    def connect(self):
        import duckdb

        con = duckdb.connect()
        con.execute(
            f"CREATE VIEW picks AS SELECT * FROM read_parquet('{self.glob}', "
            "hive_partitioning=true, hive_types={'day': 'DATE'})"
        )
        return con

    def query(self, sql, params):
        con = self.connect()
        try:
            return con.execute(sql, params).df()
        finally:
            con.close()


def run_queries(root: Path, days: int, repeat: int, legacy: bool, arrow_root: Path) -> list[dict]:
    """Time every query through ``Lake.query`` (catalog) or the old views (``legacy``)."""
    from quakelake.lakehouse import Lake

    lake = _LegacyViews(root) if legacy else Lake(root)
    files = lake_files(root)
    part = ds.partitioning(pa.schema([("day", pa.date32())]), flavor="hive")
    out = []
    for q in queries(days):
        duck, d_cold, d_warm = timed(lambda q=q: lake.query(q["sql"], q["params"]), files, repeat)
        arrow, a_cold, a_warm = timed(
            lambda q=q: q["arrow"](
                ds.dataset(arrow_root / "picks", format="parquet", partitioning=part)
            ),
            [],
            1,
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
    t0 = time.perf_counter()
    for _ in range(repeat):
        lake.connect().close()
    out.append(
        {
            "query": "(Lake.connect only)",
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

        from quakelake.lakehouse import Lake, maintenance

        old, lake = tmp / "legacy", tmp / "lake"
        rows, old_s = build_lake(old, templates, args.model, stations, args.days, args.jobs, True)
        print(
            f"wrote {rows:,} rows: {args.days} days x {stations} stations x {len(args.weights)} "
            f"weights in {old_s:.1f} s, bare files (the layout before the catalog)"
        )
        rows, new_s = build_lake(lake, templates, args.model, stations, args.days, args.jobs, False)
        print(
            f"wrote the same rows as staged files committed to the DuckLake catalog in batches "
            f"in {new_s:.1f} s ({args.jobs} processes)"
        )
        size_line("before: one file per unit", old, rows)
        size_line("catalog: one file per unit", lake, rows)
        t0 = time.perf_counter()
        merged = maintenance.compact(Lake(lake), ["picks"])["picks"]
        maintenance.vacuum(Lake(lake), grace_s=0)
        print(
            f"quakelake lake compact + vacuum: {merged[0]:,} -> {merged[1]} files in "
            f"{time.perf_counter() - t0:.1f} s"
        )
        size_line("catalog, compacted", lake, rows)

        before = run_queries(old, args.days, args.repeat, True, old)
        print_table(
            f"Before: bare per-unit files and read_parquet views, seconds; cold = page cache "
            f"dropped, med = median of {args.repeat} warm runs; arrow = pyarrow.dataset",
            before,
        )
        after = run_queries(lake, args.days, args.repeat, False, old)
        print_table("Catalog lake, compacted (Lake.query through DuckLake), seconds", after)
        print("\nBefore -> after (warm median):")
        for a, b in zip(before, after, strict=True):
            print(
                f"  {a['query']:<48}{a['duck']:>8.3f} -> {b['duck']:.3f} s ({a['duck'] / b['duck']:.1f}x)"
            )
        per_unit, per_day = before, after
        ok = all(r["agree"] for r in per_unit + per_day)
        print(
            f"\nanswers agree (DuckDB vs pyarrow, both lakes, row by row): {'yes' if ok else 'NO'}"
        )
        return 0 if ok else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
