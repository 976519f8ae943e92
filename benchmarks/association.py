"""Association benchmark: automatic settings vs presets vs plain library defaults, GaMMA and PyOcto.

Every real set with a reference (``../shared/data``), each run through
``quakelake.association.associate`` (the code path the associate flow uses):

* ``ogs``: the 2024 OGS analyst picks fed *without* their event grouping, stations from
  ``DERIVED_station_coords_from_hpc.csv``; events matched 1-to-1 to the OGS catalogue (origin time
  <= 2 s, epicentre <= 8 km). R4 = recall of the catalogue events that have >= 4 picks, P = precision.
* ``chile``: PyOcto's test set, every pick labelled with its true event: pick-level
  precision/recall of the assignments and the adjusted Rand index.
* ``italy``: 115k PhaseNet picks of 2016-10-14 on 56 stations, events compared with REAL's
  automatic catalogue (2 s / 8 km).
* ``salton``: the 184 reference PhaseNet picks of the 180 s Salton Sea sample; the one SCSN event
  inside the span (2 s / 8 km).
* ``mesetas``: SeisMonitor's PhaseNet picks (cached in the data set) of 6 h of the 2019 Mesetas
  Mw 6.0 sequence on 7 regional stations; SeisMonitor's own GaMMA catalogue as reference
  (automatic, local x/y only: matched on origin time <= 3 s).
* ``hengill``: 20 dense stations, 5 min; picks made here once with PhaseNet/original and cached
  under ``benchmarks/out/``; reference = ObsPy STA/LTA coincidence triggers on >= 10 vertical
  channels (an event matches when its origin lies 0-5 s before a trigger).

Runs per set: ``auto`` (no settings; the set's regional 1-D model file as a user would give it),
``auto, ak135`` (nothing given at all), the set's preset where one exists (OGS default, PyOcto's
Chile test settings, the Italy settings), and ``plain`` PyOcto / GaMMA with the libraries' own
defaults (QuakeLake's defaults before settings were derived: 0-D 6.0/3.43 km/s, 10/3/3/3 picks
and a 60 s overlap for PyOcto; eps 10 s, 5/3/2 picks for GaMMA; stations' box + 0.3 deg, 0-30 km).

Usage::

    python benchmarks/association.py [ogs chile italy salton mesetas hengill] [--gamma] [--per-day] [--auto]

``--gamma`` adds GaMMA runs (slow on OGS and Italy on 2 cores): derived settings with GaMMA's
eikonal travel times in the 1-D model (the default) and with its straight rays at the model's
crustal vp/vs (``eikonal: false``), and GaMMA's plain defaults.
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

from quakelake.analysis.evaluation import match_events  # noqa: E402
from quakelake.archive.stations import read_stations  # noqa: E402
from quakelake.association import associate as asc  # noqa: E402
from quakelake.association.settings import format_settings, ogs_default, resolve_for_network  # noqa: E402
from quakelake.params.association import (  # noqa: E402
    AreaParams,
    GammaConfig,
    PyOctoConfig,
    RelocationParams,
    VelocityParams,
)

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("QUAKELAKE_SHARED", ROOT.parent / "shared"))
DATA = SHARED / "data"
OUT = ROOT / "benchmarks" / "out"

Config = PyOctoConfig | GammaConfig


def auto_pyocto(model_file: Path | None = None) -> PyOctoConfig:
    """PyOcto with every setting derived (only the regional model file given, when there is one)."""
    if model_file is None:
        return PyOctoConfig()
    return PyOctoConfig(velocity=VelocityParams(kind="auto", model_file=model_file))


def auto_gamma(model_file: Path | None = None) -> GammaConfig:
    """GaMMA with every setting derived (only the regional model file given, when there is one)."""
    if model_file is None:
        return GammaConfig()
    return GammaConfig(velocity=VelocityParams(kind="auto", model_file=model_file))


def plain_pyocto() -> PyOctoConfig:
    """PyOcto with its own defaults (OctoAssociator's counts), a 0-D model and a 60 s overlap."""
    return PyOctoConfig(
        area=AreaParams(depth_km=(0.0, 30.0), margin_deg=0.3),
        velocity=VelocityParams(kind="0d", vp=6.0, vs=6.0 / 1.75, grid_km=1.0, max_depth_km=60.0),
        tolerance_s=1.5,
        time_before_s=60.0,
        n_picks=10,
        n_p_picks=3,
        n_s_picks=3,
        n_p_and_s_picks=3,
        min_pick_fraction=0.25,
        pick_match_tolerance_s=1.5,
        min_node_size_km=10.0,
        min_node_size_location_km=1.5,
        time_slicing_s=1200.0,
        relocation=RelocationParams(enabled=False),
    )


def plain_gamma() -> GammaConfig:
    """GaMMA with the defaults of its examples: 0-D 6.0/3.43 km/s, eps 10 s, 5/3/2 picks, sigma 2 s."""
    return GammaConfig(
        area=AreaParams(depth_km=(0.0, 30.0), margin_deg=0.3),
        velocity=VelocityParams(kind="0d", vp=6.0, vs=6.0 / 1.75, grid_km=1.0, max_depth_km=60.0),
        dbscan_eps=10.0,
        min_picks_per_eq=5,
        min_p_picks_per_eq=3,
        min_s_picks_per_eq=2,
        max_sigma11=2.0,
        relocation=RelocationParams(enabled=False),
    )


# --auto: only the automatic-settings runs (the rows a change of the derivation can move).
AUTO_ONLY = False


def selected(configs: list[tuple[str, Config]]) -> list[tuple[str, Config]]:
    """Return ``configs``, only the automatic ones (label ``... auto ...``) under ``--auto``."""
    return [c for c in configs if not AUTO_ONLY or " auto " in f"{c[0]} "]


def standard_runs(model_file: Path | None, with_gamma: bool) -> list[tuple[str, Config]]:
    """The runs every set gets: automatic (with and without its model file) and plain defaults."""
    runs: list[tuple[str, Config]] = []
    if model_file is not None:
        runs.append((f"PyOcto auto ({model_file.name})", auto_pyocto(model_file)))
    runs.append(("PyOcto auto (ak135)", auto_pyocto()))
    runs.append(("PyOcto plain defaults", plain_pyocto()))
    if with_gamma:
        name = model_file.name if model_file else "ak135"
        runs.append((f"GaMMA auto ({name}, 1-D eikonal)", auto_gamma(model_file)))
        runs.append(
            (
                f"GaMMA auto ({name}, 0-D rays)",
                auto_gamma(model_file).model_copy(update={"eikonal": False}),
            )
        )
        runs.append(("GaMMA plain defaults", plain_gamma()))
    return runs


def timed(
    picks: pd.DataFrame, stations: pd.DataFrame, cfg: Config
) -> tuple[asc.AssociationResult, float]:
    """Return the association result and its wall time (and say which run finished, for long sets)."""
    t0 = time.perf_counter()
    res = asc.associate(picks, stations, cfg)
    seconds = time.perf_counter() - t0
    print(
        f"# {cfg.associator}: {len(res.events)} events in {seconds:.1f} s; {format_settings(res.settings)}",
        file=sys.stderr,
        flush=True,
    )
    return res, seconds


def settings_note(res: asc.AssociationResult) -> str:
    """The derived counts and overlap (or GaMMA's eps), for the table's last column."""
    d = res.settings.get("derived", {})
    if "n_picks" in d:
        counts = f"{d['n_picks']}/{d['n_p_picks']}/{d['n_s_picks']}/{d['n_p_and_s_picks']}"
        tol = f"{d['tolerance_s']}/{d.get('pick_match_tolerance_s', d['tolerance_s'])}"
        return f"{counts}, overlap {d['time_before_s']:.0f} s, tol/match {tol} s, z {d['area.depth_km'][1]:.0f}"
    if "min_picks_per_eq" in d:
        counts = f"{d['min_picks_per_eq']}/{d['min_p_picks_per_eq']}/{d['min_s_picks_per_eq']}"
        return f"{counts}, eps {d['dbscan_eps']} s, vp/vs {d['velocity.vp']}/{d['velocity.vs']}"
    return ""


# ----------------------------------------------------------------------------- OGS


def ogs_inputs(data: Path = DATA) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, set[str]]:
    """Return (picks without grouping, stations, catalogue, ids of catalogue events with >= 4 picks)."""
    d = data / "ogs_rsfvg_2024"
    raw = pd.read_parquet(d / "parquet" / "onlyEQ-2024.dat.parquet")
    picks = pd.DataFrame(
        {
            "station_id": raw["station"].str.strip("."),
            "phase": raw["phase"],
            "time": pd.to_datetime(raw["time"]).dt.tz_localize("UTC"),
        }
    )
    stations = read_stations(d / "DERIVED_station_coords_from_hpc.csv")
    cat = pd.read_csv(d / "manual" / "RSFVG-2024.txt", sep=";")
    catalogue = pd.DataFrame(
        {
            "event_id": cat["event-id"].astype(str),
            "time": pd.to_datetime(cat["origin_time(UTC)"], utc=True),
            "latitude": cat["lat"],
            "longitude": cat["lon"],
            "depth_km": cat["depth"],
        }
    )
    # The pick file numbers its events differently from the catalogue: a pick group belongs to
    # the last catalogue origin before its first pick.
    groups = raw.groupby("index").agg(first=("time", "min"), n=("time", "size")).reset_index()
    groups["first"] = groups["first"].dt.tz_localize("UTC")
    groups = groups.sort_values("first")
    joined = pd.merge_asof(
        groups,
        catalogue.sort_values("time"),
        left_on="first",
        right_on="time",
        direction="backward",
    )
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


