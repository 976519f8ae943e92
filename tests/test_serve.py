"""quakelake serve on a real lake (Salton Sea picks associated by PyOcto, ML from the waveforms):
ObsPy's FDSN client, the text format, the WADL, errors per the specification, asofdate answers
that survive a reprocessing, and the page in headless Chromium.

The service runs in uvicorn on a free 127.0.0.1 port. Tests that change the lake (a new event,
a reprocessing) come last in this file. Screenshots go to $QUAKELAKE_ARTIFACTS (default
tests/artifacts/, which CI keeps).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pick_rows import reference_pick_rows
from test_ui import CHROMIUM, CHROMIUM_ARGS

from quakelake.catalogs.evaluation import is_rejected
from quakelake.lakehouse import Lake, queries, write_table

pytestmark = pytest.mark.integration

ARTIFACTS = Path(os.environ.get("QUAKELAKE_ARTIFACTS", Path(__file__).parent / "artifacts"))
WADL_NS = "{http://wadl.dev.java.net/2009/02}"
FDSN_PARAMETERS = {
    "starttime",
    "endtime",
    "minlatitude",
    "maxlatitude",
    "minlongitude",
    "maxlongitude",
    "latitude",
    "longitude",
    "minradius",
    "maxradius",
    "mindepth",
    "maxdepth",
    "minmagnitude",
    "maxmagnitude",
    "magnitudetype",
    "eventtype",
    "includeallorigins",
    "includeallmagnitudes",
    "includearrivals",
    "eventid",
    "limit",
    "offset",
    "orderby",
    "catalog",
    "contributor",
    "updatedafter",
    "format",
    "nodata",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running(lake: Path, **kwargs) -> Iterator[str]:
    """Serve ``lake`` with uvicorn in a thread; yield its base URL."""
    import uvicorn

    from quakelake.service.webservice import create_app

    port = _free_port()
    config = uvicorn.Config(
        create_app(lake, **kwargs), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def get(url: str) -> tuple[int, bytes, str]:
    """Return status, body and media type of a GET (error statuses included)."""
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers.get("Content-Type", "")


@pytest.fixture(scope="module")
def salton(shared_data, prefect_server, tmp_path_factory) -> Path:
    """A lake of the Salton Sea sample: waveform index, reference picks, PyOcto events with ML."""
    from quakelake.archive.waveforms import archive_key, scan_archive
    from quakelake.flows.associate import associate_events

    folder = shared_data / "phasenet_saltonsea_20201001"
    lake = tmp_path_factory.mktemp("serve") / "lake"
    scan = scan_archive(folder / "mseed")
    write_table(
        lake, "waveform_index", scan.index, "index", {"archive": archive_key(folder / "mseed")}
    )
    csv_file = folder / "DERIVED_phasenet_ref_picks_first180s.csv"
    ids = [f"ref{i}" for i in range(len(pd.read_csv(csv_file)))]
    picks = reference_pick_rows(csv_file, ids, weights="reference")
    write_table(lake, "picks", picks, "reference", {"day": "2020-10-01"})
    associate_events(lake=lake, station_file=folder / "stations.xml")
    return lake


@pytest.fixture(scope="module")
def service(salton) -> Iterator[str]:
    with running(salton) as url:
        yield url


def _lake_events(lake: Path) -> pd.DataFrame:
    """The lake's reported events (the service publishes no origin the quality gate rejected)."""
    events = queries.events(Lake(lake))
    return events[~is_rejected(events)].set_index("event_id")


def _short(resource_id) -> str:
    return str(resource_id).rsplit("/", 1)[-1]


