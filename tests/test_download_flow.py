"""The download flow against real FDSN services on 127.0.0.1, into a real archive and lake."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pandas as pd
import pytest
from fdsn_servers import DataselectServer, FdsnServer

from quakelake.config import PickParams, StationSelection, TimeWindow
from quakelake.lakehouse import Lake
from quakelake.params.download import DownloadParams, FdsnClientSpec

pytestmark = pytest.mark.integration

DAY = dt.date(2020, 10, 1)
WINDOW = TimeWindow(start=DAY, end=DAY)
TOKEN = "-----BEGIN PGP MESSAGE-----\n\nhQEMA-not-a-real-token-but-kept-secret\n-----END PGP MESSAGE-----\n"


@pytest.fixture(scope="module")
def servers(salton: Path, tmp_path_factory):
    """portable-fdsnws-dataselect over the real miniSEED and a station front with its StationXML."""
    with DataselectServer(salton / "mseed", tmp_path_factory.mktemp("dataselect")) as ds:
        with FdsnServer(salton / "stations.xml") as front:
            yield ds, front


@pytest.fixture
def params(servers, tmp_path) -> DownloadParams:
    ds, front = servers
    token = tmp_path / "eida_token.asc"
    token.write_text(TOKEN)
    spec = FdsnClientSpec(
        name="loopback",
        url=ds.url,
        dataselect=ds.service_url,
        station=f"{front.url}/fdsnws/station/1",
    )
    return DownloadParams(clients=[spec], token_file=token, timeout=5, retries=1, backoff=0.05)


def _flow():
    from quakelake.flows.download import download_waveforms

    return download_waveforms


def test_download_flow_fills_archive_ledger_and_stations(prefect_server, params, tmp_path, caplog):
    archive, lake_root = tmp_path / "archive", tmp_path / "lake"
    caplog.set_level(logging.DEBUG)
    summary = _flow()(archive, lake_root, WINDOW, StationSelection(), params)
    assert (summary["units"], summary["ok"], summary["failed"]) == (16, 16, 0)

    lake = Lake(lake_root)
    ledger = lake.read("downloads")
    assert len(ledger) == 16 and set(ledger["status"]) == {"ok"}
    assert set(ledger["run_id"]) == {summary["run_id"]} and set(ledger["client"]) == {"loopback"}
    assert ledger["bytes"].sum() == summary["bytes"] > 1_500_000
    assert all((archive / p).is_file() for paths in ledger["path"] for p in paths.split(";"))
    stations = lake.read("stations")
    assert len(stations) == 48 and set(stations["source"]) == {"fdsn"}
    assert set(stations["channel"]) == {"HHE", "HHN", "HHZ"}
    assert stations["latitude"].between(32.4, 33.5).all()
    runs = lake.read("runs")
    assert runs[["command", "status"]].values.tolist() == [["download", "completed"]]
    units = lake.query(
        "SELECT status, count(*) AS n FROM units WHERE stage = 'download' GROUP BY ALL"
    )
    assert units.values.tolist() == [["done", 16]]

    # The EIDA token is read by the tasks from the file: never logged, never in the lake.
    secret = "not-a-real-token-but-kept-secret"
    assert secret not in caplog.text
    assert not [p for p in lake_root.rglob("*.parquet") if secret.encode() in p.read_bytes()]

    again = _flow()(archive, lake_root, WINDOW, StationSelection(), params)
    assert (again["ok"], again["skipped"]) == (0, 16)
    lake = Lake(lake_root)
    assert (
        len(lake.read("stations")) == 48
    )  # the network's metadata file is replaced, not duplicated
    latest = lake.query("SELECT * FROM downloads WHERE run_id = ?", [again["run_id"]])
    assert set(latest["status"]) == {"skipped"}


def test_download_flow_names_what_to_check_when_no_station_matches(
    prefect_server, params, tmp_path
):
    from quakelake.flows.download import NoStations

    with pytest.raises(NoStations, match="check -N/-S/-C"):
        _flow()(
            tmp_path / "archive",
            tmp_path / "lake",
            WINDOW,
            StationSelection(networks=["XX"]),
            params,
        )
    runs = Lake(tmp_path / "lake").read("runs")
    assert runs["status"].tolist() == ["failed"]


@pytest.mark.slow
def test_picks_on_the_downloaded_archive_equal_picks_on_the_original_files(
    prefect_server, weights_cache, params, salton, tmp_path
):
    from quakelake.flows.pick import pick_phases

    archive = tmp_path / "archive"
    _flow()(archive, tmp_path / "lake", WINDOW, StationSelection(), params)
    phasenet = PickParams(models=["PhaseNet"], weights=["original"], device="cpu")
    pick_phases(archive, tmp_path / "lake", WINDOW, pick=phasenet)
    pick_phases(salton / "mseed", tmp_path / "original", WINDOW, pick=phasenet)

    cols = ["network", "station", "location", "band", "phase", "time", "probability"]

    def picks(root: Path) -> pd.DataFrame:
        df = Lake(root).read("picks")[cols]
        return df.sort_values(cols).reset_index(drop=True)

    downloaded, original = picks(tmp_path / "lake"), picks(tmp_path / "original")
    assert len(original) > 150
    pd.testing.assert_frame_equal(downloaded, original)
