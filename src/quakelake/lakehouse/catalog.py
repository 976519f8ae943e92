"""DuckDB views over the Parquet lake and parameterised queries."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from quakelake.errors import BadInput
from quakelake.lakehouse.schema import TABLES
from quakelake.lakehouse.writer import table_spec

# The runs table holds one row per status change: the view shows each run's latest state.
_LATEST_RUN = (
    "SELECT * FROM ({source}) QUALIFY row_number() OVER "
    "(PARTITION BY run_id ORDER BY coalesce(finished, started) DESC, status = 'running') = 1"
)


class Lake:
    """A lake folder opened as DuckDB views, one per table that has files.

    Example:
        >>> lake = Lake("lake")                                    # doctest: +SKIP
        >>> lake.query("SELECT phase, count(*) FROM picks GROUP BY ALL")  # doctest: +SKIP
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def files(self, table: str) -> list[Path]:
        """Return the committed Parquet files of ``table`` (temporary files excluded)."""
        folder = self.root / table_spec(table).name
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.rglob("*.parquet") if not p.name.startswith("."))

    def _pattern(self, table: str) -> str:
        # Committed files sit exactly one folder per partition key deep; hidden names are temporary.
        return "*/" * len(table_spec(table).partition_by) + "[!.]*.parquet"

    def has_files(self, table: str) -> bool:
        """Return True when ``table`` has at least one committed file (stops at the first one)."""
        folder = self.root / table_spec(table).name
        return folder.is_dir() and next(folder.glob(self._pattern(table)), None) is not None

    def source_sql(self, table: str) -> str:
        """Return the ``read_parquet`` expression that reads ``table``."""
        # Every file of a table is cast to the table's explicit schema on write, so the files share
        # one schema and DuckDB need not open every footer to unify them (no union_by_name): with
        # tens of thousands of unit files that is what prunes a day-filtered query to its days.
        spec = table_spec(table)
        glob = str(self.root / spec.name) + "/" + self._pattern(table)
        if not spec.partition_by:
            return f"SELECT * FROM read_parquet('{_quote(glob)}')"
        types = ", ".join(
            f"'{key}': '{'DATE' if key == 'day' else 'VARCHAR'}'" for key in spec.partition_by
        )
        return (
            f"SELECT * FROM read_parquet('{_quote(glob)}', hive_partitioning=true, "
            f"hive_types={{{types}}})"
        )

    def connect(self, database: str = ":memory:") -> duckdb.DuckDBPyConnection:
        """Return a DuckDB connection with one view per table that has files."""
        con = duckdb.connect(database)
        for name in TABLES:
            if not self.has_files(name):
                continue
            source = self.source_sql(name)
            if name == "runs":
                source = _LATEST_RUN.format(source=source)
            con.execute(f'CREATE OR REPLACE VIEW "{name}" AS {source}')
        return con

    def tables(self) -> list[str]:
        """Return the names of the tables that have files."""
        return [name for name in TABLES if self.has_files(name)]

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> pd.DataFrame:
        """Run ``sql`` with bound ``params`` over the lake's views and return a DataFrame.

        Raises:
            LakeQueryError: with the tables available when the query names a missing one.
        """
        con = self.connect()
        try:
            return con.execute(sql, params or []).df()
        except duckdb.CatalogException as exc:
            have = ", ".join(self.tables()) or "none yet"
            raise LakeQueryError(f"{exc}\nTables with data in lake {self.root}: {have}") from exc
        finally:
            con.close()

    def read(
        self, table: str, where: str = "", params: Sequence[Any] | None = None
    ) -> pd.DataFrame:
        """Return the rows of ``table`` (empty with the right columns when it has no files)."""
        if not self.has_files(table):
            spec = TABLES[table]
            cols = list(spec.schema.names) + list(spec.partition_by)
            return pd.DataFrame(columns=cols)
        clause = f" WHERE {where}" if where else ""
        return self.query(f'SELECT * FROM "{table}"{clause}', params)


class LakeQueryError(BadInput):
    """A query over the lake failed (e.g. it names a table with no data yet)."""


def _quote(text: str) -> str:
    return text.replace("'", "''")
