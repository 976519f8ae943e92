"""Read-only typed queries of a published catalogue (the web service's, ``quakelake serve``).

A :class:`LakeReader` holds one read-only connection to the lake's catalog (``READ_ONLY``: no
statement it runs can commit). Every request reads one snapshot (:meth:`LakeReader.snapshot`:
the lake now, or as it was at a time), so its events, arrivals and magnitudes agree with each
other and an answer given ``asofdate`` is the same bytes after any later reprocessing. Every
value a caller gives is a bound parameter; every statement is interrupted after ``timeout_s``.

The events served are the reported origins (:data:`~quakelake.lakehouse.queries.REPORTED_SQL`,
as ``quakelake export`` writes them): an origin the quality gate rejected is no event of the
service. A *catalogue* is one pick set x associator: the events rows of one ``pick_source`` (the picks
the associator was given: ``lake-PhaseNet-original``, ``file-...``) and one ``associator``,
named ``PICK_SOURCE:ASSOCIATOR``.

>>> where = _Filter().add("magnitude >= ?", 2.5).add("depth_km <= ?", None)
>>> where.sql(), where.params
(' WHERE magnitude >= ?', [2.5])
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pandas as pd

from quakelake.lakehouse.catalog import (
    ALIAS,
    META,
    UNIT_COLUMN,
    Lake,
    LakeQueryError,
    resolve_snapshot,
    retryable,
)
from quakelake.lakehouse.queries import REPORTED_SQL

#: separates the pick source from the associator in a catalogue name
CATALOG_SEPARATOR = ":"

_ORDER = {
    "time": "time DESC, event_id",
    "time-asc": "time ASC, event_id",
    "magnitude": "magnitude DESC NULLS LAST, time DESC, event_id",
    "magnitude-asc": "magnitude ASC NULLS LAST, time ASC, event_id",
}

# great-circle distance (degrees) from the bound point (lat, lat, lon) to the event
_DISTANCE = (
    "degrees(acos(least(1.0, greatest(-1.0, sin(radians(latitude)) * sin(radians(?)) + "
    "cos(radians(latitude)) * cos(radians(?)) * cos(radians(longitude - ?))))))"
)


class QueryTimeout(LakeQueryError):
    """A query ran longer than the reader's ``timeout_s`` and was interrupted."""


def catalog_name(pick_source: str, associator: str) -> str:
    """Return the name of the catalogue of one pick set x associator.

    >>> catalog_name("lake-PhaseNet-original", "pyocto")
    'lake-PhaseNet-original:pyocto'
    """
    return f"{pick_source}{CATALOG_SEPARATOR}{associator}"


def split_catalog(name: str) -> tuple[str, str]:
    """Return ``(pick_source, associator)`` of a catalogue name (the associator is after the last ``:``).

    >>> split_catalog("lake-PhaseNet-original:pyocto")
    ('lake-PhaseNet-original', 'pyocto')
    """
    source, _, associator = name.rpartition(CATALOG_SEPARATOR)
    return source, associator


class _Filter:
    """A conjunction of SQL conditions written here, with their bound parameters."""

    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.params: list[Any] = []

    def add(self, clause: str, *values: Any) -> _Filter:
        """Add ``clause`` (one ``?`` per value) unless a value is None."""
        if any(v is None for v in values):
            return self
        self.clauses.append(clause)
        self.params.extend(values)
        return self

    def sql(self) -> str:
        return f" WHERE {' AND '.join(self.clauses)}" if self.clauses else ""


