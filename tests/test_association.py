"""Association on real picks: PyOcto and GaMMA behind one interface, day windows, bad input."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from pick_rows import chile_picks

from quakelake.analysis.evaluation import match_events
from quakelake.archive.stations import read_stations
from quakelake.association import associate as asc
from quakelake.association import engines
from quakelake.association.settings import ogs_default
from quakelake.association.velocity import TravelTimeTable, read_velocity_model
from quakelake.params.association import (
    AreaParams,
    AssociationError,
    GammaConfig,
    PyOctoConfig,
    RelocationParams,
    VelocityParams,
)

# ----------------------------------------------------------------------------- data


@pytest.fixture(scope="module")
def ogs(shared_data):
    d = shared_data / "ogs_rsfvg_2024"
    raw = pd.read_parquet(d / "parquet" / "onlyEQ-2024.dat.parquet")
    picks = pd.DataFrame(
        {
            "station_id": raw["station"].str.strip("."),
            "phase": raw["phase"],
            "time": pd.to_datetime(raw["time"]).dt.tz_localize("UTC"),
            "group": raw["index"],
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
        }
    )
    return picks, stations, catalogue


@pytest.fixture(scope="module")
def chile(shared_data):
    d = shared_data / "pyocto_chile_test"
    return chile_picks(d), read_stations(d / "stations.parquet"), d / "graeber.csv"


def chile_scores(picks: pd.DataFrame, assignments: pd.DataFrame) -> dict[str, float]:
    from sklearn.metrics import adjusted_rand_score

    pred = picks["pick_id"].map(
        dict(zip(assignments["pick_id"], assignments["event_id"], strict=True))
    )
    true = picks["event"]
    joined = pd.DataFrame({"pred": pred, "true": true}).dropna(subset=["pred"])
    major = (
        joined[joined["true"] >= 0].groupby("pred")["true"].agg(lambda s: s.value_counts().index[0])
    )
    tp = int((joined["pred"].map(major) == joined["true"]).sum())
    singles = pd.Series([f"s{i}" for i in range(len(picks))], index=picks.index)
    ari = adjusted_rand_score(
        true.astype(str).where(true >= 0, singles),
        pred.astype(object).where(pred.notna(), singles).astype(str),
    )
    return {
        "recall": tp / int((true >= 0).sum()),
        "precision": tp / len(joined),
        "ari": ari,
        "found": major.nunique(),
    }


# ----------------------------------------------------------------------------- velocity


def test_velocity_model_files(shared_data):
    nd = read_velocity_model(shared_data / "ogs_rsfvg_2024" / "velocity_1d" / "taup_tt.nd")
    assert nd.iloc[0].tolist() == pytest.approx([0.0, 5.85, 3.28652])
    mod = read_velocity_model(shared_data / "real_demo_italy_20161014" / "italy.mod")
    assert mod["vp"].max() == pytest.approx(7.5) and mod["depth"].min() == pytest.approx(-3.0)
    csv = read_velocity_model(shared_data / "pyocto_chile_test" / "graeber.csv")
    assert csv[csv["depth"] == 20.0]["vp"].iloc[0] == pytest.approx(6.4)
    layers = read_velocity_model(
        shared_data / "malmi_hengill_20181230" / "velocity_model_local.txt"
    )
    assert layers["vs"].iloc[0] == pytest.approx(1.87)


def test_travel_time_table_matches_straight_rays_in_a_homogeneous_model():
    model = pd.DataFrame({"depth": [0.0, 50.0], "vp": [6.0, 6.0], "vs": [3.5, 3.5]})
    table = TravelTimeTable.from_model(model, 1.0, 100.0, 40.0)
    t, dtdx, _ = table.times(
        np.array([False, True]), np.array([60.0, 60.0]), np.array([10.0, 10.0])
    )
    r = np.hypot(60.0, 10.0)
    assert t == pytest.approx([r / 6.0, r / 3.5], rel=0.02)
    assert dtdx[0] == pytest.approx(60.0 / r / 6.0, rel=0.05)


# ----------------------------------------------------------------------------- quality


@pytest.mark.slow
def test_pyocto_chile_pick_level(chile):
    picks, stations, model = chile
    cfg = PyOctoConfig(
        area=AreaParams(latitude=(-25.0, -18.0), longitude=(-72.0, -67.0), depth_km=(0.0, 250.0)),
        velocity=VelocityParams(kind="1d", model_file=model, max_depth_km=300.0),
        tolerance_s=2.0,
        pick_match_tolerance_s=2.0,
        time_before_s=300.0,
        n_picks=10,
        n_p_picks=2,
        n_s_picks=2,
        n_p_and_s_picks=4,
        relocation=RelocationParams(enabled=False),
    )
    res = asc.associate(picks, stations, cfg)
    s = chile_scores(picks, res.assignments)
    # plain PyOcto with the 1-D model: recall 0.987, precision 0.997, ARI 0.993, 49/50 events
    assert s["recall"] >= 0.98 and s["precision"] >= 0.99 and s["ari"] >= 0.985 and s["found"] >= 49
    assert res.events["n_picks"].sum() == len(res.assignments)
    assert res.events[["latitude", "longitude", "depth_km"]].notna().all().all()
    assert res.events["latitude"].between(-25, -18).all()


@pytest.mark.slow
def test_gamma_chile_pick_level(chile):
    picks, stations, _ = chile
    cfg = GammaConfig(
        area=AreaParams(latitude=(-25.0, -18.0), longitude=(-72.0, -67.0), depth_km=(0.0, 250.0)),
        velocity=VelocityParams(kind="0d", vp=7.0, vs=4.0),
        dbscan_eps=30.0,
        min_picks_per_eq=8,
        min_p_picks_per_eq=4,
        min_s_picks_per_eq=2,
        max_sigma11=5.0,
    )
    res = asc.associate(picks, stations, cfg)
    s = chile_scores(picks, res.assignments)
    # GaMMA reference on this set: ARI 0.909
    assert s["precision"] >= 0.98 and s["ari"] >= 0.89 and s["found"] >= 45


def test_ogs_default_on_one_month_of_analyst_picks(ogs):
    picks, stations, catalogue = ogs
    month = picks[(picks["time"] >= "2024-03-01") & (picks["time"] < "2024-04-01")]
    res = asc.associate(month.drop(columns="group"), stations, ogs_default())
    ref = catalogue[(catalogue["time"] >= "2024-03-01") & (catalogue["time"] < "2024-04-01")]
    m = match_events(res.events, ref, max_dt_s=2.0, max_km=8.0)
    tp = int((m["outcome"] == "TP").sum())
    n_groups = month["group"].nunique()
    assert tp / len(res.events) >= 0.97  # precision
    assert tp / n_groups >= 0.97  # recall of the events that have picks
    assert any("without elevation" in msg for msg in res.messages)


# ----------------------------------------------------------------------------- midnight


@pytest.mark.parametrize("origin_text", ["2024-03-01T23:59:58", "2024-03-01T23:59:50"])
def test_event_at_midnight_found_exactly_once(ogs, origin_text):
    picks, stations, catalogue = ogs
    # the best-picked event of the year, moved so that its origin is just before midnight:
    # at 23:59:58 every pick falls on the next day, at 23:59:50 the picks straddle midnight
    group = picks["group"].value_counts().index[0]
    own = picks[picks["group"] == group]
    origin = catalogue.loc[(catalogue["time"] <= own["time"].min()), "time"].max()
    target = pd.Timestamp(origin_text, tz="UTC")
    moved = own.assign(time=own["time"] + (target - origin)).drop(columns="group")
    assert moved["time"].max() > pd.Timestamp("2024-03-02", tz="UTC")
    cfg = ogs_default()
    days = [dt.date(2024, 3, 1), dt.date(2024, 3, 2)]
    results = [asc.associate_day(moved, stations, day, cfg, margin_s=120.0) for day in days]
    assert [len(r.events) for r in results] == [1, 0]
    event = results[0].events.iloc[0]
    assert abs((event["time"] - target).total_seconds()) < 2.0
    # it keeps the same picks as an association without any day window, those after midnight too
    whole = asc.associate(moved, stations, cfg)
    assert len(whole.events) == 1
    assert set(results[0].assignments["pick_id"]) == set(whole.assignments["pick_id"])
    assert (results[0].assignments["time"] >= pd.Timestamp("2024-03-02", tz="UTC")).any()
    # a window without margin would lose (part of) the event: the margin is what keeps it whole
    cut = asc.associate_day(moved, stations, days[0], cfg, margin_s=0.0)
    assert len(cut.assignments) < len(whole.assignments)


# ----------------------------------------------------------------------------- bad input


def test_unknown_stations_reported_once_not_dropped_silently(ogs, caplog):
    picks, stations, _ = ogs
    day = picks[(picks["time"] >= "2024-03-01") & (picks["time"] < "2024-03-02")].drop(
        columns="group"
    )
    extra = pd.DataFrame(
        {
            "station_id": ["XX.NOPE.", "XX.NOPE.", "ZZZ"],
            "phase": ["P", "S", "P"],
            "time": day["time"].iloc[:3].to_numpy(),
        }
    )
    with caplog.at_level("WARNING"):
        res = asc.associate(pd.concat([day, extra], ignore_index=True), stations, ogs_default())
    assert res.unknown_stations == ["XX.NOPE.", "ZZZ"]
    assert any("3 picks on 2 stations without coordinates" in m for m in res.messages)
    assert sum("without coordinates" in r.message for r in caplog.records) == 1
    assert len(res.events) > 0


def test_empty_single_and_duplicated_picks(ogs):
    picks, stations, _ = ogs
    cfg = ogs_default()
    empty = asc.associate(picks.iloc[:0], stations, cfg)
    assert len(empty.events) == 0 and list(empty.events.columns) == asc.EVENT_COLUMNS
    single = asc.associate(picks.iloc[:1].drop(columns="group"), stations, cfg)
    assert len(single.events) == 0 and len(single.assignments) == 0
    day = picks[(picks["time"] >= "2024-03-01") & (picks["time"] < "2024-03-02")].drop(
        columns="group"
    )
    once = asc.associate(day, stations, cfg)
    twice = asc.associate(pd.concat([day, day], ignore_index=True), stations, cfg)
    assert any(f"{len(day)} duplicated picks" in m for m in twice.messages)
    assert twice.events["event_id"].tolist() == once.events["event_id"].tolist()
    no_day = asc.associate_day(day, stations, dt.date(2024, 6, 1), cfg)
    assert len(no_day.events) == 0


def test_missing_columns_are_named():
    with pytest.raises(AssociationError, match=r"picks lack columns phase;"):
        asc.associate(
            pd.DataFrame({"station_id": ["A"], "time": ["2024-01-01"]}),
            pd.DataFrame({"station": ["A"], "latitude": [1.0], "longitude": [1.0]}),
            PyOctoConfig(),
        )
    with pytest.raises(ValueError, match="needs model_file or layers"):
        VelocityParams(kind="1d")


def test_every_associator_the_config_names_has_one_engine():
    """PyOcto and GaMMA sit behind one ``run(setup, config)``, chosen by ``config.associator``."""
    names = {cls.model_fields["associator"].default for cls in (PyOctoConfig, GammaConfig)}
    assert names == set(engines.ENGINES) == {"pyocto", "gamma"}
    unknown = PyOctoConfig().model_copy(update={"associator": "hypodd"})
    with pytest.raises(
        AssociationError, match=r"unknown associator 'hypodd'; use one of gamma, pyocto"
    ):
        engines.run(None, unknown)  # type: ignore[arg-type]


@pytest.mark.slow  # numba compiles GaMMA's kernels into the test session's empty cache (~5 s)
def test_gamma_draws_no_progress_bar(salton_minute, capfd):
    """GaMMA's clustering printed a tqdm bar to stderr, even under ``--silent``; now nothing."""
    picks = pd.read_csv(salton_minute / "DERIVED_phasenet_ref_picks.csv")
    stations = read_stations(salton_minute / "stations.xml")
    res = asc.associate(picks, stations, GammaConfig(min_picks_per_eq=5, min_s_picks_per_eq=1))
    out, err = capfd.readouterr()
    assert len(res.events) == 1  # the M2.43 event of the minute
    assert "Clustering" not in err and "%|" not in err
    assert out == ""
