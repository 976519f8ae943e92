"""The OGS ``;``-separated catalogue (``.txt``): ``index;event-id;origin_time(UTC);...;ml;md;...``.

Plain Python: no Prefect import here.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from quakelake.catalogs.model import EVENT_COLUMNS, Catalog, CatalogError, empty_picks, lake_frame


def ogs_event_type(text: object) -> str | None:
    """Return the QuakeML event type of an OGS ``event_type`` field (``[earthquake]``, ``[quarry blast]``)."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return None
    kind = str(text).strip().strip("[]").strip().lower().replace("_", " ")
    return {"explosion": "explosion", "quarry": "quarry blast", "blast": "quarry blast"}.get(
        kind, kind
    ) or None


def read_ogs_catalogue(path: str | Path) -> Catalog:
    """Read the OGS ``;``-separated catalogue (``.txt``): ML when given, else Md; the event type."""
    path = Path(path)
    try:
        df = pd.read_csv(path, sep=";", dtype=str, skipinitialspace=True, encoding="latin-1")
    except Exception as exc:
        raise CatalogError(f"cannot read OGS catalogue {path}: {exc}") from exc
    df.columns = [c.strip() for c in df.columns]
    need = ["event-id", "origin_time(UTC)", "lat", "lon", "depth"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise CatalogError(
            f"OGS catalogue {path} lacks the columns {', '.join(missing)}; "
            f"header: {', '.join(map(str, df.columns))}"
        )
    ml = pd.to_numeric(df.get("ml"), errors="coerce")
    md = pd.to_numeric(df.get("md"), errors="coerce")
    events = pd.DataFrame(
        {
            "event_id": df["event-id"].str.strip(),
            "time": pd.to_datetime(df["origin_time(UTC)"].str.strip(), utc=True, format="ISO8601"),
            "latitude": pd.to_numeric(df["lat"], errors="coerce"),
            "longitude": pd.to_numeric(df["lon"], errors="coerce"),
            "depth_km": pd.to_numeric(df["depth"], errors="coerce"),
            "magnitude": ml.where(ml.notna(), md),
            "magnitude_type": np.where(
                ml.notna(), "ML", np.where(md.notna(), "Md", np.array(None, dtype=object))
            ),
            "n_picks": None,
            "source_file": str(path),
            "event_type": df["event_type"].map(ogs_event_type)
            if "event_type" in df.columns
            else None,
        }
    )
    return Catalog(lake_frame(events, EVENT_COLUMNS), empty_picks())
