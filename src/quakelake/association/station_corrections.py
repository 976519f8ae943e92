"""ML station corrections: estimated from residuals against a reference, stored with their support.

A station that reads systematically high or low (site amplification, a wrong gain, a law that
does not fit its path) biases every event ML it enters. Against a reference catalogue with
magnitudes (an observatory's bulletin), each station's residual on an event is

    residual = reference ML - our station ML

(``against="event"``, the reference's event ML; ``against="station"``, the reference's own
station ML at that station when the reference carries station magnitudes, e.g. INGV's QuakeML).
The correction of a station is the median of its residuals over the events it recorded; it is
kept with its support (``n_events``, the residuals' standard deviation ``spread`` and MAD) and
given only to stations with at least ``min_events`` events. The law adds it to the station's ML
(:attr:`quakelake.params.magnitudes.AttenuationLaw.station_corrections`), so the event ML, the
median of the corrected station MLs, moves towards the reference's.

The lake keeps them in ``station_corrections`` (one row per reference x law x station, each
estimation a new file, the latest estimation read back by :func:`read_corrections`).

Plain pandas: no Prefect.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from quakelake.errors import BadInput

__all__ = [
    "CORRECTION_COLUMNS",
    "NoCorrections",
    "apply_corrections",
    "estimate_corrections",
    "read_corrections",
    "read_quakeml_station_magnitudes",
    "write_corrections",
]

CORRECTION_COLUMNS = [
    "station_id",
    "correction",
    "n_events",
    "spread",
    "mad",
    "against",
]


class NoCorrections(BadInput, ValueError):
    """No station correction could be estimated or read (names the option and what to do)."""


def station_key(station_id: str) -> str:
    """Return the ``NET.STA`` a correction is kept under (the law looks up NET.STA.LOC, then NET.STA)."""
    return ".".join(str(station_id).split(".")[:2])


def estimate_corrections(
    station_magnitudes: pd.DataFrame,
    reference: pd.DataFrame,
    against: str = "event",
    min_events: int = 2,
) -> pd.DataFrame:
    """Return one correction per station from its residuals against the reference.

    Args:
        station_magnitudes: our station MLs: ``event_id`` (the reference event each belongs to),
            ``station_id`` (``NET.STA[.LOC]``) and ``magnitude``, uncorrected.
        reference: with ``against="event"`` the reference events (``event_id``, ``magnitude``);
            with ``against="station"`` the reference station magnitudes (``event_id``,
            ``station_id``, ``magnitude``).
        against: ``event`` or ``station`` (see the module text).
        min_events: fewest events a station needs for a correction.

    Returns:
        :data:`CORRECTION_COLUMNS`, one row per ``NET.STA`` with at least ``min_events`` residuals.
    """
    if against not in ("event", "station"):
        raise ValueError(f"against={against!r}: use 'event' or 'station'")
    ours = station_magnitudes[["event_id", "station_id", "magnitude"]].dropna()
    ours = ours.assign(station=ours["station_id"].map(station_key))
    ref = reference.dropna(subset=["magnitude"])
    if against == "event":
        theirs = ref.groupby("event_id")["magnitude"].first().rename("reference")
        pairs = ours.join(theirs, on="event_id", how="inner")
    else:
        ref = ref.assign(station=ref["station_id"].map(station_key))
        theirs = ref.groupby(["event_id", "station"])["magnitude"].median().rename("reference")
        pairs = ours.join(theirs, on=["event_id", "station"], how="inner")
    # one residual per station and event (several channels or locations: their median)
    per_event = (
        (pairs["reference"] - pairs["magnitude"])
        .groupby([pairs["station"], pairs["event_id"]])
        .median()
        .rename("residual")
        .reset_index()
    )
    rows = []
    for station, group in per_event.groupby("station", sort=True):
        r = group["residual"].to_numpy(float)
        if len(r) < min_events:
            continue
        median = float(np.median(r))
        rows.append(
            {
                "station_id": station,
                "correction": median,
                "n_events": len(r),
                "spread": float(np.std(r, ddof=1)) if len(r) > 1 else float("nan"),
                "mad": float(np.median(np.abs(r - median))),
                "against": against,
            }
        )
    return pd.DataFrame(rows, columns=CORRECTION_COLUMNS)


def apply_corrections(station_magnitudes: pd.DataFrame, corrections: pd.DataFrame) -> pd.Series:
    """Return the station MLs plus their station's correction (0 where a station has none)."""
    table = dict(zip(corrections["station_id"], corrections["correction"], strict=True))
    keys = station_magnitudes["station_id"].map(station_key)
    return station_magnitudes["magnitude"] + keys.map(table).fillna(0.0).astype(float)


