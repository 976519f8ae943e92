"""Association benchmark: GaMMA vs PyOcto on the same pick sets, side by side.

Data (``../shared/data``):

* ``ogs_rsfvg_2024``: the 2024 OGS analyst picks fed *without* their event grouping, stations from
  ``DERIVED_station_coords_from_hpc.csv``; events matched 1-to-1 to the OGS catalogue
  (origin time <= 2 s, epicentre <= 8 km). R4 = recall of the catalogue events that have >= 4
  picks, P = precision.
* ``pyocto_chile_test``: every pick labelled with its true event: pick-level precision/recall
  of the assignments and the adjusted Rand index.
* ``real_demo_italy_20161014``: 115k PhaseNet picks of one day on 56 stations, events compared
  with REAL's automatic catalogue (same 2 s / 8 km matching).

Usage::

    python benchmarks/association.py [ogs|chile|italy ...] [--gamma] [--per-day]

GaMMA on the whole OGS year takes about a minute on 2 cores; ``--gamma`` adds it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from quakelake import association as asc  # noqa: E402
from quakelake.evaluation import match_events  # noqa: E402
from quakelake.stations import read_stations  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("QUAKELAKE_SHARED", ROOT.parent / "shared")) / "data"


# ----------------------------------------------------------------------------- OGS


def ogs_inputs(data: Path = DATA) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, set[str]]:
    """Return (picks without grouping, stations, catalogue, ids of catalogue events with >= 4 picks)."""
    d = data / "ogs_rsfvg_2024"
    raw = pd.read_parquet(d / "parquet" / "onlyEQ-2024.dat.parquet")
    picks = pd.DataFrame({
        "station_id": raw["station"].str.strip("."),
        "phase": raw["phase"],
        "time": pd.to_datetime(raw["time"]).dt.tz_localize("UTC"),
    })
    stations = read_stations(d / "DERIVED_station_coords_from_hpc.csv")
    cat = pd.read_csv(d / "manual" / "RSFVG-2024.txt", sep=";")
    catalogue = pd.DataFrame({
        "event_id": cat["event-id"].astype(str),
        "time": pd.to_datetime(cat["origin_time(UTC)"], utc=True),
        "latitude": cat["lat"], "longitude": cat["lon"], "depth_km": cat["depth"],
    })
    # The pick file numbers its events differently from the catalogue: a pick group belongs to
    # the last catalogue origin before its first pick.
    groups = raw.groupby("index").agg(first=("time", "min"), n=("time", "size")).reset_index()
    groups["first"] = groups["first"].dt.tz_localize("UTC")
    groups = groups.sort_values("first")
    joined = pd.merge_asof(groups, catalogue.sort_values("time"), left_on="first", right_on="time",
                           direction="backward")
    with4 = set(joined.loc[joined["n"] >= 4, "event_id"])
    return picks, stations, catalogue, with4


def ogs_scores(events: pd.DataFrame, catalogue: pd.DataFrame, with4: set[str]) -> dict[str, float]:
    """Return R4, precision, TP, events, FP against the OGS catalogue."""
    m = match_events(events, catalogue, max_dt_s=2.0, max_km=8.0)
    tp = m[m["outcome"] == "TP"]
    n = len(events)
    return {
        "events": n,
        "TP": len(tp),
        "FP": int((m["outcome"] == "FP").sum()),
        "R4": len(set(tp["reference_event_id"]) & with4) / len(with4),
        "P": len(tp) / n if n else 0.0,
    }


def ogs_gamma_practitioner() -> asc.GammaConfig:
    """GaMMA with the OGS practitioner settings quoted in the issue."""
    return asc.GammaConfig(
        area=asc.AreaParams(latitude=(44.0, 47.6), longitude=(9.0, 15.6), depth_km=(0.0, 50.0)),
        velocity=asc.VelocityParams(kind="0d", vp=6.0, vs=6.0 / 1.75),
        dbscan_eps=8.1, min_picks_per_eq=5, min_p_picks_per_eq=3, min_s_picks_per_eq=2,
        max_sigma11=1.5, threads=1, ncpu=1,
    )


def ogs_pyocto_practitioner() -> asc.PyOctoConfig:
    """Plain PyOcto with the OGS practitioner counts (6/3/3/3), 1-D model, no relocation."""
    cfg = asc.ogs_default()
    return cfg.model_copy(update={
        "n_picks": 6, "n_p_picks": 3, "n_s_picks": 3, "n_p_and_s_picks": 3, "min_pick_fraction": 0.25,
        "relocation": asc.RelocationParams(enabled=False),
    })


def bench_ogs(with_gamma: bool, per_day: bool) -> list[dict]:
    picks, stations, catalogue, with4 = ogs_inputs()
    rows = []
    configs: list[tuple[str, asc.PyOctoConfig | asc.GammaConfig]] = [
        ("PyOcto practitioner 6/3/3/3 (plain)", ogs_pyocto_practitioner()),
        ("PyOcto OGS default (4/2/0/0 + relocation)", asc.ogs_default()),
    ]
    if with_gamma:
        configs.append(("GaMMA practitioner (eps 8.1, 5/3/2)", ogs_gamma_practitioner()))
    for label, cfg in configs:
        t0 = time.perf_counter()
        res = asc.associate(picks, stations, cfg)
        seconds = time.perf_counter() - t0
        rows.append({"data": "ogs 2024", "run": label, "picks": len(picks), "seconds": seconds,
                     "picks/s": len(picks) / seconds, **ogs_scores(res.events, catalogue, with4)})
    if per_day:
        cfg = asc.ogs_default()
        days = pd.date_range("2024-01-01", "2024-12-31", freq="D").date
        t0 = time.perf_counter()
        parts = [asc.associate_day(picks, stations, day, cfg, margin_s=120.0).events for day in days]
        seconds = time.perf_counter() - t0
        events = pd.concat(parts, ignore_index=True)
        rows.append({"data": "ogs 2024", "run": "PyOcto OGS default, 366 day units", "picks": len(picks),
                     "seconds": seconds, "picks/s": len(picks) / seconds,
                     **ogs_scores(events, catalogue, with4)})
    return rows


# ----------------------------------------------------------------------------- Chile


def chile_inputs(data: Path = DATA) -> tuple[pd.DataFrame, pd.DataFrame, Path]:
    """Return (labelled picks, stations, velocity model file) of the PyOcto test set."""
    d = data / "pyocto_chile_test"
    raw = pd.read_parquet(d / "picks.parquet")
    picks = pd.DataFrame({
        "pick_id": [f"p{i}" for i in range(len(raw))],
        "station_id": raw["station"], "phase": raw["phase"],
        "time": pd.to_datetime(raw["time"]).dt.tz_localize("UTC"), "event": raw["event"],
    })
    return picks, read_stations(d / "stations.parquet"), d / "graeber.csv"


def chile_pyocto(model_file: Path) -> asc.PyOctoConfig:
    """PyOcto on the Chile test set: its 1-D model, PyOcto's test settings."""
    return asc.PyOctoConfig(
        area=asc.AreaParams(latitude=(-25.0, -18.0), longitude=(-72.0, -67.0), depth_km=(0.0, 250.0)),
        velocity=asc.VelocityParams(kind="1d", model_file=model_file, max_depth_km=300.0, grid_km=1.0),
        tolerance_s=2.0, pick_match_tolerance_s=2.0, time_before_s=300.0,
        n_picks=10, n_p_picks=2, n_s_picks=2, n_p_and_s_picks=4,
        relocation=asc.RelocationParams(enabled=False),
    )


