"""Phase association: picks + stations -> events and pick assignments, with GaMMA or PyOcto.

One small interface, DataFrames in and DataFrames out::

    result = associate(picks, stations, PyOctoConfig(...))
    result.events        # event_id, time, latitude, longitude, depth_km, n_picks, n_p, n_s, ...
    result.assignments   # event_id, pick_id, station_id, phase, time, residual_s
    result.unknown_stations  # station ids of picks that have no coordinates (reported, not hidden)

Association runs per day without loss at midnight with :func:`associate_day`: it reads picks
with a margin on both sides and keeps only events whose origin lies in the day.

The steps live in their own modules: :mod:`quakelake.association.inputs` (picks and stations
normalised, ``station_id`` = ``NET.STA.LOC``, one band per station),
:mod:`quakelake.association.settings` (empty settings derived from the network),
:mod:`quakelake.association.engines` (PyOcto and GaMMA behind one ``run(setup, config)``) and
:mod:`quakelake.association.relocation` (robust relocation of every event with all its picks, on by default
for PyOcto, and the location quality).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from quakelake.archive.stations import stations_at
from quakelake.association import engines, quality, relocation
from quakelake.association.inputs import normalise_picks, resolve_stations, station_table
from quakelake.association.relocation import (
    ASSIGNMENT_COLUMNS,
    EVENT_COLUMNS,
    empty_assignments,
    empty_events,
)
from quakelake.association.settings import first_pass, format_settings, resolve_config
from quakelake.params.association import AssociationError, GammaConfig, PyOctoConfig

__all__ = ["ASSIGNMENT_COLUMNS", "EVENT_COLUMNS", "AssociationResult", "associate", "associate_day"]

log = logging.getLogger(__name__)


@dataclass
class AssociationResult:
    """Events, pick assignments and what could not be used."""

    events: pd.DataFrame
    assignments: pd.DataFrame
    unknown_stations: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def empty(
        cls, messages: list[str] | None = None, unknown: list[str] | None = None
    ) -> AssociationResult:
        """Return a result with no events (right columns)."""
        return cls(empty_events(), empty_assignments(), unknown or [], messages or [])


def _prepare(
    picks: pd.DataFrame,
    stations: pd.DataFrame,
    config: PyOctoConfig | GammaConfig,
    messages: list[str],
) -> tuple[engines.Setup | None, list[str]]:
    norm, msg = normalise_picks(picks)
    messages += msg
    sites, msg = station_table(stations)
    messages += msg
    if len(sites) == 0:
        raise AssociationError(
            "the station table is empty; pass a station file (-F) or import stations"
        )
    if len(norm) == 0:
        return None, []
    rows, unknown = resolve_stations(norm, sites)
    if unknown:
        n = int((rows < 0).sum())
        text = (
            f"{n} picks on {len(unknown)} stations without coordinates were not associated: "
            f"{', '.join(unknown[:20])}{' ...' if len(unknown) > 20 else ''}; add them to the station file"
        )
        log.warning(text)
        messages.append(text)
    norm = norm[rows.to_numpy() >= 0].copy()
    norm["site"] = rows[rows >= 0].to_numpy()
    if len(norm) == 0:
        return None, unknown
    hours = (norm["time"].max() - norm["time"].min()).total_seconds() / 3600.0
    config, settings = resolve_config(config, sites, norm["site"].value_counts(), hours)
    config = first_pass(config, settings, norm, sites)
    return engines.build_setup(config, settings, norm, sites), unknown


def associate(
    picks: pd.DataFrame,
    stations: pd.DataFrame,
    config: PyOctoConfig | GammaConfig,
    event_prefix: str = "",
) -> AssociationResult:
    """Associate ``picks`` into events with the associator that ``config`` names.

    Args:
        picks: ``station_id``, ``phase``, ``time`` (+ optional ``probability``, ``pick_id``).
        stations: station table (columns of the lake's `stations` table).
        config: :class:`PyOctoConfig` or :class:`GammaConfig`.
        event_prefix: prefix of the event ids (the origin time follows it).

    Returns:
        AssociationResult with events (EVENT_COLUMNS) and assignments (ASSIGNMENT_COLUMNS);
        picks on stations without coordinates are listed in ``unknown_stations``.

    Raises:
        AssociationError: when picks or stations lack required columns.
    """
    t0 = time.perf_counter()
    messages: list[str] = []
    setup, unknown = _prepare(picks, stations, config, messages)
    if setup is None or len(setup.picks) == 0:
        messages.append("no picks to associate")
        res = AssociationResult.empty(messages, unknown)
        res.seconds = time.perf_counter() - t0
        return res
    config = setup.config
    if setup.settings:
        log.info("derived association settings: %s", format_settings(setup.settings))
    raw_events, raw_assign = engines.run(setup, config)
    events, assignments = relocation.finish(setup, config, raw_events, raw_assign, event_prefix)
    events = quality.evaluate(events, config.gate)
    res = AssociationResult(events, assignments, unknown, messages, settings=setup.settings)
    res.seconds = time.perf_counter() - t0
    return res


def associate_day(
    picks: pd.DataFrame,
    stations: pd.DataFrame,
    day: dt.date,
    config: PyOctoConfig | GammaConfig,
    margin_s: float = 120.0,
    event_prefix: str = "",
) -> AssociationResult:
    """Associate the events whose origin lies in UTC ``day``, using picks ``margin_s`` around it.

    Picks from ``day - margin`` to ``day + 1 + margin`` are associated; only events with origin
    time in ``[day, day + 1)`` are kept (with all their picks, including those of the next day),
    so consecutive days find an event at 23:59:58 exactly once.
    """
    start = pd.Timestamp(day, tz="UTC")
    end = start + pd.Timedelta(days=1)
    margin = pd.Timedelta(seconds=margin_s)
    if "time" in picks.columns and pd.api.types.is_datetime64_any_dtype(picks["time"]):
        # cheap pre-selection before normalising (a year of picks, one day at a time)
        t = pd.to_datetime(picks["time"], utc=True)
        picks = picks[(t >= start - margin) & (t < end + margin)]
    norm, messages = normalise_picks(picks)
    window = norm[(norm["time"] >= start - margin) & (norm["time"] < end + margin)]
    if {"start", "end"} <= set(stations.columns):
        # several epochs of a channel: the ones valid for the day's data place its picks
        stations = stations_at(stations, start - margin, end + margin)
    res = associate(window, stations, config, event_prefix)
    res.messages = messages + [m for m in res.messages if m not in messages]
    ev = res.events
    keep = (ev["time"] >= start) & (ev["time"] < end)
    res.events = ev[keep].reset_index(drop=True)
    res.assignments = res.assignments[
        res.assignments["event_id"].isin(res.events["event_id"])
    ].reset_index(drop=True)
    return res
