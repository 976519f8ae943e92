"""CSV reference catalogues: events (time, latitude, longitude ...) or picks (station, phase, time).

Column names follow the common conventions (:data:`CSV_ALIASES`); times are epoch seconds or
ISO strings.

Plain Python: no Prefect import here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from quakelake import ids
from quakelake.catalogs.model import (
    EVENT_COLUMNS,
    PICK_COLUMNS,
    Catalog,
    CatalogError,
    empty_events,
    empty_picks,
    lake_frame,
)

CSV_ALIASES = {
    "time": ("time", "origin_time", "datetime", "timestamp", "phase_time", "pick_time"),
    "latitude": ("latitude", "lat"),
    "longitude": ("longitude", "lon", "lng", "long"),
    "magnitude": ("magnitude", "mag", "ml", "mw", "md"),
    "event_id": ("event_id", "event-id", "eventid", "event_index", "id"),
    "pick_id": ("pick_id", "pickid"),
    "phase": ("phase", "phase_type", "phase_hint", "type"),
    "weight": ("weight", "prob", "probability", "phase_score"),
}


def _col(df: pd.DataFrame, key: str) -> str | None:
    lower = {c.lower().strip(): c for c in df.columns}
    for alias in CSV_ALIASES[key]:
        if alias in lower:
            return lower[alias]
    return None


def read_csv_catalog(path: str | Path) -> Catalog:
    """Read a CSV of events (time, latitude, longitude, ...) or picks (station, phase, time).

    Picks are recognised by a phase column; their station comes from ``network``/``station``/
    ``location``/``channel`` columns or from a ``station_id`` like ``CI.IMP..HH``. Depth is read
    from ``depth_km`` or ``depth`` (km) or ``depth_m``/``depth(m)`` (m). Missing ids become
    ``<file stem>_<row>``.
    """
    path = Path(path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:
        raise CatalogError(f"cannot read CSV catalogue {path}: {exc}") from exc
    tcol = _col(df, "time")
    if tcol is None:
        raise CatalogError(
            f"CSV catalogue {path} has no time column (one of {', '.join(CSV_ALIASES['time'])}); "
            f"its columns: {', '.join(map(str, df.columns))}"
        )
    times = csv_times(df[tcol], f"CSV catalogue {path}, column {tcol!r}")
    stem = path.stem
    pcol = _col(df, "phase")
    if pcol is not None:
        return Catalog(
            empty_events(), lake_frame(_csv_picks(df, times, pcol, stem, path), PICK_COLUMNS)
        )
    lat, lon = _col(df, "latitude"), _col(df, "longitude")
    if lat is None or lon is None:
        raise CatalogError(
            f"CSV catalogue {path} has neither a phase column (picks) nor latitude/longitude "
            f"columns (events); its columns: {', '.join(map(str, df.columns))}"
        )
    lower = {c.lower(): c for c in df.columns}
    if "depth_km" in lower:
        depth = pd.to_numeric(df[lower["depth_km"]], errors="coerce")
    elif "depth_m" in lower or "depth(m)" in lower:
        depth = (
            pd.to_numeric(df[lower.get("depth_m", lower.get("depth(m)"))], errors="coerce") / 1000
        )
    elif "depth" in lower:
        depth = pd.to_numeric(df[lower["depth"]], errors="coerce")
    else:
        depth = pd.Series(np.nan, index=df.index)
    ecol, mcol = _col(df, "event_id"), _col(df, "magnitude")
    events = pd.DataFrame(
        {
            "event_id": df[ecol] if ecol else [f"{stem}_{i:05d}" for i in range(1, len(df) + 1)],
            "time": times,
            "latitude": pd.to_numeric(df[lat], errors="coerce"),
            "longitude": pd.to_numeric(df[lon], errors="coerce"),
            "depth_km": depth,
            "magnitude": pd.to_numeric(df[mcol], errors="coerce") if mcol else np.nan,
            "magnitude_type": df[lower["magnitude_type"]] if "magnitude_type" in lower else None,
            "n_picks": pd.to_numeric(df[lower["n_picks"]], errors="coerce")
            if "n_picks" in lower
            else None,
            "source_file": str(path),
        }
    )
    return Catalog(lake_frame(events, EVENT_COLUMNS), empty_picks())


def csv_times(values: pd.Series, where: str) -> pd.Series:
    """Return the UTC times written in ``values``: epoch seconds (or ms) or ISO/common date strings.

    Raises:
        CatalogError: naming ``where``, the first values that are not times, and the accepted forms.

    >>> csv_times(pd.Series(["1644113699.73"]), "t").dt.strftime("%Y-%m-%dT%H:%M:%S.%f").tolist()
    ['2022-02-06T02:14:59.730000']
    >>> csv_times(pd.Series(["2020-10-01T00:02:21.07Z"]), "t").dt.year.tolist()
    [2020]
    """
    text = values.astype(str).str.strip()
    given = text != ""
    numbers = pd.to_numeric(text.where(given), errors="coerce")
    if given.any() and numbers[given].notna().all():
        # Epoch seconds, or milliseconds when too large for seconds (after year 5138).
        unit = "ms" if numbers[given].abs().max() > 1e11 else "s"
        times = pd.to_datetime(numbers, unit=unit, utc=True).dt.round("us")  # float64 -> whole µs
    else:
        times = pd.to_datetime(text.where(given), utc=True, format="mixed", errors="coerce")
    bad = given & times.isna()
    if bad.any():
        rows = [int(i) + 2 for i in bad[bad].index[:3]]  # +2: header line, 1-based
        raise CatalogError(
            f"{where}: {int(bad.sum())} values are not times, e.g. {', '.join(text[bad].head(3))} "
            f"(lines {', '.join(map(str, rows))}); write epoch seconds (1644113699.73) or ISO 8601 "
            "(2022-02-06T02:14:59.73Z)"
        )
    return times


def _csv_picks(
    df: pd.DataFrame, times: pd.Series, pcol: str, stem: str, path: Path
) -> pd.DataFrame:
    lower = {c.lower(): c for c in df.columns}

    def column(name: str) -> pd.Series:
        return df[lower[name]].astype(str) if name in lower else pd.Series("", index=df.index)

    net, sta, loc, cha = column("network"), column("station"), column("location"), column("channel")
    loc = loc.str.strip().replace("--", "")  # "--" is the FDSN web services' empty location
    sid_col = lower.get("station_id") or lower.get("trace_id") or lower.get("id")
    if sid_col and not sta.str.len().any():
        parts = df[sid_col].astype(str).str.split(".", expand=True)
        parts = parts.reindex(columns=range(4)).fillna("")
        net, sta, loc, cha = parts[0], parts[1], parts[2], parts[3]
    if not sta.str.len().any():
        raise CatalogError(
            f"CSV picks {path} name no station: add a 'station' column or a 'station_id' like "
            "NET.STA.LOC.CHA"
        )
    ecol, pid, wcol = _col(df, "event_id"), _col(df, "pick_id"), _col(df, "weight")
    return pd.DataFrame(
        {
            "pick_id": df[pid] if pid else [f"{stem}_{i:06d}" for i in range(1, len(df) + 1)],
            "event_id": df[ecol] if ecol else None,
            "network": net,
            "station": sta,
            "location": loc,
            "channel": cha,
            "station_id": ids.station_ids({"network": net, "station": sta, "location": loc}),
            "phase": df[pcol].astype(str).str.strip(),
            "time": times,
            "weight": pd.to_numeric(df[wcol], errors="coerce") if wcol else np.nan,
            "source_file": str(path),
        }
    )
