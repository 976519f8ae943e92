"""Compare two lakes row for row: the same picks, events, assignments, magnitudes and metrics?

Used to show that a refactoring changed no result (issue 22): run the same commands with the old
and the new code into two lakes, then::

    python benchmarks/compare_lakes.py LAKE_A LAKE_B [--path A_FOLDER=B_FOLDER]

The issue-22 check ran, once with ``PYTHONPATH`` at the old ``src`` and once at the new one (each
with its own ``PREFECT_HOME`` and a copy of the SeisBench cache; ``S`` = the Salton Sea sample)::

    quakelake import-catalog $S/DERIVED_phasenet_ref_picks_first180s.csv \
        $S/DERIVED_scsn_events_first10min.csv --name scsn --lake $OUT/lake
    quakelake run -d $S/mseed -F $S/stations.xml --lake $OUT/lake -M PhaseNet -W original \
        --reference scsn --report-dir $OUT/report --silent
    quakelake associate --lake $OUT/lake -F $S/stations.xml --pyocto
    quakelake analyze --lake $OUT/lake --reference scsn --report-dir $OUT/report2

Every table of either lake is read whole; what legitimately differs between two runs of the same
commands is left out: run ids and timestamps, durations, host and package versions, file
modification times, the process that ran a run (``ran_on``), run ids and data file names inside
text (``RUN``, ``~FILE.parquet``), and the paths of the lakes and reports themselves (``--path
A=B`` maps the first lake's folder onto the second's in text columns). The remaining columns are sorted and
compared exactly (floats bit for bit). Prints one line per table; exit status 1 when any differs.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import pandas as pd

from quakelake.lakehouse import TABLES, Lake

# Columns that differ between two runs of the same commands by construction.
VOLATILE = {
    "run_id",
    "flow_run_id",
    "started",
    "finished",
    "seconds",
    "host",
    "versions_json",
    "file_mtime",
    "ran_on",  # config_json: host and process id
}
# Text that names a run or a data file written by it (run ids are timestamps; file names carry
# a hash of their rows' order): replaced by placeholders before comparing.
RUN_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{8}")
DATA_FILE = re.compile(r"~[0-9a-f]{12}\.parquet")


def _normalise(frame: pd.DataFrame, paths: dict[str, str]) -> pd.DataFrame:
    frame = frame.drop(columns=[c for c in frame.columns if c in VOLATILE])
    for col in frame.columns:
        if frame[col].dtype == object:
            values = frame[col].map(lambda v: _replace(v, paths) if isinstance(v, str) else v)
            frame[col] = values.map(_canonical_json)
    if len(frame.columns):
        order = frame.astype(str).sort_values(list(frame.columns)).index
        frame = frame.loc[order]
    return frame.reset_index(drop=True)


def _replace(text: str, paths: dict[str, str]) -> str:
    for old, new in paths.items():
        text = text.replace(old, new)
    return DATA_FILE.sub("~FILE.parquet", RUN_ID.sub("RUN", text))


def _canonical_json(value):
    """Return JSON text with the volatile keys removed (e.g. ``runs.config_json``); else ``value``."""
    if not isinstance(value, str) or not value.startswith("{"):
        return value
    try:
        data = json.loads(value)
    except ValueError:
        return value
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k not in VOLATILE}
    return json.dumps(data, sort_keys=True)


def compare(a: Path, b: Path, paths: dict[str, str]) -> list[tuple[str, int, int, str]]:
    """Return ``(table, rows in a, rows in b, verdict)`` for every table of either lake."""
    lake_a, lake_b = Lake(a), Lake(b)
    out = []
    for table in TABLES:
        has_a, has_b = lake_a.has_files(table), lake_b.has_files(table)
        if not has_a and not has_b:
            continue
        fa = lake_a.read(table) if has_a else pd.DataFrame()
        fb = lake_b.read(table) if has_b else pd.DataFrame()
        na, nb = _normalise(fa, paths), _normalise(fb, {})
        if len(na) != len(nb) or list(na.columns) != list(nb.columns):
            verdict = "DIFFERENT (rows or columns)"
        else:
            unequal = [c for c in na.columns if not na[c].astype(str).equals(nb[c].astype(str))]
            verdict = "identical" if not unequal else f"DIFFERENT in {', '.join(unequal)}"
        out.append((table, len(fa), len(fb), verdict))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lake_a", type=Path)
    parser.add_argument("lake_b", type=Path)
    parser.add_argument(
        "--path",
        action="append",
        default=[],
        metavar="A=B",
        help="text A in the first lake reads B (e.g. the run folders of the two lakes)",
    )
    args = parser.parse_args(argv)
    paths = dict(p.split("=", 1) for p in args.path)
    rows = compare(args.lake_a, args.lake_b, paths)
    width = max(len(r[0]) for r in rows)
    for table, na, nb, verdict in rows:
        print(f"{table:<{width}}  {na:>6} rows  {nb:>6} rows  {verdict}")
    different = [r[0] for r in rows if r[3] != "identical"]
    print(f"{len(rows) - len(different)} of {len(rows)} tables identical")
    return 1 if different else 0


if __name__ == "__main__":
    sys.exit(main())
