"""Metrics per named station group (the groups themselves: :mod:`quakelake.params.groups`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from quakelake.analysis import evaluation
from quakelake.params.groups import members, source_group


def group_metrics(
    pick_matches: pd.DataFrame,
    groups: Mapping[str, Sequence[str]],
    events: pd.DataFrame | None = None,
    reference_events: pd.DataFrame | None = None,
    reference_picks: pd.DataFrame | None = None,
    max_dt_s: float = 2.0,
    max_km: float = 8.0,
) -> pd.DataFrame:
    """Return metrics rows per group, shaped like the lake's ``metrics`` table (without run/reference).

    Picks: the matches (TP/FP/FN) on the group's stations, per model x weights (and phase).
    Events: the events associated for the group (pick source ``...@GROUP``) against the reference
    events that have a reference pick on one of the group's stations (all reference events when the
    reference has no picks), per associator.

    Args:
        pick_matches: output of ``evaluation.match_picks`` (``station_id`` = NET.STA.LOC, NET.STA or STA:
            the key the reference was compared on, ``evaluation.station_level``).
        groups: ``{name: patterns}``.
        events: lake events (with ``pick_source`` and ``associator``).
        reference_events: reference events over the compared span.
        reference_picks: reference picks (``network``/``station``) used to place reference events.
        max_dt_s: event origin-time tolerance (s).
        max_km: event epicentral tolerance (km).
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
            ref = reference_events
            if reference_picks is not None and len(reference_picks):
                keys = (
                    reference_picks["network"].fillna("").astype(str)
                    + "."
                    + reference_picks["station"].astype(str)
                )
                on_group = reference_picks[members(keys.str.lstrip("."), patterns)]
                ref = ref[ref["event_id"].isin(set(on_group["event_id"].dropna()))]
            for associator in sorted(events["associator"].fillna("").unique()):
                group = mine[mine["associator"].fillna("") == associator]
                em = evaluation.match_events(group, ref, max_dt_s, max_km)
                part = evaluation.event_metrics(em, by=[])
                rows.append(
                    part.assign(
                        level="event",
                        group_by="group,associator",
                        group_value=name,
                        associator=associator,
                    )
                )
    cols = ["level", "group_by", "group_value", "model", "weights", "associator", "phase"]
    if not rows:
        return pd.DataFrame(columns=cols + evaluation.METRIC_COLUMNS)
    out = pd.concat(rows, ignore_index=True)
    for col in cols:
        if col not in out.columns:
            out[col] = None
    return out[cols + evaluation.METRIC_COLUMNS]
