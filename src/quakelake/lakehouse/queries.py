"""Typed queries of the lake: every filter is a keyword argument bound as a query parameter.

Callers say *what* they want (``picks(lake, min_probability=0.5, models=["PhaseNet"])``), never
how to write it in SQL: values reach DuckDB as bound parameters, never through string
formatting, and a table that never had rows reads as an empty frame with the table's columns.

>>> where = _Where().equal("catalog", "ogs").one_of("model", ["PhaseNet", "EQTransformer"])
>>> where.sql(), where.params
(' WHERE catalog = ? AND model IN (?, ?)', ['ogs', 'PhaseNet', 'EQTransformer'])
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import pandas as pd

if TYPE_CHECKING:
    from quakelake.lakehouse.catalog import Lake

Time: TypeAlias = dt.datetime | dt.date | pd.Timestamp | str


# A pick's station is NET.STA.LOC (SeisBench's trace id). Lakes written before the band had its
# own meaning stored NET.STA.LOC.BAND in station_id: reading it from its code columns gives every
# lake the same identity.
PICK_STATION_ID = "network || '.' || station || '.' || coalesce(location, '')"

#: SQL condition of a reported origin (lakes written before the gate have no status: reported).
REPORTED_SQL = "coalesce(evaluation_status, '') <> 'rejected'"


class _Where:
    """A conjunction of conditions on known column names, with its bound parameters."""

    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.params: list[Any] = []

    def equal(self, column: str, value: Any) -> _Where:
        if value is not None:
            self.clauses.append(f"{column} = ?")
            self.params.append(value)
        return self

    def one_of(self, column: str, values: Sequence[Any] | None) -> _Where:
        if values:
            self.clauses.append(f"{column} IN ({', '.join('?' for _ in values)})")
            self.params.extend(values)
        return self

    def at_least(self, column: str, value: Any) -> _Where:
        if value is not None:
            self.clauses.append(f"{column} >= ?")
            self.params.append(value)
        return self

    def below(self, column: str, value: Any) -> _Where:
        if value is not None:
            self.clauses.append(f"{column} < ?")
            self.params.append(value)
        return self

    def at_most(self, column: str, value: Any) -> _Where:
        if value is not None:
            self.clauses.append(f"{column} <= ?")
            self.params.append(value)
        return self

    def sql(self) -> str:
        return f" WHERE {' AND '.join(self.clauses)}" if self.clauses else ""


def _utc(value: Time | None) -> dt.datetime | None:
    """Return ``value`` as an aware UTC datetime (naive values are taken as UTC)."""
    if value is None:
        return None
    ts = pd.Timestamp(value)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.to_pydatetime()


def _day(value: dt.date | str | None) -> dt.date | None:
    return None if value is None else pd.Timestamp(value).date()


def _rows(
    lake: Lake, table: str, where: _Where, columns: str = "*", order: str = ""
) -> pd.DataFrame:
    """Return the rows of ``table`` that satisfy ``where`` (empty with the table's columns)."""
    if not lake.has_files(table):
        return lake.read(table)  # no rows: the table's columns
    tail = f" ORDER BY {order}" if order else ""
    return lake.query(f'SELECT {columns} FROM "{table}"{where.sql()}{tail}', where.params)


# --------------------------------------------------------------------------------- tables


def stations(lake: Lake) -> pd.DataFrame:
    """Return the lake's station epochs (one row per channel epoch)."""
    return _rows(lake, "stations", _Where())


def runs(lake: Lake) -> pd.DataFrame:
    """Return the lake's runs (each run's latest status)."""
    return _rows(lake, "runs", _Where())


def table(lake: Lake, name: str) -> pd.DataFrame:
    """Return every row of the lake table ``name``."""
    return lake.read(name)


def picks(
    lake: Lake,
    *,
    min_probability: float | None = None,
    models: Sequence[str] | None = None,
    weights: Sequence[str] | None = None,
    run_ids: Sequence[str] | None = None,
    start: Time | None = None,
    end: Time | None = None,
    before: Time | None = None,
    first_day: dt.date | str | None = None,
    last_day: dt.date | str | None = None,
    network: str | None = None,
    station: str | None = None,
    location: str | None = None,
    band: str | None = None,
) -> pd.DataFrame:
    """Return the lake's picks that satisfy every filter given.

    ``station_id`` is ``NET.STA.LOC`` in every lake (:data:`PICK_STATION_ID`), the band in ``band``.

    Args:
        lake: the lake.
        min_probability: keep picks with ``probability >= min_probability``.
        models: picker model classes (any of).
        weights: weights labels (any of).
        run_ids: run ids (any of).
        start: keep ``time >= start`` (UTC).
        end: keep ``time <= end`` (UTC).
        before: keep ``time < before`` (UTC).
        first_day: keep picks of the partition ``day >= first_day``.
        last_day: keep picks of the partition ``day <= last_day``.
        network: network code.
        station: station code.
        location: location code.
        band: band code (``HH``).
    """
    where = (
        _Where()
        .at_least("probability", min_probability)
        .one_of("model", models)
        .one_of("weights", weights)
        .one_of("run_id", run_ids)
        .at_least("time", _utc(start))
        .at_most("time", _utc(end))
        .below("time", _utc(before))
        .at_least("day", _day(first_day))
        .at_most("day", _day(last_day))
        .equal("network", network)
        .equal("station", station)
        .equal("location", location)
        .equal("band", band)
    )
    return _rows(lake, "picks", where, columns=f"* REPLACE ({PICK_STATION_ID} AS station_id)")


def events(
    lake: Lake,
    *,
    run_ids: Sequence[str] | None = None,
    associators: Sequence[str] | None = None,
    start: Time | None = None,
    end: Time | None = None,
    first_day: dt.date | str | None = None,
    last_day: dt.date | str | None = None,
) -> pd.DataFrame:
    """Return the lake's events that satisfy every filter given (times UTC, bounds included)."""
    where = (
        _Where()
        .one_of("run_id", run_ids)
        .one_of("associator", associators)
        .at_least("time", _utc(start))
        .at_most("time", _utc(end))
        .at_least("day", _day(first_day))
        .at_most("day", _day(last_day))
    )
    return _rows(lake, "events", where)


def events_and_runs(
    lake: Lake, first_day: dt.date | str | None = None, last_day: dt.date | str | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return the events of the days ``[first_day, last_day]`` and the lake's runs."""
    return events(lake, first_day=first_day, last_day=last_day), runs(lake)


def reference_catalogs(lake: Lake) -> list[str]:
    """Return the names of the reference catalogues imported into the lake."""
    names: set[str] = set()
    for name in ("reference_events", "reference_picks"):
        if lake.has_files(name):
            names.update(lake.query(f'SELECT DISTINCT catalog FROM "{name}"')["catalog"])
    return sorted(str(n) for n in names)


def reference_events(lake: Lake, catalog: str | None = None) -> pd.DataFrame:
    """Return the events of the reference catalogue ``catalog`` (every catalogue's without one)."""
    return _rows(lake, "reference_events", _Where().equal("catalog", catalog))


def reference_picks(
    lake: Lake,
    catalog: str | None = None,
    *,
    station: str | None = None,
    day: dt.date | str | None = None,
) -> pd.DataFrame:
    """Return the picks of the reference catalogue ``catalog`` (optionally one station code, one UTC day)."""
    where = _Where().equal("catalog", catalog).equal("station", station)
    if day is not None:
        where.clauses.append("CAST(time AS DATE) = ?")
        where.params.append(_day(day))
    return _rows(lake, "reference_picks", where)


def analysis_outputs(lake: Lake, run_id: str, reference: str) -> dict[str, pd.DataFrame]:
    """Return the pick matches, event matches and metrics one analysis run wrote against ``reference``."""
    return {
        name: _rows(lake, name, _Where().equal("run_id", run_id).equal("reference", reference))
        for name in ("pick_matches", "event_matches", "metrics")
    }


# ------------------------------------------------------------------------ the stages' questions
# Each stage's question of the lake, named. The caller checks ``lake.has_files(table)`` first
# where a table may never have had rows (these functions read the table's view). Times are
# bound as given: pass timezone-aware values (``Timestamp.to_pydatetime()``).


def _known(table: str) -> str:
    """Return ``table`` quoted when it is a lake table (a table name is never a parameter)."""
    from quakelake.lakehouse.schema import TABLES

    if table not in TABLES:
        raise ValueError(f"{table!r} is not a lake table (tables: {', '.join(sorted(TABLES))})")
    return f'"{table}"'


def row_count(lake: Lake, table: str, read_only: bool = False) -> int:
    """Return the number of rows of the lake table ``table``."""
    return int(
        lake.query(f"SELECT count(*) AS n FROM {_known(table)}", read_only=read_only)["n"][0]
    )


def pick_sets(lake: Lake) -> pd.DataFrame:
    """Return the distinct ``model, weights`` of the lake's picks, sorted."""
    return lake.query("SELECT DISTINCT model, weights FROM picks ORDER BY ALL")


def pick_set_count(lake: Lake, model: str, weights: str) -> int:
    """Return the number of picks of the pick set ``model`` x ``weights``."""
    return int(
        lake.query(
            "SELECT count(*) AS n FROM picks WHERE model = ? AND weights = ?", [model, weights]
        )["n"][0]
    )


def pick_counts(
    lake: Lake,
    start: Time,
    before: Time,
    model: str | None = None,
    weights: str | None = None,
) -> pd.DataFrame:
    """Return ``station_id, n, lo, hi`` per pick station (NET.STA.LOC) in ``[start, before)``.

    ``n`` counts the picks, ``lo``/``hi`` are their first and last times; ``model`` and
    ``weights`` narrow to one pick set when given.
    """
    where = (
        _Where()
        .at_least("time", start)
        .below("time", before)
        .equal("model", model or None)
        .equal("weights", weights or None)
    )
    return lake.query(
        f"SELECT {PICK_STATION_ID} AS station_id, count(*) AS n, min(time) AS lo, "
        f"max(time) AS hi FROM picks{where.sql()} GROUP BY 1",
        where.params,
    )


def pick_time_range(lake: Lake, start: Time, before: Time) -> tuple[Any, Any]:
    """Return the first and last pick times in ``[start, before)`` (None, None without picks)."""
    times = lake.query(
        "SELECT min(time) AS lo, max(time) AS hi FROM picks WHERE time >= ? AND time < ?",
        [start, before],
    )
    return times["lo"].iloc[0], times["hi"].iloc[0]


def pick_station_codes(
    lake: Lake,
    start: Time,
    before: Time,
    model: str | None = None,
    weights: str | None = None,
) -> pd.DataFrame:
    """Return the distinct ``network, station, location, band`` of the picks in ``[start, before)``."""
    where = (
        _Where()
        .at_least("time", start)
        .below("time", before)
        .equal("model", model or None)
        .equal("weights", weights or None)
    )
    return lake.query(
        f"SELECT DISTINCT network, station, location, band FROM picks{where.sql()}", where.params
    )


def picked_stations(lake: Lake) -> pd.DataFrame:
    """Return the distinct ``network, station`` of the lake's picks."""
    return lake.query("SELECT DISTINCT network, station FROM picks")


def pick_bands(lake: Lake) -> pd.DataFrame:
    """Return ``pick_id, band`` of the picks that carry a band code (distinct rows)."""
    return lake.query("SELECT DISTINCT pick_id, band FROM picks WHERE band IS NOT NULL")


def phase_times(lake: Lake, table: str) -> pd.DataFrame:
    """Return ``station_id`` (NET.STA.LOC), ``phase`` and ``time`` of every row of a pick table."""
    return lake.query(f"SELECT {PICK_STATION_ID} AS station_id, phase, time FROM {_known(table)}")


def unit_file_rows(lake: Lake, table: str, stem: str) -> pd.DataFrame:
    """Return the rows of ``table``'s committed logical file ``stem`` (without partition columns)."""
    from quakelake.lakehouse.catalog import ALIAS
    from quakelake.lakehouse.schema import TABLES

    name = _known(table)
    cols = ", ".join(f'"{c}"' for c in TABLES[table].schema.names)
    return lake.query(f"SELECT {cols} FROM {ALIAS}.{name} WHERE unit_file = ?", [stem])


def waveform_segments(lake: Lake, start: Time, end: Time) -> pd.DataFrame:
    """Return the `waveform_index` rows of segments overlapping ``[start, end]`` (UTC)."""
    return lake.query('SELECT * FROM waveform_index WHERE "end" >= ? AND start <= ?', [start, end])


def waveform_stations(lake: Lake) -> pd.DataFrame:
    """Return the distinct ``network, station, location ('' for none), start, end`` of the waveform index, sorted."""
    return lake.query(
        "SELECT DISTINCT network, station, coalesce(location, '') AS location, start, \"end\" "
        "FROM waveform_index ORDER BY ALL"
    )


def catalogue_keys(lake: Lake) -> pd.DataFrame:
    """Return the distinct ``associator, config_fingerprint, pick_source`` of the lake's events."""
    return lake.query("SELECT DISTINCT associator, config_fingerprint, pick_source FROM events")


def _catalogue(
    config_fingerprint: str,
    pick_source: str,
    first_day: dt.date | str | None,
    last_day: dt.date | str | None,
) -> _Where:
    where = (
        _Where().equal("config_fingerprint", config_fingerprint).equal("pick_source", pick_source)
    )
    return where.at_least("day", first_day).at_most("day", last_day)


def catalogue_statuses(
    lake: Lake,
    config_fingerprint: str,
    pick_source: str,
    first_day: dt.date | str | None = None,
    last_day: dt.date | str | None = None,
) -> pd.DataFrame:
    """Return ``event_id, evaluation_status`` of one catalogue's events over the days given."""
    where = _catalogue(config_fingerprint, pick_source, first_day, last_day)
    return lake.query(f"SELECT event_id, evaluation_status FROM events{where.sql()}", where.params)


def reported_event_count(
    lake: Lake,
    config_fingerprint: str,
    pick_source: str,
    first_day: dt.date | str | None = None,
    last_day: dt.date | str | None = None,
) -> int:
    """Return the number of one catalogue's reported events (no rejected origin) over the days given."""
    where = _catalogue(config_fingerprint, pick_source, first_day, last_day)
    where.clauses.append(REPORTED_SQL)
    return int(lake.query(f"SELECT count(*) AS n FROM events{where.sql()}", where.params)["n"][0])


def catalogue_magnitudes(
    lake: Lake,
    config_fingerprint: str,
    pick_source: str,
    first_day: dt.date | str | None = None,
    last_day: dt.date | str | None = None,
) -> pd.Series:
    """Return one row summarising a catalogue's reported magnitudes over the days given.

    Fields ``n`` (events with a magnitude), ``lo``, ``mid`` (median), ``hi``, ``spread`` (median
    magnitude uncertainty) and ``stations`` (median station count).
    """
    where = _catalogue(config_fingerprint, pick_source, first_day, last_day)
    where.clauses.append(REPORTED_SQL)
    return lake.query(
        "SELECT count(magnitude) AS n, min(magnitude) AS lo, median(magnitude) AS mid, "
        "max(magnitude) AS hi, median(magnitude_uncertainty) AS spread, "
        f"median(magnitude_station_count) AS stations FROM events{where.sql()}",
        where.params,
    ).iloc[0]


def event_rows(
    lake: Lake, table: str, columns: Sequence[str], event_ids: Sequence[str]
) -> pd.DataFrame:
    """Return ``columns`` of the rows of ``table`` whose ``event_id`` is one of ``event_ids``."""
    from quakelake.lakehouse.schema import TABLES

    name = _known(table)
    unknown = set(columns) - set(TABLES[table].schema.names)
    if unknown:
        raise ValueError(f"{table} has no column {', '.join(sorted(unknown))}")
    cols = ", ".join(f'"{c}"' for c in columns)
    return lake.query(
        f"SELECT {cols} FROM {name} WHERE list_contains(?, event_id)", [list(event_ids)]
    )


def analysis_metrics(lake: Lake, run_id: str) -> pd.DataFrame:
    """Return the summary metrics of analysis run ``run_id`` as the CLI prints them.

    Levels per model x weights (and phase), per associator, and the same per group (``group``
    is '' outside groups); precision, recall and the median residual rounded to 3 decimals.
    """
    return lake.query(
        "SELECT level, CASE WHEN group_by LIKE 'group,%' THEN group_value ELSE '' END AS \"group\", "
        "model, weights, associator, phase, tp, fp, fn, round(precision, 3) AS precision, "
        "round(recall, 3) AS recall, round(residual_median, 3) AS residual_median FROM metrics "
        "WHERE run_id = ? AND group_by IN ('model,weights', 'model,weights,phase', 'associator', "
        "'group,model,weights', 'group,model,weights,phase', 'group,associator') ORDER BY ALL",
        [run_id],
    )


def station_corrections(lake: Lake, reference: str, law: str | None = None) -> pd.DataFrame:
    """Return the `station_corrections` rows of ``reference`` (of ``law`` when given)."""
    where = _Where().equal("reference", reference).equal("law", law or None)
    return lake.query(f"SELECT * FROM station_corrections{where.sql()}", where.params)


def correction_references(lake: Lake) -> set[str]:
    """Return the references the lake has station corrections of."""
    return set(lake.query("SELECT DISTINCT reference FROM station_corrections")["reference"])


#: What the demo shows (and tells the user to run with ``quakelake sql``): picks per set and phase.
DEMO_PICKS_SQL = (
    "SELECT model, weights, phase, count(*) AS picks FROM picks GROUP BY ALL ORDER BY ALL"
)
#: ... and the events of every catalogue.
DEMO_EVENTS_SQL = (
    "SELECT associator, pick_source, time, round(latitude, 3) AS lat, "
    "round(longitude, 3) AS lon, round(depth_km, 1) AS depth_km, n_p, n_s, "
    "round(magnitude, 1) AS ML, round(magnitude_uncertainty, 2) AS ML_spread, "
    "magnitude_station_count AS ML_stations, evaluation_status AS status "
    "FROM events ORDER BY pick_source, time"
)


def demo_tables(lake: Lake) -> list[tuple[str, pd.DataFrame]]:
    """Return the demo's summary queries with their results: picks per set, then events (when any)."""
    statements = [DEMO_PICKS_SQL] + ([DEMO_EVENTS_SQL] if lake.has_files("events") else [])
    return [(sql, lake.query(sql)) for sql in statements]


# --- the near-real-time monitor's tables (quakelake.service.monitor) -----------------------------
def _live(lake: Lake, table: str, sql: str, params: list[Any]) -> pd.DataFrame:
    """Return ``sql``'s rows, or none when ``table`` holds no row yet (a first start)."""
    if table not in lake.tables():
        return pd.DataFrame()
    return lake.query(sql, params)


def monitor_state(lake: Lake, monitor: str) -> pd.DataFrame:
    """Return the state rows (``key``, ``state`` JSON) the monitor ``monitor`` committed last."""
    return _live(
        lake, "monitor_state", "SELECT key, state FROM monitor_state WHERE monitor = ?", [monitor]
    )


def live_final_picks(lake: Lake, monitor: str, since: pd.Timestamp | None = None) -> pd.DataFrame:
    """Return the monitor's final picks (from ``since`` on)."""
    sql = "SELECT * FROM live_picks WHERE monitor = ? AND status = 'final'"
    params: list[Any] = [monitor]
    if since is not None:
        sql += " AND time >= ?"
        params.append(since)
    return _live(lake, "live_picks", sql, params)


def live_origins(lake: Lake, monitor: str) -> pd.DataFrame:
    """Return every origin revision of the monitor's events."""
    return _live(lake, "live_origins", "SELECT * FROM live_origins WHERE monitor = ?", [monitor])


def live_arrivals(lake: Lake, monitor: str) -> pd.DataFrame:
    """Return the picks every origin revision of the monitor used."""
    return _live(lake, "live_arrivals", "SELECT * FROM live_arrivals WHERE monitor = ?", [monitor])


def live_amplitudes(lake: Lake, monitor: str) -> pd.DataFrame:
    """Return the Wood-Anderson amplitudes the monitor measured."""
    return _live(
        lake, "live_amplitudes", "SELECT * FROM live_amplitudes WHERE monitor = ?", [monitor]
    )


def live_pick_latencies(lake: Lake, monitor: str) -> pd.DataFrame:
    """Return per published pick its ``status`` and ``s``: seconds from the delivery of the record
    holding its peak sample to its commit."""
    return _live(
        lake,
        "live_picks",
        "SELECT status, epoch(committed) - epoch(delivered) AS s FROM live_picks "
        "WHERE monitor = ? AND delivered IS NOT NULL AND status IN ('final', 'provisional')",
        [monitor],
    )


def live_event_latencies(lake: Lake, monitor: str) -> pd.DataFrame:
    """Return per event ``s``: seconds from the delivery of its 4th station's P record to the
    commit of its first origin."""
    return _live(
        lake,
        "live_origins",
        "SELECT event_id, min(epoch(creation_time) - epoch(first_p_delivered)) AS s "
        "FROM live_origins WHERE monitor = ? AND first_p_delivered IS NOT NULL "
        "AND status != 'deleted' GROUP BY event_id",
        [monitor],
    )


def live_magnitude_latencies(lake: Lake, monitor: str) -> pd.DataFrame:
    """Return per event ``s``: seconds from the delivery of its 4th station's P record to the
    commit of its first origin with a magnitude."""
    return _live(
        lake,
        "live_origins",
        "SELECT event_id, min(epoch(creation_time)) - min(epoch(first_p_delivered)) AS s "
        "FROM live_origins WHERE monitor = ? AND first_p_delivered IS NOT NULL "
        "AND status != 'deleted' AND isfinite(magnitude) GROUP BY event_id",
        [monitor],
    )
