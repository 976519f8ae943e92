"""Keeping a lake healthy: compaction, vacuum, checks, migration from the pre-catalog layout.

Each function works on a :class:`~quakelake.lakehouse.catalog.Lake` through its catalog: files
come and go only by commits, so readers see the lake before or after, never in between.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq

from quakelake.lakehouse.catalog import (
    ALIAS,
    CATALOG_FILE,
    META,
    FileChange,
    Lake,
    _quote,
    rollback,
)
from quakelake.lakehouse.schema import TABLES
from quakelake.lakehouse.writer import data_file, to_arrow, write_atomic

# A data file younger than this may belong to a run still writing: vacuum leaves it.
ORPHAN_GRACE_S = 3600.0


@dataclass
class CheckReport:
    """What ``quakelake lake check`` found: damaged committed files, orphans, and repairs."""

    files: int = 0
    damaged: list[tuple[str, str, str]] = field(default_factory=list)  # table, path, why
    repaired: list[str] = field(default_factory=list)


def active_files(lake: Lake) -> pd.DataFrame:
    """Return the catalog's current data files: table, path, rows, bytes, data_file_id."""
    return lake.data_files()


def _absolute(lake: Lake, row) -> Path:
    path = Path(row.path)
    if row.path_is_relative:
        # DuckLake writes its own files (compaction, inlined rows) under DATA_PATH/<schema>/<table>/
        path = lake.root / "main" / row.table_name / row.path
        if not path.exists():
            path = lake.root / row.path
    return path


def check(lake: Lake, repair: bool = False) -> CheckReport:
    """Open every committed data file's footer and compare it with the catalog.

    A file that is missing, cut short or unreadable is reported by name; with ``repair`` it
    leaves the lake (a snapshot of its own) and its logical file leaves the manifest, so the
    next run of its unit computes it again.
    """
    report = CheckReport()
    files = active_files(lake)
    report.files = len(files)
    for row in files.itertuples(index=False):
        path = _absolute(lake, row)
        why = ""
        if not path.is_file():
            why = "missing"
        elif path.stat().st_size != row.file_size_bytes:
            why = f"{path.stat().st_size} bytes on disk, {row.file_size_bytes} committed"
        else:
            try:
                meta = pq.ParquetFile(path).metadata
                if meta.num_rows != row.record_count:
                    why = f"{meta.num_rows} rows, {row.record_count} committed"
            except Exception as exc:  # any unreadable footer is damage to report, not a crash
                why = f"unreadable: {exc}"
        if why:
            report.damaged.append((row.table_name, str(path), why))
            if repair:
                _retire(lake, int(row.data_file_id), int(row.table_id), int(row.record_count))
                report.repaired.append(str(path))
    for table in sorted({t for t, _, _ in report.damaged} if repair else set()):
        _forget(lake, table)
    return report


def _retire(lake: Lake, data_file_id: int, table_id: int, rows: int) -> None:
    """End one data file in a new snapshot (what a DELETE of all its rows would do, unread)."""
    con = lake._shared().cursor()
    try:
        snap = con.execute(
            f"SELECT snapshot_id, schema_version, next_catalog_id, next_file_id FROM "
            f"{META}.ducklake_snapshot ORDER BY snapshot_id DESC LIMIT 1"
        ).fetchone()
        new = snap[0] + 1
        con.execute("BEGIN TRANSACTION")
        con.execute(
            f"INSERT INTO {META}.ducklake_snapshot VALUES (?, now(), ?, ?, ?)",
            [new, snap[1], snap[2], snap[3]],
        )
        con.execute(
            f"INSERT INTO {META}.ducklake_snapshot_changes VALUES (?, ?, 'quakelake', ?, NULL)",
            [new, f"deleted_from_table:{table_id}", "lake check --repair: damaged file removed"],
        )
        con.execute(
            f"UPDATE {META}.ducklake_data_file SET end_snapshot = ? WHERE data_file_id = ?",
            [new, data_file_id],
        )
        con.execute(
            f"UPDATE {META}.ducklake_table_stats SET record_count = record_count - ? "
            "WHERE table_id = ?",
            [rows, table_id],
        )
        con.execute("COMMIT")
    except duckdb.Error:
        rollback(con)
        raise
    finally:
        con.close()
    _reset(lake)


def _forget(lake: Lake, table: str) -> None:
    """Drop the manifest rows of logical files that have no rows left in ``table``."""
    with lake._cursor() as con:
        con.execute(
            f"DELETE FROM {ALIAS}.lake_files WHERE table_name = ? AND stem NOT IN "
            f'(SELECT DISTINCT unit_file FROM {ALIAS}."{table}" WHERE unit_file IS NOT NULL)',
            [table],
        )


