"""The lake: Parquet data files under a DuckLake catalog, read through DuckDB views.

Parquet stays the truth; the catalog (DuckLake, DuckDB's lakehouse format) says which files
are part of the lake. A data file is written first (by a worker, anywhere) and becomes visible
only when the flow process commits it, in one transaction with the ledger rows that account for
it. Every commit is a snapshot carrying its run id: ``Lake.connect(as_of=...)`` reads the lake
as it was. Files nobody committed (a killed run's, a stray copy) are never read.

The catalog lives in the lake folder (``catalog.sqlite``, nothing to start) or in PostgreSQL
(``Lake(root, catalog="postgresql://host/db")``) for many writers on many hosts. Any DuckDB
client opens the lake with::

    LOAD ducklake; LOAD sqlite;
    ATTACH 'ducklake:sqlite:/path/to/lake/catalog.sqlite' AS lake
        (READ_ONLY, DATA_PATH '/path/to/lake/', OVERRIDE_DATA_PATH true);

Every path the catalog holds is relative to the lake folder: a copy, a move or another mount
point of the folder reads the same (``lake migrate`` converts lakes of absolute paths).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from quakelake.errors import BadInput
from quakelake.lakehouse import extensions
from quakelake.lakehouse.atomic import atomic_write
from quakelake.lakehouse.schema import TABLES, TableSpec
from quakelake.lakehouse.sql import quote
from quakelake.lakehouse.writer import FileChange, stage_table, table_spec, to_arrow

CATALOG_FILE = "catalog.sqlite"
LOCK_FILE = ".catalog.lock"  # held while a writer attaches and sets the catalog up
CATALOG_POINTER = "catalog.json"  # where a lake's shared (PostgreSQL) catalog is; no secrets
UNIT_COLUMN = "unit_file"  # every row: the logical file (unit key + inputs) it was committed in
ALIAS = "lake"
META = f"__ducklake_metadata_{ALIAS}"

# The runs table holds one row per status change: the view shows each run's latest state.
_LATEST_RUN = (
    "SELECT * FROM ({source}) QUALIFY row_number() OVER "
    "(PARTITION BY run_id ORDER BY coalesce(finished, started) DESC, status = 'running') = 1"
)

# QuakeLake's own bookkeeping tables in the catalog (not lake tables users query)
_FILES_TABLE = "lake_files"  # one row per committed logical file: the skip/resume truth
_TOKEN_TABLE = "lake_commit_token"  # one row every commit updates: concurrent commits conflict

_DUCK_TYPES = {
    pa.string(): "VARCHAR",
    pa.float64(): "DOUBLE",
    pa.float32(): "FLOAT",
    pa.int32(): "INTEGER",
    pa.int64(): "BIGINT",
    pa.bool_(): "BOOLEAN",
    pa.date32(): "DATE",
}

log = logging.getLogger(__name__)
_LOCKS: dict[str, threading.RLock] = {}
_CONNECTIONS: dict[tuple[int, str], duckdb.DuckDBPyConnection] = {}
_HELD: dict[tuple[int, str], int | None] = {}  # a descriptor of the catalog file each opened
_GUARD = threading.Lock()


class LakeQueryError(BadInput):
    """A query over the lake failed (e.g. it names a table with no data yet)."""


class LakeError(BadInput):
    """The lake path or its catalog cannot be used (a file, an old layout, an unknown catalog)."""


def column_type(dtype: pa.DataType) -> str:
    """Return the DuckDB type of a lake column of pyarrow type ``dtype``."""
    if pa.types.is_timestamp(dtype):
        return "TIMESTAMPTZ" if dtype.tz else "TIMESTAMP"
    return _DUCK_TYPES[dtype]


def table_columns(spec: TableSpec) -> list[tuple[str, str]]:
    """Return the catalog columns of a lake table: file schema, partition keys, ``unit_file``."""
    cols = [(f.name, column_type(f.type)) for f in spec.schema]
    cols += [
        (k, "DATE" if k == "day" else "VARCHAR")
        for k in spec.partition_by
        if k not in spec.schema.names
    ]
    return cols + [(UNIT_COLUMN, "VARCHAR")]


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://", "postgres:"))


def _has_password(url: str) -> bool:
    return re.match(r"postgres(ql)?://[^/@:]+:[^/@]+@", url) is not None or "password=" in url


class Lake:
    """A lake folder: Parquet files, a DuckLake catalog, one DuckDB view per table.

    Args:
        root: the lake folder (data files live under it, one folder per table).
        catalog: ``None`` (the lake's own: ``catalog.sqlite`` in the folder, or the PostgreSQL
            catalog recorded in its ``catalog.json``) or a ``postgresql://`` URL (passwords come
            from ``PGPASSWORD`` or ``~/.pgpass``, never from the lake).

    Example:
        >>> lake = Lake("lake")                                    # doctest: +SKIP
        >>> lake.query("SELECT phase, count(*) FROM picks GROUP BY ALL")  # doctest: +SKIP
    """

    def __init__(self, root: str | Path, catalog: str | None = None):
        self.root = Path(root).resolve()
        if self.root.exists() and not self.root.is_dir():
            raise LakeError(f"lake path {root} is a file, not a folder; pass a folder to --lake")
        self._catalog = catalog or ""
        self.rebuilding = False  # set by quakelake lake rebuild: a new catalog over old files

    def catalog_problem(self) -> str:
        """Return why the lake's own catalog cannot be trusted, or "" when nothing is wrong.

        A ``catalog.sqlite`` of 0 bytes (zeroed) or missing while the folder holds committed
        data files would otherwise open as a new, empty lake: its files unlisted, vacuum's
        orphans. ``quakelake lake rebuild`` rebuilds it from the data files.
        """
        if is_postgres(self.catalog) or self.rebuilding:
            return ""
        path = Path(self.catalog)
        if path.is_file() and path.stat().st_size > 0 or not _ever_committed(self.root):
            return ""  # a new lake (its first commit may be creating the catalog right now)
        if path.is_file():
            return f"its catalog {path} is empty (0 bytes)"
        return f"its catalog {path} is missing though the folder holds committed data files"

    def refuse_lost(self) -> None:
        """Raise :class:`LakeError` with the rebuild hint when the catalog was lost or zeroed."""
        problem = self.catalog_problem()
        if problem:
            raise LakeError(
                f"lake {self.root}: {problem}; nothing was read or written. Run quakelake lake "
                f"rebuild --lake {self.root} to rebuild the catalog from the data files"
            )

    # -- where the catalog is -------------------------------------------------------------
    @property
    def catalog(self) -> str:
        """Return the catalog's location: a PostgreSQL URL or the SQLite file's path."""
        if self._catalog:
            return self._catalog
        pointer = self.root / CATALOG_POINTER
        if pointer.is_file():
            return json.loads(pointer.read_text())["catalog"]
        return str(self.root / CATALOG_FILE)

    def exists(self) -> bool:
        """Return True when the lake has a catalog (something was ever committed)."""
        return is_postgres(self.catalog) or Path(self.catalog).is_file()

    def legacy(self) -> bool:
        """Return True for a lake of the layout before the catalog (files, no catalog)."""
        return not self.exists() and self.root.is_dir() and _legacy_files(self.root)

    def adopt(self) -> None:
        """Record this lake's catalog (``--catalog``) in its folder, checking it can be opened.

        Raises:
            LakeError: the URL holds a password, is not PostgreSQL, or differs from the
                catalog the lake already has.
        """
        url = self._catalog
        if not url:
            return
        if not is_postgres(url):
            raise LakeError(
                f"--catalog: {url!r} is not a postgresql:// URL; leave --catalog out for the "
                "lake's own catalog.sqlite"
            )
        pointer = self.root / CATALOG_POINTER
        if pointer.is_file() and json.loads(pointer.read_text())["catalog"] != url:
            raise LakeError(
                f"--catalog: lake {self.root} already has the catalog "
                f"{json.loads(pointer.read_text())['catalog']}; give that one or another --lake"
            )
        if (self.root / CATALOG_FILE).is_file():
            raise LakeError(
                f"--catalog: lake {self.root} has its own catalog.sqlite; give another --lake "
                "for a PostgreSQL catalog"
            )
        self._shared()

    def _attach_sql(self, read_only: bool = False) -> str:
        url = self.catalog
        if is_postgres(url):
            target = "ducklake:postgres:" + url.removeprefix("postgres:")
        else:
            target = "ducklake:sqlite:" + url
        # the data path is always this lake's folder as reached now: files the catalog keeps by
        # relative path are found under it wherever the folder was copied, moved or mounted
        opts = [f"DATA_PATH '{quote(str(self.root))}/'", "OVERRIDE_DATA_PATH true"]
        if read_only:
            opts.insert(0, "READ_ONLY")
        return f"ATTACH '{quote(target)}' AS {ALIAS} ({', '.join(opts)})"

    def _open(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        postgres = is_postgres(self.catalog)
        self.refuse_lost()
        if not read_only:
            if postgres and _has_password(self.catalog):
                raise LakeError(
                    "--catalog: the URL holds a password; drop it from the URL and set "
                    "PGPASSWORD or ~/.pgpass (secrets never go into the lake)"
                )
            self.root.mkdir(parents=True, exist_ok=True)
            # one writer at a time sets a catalog up (creates it, empties its schema folder,
            # adds tables): a racer's attach never caches a layout about to change
            with (self.root / LOCK_FILE).open("a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    return self._attach(read_only, postgres)
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)
        return self._attach(read_only, postgres)

    def _attach(
        self, read_only: bool, postgres: bool, again: bool = False
    ) -> duckdb.DuckDBPyConnection:
        # Two processes opening a new catalog at once both try to create its metadata tables;
        # the loser sees "already exists" (PostgreSQL) or a lock: attach again, it is there now.
        for attempt in range(40):
            con = extensions.offline_connection()
            extensions.load(con, "ducklake", "postgres_scanner" if postgres else "sqlite_scanner")
            try:
                con.execute(self._attach_sql(read_only))
                break
            except duckdb.Error as exc:
                con.close()
                if attempt < 39 and (_retryable(exc) or "already exists" in str(exc)):
                    time.sleep(0.05 + 0.05 * attempt)
                    continue
                raise LakeError(
                    f"cannot open the catalog of lake {self.root} ({self.catalog}): {exc}; if it "
                    f"is damaged, quakelake lake rebuild --lake {self.root} rebuilds it from the "
                    "data files"
                ) from None
        if postgres and not read_only:
            self._record_pointer()  # only a catalog that answered is recorded in the folder
        try:
            # the first read of the catalog's tables: a damaged file fails here, not at ATTACH
            if not read_only and not again and _relative_layout(con):
                # the attached catalog caches the schema's folder (and a racer creating the
                # catalog may have just set it): attach again to read it as it is now
                con.close()
                return self._attach(read_only, postgres, again=True)
            if not read_only:
                _ensure_tables(con)
            else:
                # fetchall, not fetchone: a result left open keeps its transaction, and with it
                # a shared lock on a SQLite catalog that no writer can commit past
                con.execute(f"SELECT count(*) FROM {META}.ducklake_snapshot").fetchall()
        except duckdb.Error as exc:
            con.close()
            raise LakeError(
                f"cannot read the catalog of lake {self.root} ({self.catalog}): {exc}; if it is "
                f"damaged, quakelake lake rebuild --lake {self.root} rebuilds it from the data "
                "files"
            ) from None
        return con

    def _record_pointer(self) -> None:
        pointer = self.root / CATALOG_POINTER
        text = json.dumps({"catalog": self.catalog})
        if not pointer.is_file() or pointer.read_text() != text:
            atomic_write(pointer, text)

    def _hold_catalog_file(self) -> int | None:
        """Return a read descriptor of the embedded catalog file (None: no file, or PostgreSQL).

        Held with the cached connection: while it is open the file's inode cannot be reused,
        so a catalog file put at the same path later is always told apart from it.
        """
        if is_postgres(self.catalog):
            return None
        try:
            return os.open(self.catalog, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None

    def _same_catalog_file(self, fd: int | None) -> bool:
        """Return True when the catalog path still names the file ``fd`` holds."""
        if fd is None:
            return is_postgres(self.catalog) or not Path(self.catalog).exists()
        try:
            held, now = os.fstat(fd), os.stat(self.catalog)
        except OSError:
            return False
        return (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino)

    def _shared(self) -> duckdb.DuckDBPyConnection:
        """Return this process's read-write connection to the catalog (opened once).

        Opened again when the catalog file is another one than the connection's (the lake was
        restored from a copy, or removed and made anew, at the same path while this process
        lives): DuckLake caches catalog state, e.g. the column name maps of earlier commits,
        and a commit through the old connection would name maps the new catalog never held.
        """
        key = (os.getpid(), f"{self.root}|{self.catalog}")
        with _GUARD:
            con = _CONNECTIONS.get(key)
            if con is not None and not self._same_catalog_file(_HELD.get(key)):
                _CONNECTIONS.pop(key)  # not closed: a thread may still read through a cursor
                held = _HELD.pop(key, None)
                if held is not None:
                    os.close(held)
                con = None
            if con is None:
                con = self._open(read_only=False)
                _CONNECTIONS[key] = con
                _HELD[key] = self._hold_catalog_file()
            return con

    def _lock(self) -> threading.RLock:
        with _GUARD:
            return _LOCKS.setdefault(f"{self.root}|{self.catalog}", threading.RLock())

    # -- reading ----------------------------------------------------------------------------
    def connect(
        self,
        as_of: str | None = None,
        read_only: bool = False,
        only: Sequence[str] | None = None,
    ) -> duckdb.DuckDBPyConnection:
        """Return a DuckDB connection with one view per lake table (the lake as of ``as_of``).

        Args:
            as_of: a run id (the lake right after that run's last commit) or a time
                (ISO 8601, UTC when no offset); None: the lake now.
            read_only: a connection of its own that cannot commit (what ``quakelake sql`` uses).
            only: make views of these tables alone (None: every table that has rows).
        """
        self.refuse_lost()
        if not self.exists():
            if self.root.is_dir() and _legacy_files(self.root):
                raise LakeError(
                    f"lake {self.root} holds Parquet files but no catalog (the layout before "
                    f"the DuckLake catalog); run: quakelake lake migrate --lake {self.root}"
                )
            con = extensions.offline_connection()
            return con
        con = self._open(read_only=True) if read_only else self._shared().cursor()
        snap = resolve_snapshot(con, as_of) if as_of else None
        at = f" AT (VERSION => {snap})" if snap is not None else ""
        names = [n for n in _filled(con) if only is None or n in only]
        for name in names:
            source = f'SELECT * EXCLUDE ({UNIT_COLUMN}) FROM {ALIAS}."{name}"{at}'
            if name == "runs":
                source = _LATEST_RUN.format(source=source)
            con.execute(f'CREATE OR REPLACE TEMP VIEW "{name}" AS {source}')
        if read_only:
            try:
                self._verify(con, names, snap)
            except LakeQueryError:
                con.close()
                raise
        return con

    def _verify(self, con: duckdb.DuckDBPyConnection, tables: list[str], snap: int | None) -> None:
        """Refuse to answer over data files that are missing or not the size committed.

        DuckLake answers ``count(*)`` (and other questions its statistics hold) from the catalog
        without opening a file: over a deleted or cut-short file the answer would be wrong.
        A ``stat`` per file of the tables read (what ``quakelake sql`` asks) says so first.
        """
        if not tables:
            return
        marks = ", ".join("?" * len(tables))
        live = "f.end_snapshot IS NULL"
        args: list[Any] = list(tables)
        if snap is not None:
            live = "f.begin_snapshot <= ? AND (f.end_snapshot IS NULL OR f.end_snapshot > ?)"
            args += [snap, snap]
        rows = con.execute(
            f"SELECT f.table_id, f.path, f.path_is_relative, f.file_size_bytes "
            f"FROM {META}.ducklake_data_file f JOIN {META}.ducklake_table t "
            f"ON t.table_id = f.table_id AND t.end_snapshot IS NULL "
            f"WHERE t.table_name IN ({marks}) AND {live}",
            args,
        ).fetchall()
        folders = table_folders(con, self.root)
        bad = []
        for tid, path, rel, size in rows:
            where = locate(folders, tid, path, rel)
            try:
                have = where.stat().st_size
            except OSError:
                bad.append(f"{where} (missing)")
                continue
            if have != size:
                bad.append(f"{where} ({have} bytes, {size} committed)")
        if bad:
            raise LakeQueryError(
                f"{len(bad)} data files of lake {self.root} are damaged or missing (e.g. "
                f"{bad[0]}): the answer would be wrong, so none is given. Run quakelake lake "
                f"check --lake {self.root}"
            )

    def tables(self) -> list[str]:
        """Return the names of the tables that ever had rows (those the views show)."""
        if not self.exists():
            return []
        with self._cursor() as con:
            return _filled(con)

    def has_files(self, table: str) -> bool:
        """Return True when ``table`` ever had committed rows (it has a view)."""
        table_spec(table)
        return table in self.tables()

    @contextmanager
    def _cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        # One statement at a time per lake and process: DuckLake reads and commits from several
        # threads of one process on one attached catalog could block each other (seen as hangs).
        with self._lock():
            cur = self._shared().cursor()
            try:
                yield cur
            finally:
                cur.close()

    def files(self, table: str) -> list[Path]:
        """Return the data files holding ``table``'s current rows."""
        if not self.exists():
            return []
        table_spec(table)
        with self._cursor() as con:
            try:
                rows = con.execute(f'SELECT DISTINCT filename FROM {ALIAS}."{table}"').fetchall()
            except duckdb.Error:  # a damaged file: list the catalog's files without reading them
                found = self.data_files()
                rows = [(p,) for p in found.loc[found["table_name"] == table, "path"]]
        return sorted(Path(r[0]) for r in rows)

    def data_files(self, every: bool = False) -> pd.DataFrame:
        """Return the catalog's data files: table, path, rows, bytes, data_file_id, ``file``.

        ``file`` is where the file is now (a relative path resolved under this lake's folder).
        ``every``: also the files only older snapshots read.
        """
        with self._cursor() as con:
            frame = con.execute(
                f"SELECT t.table_name AS table_name, f.data_file_id, f.path, f.path_is_relative, "
                f"f.record_count, f.file_size_bytes, f.table_id FROM {META}.ducklake_data_file f "
                f"JOIN {META}.ducklake_table t ON t.table_id = f.table_id AND t.end_snapshot IS NULL "
                + ("" if every else "WHERE f.end_snapshot IS NULL")
            ).df()
            folders = table_folders(con, self.root)
        frame["file"] = [
            str(locate(folders, tid, path, rel))
            for tid, path, rel in zip(
                frame["table_id"], frame["path"], frame["path_is_relative"], strict=True
            )
        ]
        return frame

    def stems(self, table: str | None = None) -> pd.DataFrame:
        """Return the committed logical files (table, stem, key, path, run_id, committed)."""
        cols = ["table_name", "part", "stem", "key", "path", "run_id", "committed"]
        if not self.exists():
            return pd.DataFrame(columns=cols)
        sql = f"SELECT {', '.join(cols)} FROM {ALIAS}.{_FILES_TABLE}"
        with self._cursor() as con:
            if table is None:
                return con.execute(sql).df()
            return con.execute(sql + " WHERE table_name = ?", [table]).df()

    def query(
        self,
        sql: str,
        params: Sequence[Any] | dict[str, Any] | None = None,
        as_of: str | None = None,
        read_only: bool = False,
    ) -> pd.DataFrame:
        """Run ``sql`` with bound ``params`` over the lake's views and return a DataFrame.

        Raises:
            LakeQueryError: with the tables available when the query names a missing one.
        """
        with self._lock():
            return self._query(sql, params, as_of, read_only)

    def _query(self, sql, params, as_of, read_only) -> pd.DataFrame:
        # views of the tables the statement names (a word of it) only: one view costs a
        # catalog lookup, and a no-op rerun's dozen small queries would pay for all of them
        words = set(re.findall(r"[a-z_]+", sql.lower()))
        con = self.connect(as_of=as_of, read_only=read_only, only=[t for t in TABLES if t in words])
        try:
            return con.execute(sql, params or []).df()
        except duckdb.CatalogException as exc:
            have = ", ".join(self.tables()) or "none yet"
            raise LakeQueryError(f"{exc}\nTables with data in lake {self.root}: {have}") from exc
        except (duckdb.IOException, duckdb.InvalidInputException) as exc:
            if str(self.root) not in str(exc):
                raise LakeQueryError(str(exc)) from exc
            raise LakeQueryError(
                f"{exc}\nA data file of lake {self.root} is damaged or missing: "
                f"run quakelake lake check --lake {self.root}"
            ) from exc
        finally:
            con.close()

    def read(self, table: str) -> pd.DataFrame:
        """Return every row of ``table`` (empty with the right columns when it has none).

        Filtered reads are the typed functions of :mod:`quakelake.lakehouse.queries`.
        """
        spec = table_spec(table)
        if not self.has_files(table):
            cols = list(spec.schema.names)
            cols += [k for k in spec.partition_by if k not in cols]
            return pd.DataFrame(columns=cols)
        return self.query(f'SELECT * FROM "{table}"')

    def inline_rows(self, tables: Sequence[str], limit: int = 100_000) -> None:
        """Keep inserts of up to ``limit`` rows into ``tables`` in the catalog (DuckLake data
        inlining) instead of one Parquet file per insert; :func:`flush_inlined` writes them out."""
        for table in tables:
            table_spec(table)
        for attempt in range(40):
            with self._lock():
                try:
                    for table in tables:
                        self._shared().execute(
                            f"CALL {ALIAS}.set_option('data_inlining_row_limit', ?, table_name => ?)",
                            [limit, table],
                        )
                    return
                except duckdb.Error as exc:
                    if not _retryable(exc) or attempt == 39:
                        raise
            time.sleep(0.05 * (attempt + 1))

    def flush_inlined(self, tables: Sequence[str]) -> None:
        """Write the inlined rows of ``tables`` to Parquet files (one per table)."""
        with self._lock():
            con = self._shared()
            for table in tables:
                table_spec(table)
                con.execute(
                    f"CALL ducklake_flush_inlined_data('{ALIAS}', table_name => ?)", [table]
                )

    def history(self) -> pd.DataFrame:
        """Return the lake's snapshots: id, time, run id, message and what changed."""
        if not self.exists():
            return pd.DataFrame(columns=["snapshot_id", "time", "run_id", "message", "changes"])
        with self._cursor() as con:
            frame = con.execute(
                "SELECT snapshot_id, snapshot_time AS time, commit_extra_info, commit_message "
                f"AS message, changes FROM {ALIAS}.snapshots() ORDER BY snapshot_id"
            ).df()
        frame.insert(2, "run_id", [_run_of(x) for x in frame.pop("commit_extra_info")])
        frame["changes"] = [_changes_text(c) for c in frame["changes"]]
        return frame

    # -- writing ----------------------------------------------------------------------------
    def commit(
        self,
        changes: Sequence[FileChange] = (),
        rows: dict[str, pd.DataFrame | pa.Table]
        | Callable[[list[FileChange]], dict[str, pd.DataFrame]]
        | None = None,
        run_id: str = "",
        replace: bool = True,
        message: str = "",
        delete: dict[str, dict[str, str | Sequence[str]]] | None = None,
    ) -> list[FileChange]:
        """Commit data files and rows in one transaction (one snapshot); return the files taken.

        Each file's logical stem is checked inside the transaction: a stem already committed is
        replaced when ``replace`` (``--force``) and otherwise left as it is (the new file is
        deleted: another run committed the same unit first). Every commit updates one token
        row, so two concurrent commits conflict and the later one is retried against the new
        snapshot: a unit is committed once however many runs race on it.

        Args:
            changes: data files written by workers, not yet in the lake.
            rows: small tables inserted as rows (the ledger: ``units``, ``runs``...), or a
                function of the files taken that returns them (a ledger row that says whether
                the unit's files were taken).
            run_id: recorded with the snapshot (``quakelake lake history``, ``--as-of``).
            replace: replace committed stems (True) or keep them (False).
            message: the snapshot's commit message.
            delete: rows removed in the same transaction, ``{table: {column: value or
                [values]}}`` (the monitor's state rows a cycle replaces).
        """
        if not changes and not rows and not delete:
            return []
        for change in changes:
            table_spec(change.table)
        extra = json.dumps({"run_id": run_id})
        delay = 0.05
        with self._lock():
            for attempt in range(80):
                con = self._shared().cursor()
                try:
                    con.execute("BEGIN TRANSACTION")
                    con.execute(
                        f"CALL {ALIAS}.set_commit_message('quakelake', ?, extra_info => ?)",
                        [message or run_id, extra],
                    )
                    con.execute(f"UPDATE {ALIAS}.{_TOKEN_TABLE} SET n = n + 1")
                    held = _held_stems(con, changes)
                    empty: set[FileChange] = set()
                    taken = [
                        c
                        for c in changes
                        if _apply(con, c, run_id, replace, held, self.root, empty)
                    ]
                    for table, where in (delete or {}).items():
                        table_spec(table)
                        _delete_rows(con, table, where)
                    tables = rows(taken) if callable(rows) else (rows or {})
                    for table, data in tables.items():
                        if len(data):
                            _insert_rows(con, table, data)
                    con.execute("COMMIT")
                    break
                except duckdb.Error as exc:
                    rollback(con)
                    if not _retryable(exc) or attempt == 79:
                        raise
                    if attempt in (10, 40):
                        log.warning(
                            "commit to lake %s retried %d times: %s", self.root, attempt, exc
                        )
                    time.sleep(delay)
                    delay = min(delay * 1.5, 1.0)
                finally:
                    con.close()
        for change in changes:
            if change not in taken or change in empty:
                # never part of the lake (a zero-row file: its stem is in the manifest alone)
                Path(change.path).unlink(missing_ok=True)
        return taken


def _delete_rows(
    con: duckdb.DuckDBPyConnection, table: str, where: dict[str, str | Sequence[str]]
) -> None:
    """Delete the rows of ``table`` matching ``where``: a column equal to a value, or in a list
    of values (an empty list matches nothing: no statement)."""
    conds, params = [], []
    for column, value in where.items():
        if isinstance(value, str):
            conds.append(f'"{column}" = ?')
            params.append(value)
        else:
            if not value:
                return
            conds.append(f'"{column}" IN ({", ".join("?" * len(value))})')
            params.extend(value)
    con.execute(f'DELETE FROM {ALIAS}."{table}" WHERE {" AND ".join(conds) or "true"}', params)


def rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back ``con``'s open transaction, if any (a failed commit may have ended it)."""
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:
        pass


def _filled(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Return the lake tables that ever had committed rows (from the catalog's table stats)."""
    names = {
        r[0]
        for r in con.execute(
            f"SELECT t.table_name FROM {META}.ducklake_table_stats s JOIN {META}.ducklake_table t "
            "ON t.table_id = s.table_id AND t.end_snapshot IS NULL WHERE s.record_count > 0"
        ).fetchall()
    }
    return [name for name in TABLES if name in names]


def _retryable(exc: duckdb.Error) -> bool:
    text = str(exc).lower()
    return any(
        s in text
        for s in ("conflict", "locked", "busy", "retry", "duplicate key", "could not serialize")
    )


def retryable(exc: duckdb.Error) -> bool:
    """Return True when ``exc`` is a catalog conflict or lock that trying again gets past."""
    return _retryable(exc)


def _held_stems(
    con: duckdb.DuckDBPyConnection, changes: Sequence[FileChange]
) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """Return the committed (stem, key) of every (table, part) that ``changes`` touch, in one query.

    One catalog read per commit, not one per file: a query of the files table costs ~0.05 s
    whatever it selects, and a commit of a few units stages a file per instrument.
    """
    if not changes:
        return {}
    parts = sorted({c.part for c in changes})
    marks = ", ".join("?" * len(parts))
    rows = con.execute(
        f"SELECT table_name, part, stem, key FROM {ALIAS}.{_FILES_TABLE} WHERE part IN ({marks})",
        parts,
    ).fetchall()
    held: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for table, part, stem, key in rows:
        held.setdefault((table, part), []).append((stem, key))
    return held


def _apply(
    con: duckdb.DuckDBPyConnection,
    change: FileChange,
    run_id: str,
    replace: bool,
    held: dict[tuple[str, str], list[tuple[str, str]]],
    root: Path,
    empty: set[FileChange],
) -> bool:
    """Stage one file into the open transaction; return False when its stem stays as it is.

    ``held`` (:func:`_held_stems`) is kept up to date with what this commit removes and adds.
    A file of no rows (a station without picks) is not a data file of the lake: its stem
    enters the manifest (the unit is done) and the file joins ``empty`` (deleted once
    committed, never left as an uncommitted file).
    """
    here = held.setdefault((change.table, change.part), [])
    unit_key = change.key or change.stem
    old = [stem for stem, key in here if stem == change.stem or key == unit_key]
    if change.stem in old and not replace:
        return False
    if old:
        marks = ", ".join("?" * len(old))
        where = "".join(
            f' AND "{k}" = CAST(? AS DATE)' if k == "day" else f' AND "{k}" = ?'
            for k, _ in change.partition
        )
        con.execute(
            f'DELETE FROM {ALIAS}."{change.table}" WHERE {UNIT_COLUMN} IN ({marks}){where}',
            [*old, *(v for _, v in change.partition)],
        )
        con.execute(
            f"DELETE FROM {ALIAS}.{_FILES_TABLE} "
            f"WHERE table_name = ? AND part = ? AND stem IN ({marks})",
            [change.table, change.part, *old],
        )
    spec = table_spec(change.table)
    # given absolute (a file staged under a relative lake path must not be found relative to
    # the committing process's folder); DuckLake keeps it relative to the table's folder under
    # the lake's data path, so the lake folder is self-contained (copy, move, mount elsewhere)
    path = Path(change.path).resolve()
    if pq.ParquetFile(path).metadata.num_rows:
        con.execute(
            f"CALL ducklake_add_data_files('{ALIAS}', ?, ?, hive_partitioning => ?, "
            "allow_missing => true)",
            [change.table, str(path), bool(spec.partition_by)],
        )
        where = _lake_relative(root, path)
    else:
        empty.add(change)
        where = ""
    con.execute(
        f"INSERT INTO {ALIAS}.{_FILES_TABLE} "
        "(table_name, part, stem, key, path, run_id, committed) VALUES (?, ?, ?, ?, ?, ?, now())",
        [change.table, change.part, change.stem, change.key, where, run_id],
    )
    here[:] = [(stem, key) for stem, key in here if stem not in old] + [(change.stem, change.key)]
    return True


def _lake_relative(root: Path, path: Path) -> str:
    """Return a data file's path relative to the lake folder (absolute when outside it)."""
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def _insert_rows(con: duckdb.DuckDBPyConnection, table: str, data: pd.DataFrame | pa.Table) -> None:
    spec = table_spec(table)
    frame = data.to_pandas() if isinstance(data, pa.Table) else data
    parts = {
        k: frame[k] for k in spec.partition_by if k in frame.columns and k not in spec.schema.names
    }
    body = to_arrow(table, frame.drop(columns=list(parts)))
    for k, values in parts.items():
        body = body.append_column(k, pa.array(values.astype(str), pa.string()))
    con.register("_quakelake_rows", body)
    try:
        names = ", ".join(f'"{n}"' for n in body.column_names)
        casts = ", ".join(
            f'CAST("{n}" AS DATE) AS "{n}"' if n == "day" else f'"{n}"' for n in body.column_names
        )
        con.execute(f'INSERT INTO {ALIAS}."{table}" ({names}) SELECT {casts} FROM _quakelake_rows')
    finally:
        con.unregister("_quakelake_rows")


def _relative_layout(con: duckdb.DuckDBPyConnection) -> bool:
    """Give a new catalog the layout that keeps every data file relative to the lake folder.

    DuckLake resolves a relative file under ``DATA_PATH/<schema folder>/<table folder>/``; with
    the schema's folder empty a table's folder is the lake's own ``<table>/`` where the workers
    write, so DuckLake keeps their files (and the ones it writes itself) by relative path.
    Returns True for a catalog that holds no file yet (the caller attaches again, once). A
    catalog that already holds files keeps its layout: ``quakelake lake migrate`` converts it.
    """
    if (con.execute(f"SELECT count(*) FROM {META}.ducklake_data_file").fetchone() or (0,))[0]:
        return False
    con.execute(
        f"UPDATE {META}.ducklake_schema SET path = '', path_is_relative = true "
        "WHERE schema_name = 'main' AND path <> ''"
    )
    return True


def table_folders(con: duckdb.DuckDBPyConnection, root: Path) -> dict[int, Path]:
    """Return each table's folder (table_id -> folder) as DuckLake resolves it under ``root``."""
    schemas = {
        sid: (Path(root) / path if rel else Path(path))
        for sid, path, rel in con.execute(
            f"SELECT schema_id, path, path_is_relative FROM {META}.ducklake_schema"
        ).fetchall()
    }
    return {
        tid: (schemas.get(sid, Path(root)) / path if rel else Path(path))
        for tid, sid, path, rel in con.execute(
            f"SELECT table_id, schema_id, path, path_is_relative FROM {META}.ducklake_table"
        ).fetchall()
    }


def locate(folders: dict[int, Path], table_id: int, path: str, relative: Any) -> Path:
    """Return where a catalog's data (or delete) file is: relative ones under their table folder."""
    return folders[int(table_id)] / path if relative else Path(path)


def _ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create missing tables and add missing columns (schema evolution: no file is rewritten)."""
    have = {
        (r[0], r[1])
        for r in con.execute(
            "SELECT table_name, column_name FROM duckdb_columns() WHERE database_name = ?", [ALIAS]
        ).fetchall()
    }
    tables = {t for t, _ in have}
    wanted = {name: table_columns(spec) for name, spec in TABLES.items()}
    wanted[_FILES_TABLE] = [
        ("table_name", "VARCHAR"),
        ("part", "VARCHAR"),
        ("stem", "VARCHAR"),
        ("key", "VARCHAR"),
        ("path", "VARCHAR"),
        ("run_id", "VARCHAR"),
        ("committed", "TIMESTAMPTZ"),
    ]
    wanted[_TOKEN_TABLE] = [("n", "BIGINT")]
    todo, after = [], []
    if not tables:
        # files DuckLake writes itself (compaction, flushed rows): zstd, like the workers' files
        todo.append(f"CALL {ALIAS}.set_option('parquet_compression', 'zstd')")
        # the lake's rows live in its files, never in the catalog alone: a lost catalog is
        # rebuilt from the files (quakelake lake rebuild); the bookkeeping tables stay inlined
        todo.append(f"CALL {ALIAS}.set_option('data_inlining_row_limit', 0)")
    for name, cols in wanted.items():
        if name not in tables:
            body = ", ".join(f'"{c}" {t}' for c, t in cols)
            todo.append(f'CREATE TABLE IF NOT EXISTS {ALIAS}."{name}" ({body})')
            if name in (_TOKEN_TABLE, _FILES_TABLE):
                after.append(
                    f"CALL {ALIAS}.set_option('data_inlining_row_limit', 100000, "
                    f"table_name => '{name}')"
                )
            if name == _TOKEN_TABLE:
                todo.append(f"INSERT INTO {ALIAS}.{_TOKEN_TABLE} VALUES (0)")
            continue
        for c, t in cols:
            if (name, c) not in have:
                todo.append(f'ALTER TABLE {ALIAS}."{name}" ADD COLUMN "{c}" {t}')
    if not todo:
        return
    for attempt in range(40):
        try:
            con.execute("BEGIN TRANSACTION")
            for sql in todo:
                con.execute(sql)
            con.execute("COMMIT")
            break
        except duckdb.Error as exc:
            rollback(con)
            if not (_retryable(exc) or "already exists" in str(exc)) or attempt == 39:
                raise
            time.sleep(0.1)
    for sql in after:  # table settings: only once the tables are committed
        con.execute(sql)


def resolve_snapshot(con: duckdb.DuckDBPyConnection, as_of: str) -> int:
    """Return the snapshot id of ``as_of``: a run id (its last commit) or an ISO time.

    Raises:
        LakeQueryError: naming the option and the runs the lake has.
    """
    snaps = con.execute(
        f"SELECT snapshot_id, snapshot_time, commit_extra_info FROM {ALIAS}.snapshots() "
        "ORDER BY snapshot_id"
    ).fetchall()
    of_run = [s for s, _, info in snaps if _run_of(info) == as_of]
    if of_run:
        return of_run[-1]
    try:
        when = pd.Timestamp(as_of)
    except (ValueError, TypeError):
        runs = sorted({r for _, _, info in snaps if (r := _run_of(info))})
        raise LakeQueryError(
            f"--as-of: {as_of!r} is neither a run id of this lake nor a time "
            f"(e.g. 2026-12-01T08:00:00Z); runs: {', '.join(runs[-5:]) or 'none'}"
        ) from None
    when = when.tz_localize("UTC") if when.tzinfo is None else when
    before = [s for s, t, _ in snaps if pd.Timestamp(t) <= when]
    if not before:
        raise LakeQueryError(f"--as-of: the lake did not exist yet at {when.isoformat()}")
    return before[-1]


def _run_of(info: Any) -> str:
    if not info:
        return ""
    try:
        return json.loads(info).get("run_id", "")
    except (ValueError, AttributeError):
        return ""


def _changes_text(changes: Any) -> str:
    if not isinstance(changes, dict):
        return str(changes or "")
    return "; ".join(f"{k} {', '.join(map(str, v))}" for k, v in changes.items() if v)


def lake_data_files(root: Path) -> list[Path]:
    """Return the data files of the catalog layout in a lake folder (committed or not).

    Workers' files (``<stem>~<token>.parquet``) and DuckLake's own (``ducklake-*.parquet``, also
    under ``main/<table>/`` in lakes of the first catalog layout); not temporaries.
    """
    found = []
    for name in TABLES:
        for folder in (root / name, root / "main" / name):
            if folder.is_dir():
                found += [
                    p
                    for p in folder.rglob("*.parquet")
                    if not p.name.startswith(".")
                    and ("~" in p.name or p.name.startswith("ducklake-"))
                ]
    return sorted(found)


def _ever_committed(root: Path) -> bool:
    """Return True when a catalog once committed to this folder (its own files are there)."""
    token = root / _TOKEN_TABLE
    return (root / "main").is_dir() or (
        token.is_dir() and next(token.glob("ducklake-*.parquet"), None) is not None
    )


def _legacy_files(root: Path) -> bool:
    return any(
        "~" not in p.name and not p.name.startswith("ducklake-")
        for name in TABLES
        if (root / name).is_dir()
        for p in (root / name).rglob("*.parquet")
    )


def write_table(
    root: Path,
    table: str,
    data: pd.DataFrame | pa.Table,
    name: str,
    partition: Mapping[str, str] | None = None,
    key: str = "",
    run_id: str = "",
) -> Path:
    """Write one data file of ``table`` and commit it at once; return its path.

    Args:
        root: lake root folder.
        table: lake table name (see ``quakelake.lakehouse.schema.TABLES``).
        data: rows to write; cast to the table's schema.
        name: the logical file (unit key + fingerprint): a committed file of the same name is
            replaced.
        partition: hive partition values, e.g. ``{"day": "2020-10-01"}``.
        key: the unit key: committed files of this key and other inputs are replaced too.
        run_id: recorded with the commit's snapshot.
    """
    change = stage_table(root, table, data, name, partition, key)
    Lake(root).commit([change], run_id=run_id, message=f"{table} {change.stem}")
    return change.path


def close_connections(lake: Lake) -> None:
    """Close this process's cached catalog connections to ``lake`` (they cache its metadata)."""
    for key in [k for k in _CONNECTIONS if k[1] == f"{lake.root}|{lake.catalog}"]:
        _CONNECTIONS.pop(key).close()
        held = _HELD.pop(key, None)
        if held is not None:
            os.close(held)
