"""Run the ``quakelake`` command line in a subprocess, as a user does (shared by the CLI tests)."""

from __future__ import annotations

import os
import subprocess
import sys


def quakelake(
    *args: str, timeout: float = 600, env: dict[str, str] | None = None, cwd=None
) -> subprocess.CompletedProcess:
    """Return the finished ``python -m quakelake.cli ARGS`` (text output captured).

    ``env``: the command's whole environment (default: this process's); ``cwd``: its folder.
    """
    return subprocess.run(
        [sys.executable, "-m", "quakelake.cli", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ) if env is None else env,
        timeout=timeout,
        cwd=cwd,
    )


def python_code(code: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Return the finished ``python -c CODE`` in a new interpreter (text output captured)."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=timeout,
    )