def ogs_gamma_practitioner() -> GammaConfig:
    """GaMMA with the OGS practitioner settings quoted in the issue."""
    return GammaConfig(
        area=AreaParams(latitude=(44.0, 47.6), longitude=(9.0, 15.6), depth_km=(0.0, 50.0)),
        velocity=VelocityParams(kind="0d", vp=6.0, vs=6.0 / 1.75),
        dbscan_eps=8.1,
        min_picks_per_eq=5,
        min_p_picks_per_eq=3,
        min_s_picks_per_eq=2,
        max_sigma11=1.5,
        threads=1,
        ncpu=1,
    )


def ogs_pyocto_practitioner() -> PyOctoConfig:
    """Plain PyOcto with the OGS practitioner counts (6/3/3/3), 1-D model, no relocation."""
    cfg = ogs_default()
    return cfg.model_copy(
        update={
            "n_picks": 6,
            "n_p_picks": 3,
            "n_s_picks": 3,
            "n_p_and_s_picks": 3,
            "min_pick_fraction": 0.25,
            "relocation": RelocationParams(enabled=False),
        }
    )


def bench_ogs(with_gamma: bool, per_day: bool) -> list[dict]:
    picks, stations, catalogue, with4 = ogs_inputs()
    model = DATA / "ogs_rsfvg_2024" / "velocity_1d" / "taup_tt.nd"
    rows = []
    configs: list[tuple[str, Config]] = standard_runs(model, with_gamma) + [
        ("PyOcto OGS preset (--ogs)", ogs_default()),
        ("PyOcto practitioner 6/3/3/3", ogs_pyocto_practitioner()),
    ]
    if with_gamma:
        configs.append(("GaMMA practitioner (eps 8.1, 5/3/2)", ogs_gamma_practitioner()))
    for label, cfg in selected(configs):
        res, seconds = timed(picks, stations, cfg)
        rows.append(
            {
                "data": "ogs 2024",
                "run": label,
                "picks": len(picks),
                "seconds": seconds,
                **ogs_scores(res.events, catalogue, with4),
                "derived": settings_note(res),
            }
        )
    if per_day:
        cfg, _ = resolve_for_network(auto_pyocto(model), stations)
        days = pd.date_range("2024-01-01", "2024-12-31", freq="D").date
        t0 = time.perf_counter()
        parts = [
            asc.associate_day(picks, stations, day, cfg, margin_s=120.0).events for day in days
        ]
        seconds = time.perf_counter() - t0
        events = pd.concat(parts, ignore_index=True)
        rows.append(
            {
                "data": "ogs 2024",
                "run": "PyOcto auto, 366 day units",
                "picks": len(picks),
                "seconds": seconds,
                **ogs_scores(events, catalogue, with4),
            }
        )
    return rows


