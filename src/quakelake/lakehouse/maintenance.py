"""Keeping a lake healthy: compaction, vacuum, checks, migration from the pre-catalog layout.

Each function works on a :class:`~quakelake.lakehouse.catalog.Lake` through its catalog: files
come and go only by commits, so readers see the lake before or after, never in between.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow.parquet as pq

from quakelake.lakehouse.catalog import (
    ALIAS,
    CATALOG_FILE,
    META,
    FileChange,
    Lake,
    LakeError,
    lake_data_files,
    locate,
    rollback,
    table_folders,
)
from quakelake.lakehouse.schema import TABLES
from quakelake.lakehouse.sql import quote
from quakelake.lakehouse.writer import data_file, to_arrow, write_atomic

# A data file younger than this may belong to a run still writing: vacuum leaves it.
ORPHAN_GRACE_S = 3600.0


@dataclass
class CheckReport:
    """What ``quakelake lake check`` found: damaged committed files, orphans, and repairs."""

    files: int = 0
    damaged: list[tuple[str, str, str]] = field(default_factory=list)  # table, path, why
    repaired: list[str] = field(default_factory=list)
    catalog: str = ""  # what is wrong with the catalog itself ("" when nothing)


def active_files(lake: Lake) -> pd.DataFrame:
    """Return the catalog's current data files: table, path, rows, bytes, data_file_id."""
    return lake.data_files()


def check(lake: Lake, repair: bool = False) -> CheckReport:
    """Open every committed data file's footer and compare it with the catalog.

    A file that is missing, cut short or unreadable is reported by name; with ``repair`` it
    leaves the lake (a snapshot of its own) and its logical file leaves the manifest, so the
    next run of its unit computes it again.
    """
    report = CheckReport()
    files = active_files(lake)
    report.files = len(files)
    if not len(files) and lake_data_files(lake.root):
        # a catalog that lists nothing over a folder of data files: it was lost or emptied
        report.catalog = (
            f"its catalog lists no data file but the folder holds {len(lake_data_files(lake.root))}"
        )
        return report
    for row in files.itertuples(index=False):
        path = Path(row.file)
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
        assert snap is not None  # a lake has at least its first snapshot
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
    reset_connections(lake)


def _forget(lake: Lake, table: str) -> None:
    """Drop the manifest rows of logical files that have no rows left in ``table``."""
    with lake._cursor() as con:
        con.execute(
            f"DELETE FROM {ALIAS}.lake_files WHERE table_name = ? AND stem NOT IN "
            f'(SELECT DISTINCT unit_file FROM {ALIAS}."{table}" WHERE unit_file IS NOT NULL)',
            [table],
        )


def reset_connections(lake: Lake) -> None:
    """Close this process's catalog connection (it caches metadata written behind its back)."""
    from quakelake.lakehouse.catalog import close_connections

    close_connections(lake)


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
                con.execute(f"CALL ducklake_rewrite_data_files('{ALIAS}', '{quote(name)}')")
                con.execute(f"CALL ducklake_merge_adjacent_files('{ALIAS}', '{quote(name)}')")
            out[name] = (before, _count_files(con, name))
    return out


def _count_files(con: duckdb.DuckDBPyConnection, table: str) -> int:
    row = con.execute(
        f"SELECT count(*) FROM {META}.ducklake_data_file f JOIN {META}.ducklake_table t "
        "ON t.table_id = f.table_id AND t.end_snapshot IS NULL "
        "WHERE f.end_snapshot IS NULL AND t.table_name = ?",
        [table],
    ).fetchone()
    assert row is not None  # count(*) returns one row
    return int(row[0])


def catalog_paths(lake: Lake) -> list[Path]:
    """Return where every file the catalog lists is: data, delete and scheduled-for-deletion."""
    with lake._cursor() as con:
        folders = table_folders(con, lake.root)
        rows = con.execute(
            f"SELECT table_id, path, path_is_relative FROM {META}.ducklake_data_file UNION ALL "
            f"SELECT table_id, path, path_is_relative FROM {META}.ducklake_delete_file"
        ).fetchall()
        # files only expired snapshots read: their table is gone from the catalog with them
        scheduled = con.execute(
            f"SELECT path, path_is_relative FROM {META}.ducklake_files_scheduled_for_deletion"
        ).fetchall()
    return [locate(folders, *r) for r in rows] + [
        lake.root / path if rel else Path(path) for path, rel in scheduled
    ]


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
    outside = [p for p in catalog_paths(lake) if not p.is_relative_to(lake.root)]
    if outside:
        raise LakeError(
            f"vacuum: the catalog of lake {lake.root} lists {len(outside)} files outside its "
            f"folder (e.g. {outside[0]}): a copy of a lake, or one written before data paths "
            f"were relative; nothing was removed. Run quakelake lake migrate --lake {lake.root} "
            "first (vacuum never deletes another lake's files)"
        )
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
    known = {str(p) for p in catalog_paths(lake)}
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