def _reset(lake: Lake) -> None:
    """Close this process's catalog connection (it caches metadata written behind its back)."""
    from quakelake.lakehouse import catalog

    for key in [k for k in catalog._CONNECTIONS if k[1] == f"{lake.root}|{lake.catalog}"]:
        catalog._CONNECTIONS.pop(key).close()


def compact(lake: Lake, tables: list[str] | None = None) -> dict[str, tuple[int, int]]:
    """Merge each table's small data files into large ones; return files before/after per table.

    Skip/resume is untouched: what was computed is the manifest of logical files (unit key +
    inputs, carried by every row in ``unit_file``), not the physical files. The merged-away
    files stay for time travel until :func:`vacuum` expires the snapshots that read them.
    """
    out = {}
    with lake._cursor() as con:
        con.execute(f"CALL ducklake_flush_inlined_data('{ALIAS}')")
        for name in tables or list(TABLES):
            before = _count_files(con, name)
            if before > 1:
                con.execute(f"CALL ducklake_rewrite_data_files('{ALIAS}', '{_quote(name)}')")
                con.execute(f"CALL ducklake_merge_adjacent_files('{ALIAS}', '{_quote(name)}')")
            out[name] = (before, _count_files(con, name))
    return out


def _count_files(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return con.execute(
        f"SELECT count(*) FROM {META}.ducklake_data_file f JOIN {META}.ducklake_table t "
        "ON t.table_id = f.table_id AND t.end_snapshot IS NULL "
        "WHERE f.end_snapshot IS NULL AND t.table_name = ?",
        [table],
    ).fetchone()[0]


def vacuum(
    lake: Lake, expire_days: float | None = None, grace_s: float = ORPHAN_GRACE_S
) -> dict[str, list[str]]:
    """Remove what no snapshot reads: orphans of killed runs, temporaries, expired files.

    Args:
        lake: the lake.
        expire_days: also expire snapshots older than this many days (their time travel ends)
            and delete the files only they read; None keeps every snapshot.
        grace_s: data files younger than this are left (a run may be about to commit them).

    Returns:
        The paths removed, by kind: ``orphans`` (never committed), ``temporary`` (half-written
        by a killed writer), ``expired`` (read only by expired snapshots).
    """
    removed: dict[str, list[str]] = {"orphans": [], "temporary": [], "expired": []}
    now = time.time()
    with lake._cursor() as con:
        if expire_days is not None:
            cutoff = pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=expire_days)
            con.execute(
                f"CALL ducklake_expire_snapshots('{ALIAS}', older_than => ?)",
                [cutoff.to_pydatetime()],
            )
        # files no snapshot reads any more (merged by compaction, or of expired snapshots)
        for r in con.execute(
            f"CALL ducklake_cleanup_old_files('{ALIAS}', cleanup_all => true)"
        ).fetchall():
            removed["expired"].append(str(r[0]))
        known = {
            str(_absolute(lake, r))
            for r in con.execute(
                f"SELECT t.table_name, f.path, f.path_is_relative FROM {META}.ducklake_data_file f "
                f"JOIN {META}.ducklake_table t ON t.table_id = f.table_id"
            )
            .df()
            .itertuples(index=False)
        }
        known |= {
            str(Path(p) if not rel else lake.root / p)
            for p, rel in con.execute(
                f"SELECT path, path_is_relative FROM {META}.ducklake_delete_file"
            ).fetchall()
        }
    for name in TABLES:
        folder = lake.root / name
        if not folder.is_dir():
            continue
        for path in folder.rglob("*"):
            if not path.is_file() or now - path.stat().st_mtime < grace_s:
                continue
            if path.name.startswith(".") and path.name.endswith(".tmp"):
                path.unlink()
                removed["temporary"].append(str(path))
            elif path.suffix == ".parquet" and str(path) not in known:
                path.unlink()
                removed["orphans"].append(str(path))
    return removed


def migrate(root: Path) -> dict[str, int]:
    """Bring a lake of the pre-catalog layout under a catalog, without recomputing anything.

    Every committed file of the old layout (hive folders, one immutable file per unit) is
    rewritten beside itself with its logical file in ``unit_file`` and committed, one commit per
    table; the old file is removed once its copy is committed. Damaged files are reported and
    left in place. Returns the files migrated per table (and ``damaged``).
    """
    root = Path(root).resolve()
    lake = Lake(root)
    counts: dict[str, int] = {"damaged": 0}
    for name, spec in TABLES.items():
        folder = root / name
        if not folder.is_dir():
            continue
        depth = "*/" * len(spec.partition_by)
        legacy = sorted(
            p
            for p in folder.glob(depth + "*.parquet")
            if not p.name.startswith(".") and "~" not in p.name
        )
        changes, done = [], []
        for path in legacy:
            try:
                table = pq.ParquetFile(path).read()
            except Exception:  # a damaged legacy file is reported, the rest migrates
                counts["damaged"] += 1
                continue
            partition = {
                part.split("=", 1)[0]: part.split("=", 1)[1]
                for part in path.relative_to(folder).parts[:-1]
            }
            frame = table.to_pandas()
            frame = frame.drop(columns=[c for c in frame.columns if c not in spec.schema.names])
            stem = path.stem
            target = write_atomic(
                data_file(root, name, partition, stem), to_arrow(name, frame, stem)
            )
            parts = tuple(partition.items())
            key = stem.rsplit(".", 1)[0] if "." in stem else ""
            changes.append(FileChange(name, target, stem, key if name != "runs" else "", parts))
            done.append(path)
        if changes:
            lake.commit(changes, message=f"migrate {name}")
            for path in done:
                path.unlink()
        counts[name] = len(changes)
    return counts


