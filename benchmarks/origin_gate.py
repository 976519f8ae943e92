"""Origin quality gate on real dense pick streams: recall and precision before and after the gate.

Each set is associated once through ``quakelake.association.associate`` (the code path of the
associate flow; the gate runs inside it), on the pick tables the data sets contain (no
re-picking), with the set's association settings of ``benchmarks/association.py``:

* ``italy``: 115k PhaseNet picks of 2016-10-14 (56 stations), PyOcto Italy preset (italy.mod),
  against REAL's automatic catalogue (origin time <= 2 s, epicentre <= 8 km);
* ``mesetas``: SeisMonitor's PhaseNet picks of 6 h of the 2019 Mesetas sequence (7 stations),
  PyOcto with derived settings (vel1d_col.csv), against SeisMonitor's GaMMA catalogue (origin
  time <= 3 s: it has local x/y only);
* ``ogs``: the OGS analyst picks of one month of 2024 (``--ogs-month``; ``all``: the year) fed
  without their grouping, the OGS default (``--ogs``), against the OGS catalogue (2 s / 8 km).

Printed per set: origins, TP, recall and precision of all origins ("before") and of the
reported ones ("after", the origins with ``evaluation_status`` preliminary), then per rule of
:class:`~quakelake.params.association.OriginGateParams`: the origins it rejects alone, the
matched ones among them (recall it costs) and the unmatched ones (false events it removes).

Usage::

    PYTHONPATH=src python benchmarks/origin_gate.py [italy mesetas ogs] [--ogs-month 2024-01]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import pandas as pd  # noqa: E402
from association import (  # noqa: E402
    DATA,
    auto_pyocto,
    italy_inputs,
    italy_pyocto,
    mesetas_inputs,
    ogs_inputs,
    time_scores,
)

from quakelake.analysis.evaluation import match_events  # noqa: E402
from quakelake.association import associate as asc  # noqa: E402
from quakelake.association import quality as origin_gate  # noqa: E402
from quakelake.association.settings import ogs_default  # noqa: E402
from quakelake.params.association import OriginGateParams  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
CACHE = False
GRID_ON = False

RULES = [
    "min_stations",
    "min_phases",
    "max_gap_deg",
    "max_horizontal_uncertainty_km",
    "max_depth_uncertainty_km",
    "max_rms_s",
]


def _matched(events: pd.DataFrame, reference, kind: str) -> set[str]:
    """Return the ids of ``events`` matched 1-to-1 to the reference."""
    if kind == "time":
        return set(_time_matches(events, reference, 3.0))
    m = match_events(events, reference, max_dt_s=2.0, max_km=8.0)
    return set(m.loc[m["outcome"] == "TP", "event_id"].astype(str))


def _time_matches(events: pd.DataFrame, reference: pd.Series, tol_s: float) -> list[str]:
    """Return the event ids that :func:`association.time_scores` counts as matched."""
    ev = events.assign(t=pd.to_datetime(events["time"], utc=True).astype("int64") / 1e9)
    ev = ev.sort_values("t")
    used: set[str] = set()
    ts = ev["t"].to_numpy()
    ids = ev["event_id"].astype(str).to_numpy()
    for t in sorted(pd.to_datetime(reference, utc=True).astype("int64") / 1e9):
        best, gap = None, tol_s
        for i in range(ts.searchsorted(t - tol_s), ts.searchsorted(t + tol_s, side="right")):
            if ids[i] not in used and abs(ts[i] - t) <= gap:
                best, gap = ids[i], abs(ts[i] - t)
        if best is not None:
            used.add(best)
    return sorted(used)


def scores(events: pd.DataFrame, reference, kind: str) -> dict:
    tp = len(_matched(events, reference, kind))
    n_ref = len(reference)
    return {
        "origins": len(events),
        "TP": tp,
        "recall": tp / n_ref if n_ref else 0.0,
        "precision": tp / len(events) if len(events) else 0.0,
    }


def gate_report(
    name: str, events: pd.DataFrame, reference, kind: str, seconds: float
) -> list[dict]:
    """Return the rows of one set: before, after, and each rule alone."""
    n_ref = len(reference)
    before = scores(events, reference, kind)
    reported = events[~origin_gate.is_rejected(events)]
    after = scores(reported, reference, kind)
    if kind == "time":
        check = time_scores(reported, reference, 3.0, 3.0)["TP"]
        assert check == after["TP"], (check, after["TP"])
    rows = [
        {"set": name, "reference": n_ref, "run": "before gate (all origins)", **before},
        {"set": name, "reference": n_ref, "run": "after gate (reported)", **after},
    ]
    matched = _matched(events, reference, kind)
    if GRID_ON:
        GRID.extend(grid(name, events, reference, kind))
    print(
        f"# {name}: {origin_gate.describe(len(events), len(events) - len(reported), origin_gate.rejection_counts(events))}"
        f" ({seconds:.0f} s)",
        file=sys.stderr,
    )
    off = {rule: None for rule in RULES}
    for rule in RULES:
        default = OriginGateParams.model_fields[rule].default
        if default is None:
            continue
        alone = origin_gate.evaluate(events, OriginGateParams(**{**off, rule: default}))
        hit = alone[origin_gate.is_rejected(alone)]
        ids = set(hit["event_id"].astype(str))
        rows.append(
            {
                "set": name,
                "reference": n_ref,
                "run": f"rule {rule} = {default} alone",
                "origins": len(events) - len(hit),
                "rejected": len(hit),
                "rejected_matched": len(ids & matched),
                "rejected_unmatched": len(ids - matched),
            }
        )
    return rows


def origins(
    name: str, picks: pd.DataFrame, stations: pd.DataFrame, cfg
) -> tuple[pd.DataFrame, float]:
    """Return the origins of one association run and its seconds (``--cache``: kept in out/)."""
    path = OUT / f"origin_gate_{name}.parquet"
    if CACHE and path.is_file():
        events = pd.read_parquet(path)
        return origin_gate.evaluate(events, cfg.gate), 0.0
    t0 = time.perf_counter()
    events = asc.associate(picks, stations, cfg).events
    seconds = time.perf_counter() - t0
    if CACHE:
        OUT.mkdir(parents=True, exist_ok=True)
        events.to_parquet(path)
    return events, seconds


def grid(name: str, events: pd.DataFrame, reference, kind: str) -> list[dict]:
    """Return, per candidate gate, the matched origins it rejects and the unmatched ones."""
    matched = _matched(events, reference, kind)
    rows = []
    for stations in (2, 3):
        for gap in (270.0, 300.0, 320.0):
            for horizontal in (20.0, 30.0, 40.0):
                for depth in (20.0, 50.0, None):
                    params = OriginGateParams(
                        min_stations=stations,
                        max_gap_deg=gap,
                        max_horizontal_uncertainty_km=horizontal,
                        max_depth_uncertainty_km=depth,
                    )
                    gated = origin_gate.evaluate(events, params)
                    ids = set(gated.loc[origin_gate.is_rejected(gated), "event_id"].astype(str))
                    rows.append(
                        {
                            "set": name,
                            "stations": stations,
                            "gap": gap,
                            "horizontal_km": horizontal,
                            "depth_km": depth,
                            "rejected_matched": len(ids & matched),
                            "rejected_unmatched": len(ids - matched),
                            "of_unmatched": len(events) - len(matched),
                        }
                    )
    return rows


GRID: list[dict] = []


def bench_italy() -> list[dict]:
    picks, stations, catalogue = italy_inputs()
    cfg = italy_pyocto(DATA / "real_demo_italy_20161014" / "italy.mod")
    events, seconds = origins("italy", picks, stations, cfg)
    return gate_report("italy 2016-10-14 (REAL)", events, catalogue, "space", seconds)


def bench_mesetas() -> list[dict]:
    picks, stations, ref = mesetas_inputs()
    cfg = auto_pyocto(DATA / "seismonitor_mesetas_2019" / "vel1d_col.csv")
    events, seconds = origins("mesetas", picks, stations, cfg)
    return gate_report("mesetas 6 h (SeisMonitor GaMMA)", events, ref, "time", seconds)


def bench_ogs(month: str) -> list[dict]:
    picks, stations, catalogue, _ = ogs_inputs()
    if month != "all":
        start = pd.Timestamp(month + "-01", tz="UTC")
        end = start + pd.offsets.MonthBegin(1)
        picks = picks[(picks["time"] >= start) & (picks["time"] < end)]
        catalogue = catalogue[(catalogue["time"] >= start) & (catalogue["time"] < end)]
    events, seconds = origins(f"ogs_{month}", picks, stations, ogs_default())
    return gate_report(f"ogs {month} (OGS catalogue)", events, catalogue, "space", seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sets", nargs="*", default=["italy", "mesetas", "ogs"])
    parser.add_argument(
        "--ogs-month", default="2024-01", help="month of the OGS set (YYYY-MM, or all)"
    )
    parser.add_argument(
        "--cache",
        action="store_true",
        help="keep each set's origins in benchmarks/out/ and reuse them (the gate evaluated anew)",
    )
    parser.add_argument(
        "--grid", action="store_true", help="also print the rejections of candidate gates"
    )
    args = parser.parse_args(argv)
    global CACHE, GRID_ON
    CACHE, GRID_ON = args.cache, args.grid
    rows: list[dict] = []
    for name in args.sets:
        if name == "italy":
            rows += bench_italy()
        elif name == "mesetas":
            rows += bench_mesetas()
        elif name == "ogs":
            rows += bench_ogs(args.ogs_month)
        else:
            parser.error(f"unknown set {name!r}; use italy, mesetas, ogs")
    table = pd.DataFrame(rows)
    with pd.option_context(
        "display.width", 300, "display.max_columns", 30, "display.float_format", "{:.3f}".format
    ):
        print(table.to_string(index=False, na_rep=""))
        if GRID:
            print(pd.DataFrame(GRID).to_string(index=False, na_rep="off"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
