"""Reading station-days: ``waveforms.read_station_day`` vs a plain ObsPy read + merge, side by side.

``read_station_day`` lays each channel's segments on one sample grid (the later segment wins,
conflicting and non-finite samples counted, NaN split as gaps); the baseline is what a script
does with ObsPy: read the unit's files, ``merge(method=1)``, trim to the padded day, ``split``.
Both read the same station-days in this process; prints seconds, their ratio and whether the
samples agree.

    .venv/bin/python benchmarks/waveform_read.py [--data DIR] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import obspy

from quakelake.archive import waveforms

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("QUAKELAKE_SHARED", ROOT.parent / "shared"))


def plain(unit: waveforms.StationDay, pad_s: float = 60.0) -> obspy.Stream:
    """The baseline: ObsPy read of the unit's files, merge, trim to the padded day, split."""
    st = obspy.Stream()
    for path in unit.paths:
        st += obspy.read(path)
    st = st.select(network=unit.network, station=unit.station)
    st.merge(method=1)
    start = obspy.UTCDateTime(unit.day.isoformat())
    st.trim(start - pad_s, start + 86400 + pad_s, nearest_sample=False)
    return st.split()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=SHARED / "data" / "seismonitor_mesetas_2019" / "mseed"
    )
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs")
    args = parser.parse_args()
    units = waveforms.station_days(waveforms.scan_archive(args.data).index)
    best = {"read_station_day": np.inf, "obspy merge": np.inf}
    ours, theirs = [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        ours = [waveforms.read_station_day(u)[0] for u in units]
        best["read_station_day"] = min(best["read_station_day"], time.perf_counter() - t0)
        t0 = time.perf_counter()
        theirs = [plain(u) for u in units]
        best["obspy merge"] = min(best["obspy merge"], time.perf_counter() - t0)
    agree = True
    n = 0
    for instruments, st in zip(ours, theirs, strict=True):
        for inst in instruments:
            for tr in inst.stream:
                # components keep their original letters for Z/N/E channels
                ref = st.select(location=inst.location, channel=tr.stats.channel)
                ref = ref.slice(tr.stats.starttime, tr.stats.endtime)
                same = len(ref) == 1 and np.array_equal(ref[0].data, tr.data)
                agree &= same
                n += tr.stats.npts
    print(f"{len(units)} station-days from {args.data}, {n} samples, best of {args.repeat}")
    for name, seconds in best.items():
        print(f"  {name:<18} {seconds:8.3f} s")
    ratio = best["read_station_day"] / best["obspy merge"]
    print(f"  ratio read_station_day / obspy merge: {ratio:.2f}; samples agree: {agree}")
    return 0 if agree else 1


if __name__ == "__main__":
    raise SystemExit(main())
