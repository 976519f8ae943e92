"""Picking throughput: the QuakeLake pick flow vs a plain SeisBench ``classify`` loop, side by side.

Both run in this process on the same station-days, weights and thresholds, with the model already
loaded. Prints seconds per station-day for each, their ratio, and whether the picks agree (same
count, times within 10 ms).

    .venv/bin/python benchmarks/picking.py [--data DIR] [--model PhaseNet --weights original]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("QUAKELAKE_SHARED", ROOT.parent / "shared"))


def _setup_env(tmp: Path) -> None:
    os.environ.setdefault("PREFECT_HOME", str(tmp / "prefect"))
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("MPLCONFIGDIR", str(tmp / "mpl"))
    if "SEISBENCH_CACHE_ROOT" not in os.environ:
        os.environ["SEISBENCH_CACHE_ROOT"] = str(tmp / "seisbench")
        if (SHARED / "seisbench_cache").is_dir():
            shutil.copytree(SHARED / "seisbench_cache", tmp / "seisbench")


def plain_loop(model, kwargs: dict, units, pad_s: float = 60.0) -> tuple[list, float]:
    """The baseline: per station-day, read its files with ObsPy, merge, trim, classify, keep the day."""
    import obspy
    import pandas as pd

    t0 = time.perf_counter()
    picks = []
    for u in units:
        st = obspy.Stream()
        for path in u.paths:
            st += obspy.read(path)
        st = st.select(network=u.network, station=u.station)
        st.merge(method=1)
        start = obspy.UTCDateTime(u.day.isoformat())
        st.trim(start - pad_s, start + 86400 + pad_s, nearest_sample=False)
        for p in model.classify(st.split(), **kwargs).picks:
            t = pd.Timestamp(p.peak_time.datetime, tz="UTC")
            if t.date() == u.day:
                picks.append((p.trace_id, p.phase, t))
    return picks, time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED / "data" / "seismonitor_mesetas_2019" / "mseed")
    parser.add_argument("--model", default="PhaseNet")
    parser.add_argument("--weights", default="original")
    parser.add_argument("--threshold", type=float, default=0.3)
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"benchmark data folder {args.data} is absent: pass --data DIR", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="quakelake-bench-"))
    _setup_env(tmp)

    import pandas as pd

    from quakelake import picking, waveforms
    from quakelake.config import PickParams, StationSelection
    from quakelake.flows.pick import pick_phases
    from quakelake.lakehouse import Lake

    params = PickParams(models=[args.model], weights=[args.weights], p_threshold=args.threshold,
                        s_threshold=args.threshold)
    model = picking.load_model(args.model, args.weights, picking.resolve_device("auto"))
    units = waveforms.station_days(waveforms.scan_archive(args.data).index)
    # Warm-up: start Prefect's temporary server and the flow machinery outside the timed run.
    first = units[0]
    pick_phases(args.data, tmp / "warmup", selection=StationSelection(networks=[first.network],
                stations=[first.station]), pick=params)

    t0 = time.perf_counter()
    summary = pick_phases(args.data, tmp / "lake", pick=params)
    flow_s = time.perf_counter() - t0
    lake_picks = Lake(tmp / "lake").read("picks")

    plain, plain_s = plain_loop(model, picking.classify_kwargs(params), units)
    plain_df = pd.DataFrame(plain, columns=["trace_id", "phase", "time"])

    n = len(units)
    print(f"data: {args.data} ({n} station-days), {args.model}/{args.weights}, thresholds {args.threshold}, "
          f"device {picking.resolve_device('auto')}")
    print(f"{'':<24}{'seconds':>10}{'s/station-day':>16}{'picks':>8}")
    print(f"{'quakelake pick flow':<24}{flow_s:>10.2f}{flow_s / n:>16.3f}{len(lake_picks):>8}")
    print(f"{'plain seisbench loop':<24}{plain_s:>10.2f}{plain_s / n:>16.3f}{len(plain_df):>8}")
    print(f"ratio flow/plain: {flow_s / plain_s:.2f}   (flow stages: "
          + ", ".join(f"{k} {v:.2f} s" for k, v in summary["seconds"].items()) + ")")

    ours = lake_picks.assign(trace_id=lake_picks["network"] + "." + lake_picks["station"] + "."
                             + lake_picks["location"])
    agree = len(ours) == len(plain_df)
    worst = float("nan")
    if agree:
        a = ours.sort_values(["trace_id", "phase", "time"])["time"].reset_index(drop=True)
        b = plain_df.sort_values(["trace_id", "phase", "time"])["time"].reset_index(drop=True)
        worst = float((a - b).abs().max().total_seconds())
        agree = worst <= 0.010
    print(f"picks agree (same count, times within 10 ms): {agree}  (max |dt| {worst * 1000:.3f} ms)")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