# ----------------------------------------------------------------------------- Chile


def chile_inputs(data: Path = DATA) -> tuple[pd.DataFrame, pd.DataFrame, Path]:
    """Return (labelled picks, stations, velocity model file) of the PyOcto test set."""
    d = data / "pyocto_chile_test"
    raw = pd.read_parquet(d / "picks.parquet")
    picks = pd.DataFrame(
        {
            "pick_id": [f"p{i}" for i in range(len(raw))],
            "station_id": raw["station"],
            "phase": raw["phase"],
            "time": pd.to_datetime(raw["time"]).dt.tz_localize("UTC"),
            "event": raw["event"],
        }
    )
    return picks, read_stations(d / "stations.parquet"), d / "graeber.csv"


def chile_pyocto(model_file: Path) -> PyOctoConfig:
    """PyOcto on the Chile test set: its 1-D model, PyOcto's test settings."""
    return PyOctoConfig(
        area=AreaParams(latitude=(-25.0, -18.0), longitude=(-72.0, -67.0), depth_km=(0.0, 250.0)),
        velocity=VelocityParams(kind="1d", model_file=model_file, max_depth_km=300.0, grid_km=1.0),
        tolerance_s=2.0,
        pick_match_tolerance_s=2.0,
        time_before_s=300.0,
        n_picks=10,
        n_p_picks=2,
        n_s_picks=2,
        n_p_and_s_picks=4,
        relocation=RelocationParams(enabled=False),
    )


