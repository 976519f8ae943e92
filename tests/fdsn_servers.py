"""Real FDSN web services on 127.0.0.1 for the download tests.

- :class:`DataselectServer` runs PyPI's ``portable-fdsnws-dataselect`` (a subprocess) over a
  SQLite index that ``mseedindex`` builds from real miniSEED files.
- :class:`FdsnServer` is a small fdsnws front (``http.server`` in a thread): it answers
  fdsnws-station queries from a real StationXML file (filtered by network, station, location,
  channel, time and domain) and passes fdsnws-dataselect requests on to a real dataselect server,
  optionally misbehaving first: 500 for the first N queries, 204 for every query, or a delay;
  503 with ``Retry-After``; bodies cut at or inside a miniSEED record (the HTTP answer itself
  complete), a body shorter than its ``Content-Length`` (``IncompleteRead``); or a trickle.
"""

from __future__ import annotations

import math
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from fnmatch import fnmatchcase
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from obspy import Inventory, UTCDateTime, read_inventory
from obspy.geodetics import locations2degrees
from obspy.io.mseed.util import get_record_information

VENV_BIN = Path(__file__).resolve().parents[1] / ".venv" / "bin"

STATION_PARAMS = {
    "starttime": "xs:dateTime",
    "endtime": "xs:dateTime",
    "network": "xs:string",
    "station": "xs:string",
    "location": "xs:string",
    "channel": "xs:string",
    "minlatitude": "xs:double",
    "maxlatitude": "xs:double",
    "minlongitude": "xs:double",
    "maxlongitude": "xs:double",
    "latitude": "xs:double",
    "longitude": "xs:double",
    "minradius": "xs:double",
    "maxradius": "xs:double",
    "level": "xs:string",
    "format": "xs:string",
    "nodata": "xs:int",
}