@dataclass(frozen=True)
class EventFilter:
    """What an event query asks for (FDSN fdsnws-event 1.2 semantics; None: no bound).

    Depths in km, radii in degrees, times aware UTC. ``min_longitude > max_longitude`` is a
    rectangle across the antimeridian. ``catalogs`` are ``(pick_source, associator)`` pairs,
    ``contributors`` associators; ``offset`` counts from 0.
    """

    start: dt.datetime | None = None
    end: dt.datetime | None = None
    min_latitude: float | None = None
    max_latitude: float | None = None
    min_longitude: float | None = None
    max_longitude: float | None = None
    latitude: float | None = None
    longitude: float | None = None
    min_radius: float | None = None
    max_radius: float | None = None
    min_depth: float | None = None
    max_depth: float | None = None
    min_magnitude: float | None = None
    max_magnitude: float | None = None
    magnitude_type: str | None = None
    event_ids: tuple[str, ...] = ()
    catalogs: tuple[tuple[str, str], ...] = ()
    contributors: tuple[str, ...] = ()
    updated_after: dt.datetime | None = None
    order: str = "time"
    limit: int | None = None
    offset: int = 0
    columns: tuple[str, ...] = field(default=())

    def where(self, updated: list[str] | None = None) -> _Filter:
        """Return the conditions on ``events`` rows (``updated``: the logical files committed
        after ``updated_after``, see :meth:`LakeReader.events`)."""
        f = (
            _Filter()
            .add("time >= ?", self.start)
            .add("time <= ?", self.end)
            .add("latitude >= ?", self.min_latitude)
            .add("latitude <= ?", self.max_latitude)
            .add("depth_km >= ?", self.min_depth)
            .add("depth_km <= ?", self.max_depth)
            .add("magnitude >= ?", self.min_magnitude)
            .add("magnitude <= ?", self.max_magnitude)
            .add("lower(magnitude_type) = lower(?)", self.magnitude_type)
        )
        # whole UTC days first: the catalog prunes files by their day partition
        f.add("day >= CAST(? AS DATE)", self.start.date() if self.start else None)
        f.add("day <= CAST(? AS DATE)", self.end.date() if self.end else None)
        lo, hi = self.min_longitude, self.max_longitude
        if lo is not None and hi is not None and lo > hi:
            f.add("(longitude >= ? OR longitude <= ?)", lo, hi)
        else:
            f.add("longitude >= ?", lo).add("longitude <= ?", hi)
        if self.latitude is not None or self.longitude is not None:
            point = (self.latitude or 0.0, self.latitude or 0.0, self.longitude or 0.0)
            f.add(f"{_DISTANCE} >= ?", *point, self.min_radius)
            f.add(f"{_DISTANCE} <= ?", *point, self.max_radius)
        if len(self.event_ids) == 1:
            f.add("event_id = ?", self.event_ids[0])
        elif self.event_ids:
            f.add("list_contains(?, event_id)", list(self.event_ids))
        if self.catalogs:
            pairs = " OR ".join("(pick_source = ? AND associator = ?)" for _ in self.catalogs)
            f.add(f"({pairs})", *(v for pair in self.catalogs for v in pair))
        if self.contributors:
            f.add("list_contains(?, associator)", list(self.contributors))
        f.add("list_contains(?, unit_file)", updated)
        return f


EVENT_COLUMNS = (
    "event_id",
    "run_id",
    "associator",
    "config_fingerprint",
    "pick_source",
    "time",
    "latitude",
    "longitude",
    "depth_km",
    "magnitude",
    "magnitude_type",
    "magnitude_uncertainty",
    "magnitude_station_count",
    "n_picks",
    "n_p",
    "n_s",
    "n_stations",
    "score",
    "rms_residual_s",
    "time_uncertainty_s",
    "latitude_uncertainty_km",
    "longitude_uncertainty_km",
    "horizontal_uncertainty_km",
    "vertical_uncertainty_km",
    "azimuthal_gap_deg",
    "min_distance_km",
    "location_quality",
)


