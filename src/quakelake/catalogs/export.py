"""Export associated events with their picks: ObsPy Catalog / QuakeML and a per-day folder layout.

``events`` and ``assignments`` are the lake tables of the same names (or the DataFrames that
:func:`quakelake.association.associate` returns).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from quakelake.catalogs.catalogues import CATALOGUE_KEYS, check_names, filter_events, with_catalogue
from quakelake.errors import BadInput
from quakelake.lakehouse.atomic import atomic_write

RESOURCE_PREFIX = "smi:quakelake"
# Characters a QuakeML resource identifier may hold after its authority (QuakeML 1.2 URI rule).
_UNSAFE_ID = re.compile(r"[^\w\-.*()~'+?=,;#/&]")


def _rid(*parts: object) -> str:
    return RESOURCE_PREFIX + "/" + "/".join(_UNSAFE_ID.sub("_", str(p)) for p in parts)


def _value(row, name: str):
    value = getattr(row, name, None)
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else value


class ExportError(BadInput, ValueError):
    """The catalogue asked for is not in the lake."""


def select_catalogue(
    events: pd.DataFrame,
    runs: pd.DataFrame | None = None,
    associator: str | None = None,
    run_id: str | None = None,
    models: Sequence[str] | None = None,
    weights: Sequence[str] | None = None,
    catalogue: str | None = None,
) -> tuple[pd.DataFrame, str]:
    """Return the events of one catalogue and its label: one associator x configuration x pick set.

    The lake keeps every association run's events side by side (GaMMA's and PyOcto's copies of
    the same earthquakes, PhaseNet's and EQTransformer's, one per station group, several
    configurations); a published catalogue is one of them, chosen explicitly:

    * ``run_id``: the catalogue that association run made or found already made (its days
      skipped because an earlier run wrote them still belong to it);
    * ``associator``, ``models``, ``weights``, ``catalogue`` (a label as
      :func:`quakelake.catalogs.catalogues.with_catalogue` writes it): the one catalogue they leave;
    * nothing: the lake's only catalogue.

    Raises:
        ExportError: naming the option and the catalogues available, when a name is unknown, when
            nothing is left, or when several catalogues are left (they are never merged).
    """
    if len(events) == 0:
        return events, "no events"
    ev = with_catalogue(events)
    ev["run_id"] = ev["run_id"].fillna("").astype(str) if "run_id" in ev else ""
    keys = [*CATALOGUE_KEYS, "catalogue", "model", "weights"]
    latest = ev.groupby(keys)["run_id"].max().reset_index()

    def listing(rows: pd.DataFrame) -> str:
        return "; ".join(
            f"{r.catalogue} (config {r.config_fingerprint}, run {r.run_id})"
            for r in rows.sort_values("catalogue").itertuples(index=False)
        )

    if run_id:
        key = None
        if runs is not None and len(runs) and (runs["run_id"] == run_id).any():
            import json

            config = json.loads(runs.loc[runs["run_id"] == run_id, "config_json"].iloc[0] or "{}")
            if "config_fingerprint" in config:
                key = (
                    (config.get("config") or {}).get("associator", ""),
                    config["config_fingerprint"],
                    config.get("pick_source", ""),
                )
        mine = ev[ev["run_id"] == run_id]
        if key is None and len(mine):
            key = tuple(mine.iloc[0][list(CATALOGUE_KEYS)])
        if key is None:
            raise ExportError(
                f"--run-id {run_id}: no association run of that id in the lake; catalogues: "
                f"{listing(latest)}"
            )
    else:
        check_names("--associator", [associator] if associator else [], ev["associator"])
        check_names("-M/--models", models, ev["model"], "a model of the lake's catalogues")
        check_names("-W/--weights", weights, ev["weights"], "weights of the lake's catalogues")
        check_names("--catalogue", [catalogue] if catalogue else [], ev["catalogue"])
        chosen = filter_events(latest, models, weights, [associator] if associator else None)
        if catalogue:
            chosen = chosen[chosen["catalogue"] == catalogue]
        if not len(chosen):
            raise ExportError(
                "--associator/-M/-W: no catalogue has all of them; catalogues: " + listing(latest)
            )
        if len(chosen) > 1:
            raise ExportError(
                f"{len(chosen)} catalogues match ({listing(chosen)}); a published catalogue is one: "
                "choose it with --associator, -M, -W, --catalogue LABEL or --run-id"
            )
        key = tuple(chosen.iloc[0][list(CATALOGUE_KEYS)])
    keep = np.logical_and.reduce([ev[c] == v for c, v in zip(CATALOGUE_KEYS, key, strict=True)])
    labels = ev.loc[keep, "catalogue"]
    label = labels.iloc[0] if len(labels) else f"{key[0]} ({key[2]})"
    return events[keep], f"{label} (config {key[1]}, pick source {key[2]})"


def full_channel(channel: str, phase: str | None) -> str | None:
    """Return a three-letter channel code: a band code (``HH``) gets ``Z`` for P picks, ``N`` for S.

    ML pickers pick on the three components of a band together; QuakeML readers expect one
    channel, so P is written on the vertical and S on the north component.
    """
    channel = channel or ""
    if len(channel) == 2:
        return channel + ("N" if str(phase or "").upper().startswith("S") else "Z")
    return channel or None


def _waveform_id(row):
    from obspy.core.event import WaveformStreamID

    if _value(row, "station"):
        net, sta, loc, cha = (
            _value(row, c) or "" for c in ("network", "station", "location", "channel")
        )
    else:
        net, sta, loc, cha = (str(row.station_id).split(".") + ["", "", ""])[:4]
        if "." not in str(row.station_id):
            net, sta = "", str(row.station_id)
    cha = cha or _value(row, "band") or ""
    return WaveformStreamID(
        network_code=net,
        station_code=sta,
        location_code=loc,
        channel_code=full_channel(cha, _value(row, "phase")),
    )


def _by_event(frame: pd.DataFrame | None) -> dict[str, pd.DataFrame]:
    if frame is None or len(frame) == 0:
        return {}
    return {str(k): g for k, g in frame.groupby(frame["event_id"].astype(str))}


def _utc(value):
    from obspy import UTCDateTime

    return UTCDateTime(pd.Timestamp(value).to_pydatetime())


def _add_magnitudes(
    event,
    eid: str,
    ev,
    origin,
    amplitudes: pd.DataFrame | None,
    station_mags: pd.DataFrame | None,
    info,
) -> None:
    """Append the event's amplitudes, station magnitudes and its (preferred) magnitude."""
    from obspy.core.event import (
        Amplitude,
        Magnitude,
        QuantityError,
        ResourceIdentifier,
        StationMagnitude,
        StationMagnitudeContribution,
        TimeWindow,
        WaveformStreamID,
    )

    amp_of: dict[str, tuple[float, ResourceIdentifier]] = {}
    for a in amplitudes.itertuples(index=False) if amplitudes is not None else ():
        rid = ResourceIdentifier(_rid("event", eid, "amplitude", a.station_id, a.channel))
        start, end = pd.Timestamp(a.window_start), pd.Timestamp(a.window_end)
        event.amplitudes.append(
            Amplitude(
                resource_id=rid,
                generic_amplitude=float(a.amplitude_m),
                type=_value(a, "type") or "AML",
                unit="m",
                period=_value(a, "period_s"),
                magnitude_hint="ML",
                category="point",
                time_window=TimeWindow(
                    begin=0.0, end=(end - start).total_seconds(), reference=_utc(start)
                ),
                scaling_time=_utc(a.time) if _value(a, "time") is not None else None,
                waveform_id=WaveformStreamID(
                    network_code=a.network,
                    station_code=a.station,
                    location_code=a.location or "",
                    channel_code=a.channel,
                ),
                pick_id=ResourceIdentifier(_rid("pick", a.pick_id))
                if _value(a, "pick_id")
                else None,
                evaluation_mode="automatic",
                creation_info=info,
            )
        )
        best = amp_of.get(a.station_id)
        if best is None or a.amplitude_m > best[0]:
            amp_of[a.station_id] = (float(a.amplitude_m), rid)
    contributions = []
    for sm in station_mags.itertuples(index=False) if station_mags is not None else ():
        rid = ResourceIdentifier(_rid("event", eid, "station_magnitude", sm.station_id))
        event.station_magnitudes.append(
            StationMagnitude(
                resource_id=rid,
                origin_id=origin.resource_id,
                mag=float(sm.magnitude),
                station_magnitude_type=sm.magnitude_type,
                amplitude_id=amp_of.get(sm.station_id, (0, None))[1],
                method_id=ResourceIdentifier(
                    _rid("method", "magnitude", _value(sm, "law") or "ML")
                ),
                waveform_id=WaveformStreamID(
                    network_code=sm.network,
                    station_code=sm.station,
                    location_code=sm.location or "",
                ),
                creation_info=info,
            )
        )
        contributions.append(StationMagnitudeContribution(station_magnitude_id=rid, weight=1.0))
    mag = _value(ev, "magnitude")
    if mag is None:
        return
    count = _value(ev, "magnitude_station_count")
    magnitude = Magnitude(
        resource_id=ResourceIdentifier(_rid("event", eid, "magnitude")),
        mag=float(mag),
        mag_errors=QuantityError(uncertainty=_value(ev, "magnitude_uncertainty")),
        magnitude_type=_value(ev, "magnitude_type"),
        origin_id=origin.resource_id,
        station_count=int(count) if count is not None else None,
        station_magnitude_contributions=contributions,
        creation_info=info,
    )
    if contributions:
        magnitude.method_id = ResourceIdentifier(_rid("method", "magnitude", "median"))
        magnitude.evaluation_mode = "automatic"
    event.magnitudes.append(magnitude)
    event.preferred_magnitude_id = magnitude.resource_id


