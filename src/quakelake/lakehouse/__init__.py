"""The lakehouse: explicit schemas, immutable Parquet files, a DuckLake catalog. No Prefect here."""

from quakelake.lakehouse.catalog import FileChange, Lake, LakeError, LakeQueryError
from quakelake.lakehouse.schema import TABLES, TableSpec
from quakelake.lakehouse.writer import (
    file_path,
    safe_name,
    stage_table,
    stem_of,
    to_arrow,
    unit_stem,
    write_atomic,
    write_table,
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
