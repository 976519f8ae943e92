"""Waveform and station downloads from FDSN data centres into a local SDS archive.

Plain Python (no Prefect): ObsPy's FDSN :class:`~obspy.clients.fdsn.Client` does the protocol,
:mod:`quakelake.archive.fdsn` the client handling (cached clients, EIDA tokens, retries, deadlines) and
:mod:`quakelake.archive.sds` the archive layout (paths, whole records, atomic writes); this module plans
the units and makes each one complete.
One unit of work is one (station, day): its miniSEED records are fetched with a single
``get_waveforms`` request, split per channel and written to the SDS layout::

    <archive>/<YEAR>/<NET>/<STA>/<CHA>.D/<NET>.<STA>.<LOC>.<CHA>.D.<YEAR>.<DOY>

Files are written under ``<archive>/.incoming/`` and renamed into place, so a reader (or a
killed run) never sees a partial file.

Every unit is checked for completeness before it counts as ``ok``: the response is cut into whole
miniSEED records (a record cut by a short body is dropped, never written), each record goes to
the file of its own channel, and a channel that is missing or ends before the day does is asked
for again from where it stops. The unit is ``ok`` once the data centre confirms it has nothing
more; when the missing part cannot be fetched the unit is ``partial``: its gap is recorded in the
ledger and in ``<archive>/.partial/<NET.STA.DAY>.json``, and the next run fetches only that part.

Requests honour ``Retry-After``, retry a truncated body and have an overall deadline, so a
server that trickles bytes cannot hold a unit for longer than ``request_deadline`` seconds. Station metadata lands as StationXML per network in
``<archive>/stations/<NET>.xml``.

Example:
    >>> from quakelake.params import StationSelection, TimeWindow
    >>> params = DownloadParams(clients=["INGV", "GFZ"], channel_priorities=["HH?", "EH?"])
    >>> plan = plan_downloads("archive", TimeWindow(start="2024-03-01", end="2024-03-01"),
    ...                       StationSelection(networks=["IV"]), params)   # doctest: +SKIP
    >>> results = [download_unit(u, "archive", params) for u in plan.units]  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal

from obspy import Inventory, UTCDateTime, read_inventory
from obspy import read as read_waveforms
from obspy.clients.fdsn import Client
from obspy.clients.fdsn.header import (
    FDSNException,
)
from pydantic import Field

from quakelake import ids
from quakelake.archive.fdsn import (
    call_with_retries,
    dataselect_url,
    fdsn_client,
    fdsn_list,
    http_get,
    is_no_data,
    read_token,
    request_slot,
)
from quakelake.archive.sds import (
    INCOMING,
    PARTIAL,
    ChannelKey,
    Record,
    incoming_file,
    parse_records,
    records_by_channel,
    sds_path,
    station_file,
)
from quakelake.errors import short_error
from quakelake.lakehouse.atomic import atomic_write
from quakelake.lakehouse.lineage import where_label
from quakelake.params import StationSelection, TimeWindow
from quakelake.params.base import ParamModel
from quakelake.params.download import DownloadParams

log = logging.getLogger(__name__)

#: Ledger statuses of a unit (the ``downloads`` table's ``status`` column).
Status = Literal["ok", "partial", "skipped", "no_data", "failed"]


class DownloadUnit(ParamModel):
    """One (station, day) to fetch: which channels are expected and which centres may serve it."""

    network: str
    station: str
    day: dt.date
    channels: list[tuple[str, str]] = Field(..., description="(location, channel) pairs expected")
    clients: list[str] = Field(..., description="client names to try, in order")

    @property
    def key(self) -> str:
        """Return ``NET.STA.YYYY-MM-DD``, the unit's name in ledgers."""
        return ids.unit_key(self.network, self.station, self.day.isoformat())


class DownloadPlan(ParamModel):
    """What the station services returned: the units to fetch and the StationXML files written."""

    units: list[DownloadUnit] = Field(default_factory=list)
    station_files: list[Path] = Field(default_factory=list)
    station_sources: dict[str, str] = Field(
        default_factory=dict, description="NET.STA -> client whose metadata was kept"
    )
    client_errors: dict[str, str] = Field(
        default_factory=dict, description="client name -> why its station service gave nothing"
    )
    unreachable: list[str] = Field(
        default_factory=list, description="clients whose services could not be discovered at all"
    )


@dataclass
class DownloadResult:
    """What one unit did: one row of the ``downloads`` ledger table."""

    network: str
    station: str
    day: str
    client: str
    status: str
    bytes: int = 0
    path: str = ""
    error: str = ""
    seconds: float = 0.0
    finished: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    where: str = field(default_factory=lambda: where_label())

    def row(self) -> dict[str, Any]:
        """Return the ledger row as a mapping (without run_id)."""
        row = asdict(self)
        row.pop("where")
        return row