def to_catalog(
    events: pd.DataFrame,
    picks: pd.DataFrame | None,
    creator: str = "quakelake",
    evaluation_mode: str | None = "automatic",
    amplitudes: pd.DataFrame | None = None,
    station_magnitudes: pd.DataFrame | None = None,
):
    """Return an ObsPy ``Catalog``: one Event per row of ``events`` with its Origin, Picks, Arrivals.

    Args:
        events: ``event_id, time, latitude, longitude`` and optionally ``depth_km``, ``magnitude``,
            ``magnitude_type``, ``associator``, ``rms_residual_s`` (lake ``events`` or
            ``reference_events`` rows).
        picks: ``event_id, pick_id, phase, time`` with ``station_id`` (``NET.STA.LOC``, with
            a ``band`` column; ``STA``) or ``network/station/location/channel``, optionally ``residual_s`` (lake
            ``assignments`` or ``reference_picks`` rows); None for events only.
        creator: agency/author written into the creation info.
        evaluation_mode: of the picks ("automatic" for ML picks, None to leave it unset).
        amplitudes: lake ``amplitudes`` rows (written as QuakeML amplitudes of their events).
        station_magnitudes: lake ``station_magnitudes`` rows (station magnitudes, contributions
            of the preferred magnitude).
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

    picks = picks if picks is not None else pd.DataFrame(columns=["event_id"])
    catalog = Catalog(resource_id=ResourceIdentifier(_rid("catalog")))
    by_event = _by_event(picks)
    amps_by_event, mags_by_event = _by_event(amplitudes), _by_event(station_magnitudes)
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
        event = Event(
            resource_id=ResourceIdentifier(_rid("event", eid)),
            event_type=_value(ev, "event_type") or "earthquake",
            creation_info=info,
        )
        _add_magnitudes(
            event, eid, ev, origin, amps_by_event.get(eid), mags_by_event.get(eid), info
        )
        mine = by_event.get(eid, picks.iloc[0:0])
        for pk in mine.itertuples(index=False):
            pick_rid = ResourceIdentifier(_rid("pick", pk.pick_id))
            event.picks.append(
                Pick(
                    resource_id=pick_rid,
                    time=UTCDateTime(pd.Timestamp(pk.time).to_pydatetime()),
                    waveform_id=_waveform_id(pk),
                    phase_hint=str(pk.phase),
                    evaluation_mode=evaluation_mode,
                )
            )
            residual = _value(pk, "residual_s")
            origin.arrivals.append(
                Arrival(
                    resource_id=ResourceIdentifier(_rid("event", eid, "arrival", pk.pick_id)),
                    pick_id=pick_rid,
                    phase=str(pk.phase),
                    time_residual=float(residual) if residual is not None else None,
                )
            )
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
    t, lat_km, lon_km, h_km, z_km = (
        _value(ev, c)
        for c in (
            "time_uncertainty_s",
            "latitude_uncertainty_km",
            "longitude_uncertainty_km",
            "horizontal_uncertainty_km",
            "vertical_uncertainty_km",
        )
    )
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
            horizontal_uncertainty=float(h_km) * 1000.0,
            preferred_description="horizontal uncertainty",
        )
    gap, near = _value(ev, "azimuthal_gap_deg"), _value(ev, "min_distance_km")
    if gap is not None:
        origin.quality.azimuthal_gap = float(gap)
    if near is not None:
        origin.quality.minimum_distance = float(near) / km_per_deg
    origin.evaluation_mode = _value(ev, "evaluation_mode") or "automatic"
    status = _value(ev, "evaluation_status")
    if status:
        origin.evaluation_status = status
    reason = _value(ev, "evaluation_reason")
    if reason:
        origin.comments.append(Comment(text=f"rejected by the origin quality gate: {reason}"))
    if _value(ev, "location_quality") == "unconstrained":
        origin.evaluation_status = status or "preliminary"
        origin.comments.append(
            Comment(
                text=(
                    f"location unconstrained: azimuthal gap {float(gap or 360.0):.0f} deg, "
                    f"{origin.quality.used_station_count} stations"
                )
            )
        )


def write_quakeml(
    events: pd.DataFrame, picks: pd.DataFrame | None, path: str | Path, **kwargs
) -> Path:
    """Write events with their picks as a QuakeML file and return its path (see :func:`to_catalog`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    to_catalog(events, picks, **kwargs).write(str(path), format="QUAKEML")
    return path


def write_associated(
    events: pd.DataFrame, assignments: pd.DataFrame, folder: str | Path
) -> list[Path]:
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


CLASSIFIED_COLUMNS = [
    "pick_id",
    "model",
    "weights",
    "network",
    "station",
    "location",
    "band",
    "phase",
    "time",
    "probability",
    "run_id",
]


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
            target, index=False, date_format="%Y-%m-%dT%H:%M:%S.%fZ"
        )
        written.append(target)
    return written


