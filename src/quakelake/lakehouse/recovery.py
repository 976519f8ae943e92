"""Rebuilding a lost or damaged catalog from the lake's own files.

Parquet stays the truth: every row of a data table carries its logical file (``unit_file``),
the workers' files are named after it, and the ledger (``units``, ``runs``) lives in files too
(the catalog never keeps rows of its own, see ``data_inlining_row_limit``). A catalog that was
deleted or zeroed is rebuilt from them: for each logical file the newest file that holds it,
for each unit key (same partition) its newest logical file, DuckLake's delete files applied.
What is lost with the catalog is the history: the rebuilt lake has one snapshot per table.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from quakelake.lakehouse.catalog import (
    CATALOG_FILE,
    UNIT_COLUMN,
    FileChange,
    Lake,
    LakeError,
    is_postgres,
)
from quakelake.lakehouse.schema import TABLES
from quakelake.lakehouse.writer import KEY_METADATA, stage_table, stem_of


@dataclass
class RebuildReport:
    """What ``quakelake lake rebuild`` did: files kept in place, rewritten, rows, set aside."""

    kept: int = 0
    rewritten: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    set_aside: str = ""


@dataclass
class _Source:
    path: Path
    mtime: float
    frame: pd.DataFrame  # the rows of one logical file in this file (deletes applied)
    whole: bool  # the file holds this logical file alone, nothing deleted: kept in place


def rebuild(lake: Lake) -> RebuildReport:
    """Rebuild ``lake``'s lost or damaged catalog from its data files; return what was done.

    The damaged ``catalog.sqlite`` is kept beside as ``catalog.sqlite.damaged-<time>``.

    Raises:
        LakeError: the catalog is healthy and lists files (nothing to rebuild), or the lake
            folder holds no data files.
    """
    report = RebuildReport()
    from quakelake.lakehouse.maintenance import reset_connections

    postgres = is_postgres(lake.catalog)
    if postgres:
        if lake.exists() and len(lake.data_files()):
            raise LakeError(
                f"rebuild: the catalog {lake.catalog} of lake {lake.root} lists files; rebuild "
                "into an empty PostgreSQL database (--catalog URL of a new database)"
            )
    elif Path(lake.catalog).is_file() and not lake.catalog_problem():
        try:
            listed = len(lake.data_files())
        except LakeError:  # not even a catalog: rebuild it
            listed = 0
        if listed:
            raise LakeError(
                f"rebuild: the catalog {lake.catalog} of lake {lake.root} is healthy ({listed} "
                "files); quakelake lake check finds damaged files"
            )
    reset_connections(lake)
    deleted = _deleted_positions(lake.root)
    plan = {name: _plan(lake.root, name, deleted) for name in TABLES}
    if not any(changes or len(rows) for changes, rows in plan.values()):
        raise LakeError(f"rebuild: lake {lake.root} holds no data files to rebuild from")
    # a new SQLite catalog is built beside and takes the damaged one's place when complete
    target = lake if postgres else Lake(lake.root, str(lake.root / f".{CATALOG_FILE}.rebuild"))
    if not postgres:
        Path(target.catalog).unlink(missing_ok=True)
    target.rebuilding = True
    for name, (picked, rows) in plan.items():
        changes = []
        for source, stem, key, partition in picked:
            if source.whole:
                changes.append(FileChange(name, source.path, stem, key, partition))
                report.kept += 1
            else:
                body = source.frame.drop(
                    columns=[UNIT_COLUMN, *(k for k, _ in partition)], errors="ignore"
                )
                changes.append(stage_table(lake.root, name, body, stem, dict(partition), key))
                report.rewritten += 1
        if changes or len(rows):
            target.commit(
                changes,
                rows={name: rows} if len(rows) else None,
                run_id="rebuild",
                message=f"rebuild {name}",
            )
        report.rows[name] = sum(len(s.frame) for s, *_ in picked) + len(rows)
    if not postgres:
        reset_connections(target)
        path = Path(lake.catalog)
        if path.exists():
            stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
            aside = path.with_name(f"{CATALOG_FILE}.damaged-{stamp}")
            os.replace(path, aside)
            report.set_aside = str(aside)
        os.replace(target.catalog, path)
    return report


def _deleted_positions(root: Path) -> dict[str, set[int]]:
    """Return the rows DuckLake's delete files remove: data file name -> row positions."""
    out: dict[str, set[int]] = {}
    for name in TABLES:
        for folder in (root / name, root / "main" / name):
            for path in folder.glob("ducklake-*-delete.parquet") if folder.is_dir() else []:
                try:
                    frame = pq.read_table(path, columns=["file_path", "pos"]).to_pandas()
                except Exception:  # an unreadable delete file: its deletes are lost
                    continue
                for file_path, pos in zip(frame["file_path"], frame["pos"], strict=True):
                    out.setdefault(Path(str(file_path)).name, set()).add(int(pos))
    return out


