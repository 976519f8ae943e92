"""Export associated events with their picks: ObsPy Catalog / QuakeML and a per-day folder layout.

``events`` and ``assignments`` are the lake tables of the same names (or the DataFrames that
:func:`quakelake.association.associate` returns).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

RESOURCE_PREFIX = "smi:quakelake"


def _waveform_id(station_id: str):
    from obspy.core.event import WaveformStreamID

    parts = str(station_id).split(".")
    if len(parts) == 1:
        return WaveformStreamID(network_code="", station_code=parts[0])
    return WaveformStreamID(
        network_code=parts[0],
        station_code=parts[1],
        location_code=parts[2] if len(parts) > 2 else "",
        channel_code=parts[3] if len(parts) > 3 else None,
    )


def to_catalog(events: pd.DataFrame, assignments: pd.DataFrame, creator: str = "quakelake"):
    """Return an ObsPy ``Catalog``: one Event per row of ``events`` with its Origin, Picks, Arrivals.

    Args:
        events: ``event_id, time, latitude, longitude, depth_km`` (+ optional ``associator``,
            ``rms_residual_s``, ``n_stations``).
        assignments: ``event_id, pick_id, station_id, phase, time, residual_s``.
        creator: agency/author written into the creation info.
    """
    from obspy import UTCDateTime
    from obspy.core.event import (
        Arrival,
        Catalog,
        CreationInfo,
        Event,
        Origin,
        OriginQuality,
        Pick,
        ResourceIdentifier,
    )

    catalog = Catalog(resource_id=ResourceIdentifier(f"{RESOURCE_PREFIX}/catalog"))
    by_event = {k: g for k, g in assignments.groupby("event_id")} if len(assignments) else {}
    info = CreationInfo(author=creator)
    for ev in events.itertuples(index=False):
        eid = str(ev.event_id)
        rid = f"{RESOURCE_PREFIX}/event/{eid}"
        origin = Origin(
            resource_id=ResourceIdentifier(f"{rid}/origin"),
            time=UTCDateTime(pd.Timestamp(ev.time).to_pydatetime()),
            latitude=float(ev.latitude),
            longitude=float(ev.longitude),
            depth=float(ev.depth_km) * 1000.0,
            method_id=ResourceIdentifier(f"{RESOURCE_PREFIX}/method/{getattr(ev, 'associator', 'associator')}"),
            creation_info=info,
        )
        event = Event(resource_id=ResourceIdentifier(rid), event_type="earthquake", creation_info=info)
        picks = by_event.get(ev.event_id, pd.DataFrame(columns=assignments.columns))
        for pk in picks.itertuples(index=False):
            pick_rid = ResourceIdentifier(f"{RESOURCE_PREFIX}/pick/{pk.pick_id}")
            event.picks.append(Pick(
                resource_id=pick_rid,
                time=UTCDateTime(pd.Timestamp(pk.time).to_pydatetime()),
                waveform_id=_waveform_id(pk.station_id),
                phase_hint=str(pk.phase),
                evaluation_mode="automatic",
            ))
            origin.arrivals.append(Arrival(
                resource_id=ResourceIdentifier(f"{rid}/arrival/{pk.pick_id}"),
                pick_id=pick_rid,
                phase=str(pk.phase),
                time_residual=float(pk.residual_s) if pd.notna(pk.residual_s) else None,
            ))
        rms = getattr(ev, "rms_residual_s", None)
        origin.quality = OriginQuality(
            associated_phase_count=len(picks),
            used_phase_count=len(picks),
            associated_station_count=int(picks["station_id"].nunique()) if len(picks) else 0,
            standard_error=float(rms) if rms is not None and pd.notna(rms) else None,
        )
        event.origins.append(origin)
        event.preferred_origin_id = origin.resource_id
        catalog.append(event)
    return catalog


def write_quakeml(events: pd.DataFrame, assignments: pd.DataFrame, path: str | Path) -> Path:
    """Write events with their picks as a QuakeML file and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    to_catalog(events, assignments).write(str(path), format="QUAKEML")
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