def write_corrections(
    lake_root: Path, corrections: pd.DataFrame, reference: str, law: str, run_id: str
) -> Path:
    """Write an estimation into the lake's ``station_corrections`` table (one file per estimation)."""
    from quakelake.lakehouse import write_table

    rows = corrections.assign(
        law=law,
        run_id=run_id,
        estimated=pd.Timestamp(dt.datetime.now(dt.UTC)),
    )
    return write_table(
        lake_root, "station_corrections", rows, name=run_id, partition={"reference": reference}
    )


def read_corrections(lake: Any, reference: str, law: str | None = None) -> pd.DataFrame:
    """Return the latest estimation of ``reference``'s corrections (for ``law`` when given).

    Raises:
        NoCorrections: naming the references that have corrections, when ``reference`` has none.
    """
    have = lake.has_files("station_corrections")
    rows = (
        lake.query(
            "SELECT * FROM station_corrections WHERE reference = ?"
            + (" AND law = ?" if law else ""),
            [reference, law] if law else [reference],
        )
        if have
        else pd.DataFrame()
    )
    if not len(rows):
        known = (
            sorted(
                set(lake.query("SELECT DISTINCT reference FROM station_corrections")["reference"])
            )
            if have
            else []
        )
        raise NoCorrections(
            f"--ml-corrections {reference}: the lake has no station corrections of that reference"
            + (f" for law {law}" if law else "")
            + f" (known: {', '.join(known) or 'none'}); estimate them with "
            f"`quakelake ml-corrections --reference {reference}`"
        )
    latest = rows["run_id"].max()
    return rows[rows["run_id"] == latest].reset_index(drop=True)


def read_quakeml_station_magnitudes(
    paths: list[Path],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return the events and station magnitudes of QuakeML files (e.g. INGV's bulletins).

    Returns:
        ``events``: ``event_id, magnitude, magnitude_type`` (the preferred magnitude);
        ``station_magnitudes``: ``event_id, station_id (NET.STA.LOC), magnitude, amplitude_m,
        distance_km, epicentral_km, depth_km`` — the amplitude (generic amplitude, m) and the
        arrival distance of the station magnitude's origin, where given.
    """
    import obspy
    from obspy.geodetics import degrees2kilometers

    events, stations = [], []
    for path in paths:
        for ev in obspy.read_events(str(path)):
            event_id = str(ev.resource_id)  # as `quakelake import-catalog` keys the events
            preferred = ev.preferred_magnitude() or (ev.magnitudes[0] if ev.magnitudes else None)
            if preferred is None:
                continue
            events.append((event_id, preferred.mag, preferred.magnitude_type))
            amps = {str(a.resource_id): a for a in ev.amplitudes}
            origins = {str(o.resource_id): o for o in ev.origins}
            for sm in ev.station_magnitudes:
                w = sm.waveform_id
                if w is None:
                    continue
                amp = amps.get(str(sm.amplitude_id))
                origin = origins.get(str(sm.origin_id)) or ev.preferred_origin()
                epi = depth = None
                if origin is not None:
                    depth = origin.depth / 1000.0 if origin.depth is not None else None
                    for arrival in origin.arrivals:
                        pick = arrival.pick_id.get_referred_object()
                        if (
                            pick is not None
                            and arrival.distance is not None
                            and (pick.waveform_id.network_code, pick.waveform_id.station_code)
                            == (w.network_code, w.station_code)
                        ):
                            epi = degrees2kilometers(arrival.distance)
                            break
                hypo = (
                    float(np.hypot(epi, depth)) if epi is not None and depth is not None else None
                )
                stations.append(
                    (
                        event_id,
                        f"{w.network_code}.{w.station_code}.{w.location_code or ''}",
                        sm.mag,
                        amp.generic_amplitude if amp is not None else None,
                        hypo,
                        epi,
                        depth,
                    )
                )
    return (
        pd.DataFrame(events, columns=["event_id", "magnitude", "magnitude_type"]),
        pd.DataFrame(
            stations,
            columns=[
                "event_id",
                "station_id",
                "magnitude",
                "amplitude_m",
                "distance_km",
                "epicentral_km",
                "depth_km",
            ],
        ),
    )