def chile_gamma() -> asc.GammaConfig:
    """GaMMA on the Chile test set (deep subduction seismicity)."""
    return asc.GammaConfig(
        area=asc.AreaParams(latitude=(-25.0, -18.0), longitude=(-72.0, -67.0), depth_km=(0.0, 250.0)),
        velocity=asc.VelocityParams(kind="0d", vp=7.0, vs=4.0),
        dbscan_eps=30.0, min_picks_per_eq=8, min_p_picks_per_eq=4, min_s_picks_per_eq=2,
        max_sigma11=5.0,
    )


def pick_scores(picks: pd.DataFrame, assignments: pd.DataFrame) -> dict[str, float]:
    """Pick-level precision/recall of assignments and adjusted Rand index against true labels."""
    from sklearn.metrics import adjusted_rand_score

    pred = picks["pick_id"].map(dict(zip(assignments["pick_id"], assignments["event_id"], strict=False)))
    true = picks["event"]
    # predicted event -> the true event most of its picks belong to
    joined = pd.DataFrame({"pred": pred, "true": true}).dropna(subset=["pred"])
    major = joined[joined["true"] >= 0].groupby("pred")["true"].agg(lambda s: s.value_counts().index[0])
    correct = joined["pred"].map(major) == joined["true"]
    tp = int(correct.sum())
    n_true = int((true >= 0).sum())
    # noise picks and unassigned picks are singletons (each its own cluster)
    singles = pd.Series([f"single{i}" for i in range(len(picks))], index=picks.index)
    labels_pred = pred.astype(object).where(pred.notna(), singles).astype(str)
    labels_true = true.astype(str).where(true >= 0, singles)
    found = major.nunique()
    return {"pick_recall": tp / n_true, "pick_precision": tp / max(len(joined), 1),
            "ARI": adjusted_rand_score(labels_true, labels_pred), "events": len(major),
            "true_events_found": f"{found}/{true[true >= 0].nunique()}"}


