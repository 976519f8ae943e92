"""Metrics per named station group (the groups themselves: :mod:`quakelake.params.groups`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from quakelake.analysis import evaluation
from quakelake.params.groups import in_group, members, source_group


def group_area(
    stations: pd.DataFrame, patterns: Sequence[str]
) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """Return the ``(lat_min, lat_max), (lon_min, lon_max)`` box a group's events are sought in.

    The box of the group's stations plus the margin the association derives for them
    (:func:`quakelake.association.derive.derive_settings`: 15 % of the aperture, 10-100 km).
    None when no station of the group has coordinates.
    """
    import math

    import numpy as np

    from quakelake.association.derive import KM_PER_DEG, distances_km

    if stations is None or not len(stations):
        return None
    coords = stations.dropna(subset=["latitude", "longitude"])
    mask = [
        in_group(str(n), str(s), patterns)
        for n, s in zip(coords["network"], coords["station"], strict=True)
    ]
    mine = coords[mask].drop_duplicates(["network", "station"])
    if not len(mine):
        return None
    lat = mine["latitude"].to_numpy(float)
    lon = mine["longitude"].to_numpy(float)
    aperture = float(distances_km(lat, lon).max()) if len(mine) > 1 else 0.0
    margin = float(np.clip(0.15 * max(aperture, 1.0), 10.0, 100.0))
    dlat = margin / KM_PER_DEG
    dlon = margin / (KM_PER_DEG * max(math.cos(math.radians(float(lat.mean()))), 0.1))
    return (lat.min() - dlat, lat.max() + dlat), (lon.min() - dlon, lon.max() + dlon)


def reference_in_group(
    reference_events: pd.DataFrame,
    patterns: Sequence[str],
    stations: pd.DataFrame | None = None,
    reference_picks: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Return the reference events inside a group's area.

    With station coordinates: the events whose epicentre lies in :func:`group_area`. Without:
    the events with a reference pick on one of the group's stations (all of them when the
    reference has no picks).
    """
    area = group_area(stations, patterns) if stations is not None else None
    ref = reference_events
    if area is not None and len(ref):
        (la0, la1), (lo0, lo1) = area
        lat, lon = ref["latitude"].astype(float), ref["longitude"].astype(float)
        return ref[(lat >= la0) & (lat <= la1) & (lon >= lo0) & (lon <= lo1)]
    if reference_picks is not None and len(reference_picks):
        keys = (
            reference_picks["network"].fillna("").astype(str)
            + "."
            + reference_picks["station"].astype(str)
        )
        on_group = reference_picks[members(keys.str.lstrip("."), patterns)]
        ref = ref[ref["event_id"].isin(set(on_group["event_id"].dropna()))]
    return ref


def group_metrics(
    pick_matches: pd.DataFrame,
    groups: Mapping[str, Sequence[str]],
    events: pd.DataFrame | None = None,
    reference_events: pd.DataFrame | None = None,
    reference_picks: pd.DataFrame | None = None,
    max_dt_s: float = 2.0,
    max_km: float = 8.0,
    stations: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Return metrics rows per group, shaped like the lake's ``metrics`` table (without run/reference).

    Picks: the matches (TP/FP/FN) on the group's stations, per model x weights (and phase).
    Events: each catalogue associated for the group (pick source ``...@GROUP``: one associator x
    model x weights) on its own, against the reference events inside the group's area
    (:func:`reference_in_group`).

    Args:
        pick_matches: output of ``evaluation.match_picks`` (``station_id`` = NET.STA.LOC, NET.STA or STA:
            the key the reference was compared on, ``evaluation.station_level``).
        groups: ``{name: patterns}``.
        events: lake events (with ``pick_source`` and ``associator``).
        reference_events: reference events over the compared span.
        reference_picks: reference picks (``network``/``station``) used to place reference events.
        max_dt_s: event origin-time tolerance (s).
        max_km: event epicentral tolerance (km).
        stations: station coordinates (``network, station, latitude, longitude``) that place
            the groups' areas.
    """
    rows = []
    for name, patterns in groups.items():
        if len(pick_matches):
            m = pick_matches[members(pick_matches["station_id"], patterns)]
            for by in (("model", "weights"), ("model", "weights", "phase")):
                if len(m):
                    part = evaluation.pick_metrics(m, by=list(by))
                    rows.append(
                        part.assign(
                            level="pick", group_by="group," + ",".join(by), group_value=name
                        )
                    )
        if events is not None and len(events) and reference_events is not None:
            mine = events[events["pick_source"].fillna("").map(source_group) == name]
            ref = reference_in_group(reference_events, patterns, stations, reference_picks)
            for associator in sorted(
                set(events["associator"].fillna("")) - set(mine["associator"].fillna(""))
            ):
                # an associator without events for this group still gets its row (fn = all)
                em = evaluation.match_events(mine.iloc[0:0], ref, max_dt_s, max_km)
                part = evaluation.event_metrics(em, by=[])
                rows.append(
                    part.assign(
                        level="event",
                        group_by="group,associator",
                        group_value=name,
                        associator=associator,
                    )
                )
            if len(mine):
                params = evaluation.MatchParams(event_max_dt_s=max_dt_s, event_max_km=max_km)
                em = evaluation.match_catalogues(mine, ref, params)
                part = evaluation.event_metrics(em, by=evaluation.CATALOGUE_COLUMNS)
                rows.append(
                    part.assign(level="event", group_by="group,associator", group_value=name)
                )
    cols = evaluation.METRIC_KEY_COLUMNS
    if not rows:
        return pd.DataFrame(columns=cols + evaluation.METRIC_COLUMNS)
    out = pd.concat(rows, ignore_index=True)
    for col in cols:
        if col not in out.columns:
            out[col] = None
    return out[cols + evaluation.METRIC_COLUMNS]