def chile_gamma() -> GammaConfig:
    """GaMMA on the Chile test set (deep subduction seismicity)."""
    return GammaConfig(
        area=AreaParams(latitude=(-25.0, -18.0), longitude=(-72.0, -67.0), depth_km=(0.0, 250.0)),
        velocity=VelocityParams(kind="0d", vp=7.0, vs=4.0),
        dbscan_eps=30.0,
        min_picks_per_eq=8,
        min_p_picks_per_eq=4,
        min_s_picks_per_eq=2,
        max_sigma11=5.0,
    )


def pick_scores(picks: pd.DataFrame, assignments: pd.DataFrame) -> dict[str, float]:
    """Pick-level precision/recall of assignments and adjusted Rand index against true labels."""
    from sklearn.metrics import adjusted_rand_score

    pred = picks["pick_id"].map(
        dict(zip(assignments["pick_id"], assignments["event_id"], strict=False))
    )
    true = picks["event"]
    # predicted event -> the true event most of its picks belong to
    joined = pd.DataFrame({"pred": pred, "true": true}).dropna(subset=["pred"])
    major = (
        joined[joined["true"] >= 0].groupby("pred")["true"].agg(lambda s: s.value_counts().index[0])
    )
    correct = joined["pred"].map(major) == joined["true"]
    tp = int(correct.sum())
    n_true = int((true >= 0).sum())
    # noise picks and unassigned picks are singletons (each its own cluster)
    singles = pd.Series([f"single{i}" for i in range(len(picks))], index=picks.index)
    labels_pred = pred.astype(object).where(pred.notna(), singles).astype(str)
    labels_true = true.astype(str).where(true >= 0, singles)
    found = major.nunique()
    return {
        "pick_recall": tp / n_true,
        "pick_precision": tp / max(len(joined), 1),
        "ARI": adjusted_rand_score(labels_true, labels_pred),
        "events": len(major),
        "true_events_found": f"{found}/{true[true >= 0].nunique()}",
    }


