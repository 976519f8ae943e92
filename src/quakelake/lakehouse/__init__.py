"""The lakehouse: explicit schemas, atomic Parquet files, DuckDB views. No Prefect here."""

from quakelake.lakehouse.catalog import Lake, LakeQueryError
from quakelake.lakehouse.schema import TABLES, TableSpec
from quakelake.lakehouse.writer import (
    file_path,
    remove_superseded,
    safe_name,
    to_arrow,
    unit_stem,
    write_atomic,
    write_table,
)

__all__ = [
    "TABLES",
    "Lake",
    "LakeQueryError",
    "TableSpec",
    "file_path",
    "remove_superseded",
    "safe_name",
    "to_arrow",
    "unit_stem",
    "write_atomic",
    "write_table",
]
