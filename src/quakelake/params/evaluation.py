"""Parameters of the analysis stage: what is compared and the tolerances of matching it to a reference.

Plain pydantic: the run configuration imports this without SciPy or pyproj; the matching
lives in :mod:`quakelake.analysis.evaluation`.
"""

from __future__ import annotations

import datetime as dt

from pydantic import Field

from quakelake.params.base import ParamModel

__all__ = ["MatchParams", "RunSelection"]


class MatchParams(ParamModel):
    """Tolerances of the analyzer's one-to-one matching."""

    pick_tolerance_s: float = Field(
        0.5, gt=0, description="largest |pick time - reference pick time| of a matched pick (s)"
    )
    event_max_dt_s: float = Field(
        2.0, gt=0, description="largest |origin time difference| of a matched event (s)"
    )
    event_max_km: float = Field(
        8.0, gt=0, description="largest epicentral distance of a matched event (km)"
    )
    edge_s: float = Field(
        2.0,
        ge=0,
        description="seconds at both ends of each stretch of continuous waveforms left out of the "
        "comparison (a picker needs context: picks on the first samples are not judged)",
    )
    station_key: str = Field(
        "station_id",
        description="column that identifies a station when matching picks: 'station_id' "
        "(NET.STA.LOC) or 'station' (station code only, for bulletins without network codes)",
    )
    event_types: list[str] | None = Field(
        None,
        description="compare only reference events of these types (e.g. ['earthquake'] leaves quarry "
        "blasts out, with their picks); reference events without a type are kept; None: all",
    )


class RunSelection(ParamModel):
    """Which picks and events of the lake an analysis compares with the reference."""

    run_ids: list[str] = Field([], description="run ids of the picks/events (empty: all runs)")
    models: list[str] = Field([], description="picker models (empty: all)")
    weights: list[str] = Field([], description="picker weights (empty: all)")
    associators: list[str] = Field([], description="associators (empty: all)")
    start: dt.datetime | None = Field(
        None, description="first UTC time compared (default: first pick or event of the selection)"
    )
    end: dt.datetime | None = Field(
        None, description="last UTC time compared (default: last pick or event of the selection)"
    )
