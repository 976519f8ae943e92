"""Atomic, immutable Parquet files in hive-partitioned folders."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from quakelake.lakehouse.atomic import atomic_write
from quakelake.lakehouse.schema import TABLES, TableSpec

_SAFE = re.compile(r"[^A-Za-z0-9._=+-]")
# a worker file's unit key, in its footer: a lost catalog is rebuilt with it (lake rebuild)
KEY_METADATA = b"quakelake.unit_key"


@dataclass(frozen=True)
class FileChange:
    """One logical file entering the lake at commit.

    Attributes:
        table: lake table.
        path: the data file a worker wrote (not yet part of the lake).
        stem: the logical file: unit key, a dot and the fingerprint of its inputs
            (:func:`quakelake.lakehouse.writer.unit_stem`); its rows carry it in ``unit_file``.
        key: the unit key; other committed stems of this key in the same partition of
            ``table`` are superseded (their rows removed in the same commit). Empty: only the
            same stem is replaced.
        partition: the hive partition values of the file (e.g. ``{"day": "2020-10-01"}``).
    """

    table: str
    path: Path
    stem: str
    key: str = ""
    partition: tuple[tuple[str, str], ...] = ()

    @property
    def part(self) -> str:
        """Return the partition as its folder path (``day=2020-10-01``)."""
        return "/".join(f"{k}={v}" for k, v in self.partition)


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
    """Return the logical file of one unit's output: its key, a dot and the fingerprint of its inputs.

    The key names the unit (what it is, e.g. model, weights, station, instrument) and the
    fingerprint what it was computed from: when the inputs change the unit gets a new logical
    file, and the commit that adds it removes the one it replaces (same key, other inputs).
    """
    return f"{safe_name(key)}.{safe_name(inputs)}"


def stem_of(path: str | Path) -> str:
    """Return the logical file (stem) of a data file: its name up to ``~`` (the write's token)."""
    return Path(path).name.removesuffix(".parquet").split("~", 1)[0]


def to_arrow(table: str, data: pd.DataFrame | pa.Table, stem: str | None = None) -> pa.Table:
    """Cast ``data`` to the explicit schema of ``table`` (missing columns become nulls).

    With ``stem``, every row also carries its logical file in ``unit_file`` (what a commit
    replaces, and what survives compaction).

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
    out = pa.table(columns, schema=schema)
    if stem is not None:
        out = out.append_column("unit_file", pa.array([stem] * len(out), pa.string()))
    return out


def write_atomic(path: Path, table: pa.Table) -> Path:
    """Write ``table`` to ``path`` through a temporary file in the same folder and a rename.

    Readers never see a half-written file: the temporary name is hidden from the lake's views
    and ``os.replace`` is atomic on POSIX filesystems.
    """
    return atomic_write(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))


def data_file(root: Path, table: str, partition: Mapping[str, str] | None, stem: str) -> Path:
    """Return a new, unique data file name for logical file ``stem`` (never overwrites one)."""
    return (
        partition_dir(root, table, partition) / f"{safe_name(stem)}~{uuid.uuid4().hex[:12]}.parquet"
    )


def stage_table(
    root: Path,
    table: str,
    data: pd.DataFrame | pa.Table,
    name: str,
    partition: Mapping[str, str] | None = None,
    key: str = "",
):
    """Write one data file of ``table`` that is not yet part of the lake; return its change.

    What a worker does: the returned :class:`~quakelake.lakehouse.catalog.FileChange` is
    committed by the flow process (:meth:`Lake.commit`), together with the unit's ledger row.
    """
    stem = safe_name(name)
    body = to_arrow(table, data, stem)
    if key:
        body = body.replace_schema_metadata({KEY_METADATA: safe_name(key).encode()})
    path = write_atomic(data_file(Path(root), table, partition, stem), body)
    parts = tuple((k, safe_name(str(v))) for k, v in (partition or {}).items())
    return FileChange(table, path, stem, safe_name(key) if key else "", parts)