def bench_chile(with_gamma: bool) -> list[dict]:
    picks, stations, model = chile_inputs()
    rows = []
    configs = standard_runs(model, with_gamma) + [
        ("PyOcto test settings (10/2/2/4)", chile_pyocto(model))
    ]
    if with_gamma:
        configs.append(("GaMMA tuned (eps 30, 8/4/2)", chile_gamma()))
    for label, cfg in selected(configs):
        res, seconds = timed(picks, stations, cfg)
        rows.append(
            {
                "data": "chile test",
                "run": label,
                "picks": len(picks),
                "seconds": seconds,
                **pick_scores(picks, res.assignments),
                "derived": settings_note(res),
            }
        )
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
            idx = (
                np.array(str(row[idx_col]).strip("[]").split(","), dtype=float)
                if len(str(row[idx_col]).strip("[]"))
                else np.array([])
            )
            prob = (
                np.array(str(row[prob_col]).strip("[]").split(","), dtype=float)
                if len(idx)
                else idx
            )
            frames.append(
                pd.DataFrame(
                    {
                        "station_id": f"{net}.{sta}",
                        "phase": phase,
                        "time": t0 + pd.to_timedelta(idx / 100.0, unit="s"),
                        "probability": prob,
                    }
                )
            )
    picks = pd.concat(frames, ignore_index=True)
    stations = read_stations(d / "station.dat")
    cat = pd.read_csv(d / "REAL_output_catalog_sel.txt", sep=r"\s+", header=None)
    catalogue = pd.DataFrame(
        {
            "event_id": cat[0].astype(str),
            "time": pd.Timestamp("2016-10-14", tz="UTC") + pd.to_timedelta(cat[5], unit="s"),
            "latitude": cat[7],
            "longitude": cat[8],
        }
    )
    return picks, stations, catalogue


def italy_pyocto(model_file: Path) -> PyOctoConfig:
    """PyOcto for the Amatrice-Norcia sequence: 1-D italy.mod, 0-20 km."""
    return PyOctoConfig(
        area=AreaParams(latitude=(42.3, 43.3), longitude=(12.6, 13.7), depth_km=(0.0, 20.0)),
        velocity=VelocityParams(kind="1d", model_file=model_file, max_depth_km=40.0),
        time_before_s=30.0,
        n_picks=8,
        n_p_picks=4,
        n_s_picks=3,
        n_p_and_s_picks=2,
        relocation=RelocationParams(enabled=True),
    )


def bench_italy(with_gamma: bool) -> list[dict]:
    picks, stations, catalogue = italy_inputs()
    model = DATA / "real_demo_italy_20161014" / "italy.mod"
    rows = []
    configs: list[tuple[str, Config]] = [
        (f"PyOcto auto ({model.name})", auto_pyocto(model)),
        ("PyOcto Italy preset (8/4/3/2)", italy_pyocto(model)),
        ("PyOcto plain defaults", plain_pyocto()),
    ]
    if with_gamma:
        configs.append((f"GaMMA auto ({model.name})", auto_gamma(model)))
    for label, cfg in selected(configs):
        res, seconds = timed(picks, stations, cfg)
        m = match_events(res.events, catalogue, max_dt_s=2.0, max_km=8.0)
        tp = int((m["outcome"] == "TP").sum())
        rows.append(
            {
                "data": "italy 2016-10-14",
                "run": label,
                "picks": len(picks),
                "seconds": seconds,
                "events": len(res.events),
                "TP": tp,
                "reference": len(catalogue),
                "recall": tp / len(catalogue),
                "derived": settings_note(res),
            }
        )
    return rows


# ----------------------------------------------------------------------------- Salton Sea


