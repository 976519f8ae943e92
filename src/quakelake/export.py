"""Export associated events with their picks: ObsPy Catalog / QuakeML and a per-day folder layout.

``events`` and ``assignments`` are the lake tables of the same names (or the DataFrames that
:func:`quakelake.association.associate` returns).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd

RESOURCE_PREFIX = "smi:quakelake"
# Characters a QuakeML resource identifier may hold after its authority (QuakeML 1.2 URI rule).
_UNSAFE_ID = re.compile(r"[^\w\-.*()~'+?=,;#/&]")


def _rid(*parts: object) -> str:
    return RESOURCE_PREFIX + "/" + "/".join(_UNSAFE_ID.sub("_", str(p)) for p in parts)


def _value(row, name: str):
    value = getattr(row, name, None)
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else value


def _waveform_id(row):
    from obspy.core.event import WaveformStreamID

    if _value(row, "station"):
        net, sta, loc, cha = (_value(row, c) or "" for c in ("network", "station", "location", "channel"))
    else:
        net, sta, loc, cha = (str(row.station_id).split(".") + ["", "", ""])[:4]
        if "." not in str(row.station_id):
            net, sta = "", str(row.station_id)
    return WaveformStreamID(network_code=net, station_code=sta, location_code=loc, channel_code=cha or None)


def to_catalog(
    events: pd.DataFrame,
    picks: pd.DataFrame | None,
    creator: str = "quakelake",
    evaluation_mode: str | None = "automatic",
):
    """Return an ObsPy ``Catalog``: one Event per row of ``events`` with its Origin, Picks, Arrivals.

    Args:
        events: ``event_id, time, latitude, longitude`` and optionally ``depth_km``, ``magnitude``,
            ``magnitude_type``, ``associator``, ``rms_residual_s`` (lake ``events`` or
            ``reference_events`` rows).
        picks: ``event_id, pick_id, phase, time`` with ``station_id`` (``NET.STA.LOC[.BAND]`` or
            ``STA``) or ``network/station/location/channel``, optionally ``residual_s`` (lake
            ``assignments`` or ``reference_picks`` rows); None for events only.
        creator: agency/author written into the creation info.
        evaluation_mode: of the picks ("automatic" for ML picks, None to leave it unset).
    """
    from obspy import UTCDateTime
    from obspy.core.event import (
        Arrival,
        Catalog,
        CreationInfo,
        Event,
        Magnitude,
        Origin,
        OriginQuality,
        Pick,
        ResourceIdentifier,
    )

    picks = picks if picks is not None else pd.DataFrame(columns=["event_id"])
    catalog = Catalog(resource_id=ResourceIdentifier(_rid("catalog")))
    by_event = {str(k): g for k, g in picks.groupby(picks["event_id"].astype(str))} if len(picks) else {}
    info = CreationInfo(author=creator)
    for ev in events.itertuples(index=False):
        eid = str(ev.event_id)
        depth = _value(ev, "depth_km")
        origin = Origin(
            resource_id=ResourceIdentifier(_rid("event", eid, "origin")),
            time=UTCDateTime(pd.Timestamp(ev.time).to_pydatetime()),
            latitude=float(ev.latitude),
            longitude=float(ev.longitude),
            depth=float(depth) * 1000.0 if depth is not None else None,
            creation_info=info,
        )
        if _value(ev, "associator"):
            origin.method_id = ResourceIdentifier(_rid("method", ev.associator))
        event = Event(resource_id=ResourceIdentifier(_rid("event", eid)), event_type="earthquake",
                      creation_info=info)
        mag = _value(ev, "magnitude")
        if mag is not None:
            magnitude = Magnitude(resource_id=ResourceIdentifier(_rid("event", eid, "magnitude")),
                                  mag=float(mag), magnitude_type=_value(ev, "magnitude_type"),
                                  origin_id=origin.resource_id)
            event.magnitudes.append(magnitude)
            event.preferred_magnitude_id = magnitude.resource_id
        mine = by_event.get(eid, picks.iloc[0:0])
        for pk in mine.itertuples(index=False):
            pick_rid = ResourceIdentifier(_rid("pick", pk.pick_id))
            event.picks.append(Pick(
                resource_id=pick_rid,
                time=UTCDateTime(pd.Timestamp(pk.time).to_pydatetime()),
                waveform_id=_waveform_id(pk),
                phase_hint=str(pk.phase),
                evaluation_mode=evaluation_mode,
            ))
            residual = _value(pk, "residual_s")
            origin.arrivals.append(Arrival(
                resource_id=ResourceIdentifier(_rid("event", eid, "arrival", pk.pick_id)),
                pick_id=pick_rid,
                phase=str(pk.phase),
                time_residual=float(residual) if residual is not None else None,
            ))
        rms = _value(ev, "rms_residual_s")
        stations = {(w.network_code, w.station_code) for w in (p.waveform_id for p in event.picks)}
        origin.quality = OriginQuality(
            associated_phase_count=len(mine),
            used_phase_count=len(mine),
            associated_station_count=len(stations),
            used_station_count=len(stations),
            standard_error=float(rms) if rms is not None else None,
        )
        _origin_errors(origin, ev)
        event.origins.append(origin)
        event.preferred_origin_id = origin.resource_id
        catalog.append(event)
    return catalog


def _origin_errors(origin, ev) -> None:
    """Set the origin's 1-sigma errors, uncertainty, gap and flag from the location-quality columns."""
    from obspy.core.event import Comment, OriginUncertainty, QuantityError

    km_per_deg = 111.195
    t, lat_km, lon_km, h_km, z_km = (_value(ev, c) for c in (
        "time_uncertainty_s", "latitude_uncertainty_km", "longitude_uncertainty_km",
        "horizontal_uncertainty_km", "vertical_uncertainty_km"))
    if t is not None:
        origin.time_errors = QuantityError(uncertainty=float(t))
    if lat_km is not None:
        origin.latitude_errors = QuantityError(uncertainty=float(lat_km) / km_per_deg)
    if lon_km is not None:
        cos_lat = max(math.cos(math.radians(float(origin.latitude))), 0.01)
        origin.longitude_errors = QuantityError(uncertainty=float(lon_km) / (km_per_deg * cos_lat))
    if z_km is not None:
        origin.depth_errors = QuantityError(uncertainty=float(z_km) * 1000.0)
    if h_km is not None:
        origin.origin_uncertainty = OriginUncertainty(
            horizontal_uncertainty=float(h_km) * 1000.0, preferred_description="horizontal uncertainty")
    gap, near = _value(ev, "azimuthal_gap_deg"), _value(ev, "min_distance_km")
    if gap is not None:
        origin.quality.azimuthal_gap = float(gap)
    if near is not None:
        origin.quality.minimum_distance = float(near) / km_per_deg
    if _value(ev, "location_quality") == "unconstrained":
        origin.evaluation_status = "preliminary"
        origin.comments.append(Comment(text=(
            f"location unconstrained: azimuthal gap {float(gap or 360.0):.0f} deg, "
            f"{origin.quality.used_station_count} stations")))