def catalogue_tables(lake, events) -> dict:
    """Return the assignments (with the picks' band codes), amplitudes and station magnitudes of ``events``."""
    from quakelake.lakehouse import queries

    ids = set(events["event_id"].astype(str))
    fps = (
        set(events["config_fingerprint"].dropna().astype(str))
        if "config_fingerprint" in events
        else set()
    )
    out = {}
    for table, key in (
        ("assignments", "assignments"),
        ("amplitudes", "amplitudes"),
        ("station_magnitudes", "station_magnitudes"),
    ):
        rows = queries.table(lake, table)
        rows = rows[rows["event_id"].astype(str).isin(ids)]
        if fps and "config_fingerprint" in rows:
            rows = rows[rows["config_fingerprint"].astype(str).isin(fps)]
        out[key] = rows
    a = out["assignments"]
    if len(a) and lake.has_files("picks"):
        bands = lake.query("SELECT DISTINCT pick_id, band FROM picks WHERE band IS NOT NULL")
        a = a.merge(bands.drop_duplicates("pick_id"), on="pick_id", how="left")
    out["assignments"] = a if len(a) else pd.DataFrame(columns=list(a.columns))
    return out


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
    frame = pd.DataFrame(
        {
            "event_idx": pd.factorize(a["event_id"], sort=True)[0],
            "station": [c[1] if len(c) > 1 else c[0] for c in codes],
            "phase": a["phase"].astype(str).to_numpy(),
            "time": [
                t.to_pydatetime()
                for t in pd.to_datetime(a["time"], utc=True).dt.tz_convert(None).dt.round("us")
            ],
        }
    )
    return atomic_write(
        path, lambda tmp: OctoAssociator.to_nonlinloc(frame, tmp, pick_std=pick_std_s)
    )


