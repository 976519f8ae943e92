"""FDSN web service for events (fdsnws-event 1.2) over a lake: parameters, answers, errors.

Plain Python, no web framework here (:mod:`quakelake.service.webservice` is the HTTP app): the
parameters of a request are parsed and checked into an
:class:`~quakelake.lakehouse.published.EventFilter`, the lake is read through
:class:`~quakelake.lakehouse.published.LakeReader` (read-only, bound parameters, one snapshot)
and the answer is QuakeML 1.2 (ObsPy's writer, through :func:`quakelake.export.to_catalog`) or
the FDSN text format.

``asofdate`` (the INGV extension) answers from the lake as it was at that time: an answer once
published is given again, byte for byte, after the catalogue is reprocessed.

>>> parse_query([("start", "2020-10-01"), ("minmag", "2.5"), ("format", "text")]).format
'text'
>>> parse_query([("minmag", "big")])
Traceback (most recent call last):
...
quakelake.service.fdsnws.FdsnError: minmagnitude: 'big' is not a number
"""

from __future__ import annotations

import datetime as dt
import io
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from xml.sax.saxutils import escape

import pandas as pd

from quakelake.catalogs.export import RESOURCE_PREFIX, to_catalog
from quakelake.lakehouse.published import (
    EventFilter,
    LakeReader,
    split_catalog,
)

SERVICE_VERSION = "1.2.0"
BASE = "/fdsnws/event/1"
DEFAULT_MAX_RESULTS = 20_000
TEXT_HEADER = (
    "#EventID|Time|Latitude|Longitude|Depth/km|Author|Catalog|Contributor|ContributorID|"
    "MagType|Magnitude|MagAuthor|EventLocationName|EventType"
)
AUTHOR = "quakelake"

_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?Z?$")
_TEXT_VALUE = re.compile(r"^[\w.@:+\-/, ]{1,300}$")

# name -> (abbreviation, kind, (low, high)); the FDSN 1.2 query parameters and asofdate
_PARAMETERS: dict[str, tuple[str | None, str, tuple[float, float] | None]] = {
    "starttime": ("start", "time", None),
    "endtime": ("end", "time", None),
    "minlatitude": ("minlat", "float", (-90.0, 90.0)),
    "maxlatitude": ("maxlat", "float", (-90.0, 90.0)),
    "minlongitude": ("minlon", "float", (-180.0, 180.0)),
    "maxlongitude": ("maxlon", "float", (-180.0, 180.0)),
    "latitude": ("lat", "float", (-90.0, 90.0)),
    "longitude": ("lon", "float", (-180.0, 180.0)),
    "minradius": (None, "float", (0.0, 180.0)),
    "maxradius": (None, "float", (0.0, 180.0)),
    "mindepth": (None, "float", (-100.0, 7000.0)),
    "maxdepth": (None, "float", (-100.0, 7000.0)),
    "minmagnitude": ("minmag", "float", (-10.0, 12.0)),
    "maxmagnitude": ("maxmag", "float", (-10.0, 12.0)),
    "magnitudetype": ("magtype", "text", None),
    "eventtype": (None, "text", None),
    "includeallorigins": (None, "bool", None),
    "includeallmagnitudes": (None, "bool", None),
    "includearrivals": (None, "bool", None),
    "eventid": (None, "text", None),
    "limit": (None, "int", (1.0, 1e9)),
    "offset": (None, "int", (1.0, 1e9)),
    "orderby": (None, "choice", None),
    "catalog": (None, "text", None),
    "contributor": (None, "text", None),
    "updatedafter": (None, "time", None),
    "format": (None, "choice", None),
    "nodata": (None, "choice", None),
    "asofdate": (None, "time", None),
}
_CHOICES = {
    "orderby": ("time", "time-asc", "magnitude", "magnitude-asc"),
    "format": ("xml", "text"),
    "nodata": ("204", "404"),
}
_ALIASES = {abbr: name for name, (abbr, _, _) in _PARAMETERS.items() if abbr}
_DOCS = {
    "starttime": "Limit to events on or after the specified start time (UTC).",
    "endtime": "Limit to events on or before the specified end time (UTC).",
    "minlatitude": "Limit to events with a latitude larger than or equal to the specified minimum.",
    "maxlatitude": "Limit to events with a latitude smaller than or equal to the specified maximum.",
    "minlongitude": "Limit to events with a longitude larger than or equal to the specified minimum.",
    "maxlongitude": "Limit to events with a longitude smaller than or equal to the specified maximum.",
    "latitude": "Latitude of the centre of a radius search (degrees).",
    "longitude": "Longitude of the centre of a radius search (degrees).",
    "minradius": "Limit to events at least this many degrees from latitude/longitude.",
    "maxradius": "Limit to events at most this many degrees from latitude/longitude.",
    "mindepth": "Limit to events with depth (km) larger than or equal to the specified minimum.",
    "maxdepth": "Limit to events with depth (km) smaller than or equal to the specified maximum.",
    "minmagnitude": "Limit to events with a magnitude larger than or equal to the specified minimum.",
    "maxmagnitude": "Limit to events with a magnitude smaller than or equal to the specified maximum.",
    "magnitudetype": "Limit to events with a preferred magnitude of this type (ML).",
    "eventtype": "Limit to events of these types (comma separated; the lake holds earthquakes).",
    "includeallorigins": "Include all origins (each event has one).",
    "includeallmagnitudes": "Include station magnitudes and amplitudes.",
    "includearrivals": "Include picks and arrivals.",
    "eventid": "Select one event by its id (or its QuakeML resource id).",
    "limit": "Limit the results to the specified number of events.",
    "offset": "Return results starting at the event count specified, starting at 1.",
    "orderby": "Order the results: time, time-asc, magnitude, magnitude-asc.",
    "catalog": "Limit to events of one catalogue (PICK_SOURCE:ASSOCIATOR; see catalogs).",
    "contributor": "Limit to events of one associator (see contributors).",
    "updatedafter": "Limit to events committed to the lake after the specified time (UTC).",
    "format": "Answer as QuakeML (xml, the default) or as text.",
    "nodata": "HTTP status when there is no data: 204 (default) or 404.",
    "asofdate": "Answer from the lake as it was at this time (UTC): the same bytes after reprocessing.",
}


