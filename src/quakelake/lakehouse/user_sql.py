"""The SQL a user types (``quakelake sql``): one SELECT over the lake, unable to write or reach the host.

The lake's own code writes through :mod:`quakelake.lakehouse.catalog`; the analyst's SQL only
reads. Three layers keep it so, each enough for the common escapes:

1. DuckDB's own parser splits the text: exactly one statement, of type SELECT (ATTACH, COPY,
   INSTALL/LOAD, SET/PRAGMA, CREATE/INSERT/UPDATE/DELETE/DROP/ALTER, CALL, EXPORT ... are
   refused), and the functions its parse tree names (``json_serialize_sql``) hold none that
   attach a database or run SQL text of their own (``sqlite_attach``, ``postgres_execute``,
   ``query`` ...).
2. The lake is attached READ_ONLY, so DuckLake's own functions cannot commit either.
3. After the lake is attached and its views made, the connection's file access is limited to
   the lake's folder (``allowed_directories`` + ``enable_external_access = false``: no
   ``read_csv('/etc/passwd')``, no COPY TO a file, no ATTACH of another path) and its
   configuration is locked, so the statement cannot switch any of this back.

A mistake in the SQL (a syntax error, an unknown column) is bad input: DuckDB's own message, exit 2.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import duckdb
import pandas as pd

from quakelake.lakehouse.catalog import LakeQueryError
from quakelake.lakehouse.schema import TABLES

if TYPE_CHECKING:
    from quakelake.lakehouse.catalog import Lake

READ_ONLY = "sql is read-only"

# Functions that attach a database, run SQL text the parse tree does not show, or change the
# catalog; the READ_ONLY attach and the locked file access stop most of them too.
REFUSED_FUNCTIONS = frozenset(
    {
        "query",
        "query_table",
        "sqlite_attach",
        "postgres_attach",
        "postgres_execute",
        "postgres_query",
        "mysql_execute",
        "mysql_query",
        "ducklake_add_data_files",
        "ducklake_cleanup_old_files",
        "ducklake_delete_orphaned_files",
        "ducklake_expire_snapshots",
        "ducklake_flush_inlined_data",
        "ducklake_merge_adjacent_files",
        "ducklake_rewrite_data_files",
        "ducklake_set_commit_message",
        "ducklake_set_option",
        "checkpoint",
        "force_checkpoint",
    }
)


class SqlInputError(LakeQueryError):
    """The user's SQL is not one statement that only reads the lake (exit status 2)."""


def check_statement(sql: str) -> str:
    """Return ``sql``'s one statement when it only reads; raise :class:`SqlInputError` otherwise.

    Raises:
        SqlInputError: a syntax error (DuckDB's message), several statements, a statement that
            is not a SELECT, or a function that writes or attaches ("sql is read-only").
    """
    with duckdb.connect(":memory:", config={"enable_external_access": False}) as con:
        try:
            statements = con.extract_statements(sql)
        except duckdb.Error as exc:
            raise SqlInputError(str(exc)) from None
        if len(statements) != 1:
            raise SqlInputError(
                f"sql takes exactly one statement, got {len(statements)}; run them one at a time"
            )
        statement = statements[0]
        if statement.type != duckdb.StatementType.SELECT:
            words = statement.query.split()
            kind = words[0].upper() if words and words[0].isalpha() else statement.type.name
            raise SqlInputError(
                f"{READ_ONLY}: {kind} statements are refused (the lake changes through "
                "QuakeLake's commands only); give one SELECT"
            )
        tree = json.loads(
            (con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone() or ("{}",))[0]
        )
    if tree.get("error"):
        # e.g. a PRAGMA that DuckDB turns into a call it cannot show as a SELECT
        raise SqlInputError(
            f"{READ_ONLY}: only a plain SELECT is run ({tree.get('error_message', 'not a SELECT')})"
        )
    refused = sorted({f for f in _function_names(tree) if f.lower() in REFUSED_FUNCTIONS})
    if refused:
        raise SqlInputError(
            f"{READ_ONLY}: the function {', '.join(refused)} attaches a database, runs other "
            "SQL or changes the catalog; query the lake's tables instead"
        )
    return sql


def _function_names(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        name = node.get("function_name")
        if isinstance(name, str):
            yield name
        for value in node.values():
            yield from _function_names(value)
    elif isinstance(node, list):
        for value in node:
            yield from _function_names(value)


def lock_down(con: duckdb.DuckDBPyConnection, root: str) -> None:
    """Limit ``con``'s file access to the folder ``root`` and lock its configuration."""
    con.execute("SET allowed_directories = ?", [[root.rstrip("/") + "/"]])
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def user_query(
    lake: Lake,
    sql: str,
    params: Sequence[Any] | dict[str, Any] | None = None,
    as_of: str | None = None,
) -> pd.DataFrame:
    """Run the user's ``sql`` (one SELECT) over ``lake``'s views, read-only; return a DataFrame.

    Raises:
        SqlInputError: the statement is refused or DuckDB rejects it (bad input, exit 2).
        LakeQueryError: a table with no data yet, or a damaged data file (the ``lake check`` hint).
    """
    check_statement(sql)
    # views of the tables the statement names only (one view costs a catalog lookup)
    words = set(re.findall(r"[a-z_]+", sql.lower()))
    con = lake.connect(as_of=as_of, read_only=True, only=[t for t in TABLES if t in words])
    try:
        lock_down(con, str(lake.root))
        return con.execute(sql, params or []).df()
    except duckdb.CatalogException as exc:
        have = ", ".join(lake.tables()) or "none yet"
        raise SqlInputError(f"{exc}\nTables with data in lake {lake.root}: {have}") from None
    except duckdb.PermissionException as exc:
        raise SqlInputError(
            f"sql reads the tables of lake {lake.root} only, no other file ({_first_line(exc)})"
        ) from None
    except duckdb.IOException as exc:
        if str(lake.root) in str(exc):
            raise LakeQueryError(
                f"{exc}\nA data file of lake {lake.root} is damaged or missing: "
                f"run quakelake lake check --lake {lake.root}"
            ) from None
        raise SqlInputError(str(exc)) from None
    except duckdb.InvalidInputException as exc:
        if "read-only" in str(exc):
            raise SqlInputError(f"{READ_ONLY} ({_first_line(exc)})") from None
        if str(lake.root) in str(exc):
            raise LakeQueryError(
                f"{exc}\nA data file of lake {lake.root} is damaged or missing: "
                f"run quakelake lake check --lake {lake.root}"
            ) from None
        raise SqlInputError(str(exc)) from None
    except (
        duckdb.ParserException,
        duckdb.BinderException,
        duckdb.ConversionException,
        duckdb.OutOfRangeException,
        duckdb.NotImplementedException,
        duckdb.TypeMismatchException,
        duckdb.SyntaxException,
        duckdb.InvalidTypeException,
        duckdb.ConstraintException,
    ) as exc:
        raise SqlInputError(str(exc)) from None
    finally:
        con.close()


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