def _tool(name: str) -> str:
    # The project's venv, else the venv of the running interpreter (a worktree sharing one), else PATH.
    for folder in (VENV_BIN, Path(sys.executable).parent):
        if (folder / name).exists():
            return str(folder / name)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} is not installed; pip install the project's test extra")
    return found


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, seconds: float = 20.0) -> None:
    """Wait until ``url`` answers 200, or raise naming it."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"test server at {url} did not answer within {seconds} s")
        time.sleep(0.1)


class DataselectServer:
    """``portable-fdsnws-dataselect`` serving the miniSEED files of a folder (context manager)."""

    def __init__(self, mseed_dir: Path, workdir: Path, files: list[Path] | None = None):
        """Serve copies of ``mseed_dir``'s files, or ``files`` where they are (``reindex``
        them as they grow)."""
        self.workdir = Path(workdir)
        self.data = self.workdir / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.index = self.workdir / "index.sqlite"
        if files is None:
            for f in sorted(Path(mseed_dir).glob("*.mseed")):
                shutil.copyfile(f, self.data / f.name)
            files = sorted(self.data.glob("*.mseed"))
        self.reindex(files)
        self.port = free_port()
        self.config = self.workdir / "server.ini"
        self.config.write_text(
            f"[index_db]\npath = {self.index}\ntable = tsindex\n\n"
            f"[server]\ninterface = 127.0.0.1\nport = {self.port}\n"
        )
        self.proc: subprocess.Popen | None = None

    def reindex(self, files: list[Path]) -> None:
        """Index ``files`` (again: a file's earlier rows are replaced)."""
        subprocess.run(
            [_tool("mseedindex"), "-sqlite", str(self.index), *map(str, files)],
            check=True,
            capture_output=True,
        )

    @property
    def url(self) -> str:
        """The server's base URL (``http://127.0.0.1:PORT``)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def service_url(self) -> str:
        """The fdsnws-dataselect service URL."""
        return f"{self.url}/fdsnws/dataselect/1"

    def start(self) -> DataselectServer:
        log = open(self.workdir / "server.log", "wb")
        self.proc = subprocess.Popen(
            [_tool("portable-fdsnws-dataselect"), str(self.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for(f"{self.service_url}/version")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def __enter__(self) -> DataselectServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _matches(value: str, patterns: str | None, location: bool = False) -> bool:
    if patterns is None:
        return True
    for pat in patterns.split(","):
        if location and pat == "--":
            pat = ""
        if fnmatchcase(value, pat):
            return True
    return False


def filter_inventory(inv: Inventory, q: dict[str, str]) -> Inventory:
    """Return the part of ``inv`` an fdsnws-station query ``q`` asks for (at ``q['level']``)."""
    level = q.get("level", "station")
    start = UTCDateTime(q["starttime"]) if "starttime" in q else None
    end = UTCDateTime(q["endtime"]) if "endtime" in q else None

    def in_time(epoch) -> bool:
        return (end is None or epoch.start_date is None or epoch.start_date <= end) and (
            start is None or epoch.end_date is None or epoch.end_date >= start
        )

    def in_domain(sta) -> bool:
        lat, lon = sta.latitude, sta.longitude
        if "minlatitude" in q and lat < float(q["minlatitude"]):
            return False
        if "maxlatitude" in q and lat > float(q["maxlatitude"]):
            return False
        if "minlongitude" in q and lon < float(q["minlongitude"]):
            return False
        if "maxlongitude" in q and lon > float(q["maxlongitude"]):
            return False
        if "latitude" in q and "longitude" in q:
            d = locations2degrees(float(q["latitude"]), float(q["longitude"]), lat, lon)
            if d < float(q.get("minradius", 0)) or d > float(q.get("maxradius", math.inf)):
                return False
        return True

    nets = []
    for net in inv:
        if not _matches(net.code, q.get("network")):
            continue
        stas = []
        for sta in net:
            if not (_matches(sta.code, q.get("station")) and in_time(sta) and in_domain(sta)):
                continue
            chans = [
                c
                for c in sta
                if _matches(c.location_code, q.get("location"), True)
                and _matches(c.code, q.get("channel"))
                and in_time(c)
            ]
            if not chans:
                continue
            sta = sta.copy()
            sta.channels = [] if level in ("network", "station") else chans
            if level == "channel":
                for c in sta.channels:
                    c.response = None
            stas.append(sta)
        if stas:
            net = net.copy()
            net.stations = [] if level == "network" else stas
            nets.append(net)
    return Inventory(networks=nets, source="quakelake-test")


class FdsnServer:
    """An fdsnws front on 127.0.0.1: station queries from StationXML, dataselect passed on.

    Args:
        stationxml: StationXML file whose content the station service serves.
        dataselect: URL of a real fdsnws-dataselect service to pass queries to (None: the
            front has no dataselect service).
        fail_first: answer 500 to the first N dataselect queries, then pass them on.
        nodata: answer 204 to every dataselect query.
        delay: seconds to wait before answering a dataselect query.
        busy_first: answer 503 with ``Retry-After: retry_after`` to the first N dataselect queries.
        retry_after: the ``Retry-After`` value of those answers (seconds).
        cut: how to cut dataselect bodies: ``boundary`` (at a record boundary, Content-Length of
            the cut body), ``inside`` (inside a record, Content-Length of the cut body) or
            ``incomplete`` (Content-Length of the whole body, connection closed after the cut).
        cut_first: cut only the first N dataselect bodies (None: every one).
        cut_fraction: where the cut falls, as a fraction of the body.
        trickle: seconds between chunks of ``trickle_bytes`` when sending a dataselect body.
    """

    def __init__(
        self,
        stationxml: Path,
        dataselect: str | None = None,
        fail_first: int = 0,
        nodata: bool = False,
        delay: float = 0.0,
        busy_first: int = 0,
        retry_after: str = "1",
        cut: str | None = None,
        cut_first: int | None = None,
        cut_fraction: float = 0.6,
        trickle: float = 0.0,
        trickle_bytes: int = 512,
    ):
        self.inventory = read_inventory(str(stationxml))
        self.dataselect = dataselect.rstrip("/") if dataselect else None
        self.fail_first = fail_first
        self.nodata = nodata
        self.delay = delay
        self.failures_left = fail_first
        self.busy_left = busy_first
        self.retry_after = retry_after
        self.cut = cut
        self.cuts_left = cut_first
        self.cut_fraction = cut_fraction
        self.trickle = trickle
        self.trickle_bytes = trickle_bytes
        #: (monotonic time, query string) of every dataselect query received.
        self.queries: list[tuple[float, str]] = []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The base URL (``http://127.0.0.1:PORT``) to give an FDSN client."""
        return f"http://127.0.0.1:{self.httpd.server_port}"

    def station_wadl(self) -> bytes:
        params = "".join(
            f'<param name="{n}" style="query" type="{t}"/>' for n, t in STATION_PARAMS.items()
        )
        return (
            '<?xml version="1.0"?><application xmlns="http://wadl.dev.java.net/2009/02" '
            'xmlns:xs="http://www.w3.org/2001/XMLSchema">'
            f'<resources base="{self.url}/fdsnws/station/1/">'
            '<resource path="query" id="query"><method name="GET"><request>'
            f"{params}</request></method></resource></resources></application>"
        ).encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def send(self, code: int, body: bytes = b"", ctype: str = "text/plain") -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body:
                    self.wfile.write(body)

            def do_GET(self) -> None:
                url = urlparse(self.path)
                if url.path.startswith("/fdsnws/station/1/"):
                    self.station(url.path.rsplit("/", 1)[-1], url.query)
                elif url.path.startswith("/fdsnws/dataselect/1/"):
                    self.dataselect(url.path.rsplit("/", 1)[-1], url.query)
                else:
                    self.send(404, b"not found")

            def station(self, endpoint: str, query: str) -> None:
                if endpoint == "version":
                    self.send(200, b"1.1.0")
                elif endpoint == "application.wadl":
                    self.send(200, server.station_wadl(), "application/xml")
                elif endpoint == "query":
                    q = {k: v[-1] for k, v in parse_qs(query).items()}
                    inv = filter_inventory(server.inventory, q)
                    if not inv.networks:
                        self.send(int(q.get("nodata", 204)))
                        return
                    buf = BytesIO()
                    inv.write(buf, format="STATIONXML")
                    self.send(200, buf.getvalue(), "application/xml")
                else:
                    self.send(404, b"not found")

            def dataselect(self, endpoint: str, query: str) -> None:
                if endpoint == "query":
                    with server.lock:
                        server.queries.append((time.monotonic(), query))
                        busy = server.busy_left > 0
                        server.busy_left -= int(busy)
                    if busy:
                        body = b"Service unavailable (test: busy on purpose)"
                        self.send_response(503)
                        self.send_header("Retry-After", server.retry_after)
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body)
                        return
                    if server.delay:
                        time.sleep(server.delay)
                    if server.nodata:
                        self.send(204)
                        return
                    with server.lock:
                        fail = server.failures_left > 0
                        server.failures_left -= int(fail)
                    if fail:
                        self.send(500, b"Internal server error (test: failing on purpose)")
                        return
                if server.dataselect is None:
                    self.send(404, b"no dataselect service here")
                    return
                target = f"{server.dataselect}/{endpoint}" + (f"?{query}" if query else "")
                try:
                    with urllib.request.urlopen(target, timeout=30) as r:
                        status, body = r.status, r.read()
                        ctype = r.headers.get("Content-Type", "text/plain")
                except urllib.error.HTTPError as e:
                    self.send(e.code, e.read())
                    return
                if endpoint == "query" and status == 200:
                    self.send_faulty(body, ctype)
                else:
                    self.send(status, body, ctype)

            def send_faulty(self, body: bytes, ctype: str) -> None:
                with server.lock:
                    cut = server.cut is not None and (
                        server.cuts_left is None or server.cuts_left > 0
                    )
                    if cut and server.cuts_left is not None:
                        server.cuts_left -= 1
                if cut:
                    mode = server.cut
                    length = get_record_information(BytesIO(body))["record_length"]
                    at = int(len(body) * server.cut_fraction)
                    at = max(length, at - at % length)  # a record boundary
                    if mode == "inside":
                        at = min(len(body) - 1, at + length // 3)
                    if mode == "incomplete":
                        self.send_response(200)
                        self.send_header("Content-Type", ctype)
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body[:at])
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    body = body[:at]
                if not server.trickle:
                    self.send(200, body, ctype)
                    return
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    for i in range(0, len(body), server.trickle_bytes):
                        self.wfile.write(body[i : i + server.trickle_bytes])
                        self.wfile.flush()
                        time.sleep(server.trickle)
                except OSError:  # the client gave up
                    self.close_connection = True

        return Handler

    def start(self) -> FdsnServer:
        self.thread.start()
        wait_for(f"{self.url}/fdsnws/station/1/version")
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> FdsnServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
