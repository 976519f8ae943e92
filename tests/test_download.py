"""Downloads against real FDSN services on 127.0.0.1 serving real Salton Sea miniSEED.

portable-fdsnws-dataselect serves the 16 CI stations (48 channels, 180 s) indexed by mseedindex;
a small fdsnws-station front serves their StationXML and, for the failure modes, passes
dataselect queries on after misbehaving (500, 204, slow).
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import obspy
import pytest
from fdsn_servers import DataselectServer, FdsnServer

from quakelake.archive.download import download
from quakelake.archive.fdsn import read_token
from quakelake.archive.sds import INCOMING, sds_path, station_file
from quakelake.config import StationSelection, TimeWindow
from quakelake.params.download import DownloadParams, FdsnClientSpec

pytestmark = pytest.mark.integration

DAY = dt.date(2020, 10, 1)
WINDOW = TimeWindow(start=DAY, end=DAY)
STATIONS = [
    "BOM",
    "COA",
    "CRR",
    "DRE",
    "ERR",
    "FRK",
    "IMP",
    "RXH",
    "SAL",
    "SGL",
    "SLV",
    "SNR",
    "SWS",
    "WES",
    "WMD",
    "YUH2",
]


@pytest.fixture(scope="module")
def dataselect(salton: Path, tmp_path_factory):
    """portable-fdsnws-dataselect over a copy of the real miniSEED files."""
    with DataselectServer(salton / "mseed", tmp_path_factory.mktemp("dataselect")) as server:
        yield server


@pytest.fixture(scope="module")
def station_front(salton: Path):
    """fdsnws-station serving the real stations.xml (no dataselect of its own)."""
    with FdsnServer(salton / "stations.xml") as server:
        yield server


@pytest.fixture(scope="module")
def direct(dataselect, station_front) -> FdsnClientSpec:
    """A client talking straight to portable-fdsnws-dataselect and the station front."""
    return FdsnClientSpec(
        name="loopback",
        url=dataselect.url,
        dataselect=dataselect.service_url,
        station=f"{station_front.url}/fdsnws/station/1",
    )


def fast(*clients, **kw) -> DownloadParams:
    values = {"clients": list(clients), "timeout": 5, "retries": 2, "backoff": 0.05} | kw
    return DownloadParams(**values)


def sds_files(archive: Path) -> list[Path]:
    return sorted(p for p in archive.glob("20*/*/*/*.D/*") if p.is_file())


def assert_identical(archive: Path, salton: Path, stations=STATIONS) -> None:
    """Every channel of the original files is in the archive with the same samples."""
    for sta in stations:
        original = obspy.read(str(salton / "mseed" / f"CI.{sta}.2020-10-01T00:00.mseed"))
        for tr in original:
            s = tr.stats
            path = sds_path(archive, s.network, s.station, s.location, s.channel, DAY)
            got = obspy.read(str(path))
            assert len(got) == 1, path
            assert got[0].stats.starttime == s.starttime
            assert got[0].stats.sampling_rate == s.sampling_rate
            assert got[0].data.dtype == tr.data.dtype
            np.testing.assert_array_equal(got[0].data, tr.data)


def no_temporaries(archive: Path) -> None:
    leftovers = [
        p for p in archive.rglob("*") if p.is_file() and p.name.endswith((".part", ".tmp"))
    ]
    assert leftovers == []
    assert not (archive / INCOMING).exists() or not any((archive / INCOMING).iterdir())


# --------------------------------------------------------------------------- parameters


def test_params_parse_clients_and_reject_bad_domains(tmp_path):
    params = DownloadParams(clients="OGS,INGV http://127.0.0.1:8080/")
    assert [c.name for c in params.clients] == ["OGS", "INGV", "127.0.0.1:8080"]
    assert params.clients[0].url.startswith("http://")  # OGS is not an ObsPy short name
    assert params.clients[2].url == "http://127.0.0.1:8080"
    with pytest.raises(ValueError, match="names must be unique"):
        DownloadParams(clients=["INGV", "ingv"])
    with pytest.raises(ValueError, match="not both"):
        DownloadParams(
            rectdomain={
                "minlatitude": 32,
                "maxlatitude": 34,
                "minlongitude": -116,
                "maxlongitude": -115,
            },
            circdomain={"latitude": 33, "longitude": -115.5, "maxradius": 1},
        )
    with pytest.raises(ValueError, match="maxlat"):
        DownloadParams(
            rectdomain={
                "minlatitude": 34,
                "maxlatitude": 32,
                "minlongitude": -116,
                "maxlongitude": -115,
            }
        )
    with pytest.raises(FileNotFoundError, match="-K"):
        read_token(DownloadParams(token_file=tmp_path / "missing.txt"))
    token = tmp_path / "token.asc"
    token.write_text("-----BEGIN PGP MESSAGE-----\nsecret\n-----END PGP MESSAGE-----\n")
    assert "secret" in read_token(DownloadParams(token_file=token))
    assert str(token) in DownloadParams(token_file=token).model_dump_json()
    assert "secret" not in DownloadParams(token_file=token).model_dump_json()


# --------------------------------------------------------------------------- happy path


def test_full_download_then_nothing_then_force(direct, salton, tmp_path):
    archive = tmp_path / "archive"
    plan, results = download(archive, WINDOW, StationSelection(), fast(direct))

    assert plan.client_errors == {}
    assert [u.station for u in plan.units] == STATIONS
    assert all(u.channels == [("", "HHE"), ("", "HHN"), ("", "HHZ")] for u in plan.units)
    assert {r.status for r in results} == {"ok"}
    assert {r.client for r in results} == {"loopback"}
    files = sds_files(archive)
    assert len(files) == 48
    original_bytes = sum(p.stat().st_size for p in (salton / "mseed").glob("*.mseed"))
    assert sum(r.bytes for r in results) == original_bytes == sum(p.stat().st_size for p in files)
    assert_identical(archive, salton)
    no_temporaries(archive)
    inv = obspy.read_inventory(str(station_file(archive, "CI")))
    assert sorted(s.code for s in inv[0]) == STATIONS
    assert len(inv.get_contents()["channels"]) == 48

    mtimes = {p: p.stat().st_mtime_ns for p in files}
    _, again = download(archive, WINDOW, StationSelection(), fast(direct))
    assert {r.status for r in again} == {"skipped"}
    assert {p: p.stat().st_mtime_ns for p in sds_files(archive)} == mtimes

    _, forced = download(
        archive, WINDOW, StationSelection(stations=["BOM"]), fast(direct), force=True
    )
    assert [(r.station, r.status) for r in forced] == [("BOM", "ok")]
    assert_identical(archive, salton)


def test_selection_domains_and_channel_priorities(direct, salton, tmp_path):
    inventory = obspy.read_inventory(str(salton / "stations.xml"))
    northern = sorted(s.code for s in inventory[0] if s.latitude >= 33.25)
    assert 0 < len(northern) < len(STATIONS)
    north = fast(
        direct,
        rectdomain={
            "minlatitude": 33.25,
            "maxlatitude": 34.0,
            "minlongitude": -116.5,
            "maxlongitude": -115.0,
        },
    )
    plan, results = download(tmp_path / "rect", WINDOW, StationSelection(), north)
    assert sorted(r.station for r in results) == northern
    assert {r.status for r in results} == {"ok"}

    bom = inventory.select(station="BOM")[0][0]
    around_bom = fast(
        direct, circdomain={"latitude": bom.latitude, "longitude": bom.longitude, "maxradius": 0.01}
    )
    plan, _ = download(tmp_path / "circ", WINDOW, StationSelection(), around_bom)
    assert [u.station for u in plan.units] == ["BOM"]

    # No EH? channel exists: the second priority (HH?) is taken; Z only when the selection says so.
    plan, results = download(
        tmp_path / "sel",
        WINDOW,
        StationSelection(stations="COA,WES", channels="HHZ"),
        fast(direct, channel_priorities=["EH?", "HH?"]),
    )
    assert [u.channels for u in plan.units] == [[("", "HHZ")], [("", "HHZ")]]
    assert [p.name for p in sds_files(tmp_path / "sel")] == [
        "CI.COA..HHZ.D.2020.275",
        "CI.WES..HHZ.D.2020.275",
    ]

    plan, results = download(
        tmp_path / "none", WINDOW, StationSelection(), fast(direct, channel_priorities=["BH?"])
    )
    assert plan.units == [] and results == []


# --------------------------------------------------------------------------- failure modes


def test_server_error_then_success_is_retried(dataselect, salton, tmp_path):
    with FdsnServer(salton / "stations.xml", dataselect.service_url, fail_first=2) as flaky:
        plan, results = download(
            tmp_path / "a", WINDOW, StationSelection(stations="BOM,COA"), fast(flaky.url, retries=2)
        )
    assert [(r.station, r.status, r.error) for r in results] == [
        ("BOM", "ok", ""),
        ("COA", "ok", ""),
    ]
    assert_identical(tmp_path / "a", salton, ["BOM", "COA"])

    with FdsnServer(salton / "stations.xml", dataselect.service_url, fail_first=1) as flaky:
        _, results = download(
            tmp_path / "b", WINDOW, StationSelection(stations="BOM"), fast(flaky.url, retries=0)
        )
    assert results[0].status == "failed"
    assert "FDSNInternalServerException" in results[0].error
    assert sds_files(tmp_path / "b") == []
    no_temporaries(tmp_path / "b")


def test_no_data_is_recorded_as_no_data(dataselect, salton, tmp_path):
    with FdsnServer(salton / "stations.xml", dataselect.service_url, nodata=True) as empty:
        _, results = download(
            tmp_path / "a", WINDOW, StationSelection(stations="BOM,COA"), fast(empty.url)
        )
    assert [r.status for r in results] == ["no_data", "no_data"]
    assert all("no data from" in r.error and "Exception" not in r.error for r in results)
    assert sds_files(tmp_path / "a") == []


def test_a_day_without_data_is_no_data_while_the_next_day_is_fetched(direct, tmp_path):
    two_days = TimeWindow(start=DAY, end=DAY + dt.timedelta(days=1))
    _, results = download(tmp_path / "a", two_days, StationSelection(stations="BOM"), fast(direct))
    assert [(r.day, r.status) for r in results] == [("2020-10-01", "ok"), ("2020-10-02", "no_data")]
    assert len(sds_files(tmp_path / "a")) == 3


def test_slow_client_times_out_and_the_next_one_serves(dataselect, direct, salton, tmp_path):
    with FdsnServer(salton / "stations.xml", dataselect.service_url, delay=3.0) as slow:
        slow_spec = FdsnClientSpec.parse(slow.url)
        params = fast(slow_spec, direct, timeout=0.5, retries=1)
        t0 = time.perf_counter()
        plan, results = download(tmp_path / "a", WINDOW, StationSelection(stations="BOM"), params)
        seconds = time.perf_counter() - t0
    assert plan.units[0].clients == [slow_spec.name, "loopback"]
    (row,) = results
    assert (row.status, row.client) == ("ok", "loopback")
    assert row.error.startswith(f"{slow_spec.name}: FDSNTimeoutException")
    assert seconds < 3.0  # two 0.5 s timeouts, not the server's 3 s delay
    assert_identical(tmp_path / "a", salton, ["BOM"])


def test_unreachable_client_falls_through(direct, salton, tmp_path):
    from fdsn_servers import free_port

    dead = FdsnClientSpec.parse(f"http://127.0.0.1:{free_port()}")
    plan, results = download(
        tmp_path / "a", WINDOW, StationSelection(stations="BOM"), fast(dead, direct, retries=0)
    )
    assert dead.name in plan.client_errors and plan.unreachable == [dead.name]
    assert plan.units[0].clients == ["loopback"]  # units do not knock on a dead door again
    assert [(r.status, r.client) for r in results] == [("ok", "loopback")]


# --------------------------------------------------------------------------- kill and resume

KILLED_RUN = """
import sys, datetime as dt
from pathlib import Path
from quakelake.config import StationSelection, TimeWindow
from quakelake.archive.download import download
from quakelake.params.download import DownloadParams
day = dt.date(2020, 10, 1)
download(Path(sys.argv[1]), TimeWindow(start=day, end=day), StationSelection(),
         DownloadParams(clients=[sys.argv[2]], timeout=30, retries=0))
"""


@pytest.mark.slow
def test_killed_download_resumes_to_a_complete_archive(dataselect, direct, salton, tmp_path):
    archive = tmp_path / "archive"
    seen_complete: set[Path] = set()
    with FdsnServer(salton / "stations.xml", dataselect.service_url, delay=0.25) as slow:
        proc = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(KILLED_RUN), str(archive), slow.url],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while len(sds_files(archive)) < 12 and proc.poll() is None and time.monotonic() < deadline:
            # Whatever is visible in the archive is complete at every moment.
            for path in sds_files(archive):
                if path not in seen_complete:
                    assert len(obspy.read(str(path))[0]) > 17000, path
                    seen_complete.add(path)
            time.sleep(0.02)
        assert proc.poll() is None, proc.stdout.read().decode()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    partial = sds_files(archive)
    assert 12 <= len(partial) < 48

    _, results = download(archive, WINDOW, StationSelection(), fast(direct))
    statuses = {r.station: r.status for r in results}
    assert set(statuses.values()) <= {"ok", "skipped"}
    assert sum(s == "skipped" for s in statuses.values()) >= 4
    assert len(sds_files(archive)) == 48
    assert_identical(archive, salton)
    no_temporaries(archive)
