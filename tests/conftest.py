"""Shared fixtures: isolated home folders, the real data (committed and in ../shared), one Prefect server.

Two sources of real data:

- ``tests/data/`` (committed, ~0.7 MB, each folder with its PROVENANCE.txt): one minute of six Salton
  Sea stations around an M2.4 event with their StationXML and reference picks, five OGS bulletin
  events, one INGV QuakeML event and SeisBench's PhaseNetLight "ethz" weights. Every fresh clone
  has them; the fast lane (``make test-fast``) runs on them alone.
- ``../shared`` (``$QUAKELAKE_SHARED``): the full data sets and weights. Tests that need them skip,
  saying why, when the folder is absent.

A test that starts a Prefect server (``prefect_server``) or PostgreSQL (``postgres``) is marked
``integration`` here, so ``-m "not integration"`` never starts one.

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
FIXTURES = ROOT / "tests" / "data"  # committed real data, see the PROVENANCE.txt of each folder

_HOME = Path(tempfile.mkdtemp(prefix="quakelake-tests-"))
os.environ["PREFECT_HOME"] = str(_HOME / "prefect")
os.environ["MPLCONFIGDIR"] = str(_HOME / "mpl")
os.environ["XDG_CACHE_HOME"] = str(_HOME / "cache")  # parsed StationXML (stations.py)
os.environ["MPLBACKEND"] = "Agg"
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["SEISBENCH_CACHE_ROOT"] = str(_HOME / "seisbench")
# SeisBench writes config.json into its cache: work on a copy of the shared weights (read from
# ../shared, never copied into the repository).
(_HOME / "seisbench").mkdir(parents=True, exist_ok=True)
if WEIGHTS.is_dir():
    shutil.copytree(WEIGHTS, _HOME / "seisbench", dirs_exist_ok=True)

SERVERS = {
    "prefect_server",
    "postgres",
}  # fixtures that start a server: their tests are integration


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SERVERS & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


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
def salton(shared_data) -> Path:
    """The full Salton Sea sample in ../shared: 16 stations x 180 s, StationXML, 184 reference picks."""
    return shared_data / "phasenet_saltonsea_20201001"


@pytest.fixture(scope="session")
def salton_minute() -> Path:
    """The committed minute of the Salton Sea sample (tests/data/saltonsea, always present).

    ``mseed/`` holds 6 stations x 3 channels x 60 s (00:02:00-00:03:00 on 2020-10-01, the M2.43
    event at 00:02:21.07 inside), ``stations.xml`` those stations, ``DERIVED_phasenet_ref_picks.csv``
    the 28 reference PhaseNet picks inside the minute.
    """
    return FIXTURES / "saltonsea"


@pytest.fixture(scope="session")
def fixtures() -> Path:
    """The committed real-data folder tests/data (always present)."""
    return FIXTURES


@pytest.fixture(scope="session")
def light_weights() -> Path:
    """The SeisBench cache copy holding the shared PhaseNetLight "ethz" weights (skips without)."""
    cache = Path(os.environ["SEISBENCH_CACHE_ROOT"])
    if not (cache / "models" / "v3" / "phasenetlight" / "ethz.pt.v2").is_file():
        pytest.skip(f"PhaseNetLight ethz weights are not in {WEIGHTS}")
    return cache


@pytest.fixture(scope="session")
def weights_cache() -> Path:
    """The SeisBench cache copy with the shared pretrained weights."""
    if not WEIGHTS.is_dir():
        pytest.skip(f"pretrained weights folder {WEIGHTS} is absent")
    return Path(os.environ["SEISBENCH_CACHE_ROOT"])


@pytest.fixture
def fresh_weights_cache(tmp_path) -> Path:
    """A SeisBench cache as a fresh install holds it: the committed and shared pretrained weights.

    The session's copy (:func:`weights_cache`) also holds what earlier tests wrote into it (the
    denoiser trained by ``test_denoise.py``); a test about what the cache holds uses this one.
    """
    if not WEIGHTS.is_dir():
        pytest.skip(f"pretrained weights folder {WEIGHTS} is absent")
    cache = tmp_path / "seisbench"
    shutil.copytree(WEIGHTS, cache)
    return cache


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
