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

# Further public names, imported on first use (:mod:`quakelake.exports`).
from quakelake.exports import lazy_exports  # noqa: E402

_EXPORTS = {
    "Stopwatch": "lineage",
    "UnitResult": "lineage",
    "atomic_write": "atomic",
    "cache_dir": "cache",
    "commit_unit": "lineage",
    "commit_units": "lineage",
    "content_key": "cache",
    "entry": "cache",
    "fingerprint": "lineage",
    "frame_digest": "lineage",
    "ledger_rows": "lineage",
    "mark_crashed_runs": "lineage",
    "new_run_id": "lineage",
    "package_versions": "lineage",
    "publish": "cache",
    "quote": "sql",
    "read_json": "cache",
    "record_run": "lineage",
    "record_units": "lineage",
    "stale_runs": "lineage",
    "utcnow": "lineage",
    "where_counts": "lineage",
    "where_label": "lineage",
    "write_json": "cache",
}
__all__ += sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
