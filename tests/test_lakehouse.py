"""The lakehouse: explicit schemas, atomic immutable files, DuckDB views with bound parameters."""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq
import pytest

from quakelake.lakehouse import TABLES, Lake, file_path, stem_of, write_table
from quakelake.lakehouse.lineage import UnitResult, new_run_id, record_run, record_units, utcnow


def _picks(n: int) -> pd.DataFrame:
    t0 = pd.Timestamp("2020-10-01T00:00:00", tz="UTC")
    return pd.DataFrame(
        {
            "pick_id": [f"p{i}" for i in range(n)],
            "run_id": "r1",
            "station_id": "CI.BOM..HH",
            "phase": ["P", "S"] * (n // 2) + ["P"] * (n % 2),
            "time": [t0 + pd.Timedelta(seconds=i) for i in range(n)],
            "probability": 0.5,
        }
    )


def test_write_casts_to_the_explicit_schema_and_leaves_no_temporary_file(lake_root):
    path = write_table(lake_root, "picks", _picks(5), "unit1", {"day": "2020-10-01"})
    assert path.parent == lake_root / "picks" / "day=2020-10-01"
    assert stem_of(path) == "unit1" and path.name.startswith("unit1~")
    # the file schema is the table's, plus the logical file every row was committed in
    schema = pq.read_schema(path)
    assert schema.remove(schema.get_field_index("unit_file")).equals(
        TABLES["picks"].schema, check_metadata=False
    )
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    assert Lake(lake_root).files("picks") == [path]


def test_nanosecond_times_are_rounded_to_the_lakes_microseconds(lake_root):
    picks = _picks(2)
    picks["time"] = pd.to_datetime([1601510434119999999, 1601510434120000400], utc=True)
    write_table(lake_root, "picks", picks, "ns", {"day": "2020-10-01"})
    times = Lake(lake_root).read("picks")["time"].tolist()
    assert [t.isoformat() for t in times] == ["2020-10-01T00:00:34.120000+00:00"] * 2


def test_unknown_columns_and_partitions_are_refused_with_names(lake_root):
    bad = _picks(1).assign(colour="red")
    with pytest.raises(ValueError, match="colour"):
        write_table(lake_root, "picks", bad, "x", {"day": "2020-10-01"})
    with pytest.raises(ValueError, match="partitioned by \\['day'\\]"):
        file_path(lake_root, "picks", {"month": "10"}, "x")
    with pytest.raises(KeyError, match="known tables"):
        write_table(lake_root, "pickz", _picks(1), "x")


def test_views_read_partitions_and_bind_parameters(lake_root):
    write_table(lake_root, "picks", _picks(4), "a", {"day": "2020-10-01"})
    write_table(lake_root, "picks", _picks(2), "b", {"day": "2020-10-02"})
    # A leftover temporary file of a killed writer is invisible to the views.
    (lake_root / "picks" / "day=2020-10-02" / ".c.parquet.123.tmp").write_bytes(b"partial")
    lake = Lake(lake_root)
    out = lake.query(
        "SELECT day, count(*) AS n FROM picks WHERE phase = ? GROUP BY day ORDER BY day", ["P"]
    )
    assert out["n"].tolist() == [2, 1]
    assert str(out["day"][0].date()) == "2020-10-01"
    # A value that would break string-built SQL is just a value here.
    assert (
        lake.query("SELECT count(*) AS n FROM picks WHERE phase = ?", ["P' OR '1'='1"])["n"][0] == 0
    )


def test_missing_table_error_lists_the_tables_with_data(lake_root):
    write_table(lake_root, "picks", _picks(1), "a", {"day": "2020-10-01"})
    with pytest.raises(Exception, match="Tables with data.*picks"):
        Lake(lake_root).query("SELECT * FROM eventz")
    assert Lake(lake_root).tables() == ["picks"]
    assert list(Lake(lake_root).read("events").columns)[:2] == ["event_id", "run_id"]


def test_runs_view_keeps_each_runs_latest_state_and_units_ledger(lake_root):
    run = new_run_id()
    started = utcnow()
    record_run(lake_root, run, "pick", {"x": 1}, "running", started)
    record_run(lake_root, run, "pick", {"x": 1}, "completed", started, utcnow())
    record_units(
        lake_root,
        run,
        "pick",
        [
            UnitResult("pick", "CI.BOM.2020-10-01", "done", rows=3),
            UnitResult("pick", "bad.mseed", "failed", error="truncated"),
        ],
    )
    lake = Lake(lake_root)
    runs = lake.read("runs")
    assert runs["status"].tolist() == ["completed"]
    assert '"seisbench"' in runs["versions_json"][0]
    units = lake.query(
        "SELECT unit, status, error FROM units WHERE stage = ? ORDER BY unit", ["pick"]
    )
    assert units["unit"].tolist() == ["CI.BOM.2020-10-01", "bad.mseed"]
    assert units["status"].tolist() == ["done", "failed"]
    assert units["error"].tolist()[1] == "truncated"
