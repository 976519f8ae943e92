"""CPU of the magnitude stage (``day_magnitudes``) on one day, old code against new (issue 26).

Each measurement is a fresh interpreter that imports what a ``quakelake run`` process has
loaded before its magnitude stage (numpy, pandas, scipy.signal, ObsPy, the lake), reads the
lake's events, assignments, stations and waveform index and the StationXML, then times

- ``first``: importing ``quakelake.association.magnitudes``, reading the StationXML and the
  first ``day_magnitudes`` (ObsPy's response removal imported on the way, as in a run);
- ``warm``: a second ``day_magnitudes`` in the same process.

Old and new alternate (``--repeat`` pairs, the order swapped every pair), each with its own
``PYTHONPATH``; medians of wall, process CPU (``time.process_time``: every thread, BLAS's
included) and main-thread CPU (``time.thread_time``) seconds, the CPU ratio, the load.
The two sets of amplitudes and event MLs are compared at the end (bit for bit).

The lake is one after ``quakelake run -F stations.xml`` over the 180-s Salton Sea day (its
waveform index points at ``../shared/data/phasenet_saltonsea_20201001/mseed``)::

    .venv/bin/python benchmarks/magnitude_stage.py --old ../main/src --lake /tmp/qlbench/lake
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("QUAKELAKE_SHARED", ROOT.parent / "shared"))
STATIONS = SHARED / "data" / "phasenet_saltonsea_20201001" / "stations.xml"

CHILD = """
import json, sys, time
from pathlib import Path
import numpy, pandas, scipy.signal, obspy
from quakelake.lakehouse import Lake
lake = Lake(Path(sys.argv[1]))
tables = {t: lake.read(t) for t in ("events", "assignments", "stations", "waveform_index")}
out = {}
def now():
    return time.perf_counter(), time.process_time(), time.thread_time()
t0 = now()
from quakelake.association import magnitudes
inventory = magnitudes.read_inventory([Path(sys.argv[2])])
args = (tables["events"], tables["assignments"], tables["stations"], inventory)
r = magnitudes.day_magnitudes(*args, tables["waveform_index"])
t1 = now()
magnitudes.day_magnitudes(*args, tables["waveform_index"])
t2 = now()
out["first"] = [b - a for a, b in zip(t0, t1)]
out["warm"] = [b - a for a, b in zip(t1, t2)]
out["evaluations"] = r.response_evaluations
out["matplotlib"] = "matplotlib" in sys.modules
r.amplitudes.to_parquet(sys.argv[3] + ".amplitudes.parquet")
r.events[["event_id", "magnitude"]].to_parquet(sys.argv[3] + ".events.parquet")
print(json.dumps(out))
"""


def measure(src: Path, lake: Path, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(lake), str(STATIONS), str(out)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", type=Path, required=True, help="src folder of the old code")
    ap.add_argument("--new", type=Path, default=ROOT / "src", help="src folder of the new code")
    ap.add_argument("--lake", type=Path, required=True, help="a lake after run -F (read only)")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    runs: dict[str, list[dict]] = {"old": [], "new": []}
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            order = ("old", "new") if i % 2 == 0 else ("new", "old")
            for name in order:
                src = args.old if name == "old" else args.new
                runs[name].append(measure(src.resolve(), args.lake, Path(tmp) / name))
            loads.append(os.getloadavg()[0])
        amps = {n: pd.read_parquet(Path(tmp) / f"{n}.amplitudes.parquet") for n in runs}
        events = {n: pd.read_parquet(Path(tmp) / f"{n}.events.parquet") for n in runs}
    pd.testing.assert_frame_equal(amps["old"], amps["new"], check_exact=True)
    pd.testing.assert_frame_equal(events["old"], events["new"], check_exact=True)
    print(f"amplitudes ({len(amps['new'])}) and event MLs ({len(events['new'])}): bit-equal")
    print(f"load (1 min) {min(loads):.1f}-{max(loads):.1f}; medians of {args.repeat}")
    print(f"{'':8}{'old wall / cpu / thread s':>28}{'new wall / cpu / thread s':>28}  cpu ratio")
    for what in ("first", "warm"):
        med = {n: [statistics.median(r[what][k] for r in runs[n]) for k in (0, 1, 2)] for n in runs}
        cols = "".join(f"{med[n][0]:10.3f} /{med[n][1]:6.3f} /{med[n][2]:6.3f}" for n in runs)
        print(f"{what:8}{cols}{med['old'][1] / med['new'][1]:9.2f}x")
    for n in runs:
        print(
            f"{n}: evalresp spectra {runs[n][0]['evaluations']}, "
            f"matplotlib imported: {runs[n][0]['matplotlib']}"
        )


if __name__ == "__main__":
    main()
