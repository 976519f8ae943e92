"""A download that ends partial says so: exit 1 and one ``error:`` line naming the units (issue 26).

A real fdsnws front on 127.0.0.1 passes queries on to portable-fdsnws-dataselect serving the real
Salton Sea miniSEED and cuts every body at a record boundary, so a station-day can only be
fetched in part; the command runs in its own process, as cron would run it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fdsn_servers import DataselectServer, FdsnServer

from quakelake.errors import EXIT_FAILED_WORK, EXIT_OK

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def salton(shared_data: Path) -> Path:
    return shared_data / "phasenet_saltonsea_20201001"


@pytest.fixture(scope="module")
def dataselect(salton: Path, tmp_path_factory):
    with DataselectServer(salton / "mseed", tmp_path_factory.mktemp("dataselect")) as server:
        yield server


@pytest.fixture(scope="module")
def api_url(prefect_server) -> str:
    from prefect.settings import PREFECT_API_URL

    return str(PREFECT_API_URL.value())


def _download(url: str, archive: Path, lake: Path, api_url: str) -> subprocess.CompletedProcess:
    args = ["download", "-d", str(archive), "--lake", str(lake), "-D", "201001", "201001"]
    args += ["-N", "CI", "-S", "BOM", "--client", url]
    return subprocess.run(
        [sys.executable, "-m", "quakelake.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PREFECT_API_URL": api_url},
        timeout=300,
    )


def test_a_partial_download_exits_1_naming_the_partial_units(salton, dataselect, api_url, tmp_path):
    archive, lake = tmp_path / "archive", tmp_path / "lake"
    with FdsnServer(salton / "stations.xml", dataselect.service_url, cut="boundary") as front:
        proc = _download(front.url, archive, lake, api_url)
    assert proc.returncode == EXIT_FAILED_WORK, proc.stderr[-3000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert errors == [
        "error: 1 of 1 station-days downloaded only in part (CI.BOM.2020-10-01; the gaps are in "
        "the `downloads` table); run the same command again to fetch the missing parts"
    ], proc.stderr[-3000:]
    assert "partial 1" in proc.stdout and "failed 0" in proc.stdout
    assert proc.stderr.count("CI.BOM.2020-10-01 is partial:") == 1, proc.stderr  # said once

    from quakelake.lakehouse import Lake

    rows = Lake(lake).query("SELECT station, status FROM downloads")
    assert rows.values.tolist() == [["BOM", "partial"]]

    # the next run from a whole centre fetches the gap: done, exit 0, no error line
    with FdsnServer(salton / "stations.xml", dataselect.service_url) as front:
        again = _download(front.url, archive, lake, api_url)
    assert again.returncode == EXIT_OK, again.stderr[-3000:]
    assert "error:" not in again.stderr
