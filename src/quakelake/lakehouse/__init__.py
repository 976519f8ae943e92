"""The lakehouse: explicit schemas, immutable Parquet files, a DuckLake catalog. No Prefect here."""

from quakelake.lakehouse.catalog import Lake, LakeError, LakeQueryError, write_table
from quakelake.lakehouse.schema import TABLES, TableSpec
from quakelake.lakehouse.writer import (
    FileChange,
    file_path,
    safe_name,
    stage_table,
    stem_of,
    to_arrow,
    unit_stem,
    write_atomic,
)

__all__ = [
    "TABLES",
    "FileChange",
    "Lake",
    "LakeError",
    "LakeQueryError",
    "TableSpec",
    "file_path",
    "safe_name",
    "stage_table",
    "stem_of",
    "to_arrow",
    "unit_stem",
    "write_atomic",
    "write_table",
]