# --------------------------------------------------------------------------- stations


def station_query(
    window: TimeWindow, selection: StationSelection, params: DownloadParams
) -> dict[str, Any]:
    """Return the ``get_stations`` keyword arguments for the window, selection and domain."""
    days = window.days()
    channels = selection.channels
    if channels == ["*"] and params.channel_priorities:
        channels = params.channel_priorities
    query: dict[str, Any] = {
        "network": fdsn_list(selection.networks),
        "station": fdsn_list(selection.stations),
        "location": fdsn_list(selection.locations, location=True),
        "channel": fdsn_list(channels),
        "starttime": UTCDateTime(days[0].isoformat()),
        "endtime": UTCDateTime((days[-1] + dt.timedelta(days=1)).isoformat()),
        "level": params.station_level,
    }
    if params.rectdomain:
        query.update(params.rectdomain.model_dump())
    if params.circdomain:
        query.update(params.circdomain.model_dump())
    return query


def fetch_inventories(
    window: TimeWindow,
    selection: StationSelection,
    params: DownloadParams,
    token: str | None = None,
) -> tuple[dict[str, Inventory], dict[str, str], list[str]]:
    """Return each client's station inventory, per client why it gave none, and the unreachable.

    A client that answers "no data" is left out silently; one that fails (timeout, 5xx after
    retries, unreachable) is named in the errors and does not stop the others. Unreachable
    clients (services not discoverable) are listed apart: units do not try them again.
    """
    query = station_query(window, selection, params)
    inventories: dict[str, Inventory] = {}
    errors: dict[str, str] = {}
    unreachable: list[str] = []
    for spec in params.clients:
        try:
            client = call_with_retries(
                lambda s=spec: fdsn_client(s, params.timeout, token),
                params,
                f"{spec.name} services",
            )
        except Exception as exc:
            errors[spec.name] = short_error(exc)
            unreachable.append(spec.name)
            log.warning("FDSN client %s is unreachable: %s", spec.name, errors[spec.name])
            continue
        try:
            inv = call_with_retries(
                lambda c=client: c.get_stations(**query), params, f"{spec.name} stations"
            )
        except Exception as exc:
            if is_no_data(exc):
                continue
            errors[spec.name] = short_error(exc)
            log.warning("FDSN client %s: station service failed: %s", spec.name, errors[spec.name])
            continue
        inventories[spec.name] = inv
    return inventories, errors, unreachable


def _select(inv: Inventory, selection: StationSelection) -> Inventory:
    """Return ``inv`` restricted to channels the selection matches (``--`` = empty location)."""
    nets = []
    for net in inv:
        stas = []
        for sta in net:
            chans = [
                c for c in sta if selection.matches(net.code, sta.code, c.location_code, c.code)
            ]
            if chans:
                sta = sta.copy()
                sta.channels = chans
                stas.append(sta)
        if stas:
            net = net.copy()
            net.stations = stas
            nets.append(net)
    return Inventory(networks=nets, source=inv.source, sender=inv.sender)


def merge_inventories(inventories: dict[str, Inventory]) -> tuple[Inventory, dict[str, str]]:
    """Return one inventory with each station from the first client listing it, and its source."""
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, inv in inventories.items():
        for net in inv:
            if net.code not in merged:
                merged[net.code] = net.copy()
                merged[net.code].stations = []
            for sta in net:
                key = f"{net.code}.{sta.code}"
                if key in sources:
                    continue
                sources[key] = name
                merged[net.code].stations.append(sta)
    return Inventory(networks=list(merged.values()), source="quakelake"), sources


def write_station_files(archive: Path, inventory: Inventory) -> list[Path]:
    """Write ``inventory`` as one StationXML file per network (atomic), keeping earlier stations.

    Stations already in ``<archive>/stations/<NET>.xml`` but absent from ``inventory`` are kept,
    so successive downloads with different selections accumulate.
    """
    paths = []
    for net in inventory:
        path = station_file(archive, net.code)
        net = net.copy()
        if path.is_file():
            new_codes = {s.code for s in net}
            for old_net in read_inventory(str(path)):
                if old_net.code == net.code:
                    net.stations.extend(s for s in old_net if s.code not in new_codes)
        net.stations.sort(key=lambda s: s.code)
        inv = Inventory(networks=[net], source="quakelake")
        buf = io.BytesIO()
        inv.write(buf, format="STATIONXML")
        atomic_write(path, buf.getvalue(), temporary=incoming_file(archive, path, "stations"))
        paths.append(path)
    return paths