def test_obspy_client_gets_the_lake_catalogue(salton, service):
    """ObsPy's FDSN client gets every event with its origin, magnitudes and arrivals as the lake holds them."""
    from obspy.clients.fdsn import Client
    from obspy.geodetics import locations2degrees

    lake = Lake(salton)
    events = _lake_events(salton)
    assert len(events) >= 5
    client = Client(base_url=service)
    assert "event" in client.services
    cat = client.get_events(includearrivals=True, includeallmagnitudes=True)
    assert sorted(_short(e.resource_id) for e in cat) == sorted(events.index)
    assignments = lake.read("assignments")
    station_mags = lake.read("station_magnitudes")
    for ev in cat:
        row = events.loc[_short(ev.resource_id)]
        origin = ev.preferred_origin()
        assert origin.time.datetime == pd.Timestamp(row["time"]).tz_convert(None).to_pydatetime()
        assert (origin.latitude, origin.longitude) == pytest.approx(
            (row["latitude"], row["longitude"])
        )
        assert origin.depth == pytest.approx(row["depth_km"] * 1000.0)
        mag = ev.preferred_magnitude()
        assert mag.mag == pytest.approx(row["magnitude"]) and mag.magnitude_type == "ML"
        mine = assignments[assignments["event_id"] == row.name]
        assert sorted(_short(a.pick_id) for a in origin.arrivals) == sorted(mine["pick_id"])
        by_pick = {_short(p.resource_id): p for p in ev.picks}
        for a in mine.itertuples():
            assert by_pick[a.pick_id].time.datetime == pd.Timestamp(a.time).tz_convert(None)
            assert by_pick[a.pick_id].phase_hint == a.phase
        assert len(ev.station_magnitudes) == (station_mags["event_id"] == row.name).sum()

    # filters: magnitude, time, depth, radius, order, limit/offset, one event
    mags = events["magnitude"]
    cut = float(np.median(mags))
    got = client.get_events(minmagnitude=cut, orderby="magnitude")
    assert [_short(e.resource_id) for e in got] == list(
        events[mags >= cut].sort_values("magnitude", ascending=False).index
    )
    t = pd.to_datetime(events["time"], utc=True)
    start, end = t.min() + pd.Timedelta(seconds=30), t.max() - pd.Timedelta(seconds=10)
    got = client.get_events(
        starttime=start.isoformat(), endtime=end.isoformat(), orderby="time-asc"
    )
    assert [_short(e.resource_id) for e in got] == list(
        events[(t >= start) & (t <= end)].sort_values("time").index
    )
    got = client.get_events(mindepth=5, maxdepth=10)
    assert {_short(e.resource_id) for e in got} == set(
        events[(events["depth_km"] >= 5) & (events["depth_km"] <= 10)].index
    )
    lat, lon = 33.06, -115.60
    dist = np.array(
        [
            locations2degrees(lat, lon, a, b)
            for a, b in zip(events["latitude"], events["longitude"], strict=True)
        ]
    )
    got = client.get_events(latitude=lat, longitude=lon, maxradius=0.02)
    assert {_short(e.resource_id) for e in got} == set(events.index[dist <= 0.02])
    assert 0 < (dist <= 0.02).sum() < len(events)
    newest = events.sort_values("time", ascending=False).index
    got = client.get_events(limit=2, offset=2)
    assert [_short(e.resource_id) for e in got] == list(newest[1:3])
    one = newest[0]
    got = client.get_events(eventid=one, includearrivals=True)
    assert [_short(e.resource_id) for e in got] == [one]
    assert len(got[0].picks) == (assignments["event_id"] == one).sum()
    # without includearrivals: origins and magnitudes, no picks
    assert all(not e.picks for e in client.get_events())


