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