class LakeReader:
    """Read-only queries of one lake, each at one snapshot, each interrupted after ``timeout_s``.

    The events table (the catalogue: one row per event, 10^6 rows ~ 200 MB) is copied into an
    in-memory DuckDB table, sorted by time, once per change of the events table (a snapshot
    that changed no event, e.g. picks committed, reads the same copy); event queries read the
    copy, so a query of a day of a 10^6-event lake costs milliseconds rather than a catalog
    scan of every day's file. The tables read for a few events only (assignments, amplitudes,
    station magnitudes, picks) are read from the lake, pruned to the events' days. The copies
    of the :data:`KEEP` most recently used versions are kept.

    Args:
        lake: the lake (its catalog must exist).
        timeout_s: seconds a statement may run before it is interrupted (:class:`QueryTimeout`).
    """

    KEEP = 2

    def __init__(self, lake: Lake, timeout_s: float = 10.0):
        self.lake = lake
        self.timeout_s = timeout_s
        self._con: duckdb.DuckDBPyConnection | None = None
        self._mem = duckdb.connect(":memory:")
        self._copies: OrderedDict[int, str] = OrderedDict()
        self._versions: dict[int, int] = {}
        self._events_id: set[str] | None = None
        self._lock = threading.RLock()
        self._watched = threading.Condition()
        self._running: tuple[float, duckdb.DuckDBPyConnection] | None = None
        self._watchdog: threading.Thread | None = None

    def close(self) -> None:
        """Close the reader's connections (a later query opens the lake again)."""
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None
            for name in self._copies.values():
                self._mem.execute(f'DROP TABLE IF EXISTS "{name}"')
            self._copies.clear()
            self._versions.clear()

    def _execute(
        self, con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any], arrow: bool = False
    ) -> Any:
        """Run one statement (the caller holds the lock), stopped after ``timeout_s``.

        A SQLite catalog is locked for the moment a writer commits: the statement is tried
        again (as a commit is) until it runs or ``timeout_s`` has passed.
        """
        cur = con.cursor()
        self._watch(cur)
        deadline = time.monotonic() + self.timeout_s
        try:
            while True:
                try:
                    result = cur.execute(sql, list(params))
                    return result.to_arrow_table() if arrow else result.df()
                except duckdb.InterruptException:
                    raise
                except duckdb.Error as exc:
                    if not retryable(exc) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        except duckdb.InterruptException:
            raise QueryTimeout(
                f"the query took longer than {self.timeout_s:g} s and was stopped; ask for "
                "less (a shorter time range, a smaller region or limit)"
            ) from None
        finally:
            self._watch(None)
            cur.close()

    def _watch(self, cur: duckdb.DuckDBPyConnection | None) -> None:
        """Start (a cursor) or end (None) watching the running statement."""
        with self._watched:
            self._running = (time.monotonic() + self.timeout_s, cur) if cur is not None else None
            if self._watchdog is None:
                self._watchdog = threading.Thread(
                    target=self._watch_loop, name="lake-query-timeout", daemon=True
                )
                self._watchdog.start()
            self._watched.notify()

    def _watch_loop(self) -> None:
        # one thread for every statement: a Timer per statement costs a thread start each
        with self._watched:
            while True:
                if self._running is None:
                    self._watched.wait()
                    continue
                deadline, cur = self._running
                left = deadline - time.monotonic()
                if left <= 0:
                    cur.interrupt()
                    self._running = None
                    continue
                self._watched.wait(left)

    def _lake(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            self._con = self.lake._open(read_only=True)
        return self._con

    def _run(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        """Run ``sql`` over the lake's catalog (read-only)."""
        with self._lock:
            return self._execute(self._lake(), sql, params)

    def _run_copy(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        """Run ``sql`` over the in-memory copies of the events table."""
        with self._lock:
            return self._execute(self._mem, sql, params)

    # -- snapshots ----------------------------------------------------------------------------
    def snapshot(self, as_of: str | None = None) -> int:
        """Return the snapshot id of the lake now, or at ``as_of`` (ISO time, UTC; or a run id).

        Raises:
            LakeQueryError: ``as_of`` is before the lake existed or neither a time nor a run id.
        """
        if as_of is None:
            frame = self._run(f"SELECT max(snapshot_id) AS s FROM {META}.ducklake_snapshot")
            return int(frame["s"].iloc[0])
        with self._lock:
            cur = self._lake().cursor()
            try:
                return resolve_snapshot(cur, as_of)
            finally:
                cur.close()

    @staticmethod
    def _at(snapshot: int) -> str:
        return f" AT (VERSION => {int(snapshot)})"

    def _table(self, name: str, snapshot: int) -> str:
        return f'{ALIAS}."{name}"{self._at(snapshot)}'

    def _events_copy(self, snapshot: int) -> str:
        """Return the in-memory table holding the events of ``snapshot`` (copied when new)."""
        with self._lock:
            version = self._events_version(snapshot)
            name = self._copies.get(version)
            if name is not None:
                self._copies.move_to_end(version)
                return name
            name = f"events_{version}"
            # the published catalogue is the reported origins: those the quality gate rejected
            # (no magnitude, left out of exports and scores) are not events of the service
            rows = self._execute(
                self._lake(),
                f"SELECT * FROM {self._table('events', version)} WHERE {REPORTED_SQL}",
                (),
                arrow=True,
            )
            self._mem.register("_events_rows", rows)
            try:
                self._mem.execute(
                    f'CREATE TABLE "{name}" AS SELECT * FROM _events_rows ORDER BY time'
                )
            finally:
                self._mem.unregister("_events_rows")
            self._copies[version] = name
            while len(self._copies) > self.KEEP:
                _, old = self._copies.popitem(last=False)
                self._mem.execute(f'DROP TABLE IF EXISTS "{old}"')
            return name

    def _read(
        self,
        table: str,
        snapshot: int,
        days: tuple[dt.date, dt.date] | None,
        where: _Filter,
        order: str,
    ) -> pd.DataFrame:
        """Return ``table``'s rows at ``snapshot`` that satisfy ``where``, pruned to ``days``."""
        if days is not None:
            where.add("day >= CAST(? AS DATE)", days[0]).add("day <= CAST(? AS DATE)", days[1])
        sql = (
            f"SELECT * EXCLUDE ({UNIT_COLUMN}) FROM {self._table(table, snapshot)}{where.sql()} "
            f"ORDER BY {order}"
        )
        return self._run(sql, where.params)

    def _events_version(self, snapshot: int) -> int:
        """Return the last snapshot up to ``snapshot`` that changed the events table.

        Its events are those of ``snapshot``: the in-memory copy of one serves every later
        snapshot that left the events alone (picks committed, runs recorded...).
        """
        if snapshot in self._versions:
            return self._versions[snapshot]
        if self._events_id is None:
            ids = self._run(
                f"SELECT table_id FROM {META}.ducklake_table WHERE table_name = 'events' "
                "AND end_snapshot IS NULL"
            )
            self._events_id = {str(i) for i in ids["table_id"]} | {"main.events"}
        snaps = self._run(
            f"SELECT snapshot_id, changes FROM {ALIAS}.snapshots() WHERE snapshot_id <= ? "
            "ORDER BY snapshot_id DESC",
            [int(snapshot)],
        )
        version = 0
        for snap, changes in zip(snaps["snapshot_id"], snaps["changes"], strict=True):
            touched = {str(v) for values in (changes or {}).values() for v in values or ()}
            if touched & self._events_id:
                version = int(snap)
                break
        self._versions[int(snapshot)] = version
        return version

    # -- events ---------------------------------------------------------------------------------
    def events(self, query: EventFilter, snapshot: int) -> pd.DataFrame:
        """Return the events of ``query`` at ``snapshot`` in its order, ``limit`` rows from ``offset``."""
        cols = ", ".join(f'"{c}"' for c in (query.columns or EVENT_COLUMNS))
        return self._select(query, snapshot, cols, [])

    def events_text(self, query: EventFilter, snapshot: int, author: str) -> list[str]:
        """Return the events of ``query`` as lines of the FDSN text format (no header).

        ``EventID|Time|Latitude|Longitude|Depth/km|Author|Catalog|Contributor|ContributorID|
        MagType|Magnitude|MagAuthor|EventLocationName|EventType``, written by DuckDB (thousands
        of lines in milliseconds); the catalogue is ``PICK_SOURCE:ASSOCIATOR``, the contributor
        the associator, times UTC to the millisecond.
        """
        text = "replace(coalesce({}, ''), '|', '/')"
        fields = [
            text.format("event_id"),
            "strftime(timezone('UTC', time), '%Y-%m-%dT%H:%M:%S.%g')",
            "coalesce(printf('%.5f', latitude), '')",
            "coalesce(printf('%.5f', longitude), '')",
            "coalesce(printf('%.3f', depth_km), '')",
            "?",
            text.format(f"coalesce(pick_source, '') || '{CATALOG_SEPARATOR}' || associator"),
            text.format("associator"),
            text.format("event_id"),
            text.format("magnitude_type"),
            "coalesce(printf('%.2f', magnitude), '')",
            "CASE WHEN magnitude IS NULL THEN '' ELSE ? END",
            "''",
            "'earthquake'",
        ]
        frame = self._select(
            query, snapshot, f"concat_ws('|', {', '.join(fields)}) AS line", [author, author]
        )
        return [str(line) for line in frame["line"]]

    def _select(
        self, query: EventFilter, snapshot: int, columns: str, column_params: list[Any]
    ) -> pd.DataFrame:
        updated = None
        if query.updated_after is not None:
            stems = self._run(
                f"SELECT stem FROM {self._table('lake_files', snapshot)} "
                "WHERE table_name = 'events' AND committed > ?",
                [query.updated_after],
            )
            updated = [str(x) for x in stems["stem"]]
        where = query.where(updated)
        tail = f" ORDER BY {_ORDER[query.order]}"
        params = [*column_params, *where.params]
        if query.limit is not None:
            tail += " LIMIT ?"
            params.append(int(query.limit))
        if query.offset:
            tail += " OFFSET ?"
            params.append(int(query.offset))
        copy = self._events_copy(snapshot)
        return self._run_copy(f'SELECT {columns} FROM "{copy}"{where.sql()}{tail}', params)

    def count_events(self, snapshot: int) -> int:
        """Return how many events the lake holds at ``snapshot``."""
        frame = self._run_copy(f'SELECT count(*) AS n FROM "{self._events_copy(snapshot)}"')
        return int(frame["n"].iloc[0])

    @staticmethod
    def _days(frame: pd.DataFrame) -> tuple[dt.date, dt.date] | None:
        if not len(frame):
            return None
        days = pd.to_datetime(frame["time"], utc=True).dt.date
        return min(days) - dt.timedelta(days=1), max(days) + dt.timedelta(days=1)

    def _of_events(
        self, table: str, events: pd.DataFrame, snapshot: int, order: str
    ) -> pd.DataFrame:
        ids = [str(e) for e in events["event_id"]] if len(events) else []
        # the rows live in the partitions of their events' days (a margin for the edges)
        return self._read(
            table,
            snapshot,
            self._days(events),
            _Filter().add("list_contains(?, event_id)", ids),
            order,
        )

    def arrivals(self, events: pd.DataFrame, snapshot: int) -> pd.DataFrame:
        """Return the assigned picks of ``events`` with the band each pick was made on.

        One statement over both tables: each statement pays the catalog's file listing.
        """
        ids = [str(e) for e in events["event_id"]] if len(events) else []
        days = self._days(events)
        if days is None:
            return self._of_events("assignments", events, snapshot, "event_id").assign(
                band=pd.Series(dtype=object)
            )
        first, last = days
        sql = (
            f"WITH a AS (SELECT * EXCLUDE ({UNIT_COLUMN}) FROM "
            f"{self._table('assignments', snapshot)} WHERE list_contains(?, event_id) AND "
            "day >= CAST(? AS DATE) AND day <= CAST(? AS DATE)) "
            "SELECT a.*, b.band FROM a LEFT JOIN (SELECT pick_id, any_value(band) AS band FROM "
            f"{self._table('picks', snapshot)} WHERE day >= CAST(? AS DATE) AND "
            "day <= CAST(? AS DATE) AND pick_id IN (SELECT pick_id FROM a) GROUP BY pick_id) b "
            "USING (pick_id) ORDER BY event_id, time, pick_id"
        )
        return self._run(sql, [ids, first, last, first, last])

    def amplitudes(self, events: pd.DataFrame, snapshot: int) -> pd.DataFrame:
        """Return the amplitudes measured for ``events``."""
        return self._of_events("amplitudes", events, snapshot, "event_id, station_id, channel")

    def station_magnitudes(self, events: pd.DataFrame, snapshot: int) -> pd.DataFrame:
        """Return the station magnitudes of ``events``."""
        return self._of_events("station_magnitudes", events, snapshot, "event_id, station_id")

    # -- what the lake offers --------------------------------------------------------------------
    def catalogs(self, snapshot: int) -> pd.DataFrame:
        """Return one row per catalogue (pick source x associator): events, first and last time."""
        frame = self._run_copy(
            "SELECT pick_source, associator, count(*) AS events, min(time) AS first, "
            "max(time) AS last, max(run_id) AS run_id FROM "
            f'"{self._events_copy(snapshot)}" GROUP BY ALL ORDER BY pick_source, associator'
        )
        frame.insert(
            0,
            "catalog",
            [
                catalog_name(str(s or ""), str(a or ""))
                for s, a in zip(frame["pick_source"], frame["associator"], strict=True)
            ],
        )
        return frame

    def contributors(self, snapshot: int) -> list[str]:
        """Return the associators whose events the lake holds."""
        frame = self._run_copy(
            f'SELECT DISTINCT associator FROM "{self._events_copy(snapshot)}" ORDER BY 1'
        )
        return [str(a) for a in frame["associator"] if a is not None]

    def stations(self, snapshot: int) -> pd.DataFrame:
        """Return one row per station (network, station, latitude, longitude, elevation_m)."""
        return self._run(
            "SELECT network, station, any_value(latitude) AS latitude, any_value(longitude) "
            f"AS longitude, any_value(elevation_m) AS elevation_m FROM {self._table('stations', snapshot)} "
            "GROUP BY network, station ORDER BY network, station"
        )

    def waveform_segments(
        self,
        network: str,
        station: str,
        location: str,
        start: dt.datetime,
        end: dt.datetime,
        snapshot: int,
    ) -> pd.DataFrame:
        """Return the indexed trace segments of one station that overlap ``[start, end]``."""
        return self._run(
            'SELECT path, format, network, station, location, channel, start, "end" FROM '
            f"{self._table('waveform_index', snapshot)} WHERE network = ? AND station = ? AND "
            "coalesce(location, '') = ? AND start <= ? AND \"end\" >= ? ORDER BY channel, start",
            [network, station, location, end, start],
        )