def test_origins_the_gate_rejected_are_not_published(salton, service):
    """fdsnws-event publishes the reported origins, as export does: a rejected origin (no ML)
    is in the lake but no event of the service, by id, in a listing or in its count."""
    every = queries.events(Lake(salton))
    rejected = every.loc[is_rejected(every), "event_id"].tolist()
    assert rejected and every.loc[is_rejected(every), "magnitude"].isna().all()
    base = f"{service}/fdsnws/event/1/query"
    for eid in rejected:
        assert get(f"{base}?eventid={eid}")[:2] == (204, b"")
    status, body, _ = get(f"{base}?format=text")
    listed = [line.split("|")[0] for line in body.decode().splitlines()[1:]]
    assert status == 200 and sorted(listed) == sorted(_lake_events(salton).index)
    status, body, _ = get(f"{service}/api/state")
    assert status == 200 and json.loads(body)["events"] == len(listed)
    assert get(f"{service}/api/event?eventid={rejected[0]}")[0] == 404


def test_text_format_catalogs_contributors_and_version(salton, service):
    events = _lake_events(salton)
    status, body, media = get(f"{service}/fdsnws/event/1/query?format=text&orderby=time-asc")
    assert status == 200 and media.startswith("text/plain")
    lines = body.decode().splitlines()
    assert lines[0] == (
        "#EventID|Time|Latitude|Longitude|Depth/km|Author|Catalog|Contributor|ContributorID|"
        "MagType|Magnitude|MagAuthor|EventLocationName|EventType"
    )
    rows = list(csv.reader(io.StringIO("\n".join(lines[1:])), delimiter="|"))
    assert [r[0] for r in rows] == list(events.sort_values("time").index)
    for r in rows:
        ev = events.loc[r[0]]
        assert pd.Timestamp(r[1], tz="UTC") == pd.Timestamp(ev["time"]).floor("ms")
        assert float(r[2]) == pytest.approx(ev["latitude"], abs=1e-5)
        assert float(r[3]) == pytest.approx(ev["longitude"], abs=1e-5)
        assert float(r[4]) == pytest.approx(ev["depth_km"], abs=1e-3)
        assert r[6] == f"{ev['pick_source']}:{ev['associator']}" and r[7] == "pyocto"
        assert (r[9], float(r[10])) == ("ML", pytest.approx(ev["magnitude"], abs=0.005))
    catalogs = {
        f"{s}:{a}" for s, a in zip(events["pick_source"], events["associator"], strict=True)
    }
    status, body, _ = get(f"{service}/fdsnws/event/1/catalogs")
    assert status == 200 and {c.text for c in ET.fromstring(body)} == catalogs
    status, body, _ = get(f"{service}/fdsnws/event/1/contributors")
    assert {c.text for c in ET.fromstring(body)} == {"pyocto"}
    # one catalogue, one contributor
    (name,) = catalogs
    status, body, _ = get(f"{service}/fdsnws/event/1/query?format=text&catalog={name}")
    assert len(body.decode().splitlines()) == len(events) + 1
    status, _, _ = get(f"{service}/fdsnws/event/1/query?format=text&catalog=lake-x:gamma")
    assert status == 204
    assert get(f"{service}/fdsnws/event/1/version")[:2] == (200, b"1.2.0")
    # contributor (the associator) and updatedafter (when the events were committed)
    for query, n in (
        ("contributor=pyocto", len(events)),
        ("contributor=gamma", 0),
        ("updatedafter=2000-01-01", len(events)),
        ("updatedafter=2100-01-01", 0),
    ):
        status, body, _ = get(f"{service}/fdsnws/event/1/query?format=text&{query}")
        assert (status, len(body.decode().splitlines())) == ((200, n + 1) if n else (204, 0))