def write_quakeml(events: pd.DataFrame, picks: pd.DataFrame | None, path: str | Path, **kwargs) -> Path:
    """Write events with their picks as a QuakeML file and return its path (see :func:`to_catalog`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    to_catalog(events, picks, **kwargs).write(str(path), format="QUAKEML")
    return path


def write_associated(events: pd.DataFrame, assignments: pd.DataFrame, folder: str | Path) -> list[Path]:
    """Write the per-day ``associated/`` layout and return the files written.

    Layout: ``<folder>/associated/<YYYY>/<YYYY-MM-DD>/events.csv`` (one row per event) and
    ``picks.csv`` (one row per assigned pick with its ``event_id`` and residual), plus
    ``events.xml`` (QuakeML of the day's events and picks). Days come from the origin times.
    """
    root = Path(folder) / "associated"
    written: list[Path] = []
    if len(events) == 0:
        return written
    ev = events.copy()
    ev["time"] = pd.to_datetime(ev["time"], utc=True)
    for day, day_events in ev.groupby(ev["time"].dt.date):
        out = root / f"{day:%Y}" / day.isoformat()
        out.mkdir(parents=True, exist_ok=True)
        day_picks = assignments[assignments["event_id"].isin(day_events["event_id"])]
        for name, frame in (("events.csv", day_events), ("picks.csv", day_picks)):
            target = out / name
            frame.to_csv(target, index=False, date_format="%Y-%m-%dT%H:%M:%S.%fZ")
            written.append(target)
        written.append(write_quakeml(day_events, day_picks, out / "events.xml"))
    return written


CLASSIFIED_COLUMNS = ["pick_id", "model", "weights", "network", "station", "location", "band", "phase", "time",
                      "probability", "run_id"]


def write_classified(picks: pd.DataFrame, folder: str | Path) -> list[Path]:
    """Write picks in the original tool's per-day/network/station ``classified/`` layout.

    Layout: ``<folder>/classified/<YYYY>/<YYYY-MM-DD>/<NET>/<NET>.<STA>.<model>.<weights>.csv``, one
    row per pick, times ISO UTC. Returns the files written.
    """
    root = Path(folder) / "classified"
    written: list[Path] = []
    if len(picks) == 0:
        return written
    frame = picks.copy()
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    keys = [frame["time"].dt.date, "network", "station", "model", "weights"]
    for (day, net, sta, model, weights), rows in frame.groupby(keys, sort=True):
        out = root / f"{day:%Y}" / day.isoformat() / net
        out.mkdir(parents=True, exist_ok=True)
        target = out / f"{net}.{sta}.{model}.{weights}.csv"
        rows.sort_values("time")[[c for c in CLASSIFIED_COLUMNS if c in rows]].to_csv(
            target, index=False, date_format="%Y-%m-%dT%H:%M:%S.%fZ")
        written.append(target)
    return written


def write_nonlinloc(assignments: pd.DataFrame, path: str | Path, pick_std_s: float = 0.05) -> Path:
    """Write the assigned picks as a NonLinLoc phase file (``.obs``, one block per event); return its path.

    Uses PyOcto's writer (``OctoAssociator.to_nonlinloc``) so users can relocate events with
    NonLinLoc. Station names are the station codes (``STA`` of ``NET.STA.LOC``), as NonLinLoc
    station files name them; every pick gets the Gaussian uncertainty ``pick_std_s``.

    Args:
        assignments: lake ``assignments`` rows (``event_id, station_id, phase, time``).
        path: the file to write (written to a temporary name, then renamed).
        pick_std_s: pick uncertainty (s).
    """
    from pyocto import OctoAssociator

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    a = assignments.sort_values(["event_id", "time"], kind="stable")
    codes = a["station_id"].astype(str).str.split(".")
    frame = pd.DataFrame({
        "event_idx": pd.factorize(a["event_id"], sort=True)[0],
        "station": [c[1] if len(c) > 1 else c[0] for c in codes],
        "phase": a["phase"].astype(str).to_numpy(),
        "time": [t.to_pydatetime() for t in pd.to_datetime(a["time"], utc=True).dt.tz_convert(None).dt.round("us")],
    })
    tmp = path.with_name(f".{path.name}.tmp")
    OctoAssociator.to_nonlinloc(frame, tmp, pick_std=pick_std_s)
    tmp.replace(path)
    return path