# --------------------------------------------------------------------------- planning


def _active(epoch: Any, day: dt.date) -> bool:
    start = UTCDateTime(day.isoformat())
    end = start + 86400
    return (epoch.start_date is None or epoch.start_date < end) and (
        epoch.end_date is None or epoch.end_date > start
    )


def choose_channels(station: Any, day: dt.date, priorities: list[str]) -> list[tuple[str, str]]:
    """Return the (location, channel) pairs of ``station`` to fetch on ``day``.

    The first priority pattern (e.g. ``HH?``) with channels active that day wins; without
    priorities every active channel is returned.
    """
    active = sorted({(c.location_code, c.code) for c in station if _active(c, day)})
    if not priorities:
        return active
    for pattern in priorities:
        chosen = [(loc, cha) for loc, cha in active if fnmatchcase(cha, pattern)]
        if chosen:
            return chosen
    return []


def plan_units(
    inventory: Inventory,
    candidates: dict[str, list[str]],
    window: TimeWindow,
    params: DownloadParams,
) -> list[DownloadUnit]:
    """Return one unit per (station, day) with channels to fetch, in network/station/day order.

    Args:
        inventory: the stations to fetch, with their channel epochs.
        candidates: ``NET.STA`` -> client names to try for that station, in order.
        window: the days.
        params: channel priorities.
    """
    units = []
    for net in sorted(inventory, key=lambda n: n.code):
        for sta in sorted(net, key=lambda s: s.code):
            clients = candidates.get(f"{net.code}.{sta.code}", [])
            for day in window.days():
                channels = choose_channels(sta, day, params.channel_priorities)
                if channels and clients:
                    units.append(
                        DownloadUnit(
                            network=net.code,
                            station=sta.code,
                            day=day,
                            channels=channels,
                            clients=clients,
                        )
                    )
    return units


def plan_downloads(
    archive: Path,
    window: TimeWindow,
    selection: StationSelection,
    params: DownloadParams,
    token: str | None = None,
) -> DownloadPlan:
    """Query every client's station service, write StationXML per network, return the units.

    A unit tries first the clients that list its station (in ``params.clients`` order), then
    the clients whose station service failed (they may still serve the waveforms).

    Raises:
        ConfigError: when the window lacks a start or an end day.
    """
    archive = Path(archive)
    inventories, errors, unreachable = fetch_inventories(window, selection, params, token)
    selected = {name: _select(inv, selection) for name, inv in inventories.items()}
    merged, sources = merge_inventories(selected)
    candidates: dict[str, list[str]] = {}
    for name, inv in selected.items():
        for net in inv:
            for sta in net:
                candidates.setdefault(f"{net.code}.{sta.code}", []).append(name)
    failed = [c.name for c in params.clients if c.name in errors and c.name not in unreachable]
    for key in candidates:
        candidates[key] += failed
    units = plan_units(merged, candidates, window, params)
    files = write_station_files(archive, merged) if len(merged.networks) else []
    return DownloadPlan(
        units=units,
        station_files=files,
        station_sources=sources,
        client_errors=errors,
        unreachable=unreachable,
    )


# --------------------------------------------------------------------------- one unit


def unit_paths(unit: DownloadUnit, archive: Path) -> list[Path]:
    """Return the SDS files a complete unit has (one per expected channel)."""
    return [
        sds_path(archive, unit.network, unit.station, loc, cha, unit.day)
        for loc, cha in unit.channels
    ]


def partial_marker(archive: Path, unit: DownloadUnit) -> Path:
    """Return the file recording the gap of a partial unit (absent once the unit is complete)."""
    return Path(archive) / PARTIAL / f"{unit.key}.json"


def _clean_stale(archive: Path, unit: DownloadUnit) -> None:
    """Remove temporary files a killed run left for this unit."""
    incoming = archive / INCOMING
    if not incoming.is_dir():
        return
    for tmp in incoming.glob(f"{unit.key}.*.part"):
        tmp.unlink(missing_ok=True)


def _fetch(
    client: Client,
    name: str,
    unit: DownloadUnit,
    params: DownloadParams,
    channels: list[tuple[str, str]] | None = None,
    start: UTCDateTime | None = None,
) -> bytes:
    """Return the miniSEED bytes of ``unit`` (or of ``channels`` from ``start`` to the day's end)."""
    day_start = UTCDateTime(unit.day.isoformat())
    url = dataselect_url(
        client,
        unit.network,
        unit.station,
        channels or unit.channels,
        start or day_start,
        day_start + 86400,
    )

    def request() -> bytes:
        with request_slot(name, params.max_concurrent):
            return http_get(client, url, params)

    return call_with_retries(request, params, f"{unit.key}")


