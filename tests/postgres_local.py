"""A real PostgreSQL server on 127.0.0.1 for the catalog tests (Debian's ``postgresql`` package).

The server runs as the ``postgres`` system user (PostgreSQL refuses root) in a temporary folder,
trusts local connections, and is stopped at the end of the test session.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def binaries() -> Path | None:
    """Return the folder of ``initdb``/``pg_ctl``, or None when PostgreSQL is not installed."""
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(folder, "initdb").is_file():
            return Path(folder)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One PostgreSQL cluster: ``url(db)`` creates database ``db`` and returns its URL."""

    def __init__(self) -> None:
        bins = binaries()
        if bins is None:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
        self.bins = bins
        self.folder = Path(tempfile.mkdtemp(prefix="quakelake-pg-"))
        self.port = _free_port()
        as_root = os.geteuid() == 0
        self._prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
        if as_root:
            shutil.chown(self.folder, "postgres")
        self._run("initdb", "-D", str(self.folder / "data"), "--auth=trust", "-U", "postgres")
        self._run(
            "pg_ctl",
            "-D",
            str(self.folder / "data"),
            "-o",
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1",
            "-l",
            str(self.folder / "log"),
            "-w",
            "start",
        )

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self._prefix, str(self.bins / tool), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=120,
        )

    def url(self, db: str) -> str:
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", db)
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
