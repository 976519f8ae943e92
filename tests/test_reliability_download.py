"""Downloads from data centres that misbehave, against an uninterrupted reference download.

A loopback fdsnws front passes queries on to portable-fdsnws-dataselect serving the real Salton
Sea miniSEED and cuts bodies at and inside record boundaries (the HTTP answer itself complete),
closes the connection before ``Content-Length`` bytes, answers 503 with ``Retry-After`` and
trickles. The archive must end up byte-identical to the reference download, every SDS file must
hold one channel, and what could not be fetched is ``partial`` with its gap, fetched next run.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import obspy
import pytest
from fdsn_servers import DataselectServer, FdsnServer

from quakelake.archive.download import download, partial_marker
from quakelake.config import StationSelection, TimeWindow
from quakelake.params.download import DownloadParams, FdsnClientSpec

pytestmark = pytest.mark.integration

DAY = dt.date(2020, 10, 1)
WINDOW = TimeWindow(start=DAY, end=DAY)
BOM = StationSelection(stations=["BOM"])


@pytest.fixture(scope="module")
def dataselect(salton: Path, tmp_path_factory):
    with DataselectServer(salton / "mseed", tmp_path_factory.mktemp("dataselect")) as server:
        yield server


@pytest.fixture(scope="module")
def direct(dataselect, salton) -> FdsnClientSpec:
    front = FdsnServer(salton / "stations.xml").start()
    yield FdsnClientSpec(
        name="loopback",
        url=dataselect.url,
        dataselect=dataselect.service_url,
        station=f"{front.url}/fdsnws/station/1",
    )
    front.stop()


@pytest.fixture(scope="module")
def reference(direct, tmp_path_factory) -> Path:
    """The archive an uninterrupted download from a well-behaved centre gives."""
    archive = tmp_path_factory.mktemp("reference")
    _, results = download(archive, WINDOW, BOM, fast(direct))
    assert [r.status for r in results] == ["ok"]
    return archive


def fast(*clients, **kw) -> DownloadParams:
    values = {"clients": list(clients), "timeout": 5, "retries": 2, "backoff": 0.05} | kw
    return DownloadParams(**values)


def sds_files(archive: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(archive.glob("20*/*/*/*.D/*")) if p.is_file()}


def one_channel_per_file(archive: Path) -> None:
    for path in sorted(archive.glob("20*/*/*/*.D/*")):
        ids = {tr.id for tr in obspy.read(str(path))}
        assert ids == {path.name.split(".D.")[0]}, path


def faulty(salton: Path, dataselect: DataselectServer, **faults) -> FdsnServer:
    return FdsnServer(salton / "stations.xml", dataselect.service_url, **faults)


@pytest.mark.parametrize("cut", ["boundary", "inside"])
def test_a_cut_body_is_completed_and_no_channels_mix(salton, dataselect, reference, tmp_path, cut):
    archive = tmp_path / "archive"
    with faulty(salton, dataselect, cut=cut, cut_first=1) as front:
        _, results = download(archive, WINDOW, BOM, fast(front.url))
        queries = len(front.queries)
    (row,) = results
    assert (row.status, row.error) == ("ok", "")
    assert queries >= 2  # the short answer was noticed and the rest asked for
    one_channel_per_file(archive)
    assert sds_files(archive) == sds_files(reference)
    assert not partial_marker(archive, _unit()).exists()


def _unit():
    from quakelake.archive.download import DownloadUnit

    return DownloadUnit(network="CI", station="BOM", day=DAY, channels=[("", "HHZ")], clients=[])


def test_a_centre_that_always_cuts_gives_partial_then_the_next_run_fetches_the_gap(
    salton, dataselect, direct, reference, tmp_path
):
    archive = tmp_path / "archive"
    with faulty(salton, dataselect, cut="boundary", cut_fraction=0.5) as front:
        _, results = download(archive, WINDOW, BOM, fast(front.url, follow_ups=1))
    (row,) = results
    assert row.status == "partial"
    assert "missing" in row.error and "HHZ" in row.error and "24:00:00" in row.error
    marker = partial_marker(archive, _unit())
    assert json.loads(marker.read_text())["gaps"]
    one_channel_per_file(archive)
    held = sds_files(archive)
    full = sds_files(reference)
    assert held != full
    for name, blob in held.items():  # what is there is whole records of the reference file
        assert full[name].startswith(blob)

    _, again = download(archive, WINDOW, BOM, fast(direct))
    assert [(r.status, r.error) for r in again] == [("ok", "")]
    assert sds_files(archive) == full
    assert not marker.exists()
    _, third = download(archive, WINDOW, BOM, fast(direct))
    assert [r.status for r in third] == ["skipped"]


def test_a_body_shorter_than_its_content_length_is_retried(salton, dataselect, reference, tmp_path):
    archive = tmp_path / "archive"
    with faulty(salton, dataselect, cut="incomplete", cut_first=1) as front:
        _, results = download(archive, WINDOW, BOM, fast(front.url, retries=1))
    assert [(r.status, r.error) for r in results] == [("ok", "")]
    assert sds_files(archive) == sds_files(reference)


def test_retry_after_is_honoured(salton, dataselect, reference, tmp_path):
    archive = tmp_path / "archive"
    with faulty(salton, dataselect, busy_first=2, retry_after="1") as front:
        _, results = download(archive, WINDOW, BOM, fast(front.url, retries=3, backoff=0.01))
        times = [t for t, _ in front.queries]
    assert [r.status for r in results] == ["ok"]
    assert times[1] - times[0] >= 0.95 and times[2] - times[1] >= 0.95  # not the 0.01 s backoff
    assert sds_files(archive) == sds_files(reference)


def test_a_retry_after_beyond_the_limit_falls_through_to_the_next_centre(
    salton, dataselect, direct, reference, tmp_path
):
    archive = tmp_path / "archive"
    with faulty(salton, dataselect, busy_first=100, retry_after="3600") as front:
        t0 = time.perf_counter()
        _, results = download(
            archive, WINDOW, BOM, fast(FdsnClientSpec.parse(front.url), direct, max_retry_after=30)
        )
        seconds = time.perf_counter() - t0
    (row,) = results
    assert (row.status, row.client) == ("ok", "loopback")
    assert "retry after 3600 s" in row.error
    assert seconds < 10
    assert sds_files(archive) == sds_files(reference)


def test_a_trickling_centre_is_cut_off_by_the_request_deadline(
    salton, dataselect, direct, reference, tmp_path
):
    archive = tmp_path / "archive"
    with faulty(salton, dataselect, trickle=0.2, trickle_bytes=512) as front:
        t0 = time.perf_counter()
        _, results = download(
            archive,
            WINDOW,
            BOM,
            fast(FdsnClientSpec.parse(front.url), direct, timeout=3, retries=0, request_deadline=3),
        )
        seconds = time.perf_counter() - t0
    (row,) = results
    assert (row.status, row.client) == ("ok", "loopback")
    assert "RequestDeadlineExceeded" in row.error
    assert seconds < 20  # the trickle would take about two minutes
    assert sds_files(archive) == sds_files(reference)


def test_rectdomain_longitudes_are_checked():
    with pytest.raises(ValueError, match="maxlon -116.0 is west of minlon -115.0"):
        DownloadParams(
            rectdomain={
                "minlatitude": 32,
                "maxlatitude": 34,
                "minlongitude": -115,
                "maxlongitude": -116,
            }
        )