def _fmt(t: UTCDateTime, day: dt.date) -> str:
    if t >= UTCDateTime((day + dt.timedelta(days=1)).isoformat()):
        return "24:00:00"
    return t.strftime("%H:%M:%S")


def _missing(
    unit: DownloadUnit, by_channel: dict[ChannelKey, list[Record]], confirmed: set[tuple[str, str]]
) -> dict[tuple[str, str], UTCDateTime]:
    """Return each expected channel that lacks data up to the day's end -> where its data stop."""
    day_start = UTCDateTime(unit.day.isoformat())
    day_end = day_start + 86400
    out = {}
    for loc, cha in unit.channels:
        if (loc, cha) in confirmed:
            continue
        records = by_channel.get((unit.network, unit.station, loc, cha), [])
        if not records:
            out[(loc, cha)] = day_start
            continue
        tail = max(r.end for r in records)
        if tail < day_end - 1e-3:
            out[(loc, cha)] = tail
    return out


def _decodes(blob: bytes) -> str:
    """Return why ``blob`` does not decode as miniSEED ("" when it does)."""
    try:
        read_waveforms(io.BytesIO(blob), format="MSEED")
    except Exception as exc:
        return short_error(exc)
    return ""


def _existing_records(unit: DownloadUnit, archive: Path) -> list[Record]:
    records: list[Record] = []
    for path in unit_paths(unit, archive):
        if path.is_file():
            records += parse_records(path.read_bytes())[0]
    return records


def download_unit(
    unit: DownloadUnit,
    archive: Path,
    params: DownloadParams,
    token: str | None = None,
    force: bool = False,
) -> DownloadResult:
    """Fetch one (station, day) into the SDS archive, check it is complete, return its ledger row.

    Skips the unit when every expected channel file exists and no gap is recorded for it
    (unless ``force``); a unit recorded ``partial`` asks only for its missing part. Tries the
    unit's clients in order: "no data" or a failure falls through to the next client. The row's
    status is ``ok`` (complete: every expected channel up to the end of the day, or up to where
    the data centre confirms it has nothing more), ``partial`` (a part could not be fetched; the
    gap is in ``error`` and in the unit's ``.partial`` marker), ``skipped``, ``no_data`` (every
    client answered 204/404) or ``failed``; ``error`` keeps what each failing client said (never
    the token).
    """
    archive = Path(archive)
    t0 = time.perf_counter()
    paths = unit_paths(unit, archive)
    rel = ";".join(str(p.relative_to(archive)) for p in paths)
    base: dict[str, Any] = {
        "network": unit.network,
        "station": unit.station,
        "day": unit.day.isoformat(),
    }
    _clean_stale(archive, unit)
    marker = partial_marker(archive, unit)
    if not force and not marker.exists() and all(p.is_file() for p in paths):
        size = sum(p.stat().st_size for p in paths)
        return DownloadResult(
            **base,
            client="",
            status="skipped",
            bytes=size,
            path=rel,
            seconds=time.perf_counter() - t0,
        )
    held = [] if force else _existing_records(unit, archive)
    errors: list[str] = []
    no_data: list[str] = []
    best: tuple[str, dict[ChannelKey, list[Record]], dict[tuple[str, str], UTCDateTime], str] | None
    best = None
    for name in unit.clients:
        try:
            client = call_with_retries(
                lambda n=name: fdsn_client(params.client(n), params.timeout, token),
                params,
                f"{name} services",
            )
        except Exception as exc:
            errors.append(f"{name}: {short_error(exc)}")
            continue
        got = _complete_from(client, name, unit, params, held)
        if isinstance(got, Exception):
            if is_no_data(got):
                no_data.append(name)
            else:
                errors.append(f"{name}: {short_error(got)}")
                log.warning("%s from %s failed: %s", unit.key, name, errors[-1])
            continue
        by_channel, missing, note = got
        if not by_channel:
            if note:
                errors.append(f"{name}: {note}")
            else:
                no_data.append(name)
            continue
        if not missing:
            best = (name, by_channel, missing, note)
            break
        if best is None or len(missing) < len(best[2]):
            best = (name, by_channel, missing, note)
        held = [r for recs in by_channel.values() for r in recs]  # the next client fills the gap
        errors.append(f"{name}: {note}")
    if best is None:
        status = "failed" if errors else "no_data"
        if no_data:
            errors.append("no data from " + ", ".join(no_data))
        return DownloadResult(
            **base,
            client=(unit.clients[-1] if unit.clients else ""),
            status=status,
            path=rel,
            error="; ".join(errors),
            seconds=time.perf_counter() - t0,
        )
    name, by_channel, missing, note = best
    written = []
    for (net, sta, loc, cha), records in sorted(by_channel.items()):
        target = sds_path(archive, net, sta, loc, cha, unit.day)
        atomic_write(
            target,
            b"".join(r.data for r in records),
            temporary=incoming_file(archive, target, unit.key),
        )
        written.append(target)
    gaps = [
        f"{loc}.{cha} {_fmt(t, unit.day)}-24:00:00" for (loc, cha), t in sorted(missing.items())
    ]
    if gaps:
        body = json.dumps({"unit": unit.key, "client": name, "gaps": gaps, "why": note}).encode()
        marker.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(marker, body, temporary=incoming_file(archive, marker, unit.key))
        errors = [e for e in errors if not e.startswith(f"{name}: ")]
        errors.insert(0, "missing " + ", ".join(gaps) + (f" ({note})" if note else ""))
    else:
        marker.unlink(missing_ok=True)
    return DownloadResult(
        **base,
        client=name,
        status="partial" if gaps else "ok",
        bytes=sum(p.stat().st_size for p in written),
        path=";".join(str(p.relative_to(archive)) for p in written),
        error="; ".join(errors),
        seconds=time.perf_counter() - t0,
    )