def bench_chile(with_gamma: bool) -> list[dict]:
    picks, stations, model = chile_inputs()
    rows = []
    configs = [("PyOcto 1-D", chile_pyocto(model))]
    if with_gamma:
        configs.append(("GaMMA", chile_gamma()))
    for label, cfg in configs:
        t0 = time.perf_counter()
        res = asc.associate(picks, stations, cfg)
        seconds = time.perf_counter() - t0
        rows.append({"data": "chile test", "run": label, "picks": len(picks), "seconds": seconds,
                     "picks/s": len(picks) / seconds, **pick_scores(picks, res.assignments)})
    return rows


# ----------------------------------------------------------------------------- Italy


def italy_inputs(data: Path = DATA) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Return (PhaseNet picks, stations, REAL catalogue) of the 2016-10-14 Central Italy day."""
    d = data / "real_demo_italy_20161014"
    table = pd.read_csv(d / "picks.csv", sep="\t")
    frames = []
    for _, row in table.iterrows():
        parts = row["fname"].split("_")
        net, sta = parts[-3], parts[-2]
        t0 = pd.Timestamp(row["t0"], tz="UTC")
        for phase, idx_col, prob_col in (("P", "p_idx", "p_prob"), ("S", "s_idx", "s_prob")):
            idx = np.array(str(row[idx_col]).strip("[]").split(","), dtype=float) if len(
                str(row[idx_col]).strip("[]")) else np.array([])
            prob = np.array(str(row[prob_col]).strip("[]").split(","), dtype=float) if len(idx) else idx
            frames.append(pd.DataFrame({"station_id": f"{net}.{sta}", "phase": phase,
                                        "time": t0 + pd.to_timedelta(idx / 100.0, unit="s"),
                                        "probability": prob}))
    picks = pd.concat(frames, ignore_index=True)
    stations = read_stations(d / "station.dat")
    cat = pd.read_csv(d / "REAL_output_catalog_sel.txt", sep=r"\s+", header=None)
    catalogue = pd.DataFrame({
        "event_id": cat[0].astype(str),
        "time": pd.Timestamp("2016-10-14", tz="UTC") + pd.to_timedelta(cat[5], unit="s"),
        "latitude": cat[7], "longitude": cat[8],
    })
    return picks, stations, catalogue


def italy_pyocto(model_file: Path) -> asc.PyOctoConfig:
    """PyOcto for the Amatrice-Norcia sequence: 1-D italy.mod, 0-20 km."""
    return asc.PyOctoConfig(
        area=asc.AreaParams(latitude=(42.3, 43.3), longitude=(12.6, 13.7), depth_km=(0.0, 20.0)),
        velocity=asc.VelocityParams(kind="1d", model_file=model_file, max_depth_km=40.0),
        time_before_s=30.0, n_picks=8, n_p_picks=4, n_s_picks=3, n_p_and_s_picks=2,
        relocation=asc.RelocationParams(enabled=True),
    )


def bench_italy(with_gamma: bool) -> list[dict]:
    picks, stations, catalogue = italy_inputs()
    model = DATA / "real_demo_italy_20161014" / "italy.mod"
    rows = []
    configs: list[tuple[str, asc.PyOctoConfig | asc.GammaConfig]] = [("PyOcto 1-D + relocation", italy_pyocto(model))]
    if with_gamma:
        configs.append(("GaMMA", asc.GammaConfig(
            area=asc.AreaParams(latitude=(42.3, 43.3), longitude=(12.6, 13.7), depth_km=(0.0, 20.0)),
            dbscan_eps=5.0, min_picks_per_eq=8, min_p_picks_per_eq=4, min_s_picks_per_eq=2)))
    for label, cfg in configs:
        t0 = time.perf_counter()
        res = asc.associate(picks, stations, cfg)
        seconds = time.perf_counter() - t0
        m = match_events(res.events, catalogue, max_dt_s=2.0, max_km=8.0)
        tp = int((m["outcome"] == "TP").sum())
        rows.append({"data": "italy 2016-10-14", "run": label, "picks": len(picks), "seconds": seconds,
                     "picks/s": len(picks) / seconds, "events": len(res.events),
                     "TP": tp, "REAL events": len(catalogue),
                     "recall vs REAL": tp / len(catalogue), "P vs REAL": tp / max(len(res.events), 1)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sets", nargs="*", default=["ogs", "chile", "italy"])
    parser.add_argument("--gamma", action="store_true", help="also run GaMMA (slow on the OGS year)")
    parser.add_argument("--per-day", action="store_true", help="also run OGS as 366 day units")
    args = parser.parse_args(argv)
    rows: list[dict] = []
    if "ogs" in args.sets:
        rows += bench_ogs(args.gamma, args.per_day)
    if "chile" in args.sets:
        rows += bench_chile(args.gamma)
    if "italy" in args.sets:
        rows += bench_italy(args.gamma)
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 250, "display.max_columns", 30, "display.float_format",
                           "{:.3f}".format):
        print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