def compare(
    lake: Lake,
    before: str,
    after: str | None = None,
    models: list[str] | None = None,
    weights: list[str] | None = None,
    associators: list[str] | None = None,
) -> pd.DataFrame:
    """Compare two snapshots: picks per model x weights x phase, events per catalogue.

    A catalogue's row reads ``ASSOCIATOR PICK_SOURCE config FINGERPRINT`` (pick source
    ``lake-MODEL-WEIGHTS[@GROUP-fp]``): PhaseNet's and EQTransformer's events are two rows.

    ``before``/``after`` are run ids or times (``after`` None: the lake now). Returns one row
    per table x group with the counts at each snapshot and the change, e.g. what a reprocessing
    with new weights added or removed.
    """
    pick_where, event_where, params = ["TRUE"], ["TRUE"], {"picks": [], "events": []}
    # an event's model and weights are in its pick source, lake-MODEL-WEIGHTS[@GROUP-fp]
    source = "regexp_replace(coalesce(pick_source, ''), '@[^@]*$', '')"
    for values, pick_col, event_col in (
        (models, "model", f"split_part({source}, '-', 2)"),
        (weights, "weights", f"regexp_replace({source}, '^lake-[^-]*-', '')"),
    ):
        if values:
            pick_where.append(f"list_contains(?, {pick_col})")
            event_where.append(f"list_contains(?, {event_col})")
            params["picks"].append(list(values))
            params["events"].append(list(values))
    if associators:
        event_where.append("list_contains(?, associator)")
        params["events"].append(list(associators))
    sql = {
        "picks": "SELECT 'picks' AS tbl, model || '/' || weights AS what, phase, count(*) AS n, "
        f"avg(probability) AS mean_probability FROM picks WHERE {' AND '.join(pick_where)} "
        "GROUP BY ALL",
        # one row per catalogue (associator x pick set x group, quakelake.catalogues), never pooled
        "events": "SELECT 'events' AS tbl, coalesce(associator, '') || ' ' || coalesce(pick_source, '') "
        "|| ' config ' || coalesce(config_fingerprint, '') AS what, '' AS phase, count(*) AS n, "
        f"NULL::DOUBLE AS mean_probability FROM events WHERE {' AND '.join(event_where)} "
        "GROUP BY ALL",
    }
    frames = []
    for label, snap in (("before", before), ("after", after)):
        tables = set(lake.tables())
        parts = [lake.query(q, params[t], as_of=snap) for t, q in sql.items() if t in tables]
        frame = pd.concat(parts) if parts else pd.DataFrame(columns=["tbl", "what", "phase", "n"])
        frames.append(frame.rename(columns={"n": label, "mean_probability": f"p_{label}"}))
    keys = ["tbl", "what", "phase"]
    out = frames[0].merge(frames[1], on=keys, how="outer")
    out[["before", "after"]] = out[["before", "after"]].fillna(0).astype(int)
    out["change"] = out["after"] - out["before"]
    cols = [*keys, "before", "after", "change", "p_before", "p_after"]
    return out[cols].sort_values(keys, ignore_index=True)


def catalog_attach_sql(lake: Lake) -> str:
    """Return the two lines any DuckDB client runs to open ``lake`` read-only."""
    url = lake.catalog
    if url.startswith(("postgresql://", "postgres://", "postgres:")):
        return (
            f"LOAD ducklake; LOAD postgres;\nATTACH 'ducklake:postgres:{url}' AS lake (READ_ONLY);"
        )
    return (
        "LOAD ducklake; LOAD sqlite;\n"
        f"ATTACH 'ducklake:sqlite:{Path(url).resolve()}' AS lake (READ_ONLY);"
    )


__all__ = [
    "CATALOG_FILE",
    "CheckReport",
    "active_files",
    "catalog_attach_sql",
    "check",
    "compact",
    "compare",
    "migrate",
    "vacuum",
]