def test_wadl_parses_and_lists_the_parameters(service):
    from obspy.clients.fdsn.wadl_parser import WADLParser

    status, body, media = get(f"{service}/fdsnws/event/1/application.wadl")
    assert status == 200 and media.startswith("application/xml")
    root = ET.fromstring(body)
    assert root.tag == f"{WADL_NS}application"
    (resources,) = root.findall(f"{WADL_NS}resources")
    assert resources.get("base") == f"{service}/fdsnws/event/1"
    paths = {r.get("path") for r in resources.findall(f"{WADL_NS}resource")}
    assert paths == {"query", "version", "catalogs", "contributors", "application.wadl"}
    params = root.findall(
        f".//{WADL_NS}resource[@path='query']/{WADL_NS}method/{WADL_NS}request/{WADL_NS}param"
    )
    names = {p.get("name") for p in params}
    assert names == FDSN_PARAMETERS | {"asofdate"}
    assert all(p.get("style") == "query" and p.get("type", "").startswith("xs:") for p in params)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # ObsPy warns about any FDSN parameter a WADL lacks
        parsed = WADLParser(body).parameters
    assert {"starttime", "minmagnitude", "includearrivals", "orderby"} <= set(parsed)
    assert parsed["orderby"]["options"] == ["time", "time-asc", "magnitude", "magnitude-asc"]


def test_errors_follow_the_specification(salton, service):
    base = f"{service}/fdsnws/event/1/query"
    for query, status, says in (
        ("minmag=big", 400, "minmagnitude: 'big' is not a number"),
        ("color=red", 400, "unknown parameter 'color'"),
        ("minmag=1&minmagnitude=2", 400, "minmagnitude: given more than once"),
        ("start=2020-10-02&end=2020-10-01", 400, "starttime"),
        ("starttime=yesterday", 400, "starttime: 'yesterday' is not a time"),
        ("minlat=95", 400, "minlatitude: 95 is outside [-90, 90]"),
        ("maxradius=2", 400, "needs both latitude and longitude"),
        ("orderby=size", 400, "orderby: 'size' is not one of"),
        ("format=json", 400, "format: 'json' is not one of"),
        ("nodata=500", 400, "nodata: '500' is not one of"),
        ("limit=100000", 413, "limit: 100000 is more than the 20000 events"),
        ("eventid=nope&nodata=404", 404, "no events match the query"),
        ("asofdate=1990-01-01", 400, "asofdate: the lake did not exist yet"),
    ):
        code, body, media = get(f"{base}?{query}")
        text = body.decode()
        assert code == status, (query, text)
        assert media.startswith("text/plain")
        assert text.startswith(f"Error {status}: ") and says in text, text
        assert (
            "Traceback" not in text
            and str(salton) not in text
            and "Service version:\n1.2.0" in text
        )
    assert get(f"{base}?eventid=nope")[:2] == (204, b"")
    assert get(f"{base}?minmag=9")[:2] == (204, b"")
    assert get(f"{service}/fdsnws/event/1/version?x=1")[0] == 400
    assert get(f"{service}/nothing/here")[0] == 404
    # abbreviations answer as the long names do
    long = get(
        f"{base}?format=text&starttime=2020-10-01T00:01:00&minlatitude=33&maxlongitude=-115.5&minmagnitude=1.5"
    )
    short = get(f"{base}?format=text&start=2020-10-01T00:01:00&minlat=33&maxlon=-115.5&minmag=1.5")
    assert long[0] == 200 and long[1] == short[1]
    # more events than one answer may hold: 413 unless a limit is given
    n = len(_lake_events(salton))
    with running(salton, max_results=n - 1) as small:
        code, body, _ = get(f"{small}/fdsnws/event/1/query?format=text")
        assert code == 413 and f"more than {n - 1} events match" in body.decode()
        code, body, _ = get(f"{small}/fdsnws/event/1/query?format=text&limit=2")
        assert code == 200 and len(body.decode().splitlines()) == 3


