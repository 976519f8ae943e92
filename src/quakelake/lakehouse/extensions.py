"""DuckDB extensions loaded from their PyPI packages: nothing is downloaded at run time.

DuckDB installs extensions from the internet on first use, which neither an observatory's
air-gapped server nor an HPC compute node can reach. The project pins the
``duckdb-extension-*`` packages whose version equals duckdb's, and every connection QuakeLake
opens loads the extension files shipped inside them with auto-install and auto-load switched off.
"""

from __future__ import annotations

import importlib
from functools import cache
from pathlib import Path
from typing import Any

import duckdb

from quakelake.errors import QuakeLakeError
from quakelake.lakehouse.sql import quote

# extension name -> the Python package that ships it
PACKAGES = {
    "ducklake": "duckdb_extension_ducklake",
    "sqlite_scanner": "duckdb_extension_sqlite_scanner",
    "postgres_scanner": "duckdb_extension_postgres_scanner",
}

# What a connection of QuakeLake may never do by itself: fetch or auto-load code. DuckDB also
# checks an extension's signature at every LOAD, a SHA-256 over its ~35 MB library: ~80 ms per
# extension and connection, 0.16 s of every command that opens a lake. The only files QuakeLake
# loads are those of the installed packages, pinned to duckdb's version (pip checked their
# hashes; they are the bytes DuckDB's own server signs), so the check is skipped; a user's SQL
# never loads anything (one SELECT: quakelake.lakehouse.user_sql).
OFFLINE = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_unsigned_extensions": True,
}


class MissingExtension(QuakeLakeError):
    """A DuckDB extension package is not installed (or not for this duckdb version)."""


@cache
def extension_file(name: str) -> Path:
    """Return the ``.duckdb_extension`` file of ``name`` inside its installed package.

    Raises:
        MissingExtension: naming the package to install, pinned to duckdb's version.
    """
    package = PACKAGES[name]
    wanted = f"duckdb-extension-{name.replace('_', '-')}=={duckdb.__version__}"
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise MissingExtension(
            f"the DuckDB extension {name} is not installed; pip install '{wanted}'"
        ) from None
    folder = Path(str(module.__file__)).parent
    files = sorted(folder.rglob(f"{name}.duckdb_extension"))
    matching = [f for f in files if f"v{duckdb.__version__}" in f.parts]
    if not matching:
        have = ", ".join(str(f.relative_to(folder)) for f in files) or "no extension file"
        raise MissingExtension(
            f"{package} has {have}, not one for duckdb {duckdb.__version__}; pip install '{wanted}'"
        )
    return matching[0]


def offline_connection(database: str = ":memory:", **config: Any) -> duckdb.DuckDBPyConnection:
    """Return a DuckDB connection that never installs or auto-loads an extension."""
    return duckdb.connect(database, config={**OFFLINE, **config})


def load(con: duckdb.DuckDBPyConnection, *names: str) -> None:
    """Load the extensions ``names`` into ``con`` from their installed packages."""
    for name in names:
        con.execute(f"LOAD '{quote(str(extension_file(name)))}'")
