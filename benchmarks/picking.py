"""Picking throughput: the QuakeLake engine and pick flow vs a plain SeisBench ``classify`` loop.

Everything runs in this process on the same full 24-h station-days (built from the real Mesetas
recordings by :mod:`daydata`), same weights and thresholds, model loaded once. Per station-day the
plain loop and the engine path (the pick task's code: ``read_station_day``, engine, day filter)
run back to back, alternating which goes first, so machine load hits both alike; the pick flow
(Prefect tasks, scan, Parquet writes, ledger) then runs over all units, then the plain loop again.
Prints seconds and CPU-seconds per station-day, the speed-ups, the share of the compute limit
(the model's FLOPs at the sgemm rate measured in the same run), the profile of both paths and
whether the picks agree (count within 0.5 %, matched times within 10 ms, probabilities within 0.01).

    .venv/bin/python benchmarks/picking.py [--stations 4 --days 2] [--model PhaseNet --weights original]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from daydata import FIRST_DAY, MESETAS, build_day_archive  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("QUAKELAKE_SHARED", ROOT.parent / "shared"))


def setup_env(tmp: Path) -> None:
    """Point Prefect, matplotlib and SeisBench at folders under ``tmp`` (weights copied from shared/)."""
    os.environ.setdefault("PREFECT_HOME", str(tmp / "prefect"))
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("MPLCONFIGDIR", str(tmp / "mpl"))
    if "SEISBENCH_CACHE_ROOT" not in os.environ:
        os.environ["SEISBENCH_CACHE_ROOT"] = str(tmp / "seisbench")
        if (SHARED / "seisbench_cache").is_dir():
            shutil.copytree(SHARED / "seisbench_cache", tmp / "seisbench")


def sgemm_gflops(n: int = 4096, reps: int = 3) -> float:
    """Return the best GFLOP/s of an ``n x n`` fp32 matrix product with torch's current threads."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def model_gflop_per_window(model) -> float:
    """Return the GFLOP of one window through the network (torch's FLOP counter)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, len(model.component_order), model.in_samples)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() / 1e9


def plain_unit(model, kwargs: dict, unit, pad_s: float = 60.0) -> tuple[list, dict]:
    """The baseline: read the unit's files with ObsPy, merge, trim to the padded day, classify, keep the day."""
    import obspy
    import pandas as pd

    t0 = time.perf_counter()
    st = obspy.Stream()
    for path in unit.paths:
        st += obspy.read(path)
    st = st.select(network=unit.network, station=unit.station)
    st.merge(method=1)
    start = obspy.UTCDateTime(unit.day.isoformat())
    st.trim(start - pad_s, start + 86400 + pad_s, nearest_sample=False)
    t1 = time.perf_counter()
    picks = []
    for p in model.classify(st.split(), **kwargs).picks:
        t = pd.Timestamp(p.peak_time.datetime, tz="UTC")
        if t.date() == unit.day:
            picks.append((p.trace_id, p.phase, t, float(p.peak_value)))
    return picks, {"read+merge": t1 - t0, "classify": time.perf_counter() - t1}


def engine_unit(model, unit, spec, params) -> tuple[list, dict]:
    """The pick task's path without Prefect and Parquet: read_station_day, engine, keep the day."""
    from quakelake.archive import waveforms
    from quakelake.picking import engine
    from quakelake.picking import models as picking

    t0 = time.perf_counter()
    instruments, _ = waveforms.read_station_day(unit)
    t1 = time.perf_counter()
    picks, made_by = engine.pick_instruments(model, instruments, spec, params)
    picks = picking.within_day(picks, unit.day)
    rows = [
        (f"{r.network}.{r.station}.{r.location}", r.phase, r.time, float(r.probability))
        for r in picks.itertuples()
    ]
    return rows, {"read": t1 - t0, "engine": time.perf_counter() - t1, "made_by": made_by}


