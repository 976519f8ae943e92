"""Association input: pick and station tables normalised for the associators, and the local map.

``picks`` need ``station_id`` (``NET.STA.LOC``, SeisBench's trace id, as the lake's picks carry
it; pick files may name ``NET.STA`` or ``STA``, and a ``station`` column is accepted too),
``phase`` (P/S) and ``time`` (UTC); ``probability``, ``pick_id`` and ``band`` are optional.
The associators see one instrument per station: where a station picked on two bands (``HH``
and ``HN``), the picks of one band are kept (:func:`one_band_per_station`).
``stations`` is a `stations` table (see :mod:`quakelake.archive.stations`); :class:`Projection` maps
the search area (:func:`area_bounds`) to local kilometres.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pyproj import CRS, Transformer

from quakelake import ids
from quakelake.archive.stations import station_coordinates
from quakelake.params.association import AreaParams, AssociationError


def read_pick_table(path: Path) -> pd.DataFrame:
    """Return the picks of an external pick table (CSV/TSV or Parquet), normalised.

    Columns: station id (``NET.STA.LOC`` or ``STA``), phase, time (UTC), optional probability
    and pick_id — e.g. picks of another picker or an analyst.

    Raises:
        FileNotFoundError: naming the file.
        AssociationError: naming the missing columns.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pick file {path} does not exist; pass an existing --picks FILE")
    if path.suffix.lower() in (".parquet", ".pq"):
        df = pd.read_parquet(path)
    else:
        df = pd.read_csv(path, sep=None, engine="python")
    return normalise_picks(df)[0]


# Which band a station's picks are associated on when it picked on several: broadband and
# high-rate velocity sensors first, short-period next, strong-motion (accelerometer) bands last.
# Bands not listed come after these, alphabetically.
BAND_PRIORITY = ("HH", "BH", "EH", "SH", "HN", "BN", "EN", "SN", "HG", "EG", "HL", "BL")


def _band_rank(band: str) -> tuple[int, str]:
    return (BAND_PRIORITY.index(band) if band in BAND_PRIORITY else len(BAND_PRIORITY), band)