def salton_inputs(data: Path = DATA) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Return (reference PhaseNet picks of the 180 s, stations, the SCSN event inside the span)."""
    d = data / "phasenet_saltonsea_20201001"
    picks = pd.read_csv(d / "DERIVED_phasenet_ref_picks_first180s.csv")
    scsn = pd.read_csv(d / "DERIVED_scsn_events_first10min.csv")
    ref = pd.DataFrame(
        {
            "event_id": [f"scsn{i}" for i in range(len(scsn))],
            "time": pd.to_datetime(scsn["time"], utc=True),
            "latitude": scsn["lat"],
            "longitude": scsn["lng"],
        }
    )
    ref = ref[ref["time"] < pd.Timestamp("2020-10-01T00:03:00Z")].reset_index(drop=True)
    return picks, read_stations(d / "stations.xml"), ref


def located_scores(events: pd.DataFrame, reference: pd.DataFrame) -> dict:
    """Matched reference events (2 s / 8 km) and the matched origins' offsets."""
    m = match_events(events, reference, max_dt_s=2.0, max_km=8.0)
    tp = m[m["outcome"] == "TP"]
    return {
        "events": len(events),
        "TP": len(tp),
        "reference": len(reference),
        "recall": len(tp) / max(len(reference), 1),
        "dt_s": float(tp["dt_s"].abs().max()) if len(tp) else np.nan,
        "km": float(tp["distance_km"].max()) if len(tp) else np.nan,
    }


def bench_salton(with_gamma: bool) -> list[dict]:
    picks, stations, ref = salton_inputs()
    rows = []
    for label, cfg in selected(standard_runs(None, with_gamma)):
        res, seconds = timed(picks, stations, cfg)
        rows.append(
            {
                "data": "salton 180 s",
                "run": label,
                "picks": len(picks),
                "seconds": seconds,
                **located_scores(res.events, ref),
                "derived": settings_note(res),
            }
        )
    return rows


# ----------------------------------------------------------------------------- time-only references


def time_scores(
    events: pd.DataFrame, reference: pd.Series, before_s: float, after_s: float
) -> dict:
    """1-to-1 matches of event origins to reference times ``t``: ``t - before <= origin <= t + after``."""
    ev = np.sort(pd.to_datetime(events["time"], utc=True).astype("int64").to_numpy() / 1e9)
    ref = np.sort(pd.to_datetime(reference, utc=True).astype("int64").to_numpy() / 1e9)
    used = np.zeros(len(ev), bool)
    tp = 0
    for t in ref:
        ok = np.flatnonzero(~used & (ev >= t - before_s) & (ev <= t + after_s))
        if len(ok):
            used[ok[np.argmin(np.abs(ev[ok] - t))]] = True
            tp += 1
    return {"events": len(ev), "TP": tp, "reference": len(ref), "recall": tp / max(len(ref), 1)}


def mesetas_inputs(data: Path = DATA) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """Return (SeisMonitor PhaseNet picks, stations, SeisMonitor GaMMA origin times)."""
    d = data / "seismonitor_mesetas_2019"
    raw = pd.read_csv(d / "seismonitor_outputs" / "pnet_seismonitor_picks.csv")
    loc = raw["location"].fillna(0).astype(int).astype(str).str.zfill(2)
    picks = pd.DataFrame(
        {
            "station_id": raw["network"] + "." + raw["station"] + "." + loc,
            "phase": raw["phasehint"],
            "time": pd.to_datetime(raw["arrival_time"]).dt.tz_localize("UTC"),
            "probability": raw["probability"],
        }
    )
    cat = pd.read_csv(d / "seismonitor_outputs" / "events_pnet_catalog.csv")
    return picks, read_stations(d / "inv.xml"), pd.to_datetime(cat["time"]).dt.tz_localize("UTC")


def bench_mesetas(with_gamma: bool) -> list[dict]:
    picks, stations, ref = mesetas_inputs()
    rows = []
    for label, cfg in selected(
        standard_runs(DATA / "seismonitor_mesetas_2019" / "vel1d_col.csv", with_gamma)
    ):
        res, seconds = timed(picks, stations, cfg)
        rows.append(
            {
                "data": "mesetas 6 h",
                "run": label,
                "picks": len(picks),
                "seconds": seconds,
                **time_scores(res.events, ref, 3.0, 3.0),
                "derived": settings_note(res),
            }
        )
    return rows


