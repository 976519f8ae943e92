"""One-to-one matching and metrics, checked on the real OGS bulletin and small exact cases."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from quakelake.analysis.compare import load_picks, load_reference, write_evaluation
from quakelake.analysis.evaluation import (
    MatchParams,
    evaluate,
    event_metrics,
    match_events,
    match_picks,
    metrics_table,
    pick_metrics,
)
from quakelake.catalogs import import_catalog, read_catalog
from quakelake.lakehouse import Lake, write_table
from quakelake.params.evaluation import RunSelection


@pytest.fixture(scope="module")
def ogs(shared_data):
    return read_catalog(shared_data / "ogs_rsfvg_2024" / "manual")


def _t(seconds: float) -> pd.Timestamp:
    return pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(seconds=seconds)


def test_ogs_picks_against_themselves(ogs):
    picks = ogs.picks.assign(model="analyst", weights="ogs")
    started = time.perf_counter()
    m = match_picks(picks, ogs.picks, tolerance_s=0.5, station_key="station")
    assert time.perf_counter() - started < 20
    assert (m["outcome"] == "TP").sum() == len(ogs.picks) == 26931
    # every pick matches itself, not a neighbour
    assert (m["pick_id"] == m["reference_pick_id"]).all()
    row = pick_metrics(m).iloc[0]
    assert row["precision"] == 1.0 and row["recall"] == 1.0 and row["f1"] == 1.0
    assert row["residual_mae"] == 0.0


def test_ogs_picks_shifted_beyond_tolerance(ogs):
    shifted = ogs.picks.assign(time=ogs.picks["time"] + pd.Timedelta(seconds=0.6))
    m = match_picks(shifted, ogs.picks, tolerance_s=0.5, station_key="station")
    # 0.6 s apart: no pick matches its own reference. A few may still meet ANOTHER pick of
    # the same station and phase (a neighbouring event) within 0.5 s: those must be real.
    tp = m[m["outcome"] == "TP"]
    assert (tp["pick_id"].str.replace("#2", "") != tp["reference_pick_id"]).all()
    assert (tp["residual_s"].abs() <= 0.5).all()
    assert len(tp) < 0.005 * len(ogs.picks)
    # and shifted by 0.3 s, all of them match with a 0.3 s residual
    m3 = match_picks(
        ogs.picks.assign(time=ogs.picks["time"] + pd.Timedelta(seconds=0.3)),
        ogs.picks,
        0.5,
        station_key="station",
    )
    assert (m3["outcome"] == "TP").all()
    assert pick_metrics(m3).iloc[0]["residual_median"] == pytest.approx(0.3)


def test_ogs_events_against_themselves(ogs):
    started = time.perf_counter()
    m = match_events(ogs.events, ogs.events)
    assert time.perf_counter() - started < 5
    assert len(m) == 1858 and (m["outcome"] == "TP").all()
    assert (m["event_id"] == m["reference_event_id"]).all()
    shifted = ogs.events.assign(time=ogs.events["time"] + pd.Timedelta(seconds=2.5))
    assert (match_events(shifted, ogs.events)["outcome"] != "TP").all()
    moved = ogs.events.assign(latitude=ogs.events["latitude"] + 0.1)  # ~11 km north
    assert (match_events(moved, ogs.events)["outcome"] != "TP").all()


def test_event_matching_is_optimal_not_greedy():
    # a is close to both r1 and r2, b only to r1: greedy (a->r1) leaves b unmatched.
    events = pd.DataFrame(
        {"event_id": ["a", "b"], "time": [_t(10.0), _t(11.5)], "latitude": 46.0, "longitude": 13.0}
    )
    reference = pd.DataFrame(
        {"event_id": ["r1", "r2"], "time": [_t(10.1), _t(8.5)], "latitude": 46.0, "longitude": 13.0}
    )
    m = match_events(events, reference, max_dt_s=2.0)
    pairs = dict(zip(m["event_id"], m["reference_event_id"], strict=True))
    assert pairs == {"a": "r2", "b": "r1"}
    assert event_metrics(m).iloc[0][["tp", "fp", "fn"]].tolist() == [2, 0, 0]


def test_pick_matching_respects_station_and_phase():
    picks = pd.DataFrame(
        {
            "pick_id": ["p1", "p2", "p3"],
            "station_id": ["X.A.", "X.A.", "X.B."],
            "phase": ["P", "S", "P"],
            "time": [_t(1.0), _t(1.1), _t(1.0)],
        }
    )
    ref = pd.DataFrame(
        {
            "pick_id": ["r1", "r2"],
            "station_id": ["X.A.", "X.C."],
            "phase": ["Pg", "P"],
            "time": [_t(1.2), _t(1.0)],
        }
    )
    m = match_picks(picks, ref, tolerance_s=0.5)
    got = m.set_index("pick_id")
    assert got.loc["p1", "outcome"] == "TP" and got.loc["p1", "reference_pick_id"] == "r1"
    assert got.loc["p1", "residual_s"] == pytest.approx(-0.2)
    assert got.loc["p2", "outcome"] == "FP" and got.loc["p3", "outcome"] == "FP"
    assert m[m["outcome"] == "FN"]["reference_pick_id"].tolist() == ["r2"]
    row = pick_metrics(m).iloc[0]
    assert (row["tp"], row["fp"], row["fn"]) == (1, 2, 1)
    assert row["precision"] == pytest.approx(1 / 3) and row["recall"] == pytest.approx(0.5)


def test_metrics_table_groups():
    rng = np.random.default_rng(1)
    n = 200
    ref = pd.DataFrame(
        {
            "pick_id": [f"r{i}" for i in range(n)],
            "station_id": rng.choice(["X.A.", "X.B."], n),
            "phase": rng.choice(["P", "S"], n),
            "time": [_t(60.0 * i) for i in range(n)],
        }
    )
    a = ref.assign(pick_id=ref["pick_id"] + "a", model="PhaseNet", weights="stead")
    b = ref.iloc[::2].assign(
        pick_id=lambda d: d["pick_id"] + "b", model="EQTransformer", weights="original"
    )
    m = match_picks(pd.concat([a, b]), ref)
    table = metrics_table(m)
    overall = table[table["group_by"] == "model,weights"].set_index("model")
    assert overall.loc["PhaseNet", "recall"] == 1.0
    assert overall.loc["EQTransformer", "recall"] == pytest.approx(0.5)
    assert overall.loc["EQTransformer", "precision"] == 1.0
    per_phase = table[table["group_by"] == "model,weights,phase"]
    assert per_phase.groupby("model")["tp"].sum().to_dict() == {
        "EQTransformer": 100,
        "PhaseNet": 200,
    }
    assert set(table["group_by"]) >= {"model,weights,station_id", "model,weights,day"}


@pytest.mark.slow
def test_evaluate_from_lake(ogs, shared_data, lake_root):
    """OGS manual picks of one week stored as `picks` and compared with the imported OGS."""
    import_catalog(lake_root, shared_data / "ogs_rsfvg_2024" / "manual", "ogs")
    week = ogs.picks[ogs.picks["time"] < pd.Timestamp("2024-01-08", tz="UTC")]
    picks = week.assign(
        run_id="r1",
        model="manual",
        weights="ogs",
        band="HH",
        probability=1.0,
        station_id="." + week["station"] + ".",
        network="",
    )
    for day, group in picks.groupby(picks["time"].dt.strftime("%Y-%m-%d")):
        write_table(
            lake_root,
            "picks",
            group.drop(
                columns=["event_id", "channel", "weight", "source_file", "time_uncertainty_s"],
                errors="ignore",
            ),
            name=f"manual.{day}",
            partition={"day": day},
        )
    lake = Lake(lake_root)
    loaded = load_picks(lake, RunSelection(models=["manual"]))
    assert len(loaded) == len(week)
    ref_events, ref_picks = load_reference(lake, "ogs")
    ev = evaluate(loaded, pd.DataFrame(), ref_events, ref_picks, MatchParams())
    overall = ev.metrics[ev.metrics["group_by"] == "model,weights"].iloc[0]
    assert overall["precision"] == 1.0 and overall["recall"] == 1.0
    assert ev.reference_picks == len(week)
    write_evaluation(lake_root, "analysis-1", "ogs", ev)
    got = lake.query(
        "SELECT tp, fn, recall FROM metrics WHERE reference = ? AND group_by = ?",
        ["ogs", "model,weights"],
    )
    assert got.iloc[0].tolist() == [len(week), 0, 1.0]
    with pytest.raises(ValueError, match="import-catalog"):
        load_reference(lake, "nope")