def _plan(root: Path, table: str, deleted: dict[str, set[int]]):
    """Return (logical files to commit, ledger rows to insert) of one table."""
    spec = TABLES[table]
    sources: dict[tuple[str, tuple], list[_Source]] = {}
    keys: dict[tuple[str, tuple], str] = {}
    loose: list[pd.DataFrame] = []
    folders = [root / table, root / "main" / table]
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*.parquet")):
            if path.name.startswith(".") or path.name.endswith("-delete.parquet"):
                continue
            native = path.name.startswith("ducklake-")
            if not native and "~" not in path.name:
                continue  # not of the catalog layout (a stray copy)
            try:
                handle = pq.ParquetFile(path)
                frame = handle.read().to_pandas()
            except Exception:  # a damaged file cannot be rebuilt from
                continue
            frame = frame.drop(columns=[c for c in frame.columns if c.startswith("_ducklake")])
            gone = deleted.get(path.name, set())
            if gone:
                frame = frame.drop(index=[i for i in gone if i < len(frame)])
            meta = handle.schema_arrow.metadata or {}
            mtime = path.stat().st_mtime
            if not native:
                partition = tuple(
                    tuple(part.split("=", 1)) for part in path.relative_to(folder).parts[:-1]
                )
                stem = stem_of(path)
                key = meta.get(KEY_METADATA, b"").decode() or _key_of(stem, table)
                sources.setdefault((stem, partition), []).append(
                    _Source(path, mtime, frame, not gone)
                )
                keys[(stem, partition)] = key
                continue
            if UNIT_COLUMN not in frame.columns:
                continue
            loose.append(frame[frame[UNIT_COLUMN].isna()])
            for (stem, *values), rows in frame[frame[UNIT_COLUMN].notna()].groupby(
                [UNIT_COLUMN, *spec.partition_by], dropna=False
            ):
                partition = tuple(
                    (k, _text(v)) for k, v in zip(spec.partition_by, values, strict=True)
                )
                sources.setdefault((stem, partition), []).append(_Source(path, mtime, rows, False))
                keys.setdefault((stem, partition), _key_of(stem, table))
    # the newest file of each logical file; the newest logical file of each key and partition
    newest = {k: max(v, key=lambda s: s.mtime) for k, v in sources.items()}
    best: dict[tuple[str, tuple], tuple[str, tuple]] = {}
    for (stem, partition), source in newest.items():
        unit = (keys[(stem, partition)] or stem, partition)
        held = best.get(unit)
        if held is None or newest[held].mtime < source.mtime:
            best[unit] = (stem, partition)
    picked = [
        (newest[k], k[0], keys[k], k[1]) for k in sorted(best.values()) if len(newest[k].frame)
    ]
    rows = pd.concat(loose, ignore_index=True) if loose else pd.DataFrame()
    if len(rows):
        rows = rows.drop(columns=[UNIT_COLUMN]).drop_duplicates(ignore_index=True)
    return picked, rows


def _key_of(stem: str, table: str) -> str:
    """Return the unit key of a logical file whose files do not say (``<key>.<inputs>``)."""
    return stem.rsplit(".", 1)[0] if "." in stem and table != "runs" else ""


def _text(value) -> str:
    if isinstance(value, (dt.date, pd.Timestamp)):
        return pd.Timestamp(value).strftime("%Y-%m-%d")
    return str(value)


__all__ = ["RebuildReport", "rebuild"]