def hengill_picks(data: Path = DATA) -> pd.DataFrame:
    """Return PhaseNet/original picks of the Hengill 5 minutes (picked once, cached in benchmarks/out)."""
    cache = OUT / "hengill_phasenet_original_picks.csv"
    if cache.is_file():
        return pd.read_csv(cache)
    import shutil
    import tempfile

    import obspy

    from quakelake.params import PickParams
    from quakelake.picking.models import classify_kwargs, load_model

    if "SEISBENCH_CACHE_ROOT" not in os.environ:
        tmp = Path(tempfile.mkdtemp(prefix="quakelake-bench-"))
        shutil.copytree(SHARED / "seisbench_cache", tmp / "seisbench")
        os.environ["SEISBENCH_CACHE_ROOT"] = str(tmp / "seisbench")
    st = obspy.Stream()
    for f in sorted((data / "malmi_hengill_20181230" / "mseed").glob("*.mseed")):
        st += obspy.read(str(f))
    model = load_model("PhaseNet", "original", "cpu")
    out = model.classify(st, **classify_kwargs(PickParams())).picks
    picks = pd.DataFrame(
        {
            "station_id": [p.trace_id.rstrip(".") for p in out],
            "phase": [p.phase for p in out],
            "time": [pd.Timestamp(p.peak_time.datetime, tz="UTC") for p in out],
            "probability": [p.peak_value for p in out],
        }
    )
    OUT.mkdir(parents=True, exist_ok=True)
    picks.to_csv(cache, index=False)
    return picks


def hengill_triggers(data: Path = DATA, min_stations: int = 10) -> pd.Series:
    """Return the times of STA/LTA coincidence triggers on >= ``min_stations`` vertical channels."""
    import obspy
    from obspy.signal.trigger import coincidence_trigger

    st = obspy.Stream()
    for f in sorted((data / "malmi_hengill_20181230" / "mseed").glob("*Z__*.mseed")):
        st += obspy.read(str(f))
    st.detrend("demean").filter("bandpass", freqmin=2.0, freqmax=20.0)
    trig = coincidence_trigger("recstalta", 3.5, 1.5, st, min_stations, sta=0.5, lta=10.0)
    return pd.Series(
        [pd.Timestamp(t["time"].datetime, tz="UTC") for t in trig], dtype="datetime64[ns, UTC]"
    )


def bench_hengill(with_gamma: bool) -> list[dict]:
    picks = hengill_picks()
    d = DATA / "malmi_hengill_20181230"
    stations, ref = read_stations(d / "stations.csv"), hengill_triggers()
    rows = []
    for label, cfg in selected(standard_runs(d / "velocity_model_local.txt", with_gamma)):
        res, seconds = timed(picks, stations, cfg)
        rows.append(
            {
                "data": "hengill 5 min",
                "run": label,
                "picks": len(picks),
                "seconds": seconds,
                **time_scores(res.events, ref, 5.0, 0.5),
                "derived": settings_note(res),
            }
        )
    return rows


BENCHES = ("ogs", "chile", "italy", "salton", "mesetas", "hengill")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "sets", nargs="*", default=list(BENCHES), help=f"sets among {', '.join(BENCHES)}"
    )
    parser.add_argument(
        "--gamma", action="store_true", help="also run GaMMA (slow on OGS and Italy)"
    )
    parser.add_argument("--per-day", action="store_true", help="also run OGS as 366 day units")
    parser.add_argument(
        "--auto", action="store_true", help="only the automatic-settings runs of each set"
    )
    args = parser.parse_args(argv)
    global AUTO_ONLY
    AUTO_ONLY = args.auto
    rows: list[dict] = []
    for name in args.sets:
        if name == "ogs":
            rows += bench_ogs(args.gamma, args.per_day)
        elif name == "chile":
            rows += bench_chile(args.gamma)
        elif name == "italy":
            rows += bench_italy(args.gamma)
        elif name == "salton":
            rows += bench_salton(args.gamma)
        elif name == "mesetas":
            rows += bench_mesetas(args.gamma)
        elif name == "hengill":
            rows += bench_hengill(args.gamma)
        else:
            parser.error(f"unknown set {name!r}; use {', '.join(BENCHES)}")
    table = pd.DataFrame(rows)
    with pd.option_context(
        "display.width",
        300,
        "display.max_columns",
        30,
        "display.max_colwidth",
        80,
        "display.float_format",
        "{:.3f}".format,
    ):
        print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