def agreement(ours, ref) -> tuple[bool, str]:
    """Return whether two pick lists agree (count 0.5 %, times 10 ms, probability 0.01) and the worst figures."""
    import pandas as pd

    a = pd.DataFrame(ours, columns=["trace_id", "phase", "time", "p"])
    b = pd.DataFrame(ref, columns=["trace_id", "phase", "time", "p"])
    worst_dt, worst_dp, missing = 0.0, 0.0, 0
    for (tid, phase), theirs in b.groupby(["trace_id", "phase"]):
        mine = a[(a["trace_id"] == tid) & (a["phase"] == phase)]
        for row in theirs.itertuples():
            if mine.empty:
                missing += 1
                continue
            dt = (mine["time"] - row.time).abs()
            best = dt.idxmin()
            if dt[best].total_seconds() > 0.010:
                missing += 1
                continue
            worst_dt = max(worst_dt, dt[best].total_seconds())
            worst_dp = max(worst_dp, abs(mine.loc[best, "p"] - row.p))
    ok = abs(len(a) - len(b)) <= 0.005 * len(b) and missing <= 0.005 * len(b) and worst_dp <= 0.01
    return ok, (
        f"{len(a)} vs {len(b)} picks, {missing} unmatched, max |dt| {worst_dt * 1000:.3f} ms, "
        f"max |dp| {worst_dp:.2e}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source", type=Path, default=MESETAS, help="real 6-h recordings to build days from"
    )
    parser.add_argument("--stations", type=int, default=4)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--model", default="PhaseNet")
    parser.add_argument("--weights", default="original")
    parser.add_argument("--threshold", type=float, default=0.3)
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch and engine threads of this process (0: torch's default); 1 gives the "
        "CPU-seconds a machine full of one-thread workers pays",
    )
    parser.add_argument("--no-flow", action="store_true", help="skip the Prefect flow run")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="Dask worker processes (one thread each) for the flow run; 1: the default runner",
    )
    parser.add_argument(
        "--no-warmup", action="store_true", help="skip the untimed first unit both ways"
    )
    args = parser.parse_args()
    if not args.source.is_dir():
        print(
            f"error: --source {args.source} is absent: pass the folder of the Mesetas miniSEED files",
            file=sys.stderr,
        )
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="quakelake-bench-"))
    setup_env(tmp)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from quakelake.archive import waveforms
    from quakelake.config import PickParams, StationSelection, TimeWindow
    from quakelake.lakehouse import Lake
    from quakelake.picking import engine
    from quakelake.picking import models as picking

    archive = build_day_archive(tmp / "archive", args.days, args.source, stations=args.stations)
    # Only the built days: the 60 s of padding on either side would otherwise make 1-minute units.
    days = TimeWindow(start=FIRST_DAY, end=FIRST_DAY + dt.timedelta(days=args.days - 1))
    units = waveforms.station_days(waveforms.scan_archive(archive).index, days)
    n = len(units)
    params = PickParams(
        models=[args.model],
        weights=[args.weights],
        p_threshold=args.threshold,
        s_threshold=args.threshold,
    )
    spec = picking.ModelSpec(args.model, args.weights)
    model = picking.load_model(args.model, args.weights, picking.resolve_device("auto"))
    kwargs = picking.classify_kwargs(params)
    t0 = time.perf_counter()
    eng = engine.get_engine(model, params)
    build_s = time.perf_counter() - t0

    # Warm-up: one unit both ways (first-call allocations, ONNX Runtime's first run).
    if not args.no_warmup:
        plain_unit(model, kwargs, units[0])
        engine_unit(model, units[0], spec, params)
    eng.stats = engine.EngineStats()

    gflops = sgemm_gflops()
    per_window = model_gflop_per_window(model)
    windows_per_day = None

    plain, ours = [], []
    wall = {"plain": 0.0, "engine": 0.0}
    cpu = {"plain": 0.0, "engine": 0.0}
    prof_plain: dict[str, float] = {}
    prof_engine: dict[str, float] = {}
    made_by = ""
    for k, unit in enumerate(units):
        order = ["plain", "engine"] if k % 2 == 0 else ["engine", "plain"]
        for which in order:
            w0, c0 = time.perf_counter(), time.process_time()
            if which == "plain":
                rows, prof = plain_unit(model, kwargs, unit)
                plain.extend(rows)
                for key, v in prof.items():
                    prof_plain[key] = prof_plain.get(key, 0.0) + v
            else:
                rows, prof = engine_unit(model, unit, spec, params)
                made_by = prof.pop("made_by")
                ours.extend(rows)
                prof_engine["read"] = prof_engine.get("read", 0.0) + prof["read"]
            wall[which] += time.perf_counter() - w0
            cpu[which] += time.process_time() - c0
    windows_per_day = eng.stats.windows / n
    for stage, v in eng.stats.seconds.items():
        prof_engine[stage] = v

    flow_s = None
    if not args.no_flow:
        from prefect.testing.utilities import prefect_test_harness

        from quakelake.flows.pick import pick_phases

        harness = prefect_test_harness(server_startup_timeout=180)
        harness.__enter__()

        first = units[0]
        # Warm-up: start Prefect's temporary server and the flow machinery outside the timed run.
        pick_phases(
            archive,
            tmp / "warmup",
            selection=StationSelection(stations=[first.station]),
            pick=params,
            window=TimeWindow(start=first.day, end=first.day),
        )
        flow = pick_phases
        if args.workers > 1:
            from quakelake.config import ComputeSettings
            from quakelake.flows.runners import make_task_runner

            compute = ComputeSettings(
                runner="dask-local", workers=args.workers, threads_per_worker=1
            )
            flow = pick_phases.with_options(task_runner=make_task_runner(compute))
        t0 = time.perf_counter()
        summary = flow(archive, tmp / "lake", window=days, pick=params)
        flow_s = time.perf_counter() - t0
        lake_picks = Lake(tmp / "lake").read("picks")
        flow_rows = [
            (f"{r.network}.{r.station}.{r.location}", r.phase, r.time, float(r.probability))
            for r in lake_picks.itertuples()
        ]
        # The plain loop once more after the flow, so load drift over the run shows up.
        w0 = time.perf_counter()
        for unit in units:
            plain_unit(model, kwargs, unit)
        plain_again = time.perf_counter() - w0
        harness.__exit__(None, None, None)

    limit_s = windows_per_day * per_window / gflops
    print(
        f"data: {n} station-days of 24 h ({args.stations} Mesetas stations x {args.days} days, 100 Hz, 3-C), "
        f"{args.model}/{args.weights}, thresholds {args.threshold}, device {eng.device}, "
        f"torch threads {torch.get_num_threads()}, load {os.getloadavg()[0]:.1f}"
    )
    print(
        f"engine: {made_by} (built in {build_s:.1f} s), {windows_per_day:.0f} windows/station-day, "
        f"{per_window:.4f} GFLOP/window, sgemm {gflops:.0f} GFLOP/s -> compute limit {limit_s:.2f} s/station-day"
    )
    print(f"{'':<30}{'s/station-day':>14}{'cpu-s/st-day':>14}{'% of limit':>12}")
    for label, key in (
        ("plain seisbench classify loop", "plain"),
        ("quakelake engine (task path)", "engine"),
    ):
        s = wall[key] / n
        print(f"{label:<30}{s:>14.3f}{cpu[key] / n:>14.3f}{100 * limit_s / s:>11.0f}%")
    if flow_s is not None:
        label = (
            f"quakelake pick flow ({args.workers} w)" if args.workers > 1 else "quakelake pick flow"
        )
        print(f"{label:<30}{flow_s / n:>14.3f}{'':>14}{100 * limit_s / (flow_s / n):>11.0f}%")
        print(f"{'plain loop again after flow':<30}{plain_again / n:>14.3f}")
    print(
        f"speed-up plain/engine: {wall['plain'] / wall['engine']:.2f}  (cpu-s: {cpu['plain'] / cpu['engine']:.2f})"
    )
    if flow_s is not None:
        plain_mean = (wall["plain"] + plain_again) / 2
        print(
            f"speed-up plain/flow: {plain_mean / flow_s:.2f}  (plain = mean of the two plain passes; "
            f"flow stages: "
            + ", ".join(f"{k} {v:.1f} s" for k, v in summary["seconds"].items())
            + ")"
        )
    print(
        "profile plain (s/station-day): "
        + ", ".join(f"{k} {v / n:.3f}" for k, v in prof_plain.items())
    )
    print(
        "profile engine (s/station-day): "
        + ", ".join(f"{k} {v / n:.3f}" for k, v in prof_engine.items())
    )
    ok, detail = agreement(ours, plain)
    print(f"picks agree engine vs plain: {ok}  ({detail})")
    if flow_s is not None:
        ok_flow, detail = agreement(flow_rows, plain)
        print(f"picks agree flow vs plain: {ok_flow}  ({detail})")
        ok = ok and ok_flow
    shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
