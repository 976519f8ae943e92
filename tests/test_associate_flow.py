"""The associate flow on real OGS analyst picks in a temporary lake, under a real Prefect server."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from quakelake.analysis.evaluation import match_events
from quakelake.association.settings import ogs_default
from quakelake.catalogs.export import to_catalog, write_associated
from quakelake.config import TimeWindow
from quakelake.lakehouse import Lake, write_table

DAYS = ("2024-03-01", "2024-03-04")  # four days of the OGS 2024 bulletin


@pytest.fixture(scope="module")
def ogs_days(shared_data):
    d = shared_data / "ogs_rsfvg_2024"
    raw = pd.read_parquet(d / "parquet" / "onlyEQ-2024.dat.parquet")
    raw["time"] = pd.to_datetime(raw["time"]).dt.tz_localize("UTC")
    lo, hi = pd.Timestamp(DAYS[0], tz="UTC"), pd.Timestamp(DAYS[1], tz="UTC") + pd.Timedelta(days=1)
    raw = raw[(raw["time"] >= lo) & (raw["time"] < hi)].reset_index(drop=True)
    picks = pd.DataFrame(
        {
            "pick_id": [f"ogs{i}" for i in range(len(raw))],
            "model": "analyst",
            "weights": "ogs",
            "network": "",
            "station": raw["station"].str.strip("."),
            "location": "",
            "station_id": raw["station"].str.strip("."),
            "phase": raw["phase"],
            "time": raw["time"],
            "probability": 1.0,
        }
    )
    cat = pd.read_csv(d / "manual" / "RSFVG-2024.txt", sep=";")
    catalogue = pd.DataFrame(
        {
            "event_id": cat["event-id"].astype(str),
            "time": pd.to_datetime(cat["origin_time(UTC)"], utc=True),
            "latitude": cat["lat"],
            "longitude": cat["lon"],
        }
    )
    catalogue = catalogue[(catalogue["time"] >= lo) & (catalogue["time"] < hi)]
    return picks, d / "DERIVED_station_coords_from_hpc.csv", catalogue, raw["index"].nunique()


def _fill_lake(lake, picks):
    for day, rows in picks.groupby(picks["time"].dt.date):
        write_table(
            lake, "picks", rows, name=f"analyst.ogs.{day}", partition={"day": day.isoformat()}
        )


def test_flow_writes_events_and_is_idempotent(prefect_server, lake_root, ogs_days, tmp_path):
    from quakelake.flows.associate import associate_events

    picks, station_file, catalogue, n_groups = ogs_days
    _fill_lake(lake_root, picks)
    window = TimeWindow(start=dt.date.fromisoformat(DAYS[0]), end=dt.date.fromisoformat(DAYS[1]))
    first = associate_events(
        lake=lake_root,
        window=window,
        config=ogs_default(),
        station_file=station_file,
        model="analyst",
        weights="ogs",
    )
    assert first["done"] == 4 and first["failed"] == 0
    lake = Lake(lake_root)
    events = lake.read("events")
    assignments = lake.read("assignments")
    assert len(events) == first["origins"] > 0
    reported = events["evaluation_status"] != "rejected"
    assert first["events"] == int(reported.sum()) and first["rejected"] == int((~reported).sum())
    assert set(events["associator"]) == {"pyocto"} and events["event_id"].is_unique
    assert events["n_picks"].sum() == len(assignments)
    assert set(assignments["pick_id"]) <= set(picks["pick_id"])
    m = match_events(events, catalogue, max_dt_s=2.0, max_km=8.0)
    tp = int((m["outcome"] == "TP").sum())
    assert tp / len(events) >= 0.95 and tp / n_groups >= 0.95
    # lineage: the run and its four units are in the ledger
    units = lake.query(
        "SELECT status, count(*) AS n FROM units WHERE run_id = ? GROUP BY status",
        [first["run_id"]],
    )
    assert dict(zip(units["status"], units["n"], strict=True)) == {"done": 4}
    # each day's events came in the same snapshot as the day's ledger row (a run killed right
    # after a day's commit leaves no events without their row)
    history = lake.history()
    day_commits = history[history["message"].fillna("").str.startswith("associate 2024-")]
    assert len(day_commits) == 4
    con = lake.connect()
    for snapshot, message in zip(day_commits["snapshot_id"], day_commits["message"], strict=True):
        rows = con.execute(
            "SELECT unit FROM lake.units AT (VERSION => ?) WHERE run_id = ? AND stage = ?",
            [int(snapshot), first["run_id"], "associate"],
        ).fetchall()
        assert (message.removeprefix("associate "),) in rows, message
    assert len(lake.read("stations")) == 106

    files_before = Lake(lake_root).files("events")
    second = associate_events(
        lake=lake_root,
        window=window,
        config=ogs_default(),
        station_file=station_file,
        model="analyst",
        weights="ogs",
    )
    assert second["skipped"] == 4 and second["done"] == 0
    assert Lake(lake_root).files("events") == files_before and len(files_before) == 4
    assert len(Lake(lake_root).read("events")) == len(events)

    # export: QuakeML catalogue and the per-day associated/ folders
    catalog = to_catalog(events, assignments)
    assert len(catalog) == len(events)
    assert sum(len(e.picks) for e in catalog) == len(assignments)
    written = write_associated(events, assignments, tmp_path / "out")
    assert {p.parent.name for p in written} == {
        "2024-03-01",
        "2024-03-02",
        "2024-03-03",
        "2024-03-04",
    }


def test_flow_on_external_pick_file(prefect_server, lake_root, ogs_days, tmp_path):
    from quakelake.flows.associate import associate_events

    picks, station_file, catalogue, n_groups = ogs_days
    csv = tmp_path / "analyst_picks.csv"
    picks[["station_id", "phase", "time"]].to_csv(csv, index=False)
    out = associate_events(
        lake=lake_root,
        window=TimeWindow(),
        config=ogs_default(),
        picks_file=csv,
        station_file=station_file,
    )
    # one unit per day of the file's picks, as the lake path makes them
    assert (out["done"], out["failed"]) == (4, 0) and out["pick_source"].startswith("file-")
    events = Lake(lake_root).read("events")
    assert set(events["pick_source"]) == {out["pick_source"]} and len(events) == out["events"]
    # the same outcome as from lake picks: the OGS bulletin's events found (2 s / 8 km)
    m = match_events(events, catalogue, max_dt_s=2.0, max_km=8.0)
    tp = int((m["outcome"] == "TP").sum())
    assert tp / len(events) >= 0.95 and tp / n_groups >= 0.95
