"""The typed lake queries: each filter is a bound parameter and gives the rows it names."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from pick_rows import reference_pick_rows

from quakelake.archive.stations import read_stations
from quakelake.catalogs import import_catalog
from quakelake.lakehouse import Lake, queries, write_table


@pytest.fixture(scope="module")
def small_lake(shared_data, tmp_path_factory):
    """Salton Sea: stations, the PhaseNet reference picks imported twice and stored as lake picks.

    Built once for the module: the tests only read it.
    """
    lake_root = tmp_path_factory.mktemp("queries") / "lake"
    folder = shared_data / "phasenet_saltonsea_20201001"
    ref_csv = folder / "DERIVED_phasenet_ref_picks_first180s.csv"
    import_catalog(lake_root, ref_csv, "phasenet")
    import_catalog(lake_root, shared_data / "ingv_quakeml_20210101", "ingv")
    write_table(
        lake_root,
        "stations",
        read_stations(folder / "stations.xml"),
        name="salton",
        partition={"source": "salton"},
    )
    n = len(pd.read_csv(ref_csv))
    picks = reference_pick_rows(
        ref_csv, [f"p{i}" for i in range(n)], ["original" if i % 2 else "stead" for i in range(n)]
    )
    write_table(
        lake_root, "picks", picks, name="salton.2020-10-01", partition={"day": "2020-10-01"}
    )
    return Lake(lake_root), picks


def test_pick_filters_are_bound_parameters(small_lake):
    lake, picks = small_lake
    assert len(queries.picks(lake)) == len(picks) == 184
    strong = queries.picks(lake, min_probability=0.5)
    assert sorted(strong["pick_id"]) == sorted(picks.loc[picks["probability"] >= 0.5, "pick_id"])
    stead = queries.picks(lake, models=["PhaseNet"], weights=["stead"], station="IMP")
    want = picks[(picks["weights"] == "stead") & (picks["station"] == "IMP")]
    assert sorted(stead["pick_id"]) == sorted(want["pick_id"]) and len(want)
    t0 = pd.Timestamp("2020-10-01T00:01:00", tz="UTC")
    late = queries.picks(lake, start=t0, end=t0 + pd.Timedelta(seconds=30))
    inside = picks[(picks["time"] >= t0) & (picks["time"] <= t0 + pd.Timedelta(seconds=30))]
    assert sorted(late["pick_id"]) == sorted(inside["pick_id"]) and len(inside)
    assert len(queries.picks(lake, first_day="2020-10-01", last_day=dt.date(2020, 10, 1))) == 184
    assert queries.picks(lake, first_day="2020-10-02").empty
    # a value is a value, never SQL: a quote in it matches nothing and breaks nothing
    assert queries.picks(lake, station="IMP' OR '1'='1").empty


def test_reference_queries_select_one_catalogue(small_lake):
    lake, picks = small_lake
    assert queries.reference_catalogs(lake) == ["ingv", "phasenet"]
    ref = queries.reference_picks(lake, "phasenet")
    assert len(ref) == 184 and set(ref["catalog"]) == {"phasenet"}
    ingv = queries.reference_events(lake, "ingv")
    assert len(ingv) == 10 and set(ingv["catalog"]) == {"ingv"}
    assert queries.reference_events(lake, "phasenet").empty
    both = queries.reference_picks(lake)
    assert set(both["catalog"]) == {"ingv", "phasenet"}
    imp = queries.reference_picks(lake, "phasenet", station="IMP", day="2020-10-01")
    assert len(imp) == (picks["station"] == "IMP").sum()


def test_tables_without_rows_read_empty_with_their_columns(small_lake, shared_data):
    lake, _ = small_lake
    xml = shared_data / "phasenet_saltonsea_20201001" / "stations.xml"
    assert len(queries.stations(lake)) == len(read_stations(xml))
    events, runs = queries.events_and_runs(lake)
    assert events.empty and {"event_id", "associator", "day"} <= set(events.columns)
    assert runs.empty and "run_id" in runs.columns
    outputs = queries.analysis_outputs(lake, "r1", "phasenet")
    assert all(df.empty for df in outputs.values())
    assert "outcome" in outputs["pick_matches"].columns