def relocate(lake: Lake) -> dict[str, int]:
    """Make every path the catalog holds relative to the lake folder (a self-contained lake).

    For a lake written before data paths were relative (absolute paths; DuckLake's own files
    under ``main/<table>/``), or a copy of one whose catalog still names the original's files:
    each file is taken at its place in this folder (found by its table folder), DuckLake's own
    files are linked into ``<table>/``, and the catalog is rewritten in one transaction (the
    schema's folder emptied, every data, delete and scheduled file made relative). Files
    nowhere in this folder are copied in from where the catalog names them. Returns counts:
    ``relative`` (paths rewritten), ``linked`` (files moved into their table folder),
    ``copied`` (brought in from outside) and ``missing``.
    """
    root = lake.root
    counts = {"relative": 0, "linked": 0, "copied": 0, "missing": 0}
    with lake._cursor() as con:
        schema = con.execute(
            f"SELECT path FROM {META}.ducklake_schema WHERE schema_name = 'main' "
            "AND end_snapshot IS NULL"
        ).fetchone() or ("",)
        schema = schema[0]
        old = table_folders(con, root)
        tables = {
            tid: path.strip("/")
            for tid, path in con.execute(
                f"SELECT table_id, path FROM {META}.ducklake_table"
            ).fetchall()
        }
        found = {
            kind: con.execute(
                f"SELECT {key}, table_id, path, path_is_relative FROM {META}.{name}"
            ).fetchall()
            for kind, key, name in (
                ("data", "data_file_id", "ducklake_data_file"),
                ("delete", "delete_file_id", "ducklake_delete_file"),
            )
        }
    if schema == "" and not any(not r[3] for rows in found.values() for r in rows):
        return counts
    links: list[tuple[Path, Path]] = []
    updates: dict[str, list[tuple[str, int]]] = {"data": [], "delete": []}
    moved: dict[str, str] = {}
    for kind, rows in found.items():
        for fid, tid, path, rel in rows:
            folder = root / tables[tid]
            if rel:
                where = locate(old, tid, path, rel)
                target = folder / path
            else:
                where = Path(path)
                anchor = f"/{tables[tid]}/"
                tail = path[path.rfind(anchor) + len(anchor) :] if anchor in path else ""
                target = folder / tail if tail else where
            if where != target and not target.exists():
                if where.is_relative_to(root) and where.exists():
                    links.append((where, target))
                    counts["linked"] += 1
                elif where.exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(where, target.with_name(f".{target.name}.tmp"))
                    counts["copied"] += 1
                    links.append((target.with_name(f".{target.name}.tmp"), target))
                else:
                    counts["missing"] += 1
            if not target.is_relative_to(folder):
                continue  # a file of no table folder stays where it is (vacuum refuses)
            updates[kind].append((str(target.relative_to(folder)), fid))
            moved[path] = str(target.relative_to(root))
            counts["relative"] += 1
    for src, dst in links:
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.link(src, dst)
    con = lake._shared().cursor()
    try:
        con.execute("BEGIN TRANSACTION")
        con.execute(
            f"UPDATE {META}.ducklake_schema SET path = '', path_is_relative = true "
            "WHERE schema_name = 'main'"
        )
        for kind, key, name in (
            ("data", "data_file_id", "ducklake_data_file"),
            ("delete", "delete_file_id", "ducklake_delete_file"),
        ):
            if updates[kind]:
                con.executemany(
                    f"UPDATE {META}.{name} SET path = ?, path_is_relative = true WHERE {key} = ?",
                    updates[kind],
                )
        # old files of another folder (a copy's original) are never this lake's to delete
        con.execute(
            f"DELETE FROM {META}.ducklake_files_scheduled_for_deletion "
            "WHERE NOT path_is_relative AND NOT starts_with(path, ?)",
            [f"{root}/"],
        )
        con.execute("COMMIT")
    except duckdb.Error:
        rollback(con)
        for _, dst in links:
            dst.unlink(missing_ok=True)
        raise
    finally:
        con.close()
    reset_connections(lake)
    for src, _ in links:
        src.unlink(missing_ok=True)
    with lake._cursor() as con:  # the manifest's paths: informational, relative too
        con.execute("BEGIN TRANSACTION")
        con.executemany(
            f"UPDATE {ALIAS}.lake_files SET path = ? WHERE path = ?",
            [(new, path) for path, new in moved.items()],
        )
        con.execute("COMMIT")
    return counts


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
    pick_where, event_where = ["TRUE"], ["TRUE"]
    params: dict[str, list[Any]] = {"picks": [], "events": []}
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
        # one row per catalogue (associator x pick set x group, quakelake.catalogs.catalogues), never pooled
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
    """Return the two lines any DuckDB client runs to open ``lake`` read-only.

    ``DATA_PATH`` is the folder as reached now: the catalog keeps paths relative to it.
    """
    url = lake.catalog
    data = f"DATA_PATH '{quote(str(lake.root))}/', OVERRIDE_DATA_PATH true"
    if url.startswith(("postgresql://", "postgres://", "postgres:")):
        return (
            "LOAD ducklake; LOAD postgres;\n"
            f"ATTACH 'ducklake:postgres:{url}' AS lake (READ_ONLY, {data});"
        )
    return (
        "LOAD ducklake; LOAD sqlite;\n"
        f"ATTACH 'ducklake:sqlite:{Path(url).resolve()}' AS lake (READ_ONLY, {data});"
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
    "relocate",
    "vacuum",
]
