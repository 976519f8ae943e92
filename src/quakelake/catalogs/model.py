"""The common model of reference catalogues: :class:`Catalog` and its two frames.

Every reader returns a :class:`Catalog` whose frames have exactly the columns (and types) of the
lake's ``reference_events`` and ``reference_picks`` tables.

Plain Python: no Prefect import here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from quakelake.errors import BadInput
from quakelake.lakehouse.schema import REFERENCE_EVENTS, REFERENCE_PICKS

EVENT_COLUMNS = list(REFERENCE_EVENTS.schema.names)
PICK_COLUMNS = list(REFERENCE_PICKS.schema.names)


class CatalogError(BadInput, ValueError):
    """A catalogue file cannot be read; the message names the file, the line and what to do."""


@dataclass
class Catalog:
    """Reference events and picks (columns of ``reference_events`` / ``reference_picks``)."""

    events: pd.DataFrame = field(default_factory=lambda: empty_events())
    picks: pd.DataFrame = field(default_factory=lambda: empty_picks())

    def __repr__(self) -> str:
        return f"Catalog({len(self.events)} events, {len(self.picks)} picks)"


def empty_events() -> pd.DataFrame:
    """Return an empty reference-events frame with the lake's columns."""
    return lake_frame({}, EVENT_COLUMNS)


def empty_picks() -> pd.DataFrame:
    """Return an empty reference-picks frame with the lake's columns."""
    return lake_frame({}, PICK_COLUMNS)


def lake_frame(data: dict | pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Return ``data`` with exactly ``columns`` (missing ones empty), typed like the lake."""
    df = pd.DataFrame(data)
    for col in columns:
        if col not in df.columns:
            df[col] = None
    df = df[columns].copy()
    if "time" in df.columns:
        df["time"] = pd.to_datetime(df["time"], utc=True).dt.as_unit("us")
    for col in ("latitude", "longitude", "depth_km", "magnitude", "weight"):
        if col in df.columns:
            df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    if "n_picks" in df.columns:
        df["n_picks"] = pd.to_numeric(df["n_picks"], errors="coerce").astype("Int32")
    for col in ("network", "station", "location", "channel"):
        if col in df.columns:
            df[col] = df[col].fillna("").astype(str)
    return df.reset_index(drop=True)