def _complete_from(
    client: Client, name: str, unit: DownloadUnit, params: DownloadParams, held: list[Record]
) -> tuple[dict[ChannelKey, list[Record]], dict[tuple[str, str], UTCDateTime], str] | Exception:
    """Return what one client brings for ``unit`` on top of ``held``: records per channel, the
    channels still missing data (-> where they stop) and why; or the exception of a failed
    first request.

    Without ``held`` records the whole day is asked for first. Then, while an expected channel
    is missing or ends before midnight, its remaining part is asked for (at most
    ``params.follow_ups`` times): new records mean the earlier answer was short; "no data" or
    nothing new means the data centre has no more, and the channel is complete as far as it can be.
    """
    records = list(held)
    problems: list[str] = []
    if not records:
        try:
            data = _fetch(client, name, unit, params)
        except Exception as exc:
            return exc
        records, problem = parse_records(data)
        if problem:
            problems.append(problem)
    confirmed: set[tuple[str, str]] = set()
    for _ in range(params.follow_ups):
        missing = _missing(unit, records_by_channel(records, unit.day), confirmed)
        if not missing:
            break
        # One request per group of channels that stop at the same second; a group whose
        # answer brings nothing new is complete (the centre has no more for it).
        groups: dict[int, list[tuple[str, str]]] = {}
        for channel, stop in sorted(missing.items()):
            groups.setdefault(int(stop.timestamp), []).append(channel)
        failed = False
        for channels in groups.values():
            start = min(missing[c] for c in channels)
            try:
                data = _fetch(client, name, unit, params, channels, start)
            except Exception as exc:
                if is_no_data(exc):
                    confirmed |= set(channels)
                    continue
                problems.append(f"asking for the rest: {short_error(exc)}")
                failed = True
                break
            more, problem = parse_records(data)
            seen = {(r.key, float(r.start.timestamp)) for r in records}
            new = [r for r in more if (r.key, float(r.start.timestamp)) not in seen]
            if problem:
                problems.append(problem)
            elif not new:
                confirmed |= set(channels)
            records += new
        if failed:
            break
    by_channel = records_by_channel(records, unit.day)
    missing = _missing(unit, by_channel, confirmed)
    for key, recs in by_channel.items():
        why = _decodes(b"".join(r.data for r in recs))
        if why:
            return FDSNException(f"{'.'.join(key)}: records do not decode ({why})")
    if missing and not problems:
        problems.append(f"still short after {params.follow_ups} follow-up requests")
    return by_channel, missing, "; ".join(problems)


def download(
    archive: Path,
    window: TimeWindow,
    selection: StationSelection,
    params: DownloadParams,
    force: bool = False,
) -> tuple[DownloadPlan, list[DownloadResult]]:
    """Plan and fetch every (station, day) one after the other; return the plan and ledger rows.

    The Prefect flow does the same with one task per unit; this is for scripts and notebooks.
    """
    token = read_token(params)
    plan = plan_downloads(archive, window, selection, params, token)
    results = [download_unit(u, archive, params, token, force) for u in plan.units]
    return plan, results
