"""Shared fixtures: isolated home folders, the real data in ../shared, one Prefect server.

Environment variables are set at import, before Prefect, SeisBench or matplotlib are imported
anywhere, so nothing is written into $HOME.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("QUAKELAKE_SHARED", ROOT.parent / "shared"))
DATA = SHARED / "data"
WEIGHTS = SHARED / "seisbench_cache"

_HOME = Path(tempfile.mkdtemp(prefix="quakelake-tests-"))
os.environ["PREFECT_HOME"] = str(_HOME / "prefect")
os.environ["MPLCONFIGDIR"] = str(_HOME / "mpl")
os.environ["XDG_CACHE_HOME"] = str(_HOME / "cache")  # parsed StationXML (stations.py)
os.environ["MPLBACKEND"] = "Agg"
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["SEISBENCH_CACHE_ROOT"] = str(_HOME / "seisbench")
if WEIGHTS.is_dir():
    # SeisBench writes config.json into its cache: work on a copy.
    shutil.copytree(WEIGHTS, _HOME / "seisbench")


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data folder ``../shared/data`` (tests skip when it is absent)."""
    if not DATA.is_dir():
        pytest.skip(
            f"real data folder {DATA} is absent (set QUAKELAKE_SHARED to the shared folder)"
        )
    return DATA


@pytest.fixture(scope="session")
def weights_cache() -> Path:
    """The SeisBench cache copy with the shared pretrained weights."""
    if not WEIGHTS.is_dir():
        pytest.skip(f"pretrained weights folder {WEIGHTS} is absent")
    return Path(os.environ["SEISBENCH_CACHE_ROOT"])


@pytest.fixture(scope="session")
def prefect_server():
    """One temporary Prefect server (real API on 127.0.0.1) for the whole test session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def lake_root(tmp_path: Path) -> Path:
    """An empty lake folder."""
    return tmp_path / "lake"


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server on 127.0.0.1 (skips with the reason when it is not installed)."""
    from postgres_local import Server, binaries

    if binaries() is None:
        pytest.skip("PostgreSQL is not installed (.ci/run installs Debian's postgresql)")
    server = Server()
    yield server
    server.stop()