def one_band_per_station(picks: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Return the picks of one band per ``station_id`` and a message naming what was dropped.

    The associators place every pick at its station's coordinates: two bands of one station
    (``CM.X.00`` on ``HH`` and ``HN``) would put each onset there twice and count the station
    twice. Per station the band first in :data:`BAND_PRIORITY` that has picks among ``picks``
    (a day and its margins) is kept; frames without a ``band`` column pass unchanged.

    >>> p = pd.DataFrame({"station_id": ["A.B.", "A.B.", "A.C."], "band": ["HN", "HH", "HN"]})
    >>> kept, msg = one_band_per_station(p)
    >>> kept["band"].tolist(), msg
    (['HH', 'HN'], ['1 picks on another band of their station not associated: A.B. HN (kept HH)'])
    """
    if "band" not in picks.columns or not len(picks):
        return picks, []
    bands = picks["band"].fillna("").astype(str)
    present = bands.groupby(picks["station_id"]).unique()
    several = present[present.map(len) > 1]
    if not len(several):
        return picks, []
    best = {sid: min(bs, key=_band_rank) for sid, bs in several.items()}
    keep = np.array(
        [best.get(s, b) == b for s, b in zip(picks["station_id"], bands, strict=True)], dtype=bool
    )
    dropped = [
        f"{sid} {'+'.join(sorted(b for b in bs if b != best[sid]))}"
        for sid, bs in sorted(several.items())
    ]
    kept_bands = "+".join(sorted(set(best.values()), key=_band_rank))
    message = (
        f"{int((~keep).sum())} picks on another band of their station not associated: "
        f"{', '.join(dropped[:10])}{' ...' if len(dropped) > 10 else ''} (kept {kept_bands})"
    )
    return picks[keep], [message]


def _band_apart(picks: pd.DataFrame) -> pd.DataFrame:
    """Return pick-file rows whose ids read ``NET.STA.LOC.BAND`` as ``station_id`` NET.STA.LOC + ``band``.

    Pick tables written by other tools (PhaseNet's, older QuakeLake exports) name the instrument
    in the id; the lake keeps the station and the band apart. Ids of other shapes pass unchanged.

    >>> _band_apart(pd.DataFrame({"station_id": ["CI.IMP..HH", "CI.IMP.", "IMP"]})).to_dict("list")
    {'station_id': ['CI.IMP.', 'CI.IMP.', 'IMP'], 'band': ['HH', '', '']}
    """
    parts = picks["station_id"].str.split(".")
    four = parts.str.len() == 4
    if not four.any():
        return picks
    out = picks.copy()
    if "band" not in out.columns:
        out["band"] = ""
    out["band"] = out["band"].fillna("").astype(str).where(~four, parts.str[3])
    out["station_id"] = out["station_id"].where(~four, parts.str[:3].str.join("."))
    return out


def normalise_picks(picks: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Return picks with ``pick_id, station_id, phase, time, probability`` and messages.

    Phases other than P/S and exact duplicates (same station, phase and time) are removed and
    reported; a station that picked on several bands keeps one (:func:`one_band_per_station`).

    Raises:
        AssociationError: naming the missing columns.
    """
    messages: list[str] = []
    df = picks.copy()
    if "station_id" not in df.columns and "station" in df.columns:
        df = df.rename(columns={"station": "station_id"})
    if "time" not in df.columns and "peak_time" in df.columns:
        df = df.rename(columns={"peak_time": "time"})
    missing = [c for c in ("station_id", "phase", "time") if c not in df.columns]
    if missing:
        raise AssociationError(
            f"picks lack columns {', '.join(missing)}; found {', '.join(map(str, picks.columns))}. "
            "Picks need station_id "
            "(NET.STA.LOC or STA), phase (P/S) and time (UTC); probability and pick_id are optional"
        )
    if len(df) == 0:
        return pd.DataFrame(
            columns=["pick_id", "station_id", "phase", "time", "probability"]
        ), messages
    df["station_id"] = df["station_id"].astype(str).str.strip()
    df = _band_apart(df)
    df, band_messages = one_band_per_station(df)
    messages += band_messages
    df = df.copy()
    df["phase"] = df["phase"].astype(str).str.strip().str.upper().str[:1]
    times = df["time"]
    if pd.api.types.is_numeric_dtype(times):
        df["time"] = pd.to_datetime(times, unit="s", utc=True)
    else:
        df["time"] = pd.to_datetime(times, utc=True, format="mixed")
    df["time"] = df["time"].dt.as_unit("ns")  # epoch seconds below assume nanoseconds
    if "probability" not in df.columns:
        df["probability"] = 1.0
    df["probability"] = pd.to_numeric(df["probability"], errors="coerce").fillna(1.0).astype(float)
    other = ~df["phase"].isin(["P", "S"])
    if other.any():
        messages.append(
            f"{int(other.sum())} picks with phases other than P/S ignored: "
            f"{', '.join(sorted(df.loc[other, 'phase'].unique())[:10])}"
        )
        df = df[~other]
    bad_time = df["time"].isna()
    if bad_time.any():
        messages.append(f"{int(bad_time.sum())} picks without a valid time ignored")
        df = df[~bad_time]
    if "pick_id" not in df.columns:
        df["pick_id"] = (
            df["station_id"]
            + "|"
            + df["phase"]
            + "|"
            + df["time"].dt.strftime("%Y-%m-%dT%H:%M:%S.%f")
        )
    df["pick_id"] = df["pick_id"].astype(str)
    dup = df.duplicated(["station_id", "phase", "time"])
    if dup.any():
        messages.append(f"{int(dup.sum())} duplicated picks (same station, phase and time) removed")
        df = df[~dup]
    dup_id = df.duplicated("pick_id")
    if dup_id.any():
        messages.append(f"{int(dup_id.sum())} picks with a repeated pick_id removed")
        df = df[~dup_id]
    df = df.sort_values("time", kind="stable").reset_index(drop=True)
    return df[["pick_id", "station_id", "phase", "time", "probability"]], messages


def station_table(stations: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Return one row per site with ``key, network, station, location, latitude, longitude, elevation_m``."""
    messages: list[str] = []
    missing = [c for c in ("station", "latitude", "longitude") if c not in stations.columns]
    if missing:
        raise AssociationError(
            f"stations lack columns {missing}; read them with quakelake.archive.stations.read_stations"
        )
    st = station_coordinates(stations)
    no_elev = st["elevation_m"].isna()
    if no_elev.any():
        messages.append(f"{int(no_elev.sum())} stations without elevation: placed at sea level")
        st["elevation_m"] = st["elevation_m"].fillna(0.0)
    st["key"] = ids.station_ids(st)
    return st.reset_index(drop=True), messages


def resolve_stations(picks: pd.DataFrame, stations: pd.DataFrame) -> tuple[pd.Series, list[str]]:
    """Return, per pick, the row of its station in ``stations`` (-1 when unknown) and the unknown ids.

    A pick's ``station_id`` is the station's ``NET.STA.LOC`` (lake picks; SeisBench's trace id).
    Pick files that name less are looked up by what they name: ``NET.STA`` (the first location
    of that station) or ``STA`` alone when that code is unique among the stations (or all its
    sites share coordinates).
    """
    lookup: dict[str, int] = {}
    by_code: dict[str, list[int]] = {}
    for i, (net, sta, loc) in enumerate(
        zip(stations["network"], stations["station"], stations["location"], strict=False)
    ):
        lookup.setdefault(f"{net}.{sta}.{loc}", i)
        lookup.setdefault(f"{net}.{sta}", i)
        by_code.setdefault(sta, []).append(i)
    for code, rows in by_code.items():
        if (
            len(rows) == 1
            or len({(stations["latitude"][r], stations["longitude"][r]) for r in rows}) == 1
        ):
            lookup.setdefault(code, rows[0])
    cache = {sid: lookup.get(sid, -1) for sid in picks["station_id"].unique()}
    rows = picks["station_id"].map(cache).astype(int)
    unknown = sorted(sid for sid, i in cache.items() if i < 0)
    return rows, unknown


@dataclass
class Projection:
    """Local transverse Mercator (km) centred on an area, via pyproj."""

    crs: CRS

    @classmethod
    def centred(cls, lat: tuple[float, float], lon: tuple[float, float]) -> Projection:
        """Return the projection centred on the box ``lat`` x ``lon``."""
        lat0, lon0 = (lat[0] + lat[1]) / 2, (lon[0] + lon[1]) / 2
        return cls(CRS(f"+proj=tmerc +lat_0={lat0} +lon_0={lon0} +units=km"))

    def _fwd(self) -> Transformer:
        return Transformer.from_crs(CRS.from_epsg(4326), self.crs, always_xy=True)

    def to_xy(self, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return x (east) and y (north) in km."""
        x, y = self._fwd().transform(np.asarray(lon, float), np.asarray(lat, float))
        return np.asarray(x), np.asarray(y)

    def bounds(
        self, lat: tuple[float, float], lon: tuple[float, float]
    ) -> tuple[tuple[float, float], tuple[float, float]]:
        """Return the (x, y) ranges (km) of the box that encloses the lat/lon area (densified edges)."""
        x0, y0, x1, y1 = self._fwd().transform_bounds(lon[0], lat[0], lon[1], lat[1])
        return (float(x0), float(x1)), (float(y0), float(y1))

    def to_latlon(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return latitude and longitude of local x, y (km)."""
        lon, lat = self._fwd().transform(
            np.asarray(x, float), np.asarray(y, float), direction="INVERSE"
        )
        return np.asarray(lat), np.asarray(lon)


def area_bounds(
    area: AreaParams, stations: pd.DataFrame
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Return the (latitude, longitude) ranges of the search area."""
    m = 0.3 if area.margin_deg is None else area.margin_deg
    lat = area.latitude or (
        float(stations["latitude"].min()) - m,
        float(stations["latitude"].max()) + m,
    )
    lon = area.longitude or (
        float(stations["longitude"].min()) - m,
        float(stations["longitude"].max()) + m,
    )
    return lat, lon
