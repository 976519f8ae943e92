"""The HTTP app of ``quakelake serve``: fdsnws-event 1.2, the web page and its JSON (FastAPI).

Read-only over one lake: no URL reaches the catalog as SQL (typed queries with bound
parameters, :mod:`quakelake.lakehouse.published`), results are capped (``max_results``),
every statement is stopped after ``timeout_s``, error bodies are the FDSN plain-text document
without paths or tracebacks. Every asset of the page is served from the package
(``quakelake/service/static``: Leaflet, topojson-client, Natural Earth coastlines and borders from
world-atlas); a tile server is used only when ``tiles`` names one.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from quakelake.lakehouse import Lake
from quakelake.lakehouse.published import LakeReader, QueryTimeout
from quakelake.service import event_page, fdsnws

log = logging.getLogger(__name__)
STATIC = Path(str(resources.files("quakelake") / "service" / "static"))
_PAGE_PARAMS = {"starttime", "endtime", "minmagnitude", "maxmagnitude", "catalog", "limit"}
PAGE_LIMIT = 5000


def _csp(tiles: str | None) -> str:
    img = "'self' data:"
    if tiles:
        parts = urlsplit(tiles.replace("{s}", "a"))
        host = f"{parts.scheme}://{parts.netloc}".replace("://a.", "://*.")
        img += f" {host}"
    return (
        f"default-src 'self'; img-src {img}; style-src 'self' 'unsafe-inline'; "
        "script-src 'self'; connect-src 'self'; frame-ancestors 'none'"
    )


def create_app(
    lake: Lake | str | Path,
    tiles: str | None = None,
    max_results: int = fdsnws.DEFAULT_MAX_RESULTS,
    timeout_s: float = 10.0,
) -> FastAPI:
    """Return the app serving ``lake`` (read-only).

    Args:
        lake: the lake (its catalog must exist).
        tiles: a tile URL template (``https://tile.openstreetmap.org/{z}/{x}/{y}.png``) for the
            map's background; None: Natural Earth coastlines and borders only (no internet).
        max_results: the most events one answer holds (more: 413, or ``limit``).
        timeout_s: seconds a lake query may run before it is stopped (503).
    """
    reader = LakeReader(lake if isinstance(lake, Lake) else Lake(lake), timeout_s=timeout_s)
    app = FastAPI(
        title="QuakeLake event service",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.reader = reader
    pngs: OrderedDict[tuple[int, str], bytes] = OrderedDict()  # drawn waveforms, per snapshot
    png_lock = threading.Lock()
    csp = _csp(tiles)

    def fdsn_error(request: Request, status: int, message: str) -> PlainTextResponse:
        return PlainTextResponse(
            fdsnws.error_body(status, message, str(request.url)), status_code=status
        )

    @app.middleware("http")
    async def headers(request: Request, call_next):
        try:
            response = await call_next(request)
        except Exception:  # never a traceback in a body: the log has it
            log.exception("request %s failed", request.url.path)
            response = fdsn_error(request, 500, "the service failed to answer; see its log")
        response.headers["Content-Security-Policy"] = csp
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    @app.exception_handler(fdsnws.FdsnError)
    async def refused(request: Request, exc: fdsnws.FdsnError):
        return fdsn_error(request, exc.status, str(exc))

    @app.exception_handler(QueryTimeout)
    async def slow(request: Request, exc: QueryTimeout):
        return fdsn_error(request, 503, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        message = "no such resource" if exc.status_code == 404 else str(exc.detail)
        return fdsn_error(request, exc.status_code, message)

    # -- fdsnws-event 1.2 ---------------------------------------------------------------------
    @app.get(fdsnws.BASE + "/query")
    def query(request: Request) -> Response:
        q = fdsnws.parse_query(request.query_params.multi_items(), max_results)
        answer = fdsnws.query_events(reader, q, max_results)
        if answer.status == 204:
            return Response(status_code=204)
        return Response(answer.body, status_code=answer.status, media_type=answer.media_type)

    def no_parameters(request: Request) -> None:
        if request.query_params:
            name = next(iter(request.query_params))
            raise fdsnws.FdsnError(f"unknown parameter {name!r}; this resource takes none")

    @app.get(fdsnws.BASE + "/version")
    def version(request: Request) -> PlainTextResponse:
        no_parameters(request)
        return PlainTextResponse(fdsnws.SERVICE_VERSION)

    @app.get(fdsnws.BASE + "/application.wadl")
    def application_wadl(request: Request) -> Response:
        no_parameters(request)
        base = str(request.base_url).rstrip("/") + fdsnws.BASE
        return Response(fdsnws.wadl(base), media_type="application/xml")

    @app.get(fdsnws.BASE + "/catalogs")
    def catalogs(request: Request) -> Response:
        no_parameters(request)
        return Response(fdsnws.catalogs_xml(reader), media_type="application/xml")

    @app.get(fdsnws.BASE + "/contributors")
    def contributors(request: Request) -> Response:
        no_parameters(request)
        return Response(fdsnws.contributors_xml(reader), media_type="application/xml")

    @app.get(fdsnws.BASE + "/")
    def service_index() -> HTMLResponse:
        links = "".join(
            f'<li><a href="{fdsnws.BASE}/{p}">{p}</a></li>'
            for p in (
                "query?limit=10&format=text",
                "version",
                "application.wadl",
                "catalogs",
                "contributors",
            )
        )
        return HTMLResponse(
            f"<!doctype html><title>fdsnws-event</title><h1>FDSN event web service 1.2</h1>"
            f"<p>QuakeLake's catalogue. Extension: <code>asofdate</code> answers from the lake as "
            f"it was at that time.</p><ul>{links}</ul>"
        )

    # -- the page -------------------------------------------------------------------------------
    @app.get("/")
    def page() -> HTMLResponse:
        return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"))

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/api/config")
    def config() -> JSONResponse:
        return JSONResponse({"tiles": tiles, "service": fdsnws.BASE, "page_limit": PAGE_LIMIT})

    @app.get("/api/state")
    def lake_state() -> JSONResponse:
        return JSONResponse(event_page.state(reader))

    @app.get("/api/events")
    def page_events(request: Request) -> JSONResponse:
        items = request.query_params.multi_items()
        for name, _ in items:
            if name not in _PAGE_PARAMS:
                raise fdsnws.FdsnError(f"unknown parameter {name!r}")
        q = fdsnws.parse_query(items, max_results)
        limit = q.filter.limit if q.limit_given else PAGE_LIMIT
        q = fdsnws.with_limit(q, min(limit or PAGE_LIMIT, PAGE_LIMIT))
        return JSONResponse(event_page.events(reader, q.filter))

    @app.get("/api/stations")
    def page_stations() -> JSONResponse:
        return JSONResponse(event_page.stations(reader))

    @app.get("/api/catalogs")
    def page_catalogs() -> JSONResponse:
        return JSONResponse(event_page.catalogs(reader))

    @app.get("/api/event")
    def page_event(request: Request) -> JSONResponse:
        event_id = _event_id(request)
        found = event_page.event(reader, event_id)
        if found is None:
            raise fdsnws.FdsnError(f"eventid: no event {event_id!r} in the lake", 404)
        return JSONResponse(found)

    @app.get("/api/waveforms.png")
    def page_waveforms(request: Request) -> Response:
        event_id = _event_id(request)
        key = (reader.snapshot(), event_id)
        with png_lock:
            png = pngs.get(key)
        if png is None:
            png = event_page.waveform_png(reader, event_id)
            if png is None:
                raise fdsnws.FdsnError(f"eventid: no event {event_id!r} in the lake", 404)
            with png_lock:
                pngs[key] = png
                while len(pngs) > 64:
                    pngs.popitem(last=False)
        return Response(png, media_type="image/png")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _event_id(request: Request) -> str:
    items = request.query_params.multi_items()
    if [n for n, _ in items] != ["eventid"]:
        raise fdsnws.FdsnError("give one parameter: eventid")
    return str(fdsnws.parse_query(items).filter.event_ids[0])


def serve(
    lake: Path,
    host: str = "127.0.0.1",
    port: int = 8080,
    tiles: str | None = None,
    max_results: int = fdsnws.DEFAULT_MAX_RESULTS,
    timeout_s: float = 10.0,
) -> None:
    """Serve ``lake`` with uvicorn until interrupted."""
    import uvicorn

    app = create_app(lake, tiles=tiles, max_results=max_results, timeout_s=timeout_s)
    print(
        f"serving lake {lake} on http://{host}:{port}/ (fdsnws-event at "
        f"http://{host}:{port}{fdsnws.BASE}/); Ctrl-C stops",
        flush=True,
    )
    uvicorn.run(app, host=host, port=port, log_level="info", server_header=False)
