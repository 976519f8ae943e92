"""Atomic, immutable Parquet files in hive-partitioned folders."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from quakelake.lakehouse.schema import TABLES, TableSpec

_SAFE = re.compile(r"[^A-Za-z0-9._=+-]")


def safe_name(text: str) -> str:
    """Return ``text`` with every character unsafe in a file name replaced by ``_``."""
    return _SAFE.sub("_", text)


def table_spec(table: str) -> TableSpec:
    """Return the spec of ``table`` or raise naming the known tables."""
    try:
        return TABLES[table]
    except KeyError:
        raise KeyError(f"unknown lake table {table!r}; known tables: {', '.join(TABLES)}") from None


def partition_dir(root: Path, table: str, partition: Mapping[str, str] | None = None) -> Path:
    """Return the folder of one partition of ``table`` under the lake ``root``."""
    spec = table_spec(table)
    partition = dict(partition or {})
    if set(partition) != set(spec.partition_by):
        raise ValueError(
            f"table {table!r} is partitioned by {list(spec.partition_by)}, got {sorted(partition)}"
        )
    folder = Path(root) / table
    for key in spec.partition_by:
        folder = folder / f"{key}={safe_name(str(partition[key]))}"
    return folder


def file_path(root: Path, table: str, partition: Mapping[str, str] | None, name: str) -> Path:
    """Return where the file ``name`` of one partition of ``table`` lives."""
    return partition_dir(root, table, partition) / f"{safe_name(name)}.parquet"


def unit_stem(key: str, inputs: str) -> str:
    """Return the file stem of one unit's output: its key, a dot and the fingerprint of its inputs.

    The key names the unit (what it is, e.g. model, weights, station, instrument) and the
    fingerprint what it was computed from: when the inputs change the unit gets a new file, and
    :func:`remove_superseded` removes the file it replaces.
    """
    return f"{safe_name(key)}.{safe_name(inputs)}"


def remove_superseded(
    target: Path, key: str, also: Callable[[str], bool] | None = None
) -> list[Path]:
    """Remove the committed files of unit ``key`` next to ``target`` other than ``target`` itself.

    Called after ``target`` was committed, so readers see the old rows until the new ones are
    visible (a crash between the two leaves both; the next run of the unit removes the old one).

    Args:
        target: the unit's current file.
        key: the unit key (see :func:`unit_stem`).
        also: optional test of other stems to remove (files of an older naming scheme).

    Returns:
        The files removed.
    """
    prefix = safe_name(key)
    removed = []
    if not target.parent.is_dir():
        return removed
    for path in sorted(target.parent.glob("*.parquet")):
        if path.name.startswith(".") or path == target:
            continue
        stem = path.stem
        if stem.rsplit(".", 1)[0] == prefix or (also is not None and also(stem)):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def to_arrow(table: str, data: pd.DataFrame | pa.Table) -> pa.Table:
    """Cast ``data`` to the explicit schema of ``table`` (missing columns become nulls).

    Raises:
        ValueError: naming the columns that are not in the schema.
    """
    schema = table_spec(table).schema
    if isinstance(data, pa.Table):
        data = data.to_pandas()
    extra = sorted(set(data.columns) - set(schema.names))
    if extra:
        raise ValueError(f"columns {extra} are not in the schema of lake table {table!r}")
    columns = {}
    for field in schema:
        if field.name in data.columns:
            values = data[field.name]
            if pa.types.is_timestamp(field.type):
                # The lake keeps microseconds: round finer times (float seconds, ns clocks) to them.
                values = pd.to_datetime(values, utc=True).dt.round("us")
            columns[field.name] = pa.array(values, type=field.type, from_pandas=True)
        else:
            columns[field.name] = pa.nulls(len(data), type=field.type)
    return pa.table(columns, schema=schema)


def write_atomic(path: Path, table: pa.Table) -> Path:
    """Write ``table`` to ``path`` through a temporary file in the same folder and a rename.

    Readers never see a half-written file: the temporary name is hidden from the lake's views
    and ``os.replace`` is atomic on POSIX filesystems.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_table(
    root: Path,
    table: str,
    data: pd.DataFrame | pa.Table,
    name: str,
    partition: Mapping[str, str] | None = None,
) -> Path:
    """Write one immutable file of ``table`` and return its path.

    Args:
        root: lake root folder.
        table: lake table name (see ``quakelake.lakehouse.schema.TABLES``).
        data: rows to write; cast to the table's schema.
        name: file stem, derived from the unit of work and the stage's fingerprint.
        partition: hive partition values, e.g. ``{"day": "2020-10-01"}``.
    """
    return write_atomic(file_path(root, table, partition, name), to_arrow(table, data))