def test_association_artifacts_are_readable_tables(salton):
    """The associate flow run shows its magnitudes and its catalogue (one row per event, ML,
    status, a link to the event on the service page) as markdown tables, no Python reprs."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    lake = Lake(salton)
    runs = lake.query("SELECT flow_run_id FROM runs WHERE command = 'associate' ORDER BY started")
    flow_run_id = runs["flow_run_id"].iloc[0]
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    by_key = {a.key: a.data for a in artifacts}
    assert set(by_key) == {"associate-report", "catalogue"}
    report, catalogue = by_key["associate-report"], by_key["catalogue"]
    events = _lake_events(salton)
    assert "| events with ML | " + str(events["magnitude"].notna().sum()) + " |" in report
    assert "| attenuation law | HB87 |" in report
    assert "- metadata QC (lake table metadata_qc): " in report and " used for location, " in report
    for text in (report, catalogue):
        assert "{'" not in text and "': " not in text  # no dict reprs
    rows = [line for line in catalogue.splitlines() if line.startswith("| 2020-")]
    assert len(rows) == len(events)
    assert (
        "| time (UTC) | latitude | longitude | depth km | ML | stations | picks | status | event |"
        in catalogue
    )
    for eid, ev in events.iterrows():
        (row,) = [r for r in rows if f"[{eid}](http://127.0.0.1:8080/#event={eid})" in r]
        assert f"| {ev['magnitude']:.2f} ± {ev['magnitude_uncertainty']:.2f} |" in row
        assert f"| {ev['location_quality']} |" in row


def test_a_statement_running_too_long_is_stopped(salton):
    """The reader's watchdog interrupts a statement after timeout_s; the next one runs."""
    from quakelake.lakehouse.published import LakeReader, QueryTimeout

    reader = LakeReader(Lake(salton), timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises(QueryTimeout, match="longer than 0.3 s"):
        reader._run_copy("SELECT count(*) FROM range(1000000000000) t(i) WHERE i % 7 = 3")
    assert time.monotonic() - started < 5
    assert reader.count_events(reader.snapshot()) == len(_lake_events(salton))
    reader.close()


def _browser():
    if not CHROMIUM.exists() and not shutil.which("chromium"):
        pytest.skip(
            "Debian chromium is absent: apt-get install -y chromium (no browser is downloaded)"
        )
    return pytest.importorskip("playwright.sync_api", reason="pip install playwright (test extra)")


def _wait(predicate, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def test_page_map_event_waveforms_and_live_update(salton, service):
    """N markers for N events, stations drawn; a click shows the origin and its picks on the
    waveforms; an event committed while the page is open appears without a reload."""
    sync_api = _browser()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    lake = Lake(salton)
    events = _lake_events(salton)
    n_stations = len(lake.read("stations")[["network", "station"]].drop_duplicates())
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        outside: list[str] = []
        page.on(
            "request",
            lambda r: outside.append(r.url) if not r.url.startswith(service) else None,
        )
        page.goto(service + "/")
        page.wait_for_selector("path.ql-event")
        assert _wait(lambda: page.locator("path.ql-event").count() == len(events))
        assert page.locator(".ql-station").count() == n_stations
        assert page.locator("#events tbody tr").count() == len(events)
        assert page.locator("#section circle").count() == len(events)
        # the largest event: its marker is drawn first, clicking the table row opens it too
        biggest = events["magnitude"].idxmax()
        page.locator(f'#events tbody tr[data-event-id="{biggest}"]').click()
        page.wait_for_selector("#event-title")
        assert page.locator("#event-title").inner_text() == f"Event {biggest}"
        assert (
            f"{events.loc[biggest, 'magnitude']:.2f} ML" in page.locator("#event dl").inner_text()
        )
        assert _wait(
            lambda: page.locator("#waveforms").evaluate("i => i.complete && i.naturalWidth") > 0
        )
        page.screenshot(path=str(ARTIFACTS / "serve-event.png"))
        # a marker click opens its event
        page.locator("path.ql-event").last.click()
        assert _wait(lambda: page.locator("#event-title").count() == 1)

        # a new event reaches the lake while the page is open
        row = events.reset_index().sort_values("time").tail(1)
        new = row.assign(
            event_id="live-1",
            run_id="live",
            time=row["time"] + pd.Timedelta(seconds=5),
            longitude=row["longitude"] + 0.1,
        ).drop(columns=["day"])
        write_table(salton, "events", new, "live.2020-10-01", {"day": "2020-10-01"}, run_id="live")
        assert _wait(lambda: page.locator("path.ql-event").count() == len(events) + 1, 30)
        assert page.locator('#events tbody tr[data-event-id="live-1"]').count() == 1
        page.screenshot(path=str(ARTIFACTS / "serve-live.png"))
        # the catalogue artifact's links open one event: /#event=ID
        linked = browser.new_page()
        linked.goto(f"{service}/#event={biggest}")
        linked.wait_for_selector("#event-title")
        assert linked.locator("#event-title").inner_text() == f"Event {biggest}"
        browser.close()
    assert errors == [] and outside == []
    status, png, media = get(f"{service}/api/waveforms.png?eventid={biggest}")
    assert status == 200 and media == "image/png" and png[:4] == b"\x89PNG"


def test_asofdate_answer_survives_reprocessing(salton, service, shared_data):
    """A query given asofdate returns the same bytes after a --force reprocessing changed the catalogue."""
    from quakelake.association import magnitudes as mag
    from quakelake.flows.associate import associate_events

    time.sleep(1.1)
    when = dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(timespec="microseconds")
    time.sleep(1.1)
    base = f"{service}/fdsnws/event/1/query?includearrivals=true&includeallmagnitudes=true"
    before = get(base)
    pinned = get(f"{base}&asofdate={when}")
    assert before[0] == 200 and pinned[1] == before[1]
    text_pinned = get(f"{base}&format=text&asofdate={when}")[1]

    law = mag.AttenuationLaw(name="table-test", table=[(1.0, 1.0), (100.0, 3.0), (300.0, 4.0)])
    folder = shared_data / "phasenet_saltonsea_20201001"
    redo = associate_events(
        lake=salton,
        station_file=folder / "stations.xml",
        force=True,
        magnitude=mag.MagnitudeParams(law=law),
    )
    assert redo["done"] == 1 and redo["magnitudes"]["done"] == 1
    after = get(base)
    assert after[0] == 200 and after[1] != before[1]  # the catalogue changed: new magnitudes
    again = get(f"{base}&asofdate={when}")
    assert again[:2] == pinned[:2]
    assert get(f"{base}&format=text&asofdate={when}")[1] == text_pinned


def test_a_commands_flow_logs_reach_the_logs_tab(salton, shared_data):
    """At the default verbosity the terminal shows warnings only, yet the flow run's INFO logs
    are sent to the Prefect API (the UI's Logs tab), not dropped by the run logger's level."""
    import subprocess
    import sys

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.settings import PREFECT_API_URL

    stations = shared_data / "phasenet_saltonsea_20201001" / "stations.xml"
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "quakelake.cli",
            "associate",
            "--lake",
            str(salton),
            "-F",
            str(stations),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "| INFO" not in done.stderr  # the terminal stays quiet
    runs = Lake(salton).query(
        "SELECT flow_run_id FROM runs WHERE command = 'associate' ORDER BY started DESC"
    )
    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[runs["flow_run_id"].iloc[0]]))
        )
    info = [log.message for log in logs if log.level == 20]
    assert any(m.startswith("associating 1 days with ") for m in info), info


def test_serve_refuses_bad_options(tmp_path, salton, capsys):
    """One error line naming the option, exit status 2, before anything listens."""
    from quakelake.cli import main

    for argv, says in (
        (["--lake", str(tmp_path / "none")], "--lake: "),
        (["--lake", str(salton), "--port", "70000"], "--port: 70000 is not a TCP port"),
        (["--lake", str(salton), "--tiles", "tiles/{z}/{x}/{y}.png"], "--tiles: "),
        (["--lake", str(salton), "--max-results", "0"], "--max-results: 0 must be at least 1"),
    ):
        assert main(["serve", *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: " + says), err