def reported(events: pd.DataFrame, rejected: bool = False) -> pd.DataFrame:
    """Return ``events`` without the origins the quality gate rejected (all with ``rejected``)."""
    from quakelake.catalogs.evaluation import is_rejected

    return events if rejected else events[~is_rejected(events)]


def export_run(
    lake_root: Path,
    run_id: str,
    quakeml: Path | None,
    folder: Path | None,
    rejected: bool = False,
) -> list[str]:
    """Write the events of the association run ``run_id`` (days it found already done included).

    Args:
        lake_root: the lake.
        run_id: the association run.
        quakeml: QuakeML file to write (None: none).
        folder: folder of the ``associated/`` layout to write (None: none).
        rejected: also write the origins the quality gate rejected (with their status).

    Returns:
        One line per product written, for the user.
    """
    if quakeml is None and folder is None:
        return []
    from quakelake.lakehouse import Lake, queries

    lake = Lake(lake_root)
    events, _ = select_catalogue(*queries.events_and_runs(lake), run_id=run_id)
    events = reported(events, rejected)
    tables = catalogue_tables(lake, events)
    assignments = tables.pop("assignments")
    lines = []
    if quakeml is not None:
        written = write_quakeml(events, assignments, quakeml, **tables)
        lines.append(f"QuakeML: {written} ({len(events)} events)")
    if folder is not None:
        files = write_associated(events, assignments, folder)
        lines.append(f"associated/ layout: {len(files)} files under {folder}")
    return lines