class FdsnError(ValueError):
    """A request the service refuses: ``status`` is the HTTP code, the message says why."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class EventQuery:
    """A checked fdsnws-event query."""

    filter: EventFilter = field(default_factory=EventFilter)
    format: str = "xml"
    nodata: int = 204
    include_arrivals: bool = False
    include_all_magnitudes: bool = False
    include_all_origins: bool = False
    event_types: tuple[str, ...] = ()
    catalog: str | None = None
    as_of: str | None = None
    limit_given: bool = False


def _time(name: str, text: str) -> dt.datetime:
    if not _TIME.match(text):
        raise FdsnError(f"{name}: {text!r} is not a time; give YYYY-MM-DDTHH:MM:SS[.ssssss] (UTC)")
    try:
        ts = pd.Timestamp(text.rstrip("Z"))
    except (ValueError, TypeError):
        raise FdsnError(f"{name}: {text!r} is not a valid date") from None
    return ts.tz_localize("UTC").to_pydatetime()


def _value(name: str, text: str) -> object:
    _, kind, bounds = _PARAMETERS[name]
    if kind == "time":
        return _time(name, text)
    if kind == "bool":
        if text.lower() not in ("true", "false"):
            raise FdsnError(f"{name}: {text!r} is not true or false")
        return text.lower() == "true"
    if kind == "choice":
        if text.lower() not in _CHOICES[name]:
            raise FdsnError(f"{name}: {text!r} is not one of {', '.join(_CHOICES[name])}")
        return text.lower()
    if kind == "text":
        if not _TEXT_VALUE.match(text):
            raise FdsnError(f"{name}: {text!r} holds characters this service does not accept")
        return text
    try:
        number = int(text) if kind == "int" else float(text)
    except ValueError:
        what = "a whole number" if kind == "int" else "a number"
        raise FdsnError(f"{name}: {text!r} is not {what}") from None
    if bounds is not None and not (math.isfinite(number) and bounds[0] <= number <= bounds[1]):
        raise FdsnError(f"{name}: {text} is outside [{bounds[0]:g}, {bounds[1]:g}]")
    return number


def parse_query(
    items: Iterable[tuple[str, str]], max_results: int = DEFAULT_MAX_RESULTS
) -> EventQuery:
    """Return the checked query of the URL parameters ``items`` (abbreviations accepted).

    Raises:
        FdsnError: an unknown or repeated parameter, a bad value, contradicting bounds (400),
            or a ``limit`` above ``max_results`` (413).
    """
    given: dict[str, object] = {}
    for raw, text in items:
        name = _ALIASES.get(raw.lower(), raw.lower())
        if name not in _PARAMETERS:
            raise FdsnError(
                f"unknown parameter {raw!r}; see {BASE}/application.wadl for the parameters"
            )
        if name in given:
            raise FdsnError(f"{name}: given more than once")
        given[name] = _value(name, text.strip())
    g = given.get
    for low, high in (
        ("starttime", "endtime"),
        ("minlatitude", "maxlatitude"),
        ("mindepth", "maxdepth"),
        ("minmagnitude", "maxmagnitude"),
        ("minradius", "maxradius"),
    ):
        lo, hi = g(low), g(high)
        if lo is not None and hi is not None and lo > hi:  # type: ignore[operator]
            raise FdsnError(f"{low} ({lo}) is larger than {high} ({hi})")
    radius = [n for n in ("latitude", "longitude", "minradius", "maxradius") if n in given]
    if radius and not {"latitude", "longitude"} <= set(given):
        raise FdsnError(f"{', '.join(radius)}: a radius search needs both latitude and longitude")
    if set(radius) & {"latitude", "longitude"} and not {"minradius", "maxradius"} & set(given):
        given["maxradius"] = 180.0
    limit = g("limit")
    if limit is not None and int(limit) > max_results:  # type: ignore[call-overload]
        raise FdsnError(
            f"limit: {limit} is more than the {max_results} events this service returns at once; "
            "ask for fewer (limit, offset) or a narrower query",
            413,
        )
    catalogs: tuple[tuple[str, str], ...] = ()
    if g("catalog"):
        catalogs = (split_catalog(str(g("catalog"))),)
    event_ids: tuple[str, ...] = ()
    if g("eventid"):
        event_ids = tuple(
            e.strip().rsplit("/", 1)[-1] if e.strip().startswith(RESOURCE_PREFIX) else e.strip()
            for e in str(g("eventid")).split(",")
        )
    flt = EventFilter(
        start=g("starttime"),  # type: ignore[arg-type]
        end=g("endtime"),  # type: ignore[arg-type]
        min_latitude=g("minlatitude"),  # type: ignore[arg-type]
        max_latitude=g("maxlatitude"),  # type: ignore[arg-type]
        min_longitude=g("minlongitude"),  # type: ignore[arg-type]
        max_longitude=g("maxlongitude"),  # type: ignore[arg-type]
        latitude=g("latitude"),  # type: ignore[arg-type]
        longitude=g("longitude"),  # type: ignore[arg-type]
        min_radius=g("minradius"),  # type: ignore[arg-type]
        max_radius=g("maxradius"),  # type: ignore[arg-type]
        min_depth=g("mindepth"),  # type: ignore[arg-type]
        max_depth=g("maxdepth"),  # type: ignore[arg-type]
        min_magnitude=g("minmagnitude"),  # type: ignore[arg-type]
        max_magnitude=g("maxmagnitude"),  # type: ignore[arg-type]
        magnitude_type=g("magnitudetype"),  # type: ignore[arg-type]
        event_ids=event_ids,
        catalogs=catalogs,
        contributors=tuple(str(g("contributor")).split(",")) if g("contributor") else (),
        updated_after=g("updatedafter"),  # type: ignore[arg-type]
        order=str(g("orderby") or "time"),
        limit=min(int(limit), max_results) if limit is not None else max_results + 1,  # type: ignore[call-overload]
        offset=int(g("offset") or 1) - 1,  # type: ignore[call-overload]
    )
    as_of = g("asofdate")
    return EventQuery(
        filter=flt,
        format=str(g("format") or "xml"),
        nodata=int(str(g("nodata") or "204")),
        include_arrivals=bool(g("includearrivals") or False),
        include_all_magnitudes=bool(g("includeallmagnitudes") or False),
        include_all_origins=bool(g("includeallorigins") or False),
        event_types=tuple(t.strip().lower() for t in str(g("eventtype")).split(","))
        if g("eventtype")
        else (),
        catalog=str(g("catalog")) if g("catalog") else None,
        as_of=as_of.isoformat() if isinstance(as_of, dt.datetime) else None,
        limit_given=limit is not None,
    )


@dataclass
class Answer:
    """What the service answers: status, media type and body (empty for 204)."""

    status: int
    media_type: str
    body: bytes


def snapshot_of(reader: LakeReader, as_of: str | None) -> int:
    """Return the snapshot a request reads (``asofdate`` or now); refuse a time before the lake."""
    from quakelake.lakehouse import LakeQueryError

    try:
        return reader.snapshot(as_of)
    except LakeQueryError as exc:
        raise FdsnError(f"asofdate: {str(exc).split(': ', 1)[-1]}") from None


def query_events(
    reader: LakeReader, query: EventQuery, max_results: int = DEFAULT_MAX_RESULTS
) -> Answer:
    """Answer one fdsnws-event query (QuakeML or text; 204/404 when nothing matches).

    Raises:
        FdsnError: 413 when more than ``max_results`` events match and no ``limit`` was given.
    """
    snapshot = snapshot_of(reader, query.as_of)
    wanted = not query.event_types or "earthquake" in query.event_types
    lines: list[str] = []
    events = pd.DataFrame()
    if wanted and query.format == "text":
        lines = reader.events_text(query.filter, snapshot, AUTHOR)
    elif wanted:
        events = reader.events(query.filter, snapshot)
    found = len(lines) or len(events)
    if not query.limit_given and found > max_results:
        raise FdsnError(
            f"more than {max_results} events match; ask for fewer with limit and offset, "
            "or narrow the query (time, region, magnitude)",
            413,
        )
    if not found:
        if query.nodata == 404:
            raise FdsnError("no events match the query", 404)
        return Answer(204, "text/plain", b"")
    if query.format == "text":
        body = TEXT_HEADER + "\n" + "\n".join(lines) + "\n"
        return Answer(200, "text/plain; charset=utf-8", body.encode())
    return Answer(200, "application/xml", quakeml(reader, events, query, snapshot))


def quakeml(reader: LakeReader, events: pd.DataFrame, query: EventQuery, snapshot: int) -> bytes:
    """Return ``events`` as QuakeML 1.2 (ObsPy's writer), with arrivals/magnitudes when asked."""
    picks = reader.arrivals(events, snapshot) if query.include_arrivals else None
    amplitudes = station_mags = None
    if query.include_all_magnitudes:
        amplitudes = reader.amplitudes(events, snapshot)
        station_mags = reader.station_magnitudes(events, snapshot)
    catalog = to_catalog(
        events, picks, creator=AUTHOR, amplitudes=amplitudes, station_magnitudes=station_mags
    )
    catalog.creation_info = None
    buf = io.BytesIO()
    catalog.write(buf, format="QUAKEML")
    return buf.getvalue()


def _simple_list(tag: str, items: Iterable[str]) -> bytes:
    body = "".join(f"<{tag}>{escape(i)}</{tag}>" for i in items)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<{tag}s>{body}</{tag}s>\n'.encode()


def catalogs_xml(reader: LakeReader) -> bytes:
    """Return the ``catalogs`` answer: one ``<Catalog>`` per pick source x associator."""
    frame = reader.catalogs(reader.snapshot())
    return _simple_list("Catalog", [str(c) for c in frame["catalog"]])


def contributors_xml(reader: LakeReader) -> bytes:
    """Return the ``contributors`` answer: one ``<Contributor>`` per associator."""
    return _simple_list("Contributor", reader.contributors(reader.snapshot()))


_WADL_TYPES = {
    "time": "xs:dateTime",
    "float": "xs:double",
    "int": "xs:int",
    "bool": "xs:boolean",
    "text": "xs:string",
    "choice": "xs:string",
}


def wadl(base_url: str) -> bytes:
    """Return the service's WADL (application.wadl): the query method and every parameter."""
    params = []
    for name, (_, kind, _) in _PARAMETERS.items():
        options = "".join(f'<option value="{v}"/>' for v in _CHOICES.get(name, ()))
        default = {
            "format": "xml",
            "nodata": "204",
            "orderby": "time",
            "includearrivals": "false",
            "includeallorigins": "false",
            "includeallmagnitudes": "false",
        }.get(name)
        default_attr = f' default="{default}"' if default else ""
        params.append(
            f'        <param name="{name}" style="query" type="{_WADL_TYPES[kind]}" '
            f'required="false"{default_attr}><doc xml:lang="en" title="{name}">'
            f"{escape(_DOCS[name])}</doc>{options}</param>"
        )
    joined = "\n".join(params)
    simple = "".join(
        f'\n    <resource path="{p}"><method name="GET" id="{p}"><response>'
        f'<representation mediaType="{m}"/></response></method></resource>'
        for p, m in (
            ("version", "text/plain"),
            ("catalogs", "application/xml"),
            ("contributors", "application/xml"),
            ("application.wadl", "application/xml"),
        )
    )
    text = f"""<?xml version="1.0" encoding="UTF-8"?>
<application xmlns="http://wadl.dev.java.net/2009/02" xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <doc title="FDSN event web service 1.2 of a QuakeLake lake"/>
  <resources base="{escape(base_url)}">
    <resource path="query">
      <method name="GET" id="query">
        <request>
{joined}
        </request>
        <response status="200"><representation mediaType="application/xml"/><representation mediaType="text/plain"/></response>
        <response status="204 400 404 413 500 503"><representation mediaType="text/plain"/></response>
      </method>
    </resource>{simple}
  </resources>
</application>
"""
    return text.encode()


def error_body(status: int, message: str, url: str) -> str:
    """Return the FDSN error document (plain text) for ``status`` and ``message``."""
    from http import HTTPStatus

    phrase = HTTPStatus(status).phrase
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return (
        f"Error {status}: {phrase}\n\n{message}\n\n"
        f"Usage details are available from {BASE}/application.wadl\n\n"
        f"Request:\n{url}\n\nRequest Submitted:\n{now}\n\nService version:\n{SERVICE_VERSION}\n"
    )


def with_limit(query: EventQuery, limit: int) -> EventQuery:
    """Return ``query`` limited to ``limit`` events (the page's own queries)."""
    return replace(query, filter=replace(query.filter, limit=limit), limit_given=True)
