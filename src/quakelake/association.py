"""Phase association: picks + stations -> events and pick assignments, with GaMMA or PyOcto.

One small interface, DataFrames in and DataFrames out::

    result = associate(picks, stations, PyOctoConfig(...))
    result.events        # event_id, time, latitude, longitude, depth_km, n_picks, n_p, n_s, ...
    result.assignments   # event_id, pick_id, station_id, phase, time, residual_s
    result.unknown_stations  # station ids of picks that have no coordinates (reported, not hidden)

``picks`` needs ``station_id`` (``NET.STA.LOC``, SeisBench's trace id, as the lake's picks carry
it; pick files may name ``NET.STA`` or ``STA``, and a ``station`` column is accepted too),
``phase`` (P/S) and ``time`` (UTC); ``probability``, ``pick_id`` and ``band`` are optional.
The associators see one instrument per station: where a station picked on two bands (``HH``
and ``HN``), the picks of one band are kept (:func:`one_band_per_station`).
``stations`` is a `stations` table (see :mod:`quakelake.stations`).

Association runs per day without loss at midnight with :func:`associate_day`: it reads picks
with a margin on both sides and keeps only events whose origin lies in the day.

After association, events are relocated (optional, on by default for PyOcto) by a robust
least-squares fit of all their picks in the same velocity model: PyOcto's octree locations are
preliminary (node-size precision) and this step brings the epicentres within the few km that
catalogue matching needs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import logging
import os
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel
from pyproj import CRS, Transformer

from quakelake.association_auto import derive_settings, network_geometry, wadati_ratio
from quakelake.params.association import (
    AreaParams,
    AssociationError,
    GammaConfig,
    PyOctoConfig,
    RelocationParams,
    VelocityParams,
)
from quakelake.stations import station_coordinates
from quakelake.velocity import (
    cached_table,
    layered_model,
    model_points,
    standard_model,
    surface_velocities,
)

log = logging.getLogger(__name__)

# Location quality, from the relocation's covariance and the station geometry (lake `events` too).
QUALITY_COLUMNS = [
    "time_uncertainty_s",
    "latitude_uncertainty_km",
    "longitude_uncertainty_km",
    "horizontal_uncertainty_km",
    "vertical_uncertainty_km",
    "azimuthal_gap_deg",
    "min_distance_km",
    "location_quality",
]
EVENT_COLUMNS = [
    "event_id",
    "time",
    "latitude",
    "longitude",
    "depth_km",
    "n_picks",
    "n_p",
    "n_s",
    "n_stations",
    "score",
    "rms_residual_s",
    *QUALITY_COLUMNS,
]
# An event is "unconstrained" when its stations leave a gap above this or are fewer than 3.
UNCONSTRAINED_GAP_DEG = 300.0
UNCONSTRAINED_MIN_STATIONS = 3
# With the standard model, the Vp/Vs ratio is measured on the first picks (see measure_vp_vs).
VP_VS_FROM_PICKS = "from the picks"
VP_VS_PICKS = 2000
ASSIGNMENT_COLUMNS = ["event_id", "pick_id", "station_id", "phase", "time", "residual_s"]


def ogs_default() -> PyOctoConfig:
    """Return the documented OGS (NE Italy, RSFVG) default: PyOcto, 1-D model, relocation.

    On the 2024 OGS analyst picks fed without their grouping (stations from
    ``DERIVED_station_coords_from_hpc.csv``) this reaches R4 0.99 at precision 0.99 against the
    OGS catalogue (2 s / 8 km), the year in a few seconds (see ``benchmarks/association.py``).

    * relaxed counts (4 picks, 2 P, no S requirement) find the small events the practitioner
      settings (6/3/3/3) miss; ``min_pick_fraction`` 0 keeps picks of distant stations;
    * the 1-D model is the OGS one (``velocity_1d/taup_tt.nd``, its crust and Moho points);
    * relocation of every event with all its picks fixes PyOcto's coarse locations, which were
      the reason most missed events (and most false ones) failed the 8 km match.
    """
    return PyOctoConfig(
        area=AreaParams(latitude=(44.0, 47.6), longitude=(9.0, 15.6), depth_km=(0.0, 50.0)),
        velocity=VelocityParams(
            kind="1d",
            layers=[
                (0.0, 5.85, 3.28652),
                (22.0, 6.8, 3.82022),
                (39.5, 8.0, 4.42438),
                (40.0, 8.10119, 4.48486),
                (60.0, 8.08907, 4.47715),
            ],
            max_depth_km=60.0,
            grid_km=1.0,
        ),
        tolerance_s=1.5,
        time_before_s=60.0,
        n_picks=4,
        n_p_picks=2,
        n_s_picks=0,
        n_p_and_s_picks=0,
        min_pick_fraction=0.0,
        pick_match_tolerance_s=1.5,
        min_node_size_km=10.0,
        min_node_size_location_km=1.5,
        time_slicing_s=1200.0,
        relocation=RelocationParams(enabled=True, huber_s=1.0, s_weight=0.5),
    )


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
        return cls(_empty_events(), _empty_assignments(), unknown or [], messages or [])


def _empty_events() -> pd.DataFrame:
    df = pd.DataFrame({c: pd.Series(dtype=float) for c in EVENT_COLUMNS})
    df["event_id"] = df["event_id"].astype(object)
    df["location_quality"] = df["location_quality"].astype(object)
    df["time"] = pd.to_datetime(df["time"], utc=True)
    return df


def _empty_assignments() -> pd.DataFrame:
    df = pd.DataFrame({c: pd.Series(dtype=object) for c in ASSIGNMENT_COLUMNS})
    df["time"] = pd.to_datetime(df["time"], utc=True)
    df["residual_s"] = df["residual_s"].astype(float)
    return df


# ----------------------------------------------------------------------------- inputs


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
            f"stations lack columns {missing}; read them with quakelake.stations.read_stations"
        )
    st = station_coordinates(stations)
    no_elev = st["elevation_m"].isna()
    if no_elev.any():
        messages.append(f"{int(no_elev.sum())} stations without elevation: placed at sea level")
        st["elevation_m"] = st["elevation_m"].fillna(0.0)
    st["key"] = st["network"] + "." + st["station"] + "." + st["location"]
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


# ----------------------------------------------------------------------------- geometry


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


def _unset(model: BaseModel, name: str) -> bool:
    return getattr(model, name) is None


def resolve_config(
    config: PyOctoConfig | GammaConfig,
    sites: pd.DataFrame,
    picks_per_site: pd.Series | None = None,
    hours: float = 0.0,
) -> tuple[PyOctoConfig | GammaConfig, dict[str, Any]]:
    """Return ``config`` with every empty setting derived from the network, and what was derived.

    Values the user gave are kept as they are; the others come from
    :func:`quakelake.association_auto.derive_settings` on the geometry of the stations that have
    picks. The second value is ``{"derived": {setting: value}, "geometry": {...}}`` (empty when
    nothing was left to derive), for printing and for the run's lineage.

    Args:
        config: associator configuration, possibly with empty (None) settings.
        sites: one row per site with ``latitude, longitude`` (see :func:`station_table`).
        picks_per_site: picks per row of ``sites``; sites without picks do not count.
        hours: time span of those picks.
    """
    vel, area, reloc = config.velocity, config.area, config.relocation
    if isinstance(config, PyOctoConfig):
        names = [
            "tolerance_s",
            "time_before_s",
            "n_picks",
            "n_p_picks",
            "n_s_picks",
            "n_p_and_s_picks",
            "min_pick_fraction",
            "pick_match_tolerance_s",
            "min_node_size_km",
            "min_node_size_location_km",
            "time_slicing_s",
        ]
        source = {n: n for n in names}
    else:
        source = {
            "dbscan_eps": "dbscan_eps",
            "min_picks_per_eq": "n_picks",
            "min_p_picks_per_eq": "n_p_picks",
            "min_s_picks_per_eq": "n_s_picks",
            "max_sigma11": "max_sigma11",
        }
    top = [n for n in source if _unset(config, n)]
    area_unset = [n for n in ("latitude", "longitude", "depth_km") if _unset(area, n)]
    wanted = (["grid_km", "max_depth_km"] if vel.kind != "0d" else []) + (
        ["vp", "vs"] if isinstance(config, GammaConfig) or vel.kind == "0d" else []
    )
    vel_unset = [n for n in wanted if _unset(vel, n)]
    if not (top or area_unset or vel_unset or vel.kind == "auto" or reloc.enabled is None):
        return config, {}
    geometry = network_geometry(sites, picks_per_site, hours)
    user_depth = area.depth_km[1] if area.depth_km is not None else None
    model = layered_model(vel, max(user_depth or 0.0, 310.0)) if vel.kind != "0d" else None
    if model is None:
        model = pd.DataFrame(
            {"depth": [0.0, 1.0], "vp": [vel.vp or 6.0] * 2, "vs": [vel.vs or 6.0 / 1.75] * 2}
        )
    auto: dict[str, Any] = derive_settings(geometry, model)
    derived: dict[str, Any] = {}

    def take(key: str, name: str) -> Any:
        derived[name] = auto[key]
        return auto[key]

    area_update: dict[str, Any] = {}
    if area.margin_deg is not None:  # the user's margin around the stations' box
        m = area.margin_deg
        auto["latitude"] = (geometry.latitude[0] - m, geometry.latitude[1] + m)
        auto["longitude"] = (geometry.longitude[0] - m, geometry.longitude[1] + m)
    if user_depth is not None:
        auto["max_depth_km"] = max(auto["max_depth_km"], user_depth + 10.0)
    for n in area_unset:
        area_update[n] = take(n, f"area.{n}")
    vel_update: dict[str, Any] = {}
    if vel.kind == "auto":
        if vel.model_file is None and not vel.layers:
            vel_update["layers"] = [
                tuple(r)
                for r in standard_model(vel.standard, auto["max_depth_km"] + 10.0)
                .to_numpy()
                .round(5)
                .tolist()
            ]
            derived["velocity.model"] = (
                f"{vel.standard} (ObsPy TauP), {len(vel_update['layers'])} points"
            )
            if vel.vp_vs is None:
                derived["velocity.vp_vs"] = VP_VS_FROM_PICKS
        else:
            derived["velocity.model"] = str(vel.model_file or "layers")
        vel_update["kind"] = "1d"
    for n in vel_unset:
        vel_update[n] = take(n, f"velocity.{n}")
    update: dict[str, Any] = {n: take(source[n], n) for n in top}
    if area_update:
        update["area"] = area.model_copy(update=area_update)
    if vel_update:
        update["velocity"] = vel.model_copy(update=vel_update)
    if reloc.enabled is None:
        update["relocation"] = reloc.model_copy(
            update={"enabled": take("relocation", "relocation.enabled")}
        )
    resolved = config.model_copy(update=update)
    settings = {"derived": derived, "geometry": geometry.as_dict()} if derived else {}
    return resolved, settings


def resolve_for_network(
    config: PyOctoConfig | GammaConfig,
    stations: pd.DataFrame,
    pick_counts: pd.DataFrame | None = None,
    hours: float = 0.0,
    picks: pd.DataFrame | None = None,
) -> tuple[PyOctoConfig | GammaConfig, dict[str, Any]]:
    """Return :func:`resolve_config` for a station table and picks counted per station.

    Args:
        config: associator configuration, possibly with empty settings.
        stations: station table (columns of the lake's `stations` table).
        pick_counts: ``station_id, n`` (picks per station id); None: every station counts.
        hours: time span of the counted picks.
        picks: some of the run's picks (e.g. its first day), to measure the Vp/Vs ratio when
            the standard model is used (:func:`measure_vp_vs`); without them the standard
            model keeps its own ratio.
    """
    sites, _ = station_table(stations)
    per_site = None
    if pick_counts is not None and len(pick_counts):
        rows, _ = resolve_stations(
            pick_counts.assign(station_id=pick_counts["station_id"].astype(str)), sites
        )
        known = rows.to_numpy() >= 0
        per_site = pick_counts["n"][known].groupby(rows.to_numpy()[known]).sum()
    resolved, settings = resolve_config(config, sites, per_site, hours)
    norm = normalise_picks(picks)[0] if picks is not None else pd.DataFrame()
    if len(norm):
        rows, _ = resolve_stations(norm, sites)
        norm = norm[rows.to_numpy() >= 0].assign(site=rows[rows >= 0].to_numpy())
    if len(norm):
        resolved = measure_vp_vs(resolved, settings, norm.reset_index(drop=True), sites)
    elif settings.get("derived", {}).get("velocity.vp_vs") == VP_VS_FROM_PICKS:
        settings["derived"]["velocity.vp_vs"] = "model"
    return resolved, settings


def format_settings(settings: dict[str, Any]) -> str:
    """Return the derived settings as one line ``name=value, ...`` (empty when none)."""
    derived = settings.get("derived", {})
    if not derived:
        return ""
    g = settings.get("geometry", {})
    head = (
        f"{g.get('n_stations')} stations, aperture {g.get('aperture_km', 0):.0f} km, spacing "
        f"{g.get('spacing_km', 0):.1f} km, {g.get('n_visible')} within {g.get('visibility_km', 0):.0f} km"
    )
    return head + ": " + ", ".join(f"{k}={v}" for k, v in derived.items())


class _HomogeneousTimes:
    """Straight-ray travel times in a homogeneous medium (same interface as TravelTimeTable)."""

    def __init__(self, vp: float, vs: float):
        self.vp, self.vs = vp, vs

    def times(self, is_s, distance_km, depth_km):
        v = np.where(np.asarray(is_s, bool), self.vs, self.vp)
        r = np.hypot(distance_km, depth_km) + 1e-9
        return r / v, distance_km / (r * v), depth_km / (r * v)


@dataclass
class _Setup:
    config: PyOctoConfig | GammaConfig  # with every derived setting filled in
    settings: dict[str, Any]  # what was derived (resolve_config)
    picks: pd.DataFrame  # normalised picks with station row, x, y, z (km, z down)
    stations: pd.DataFrame  # sites with x, y, z
    projection: Projection
    lat: tuple[float, float]
    lon: tuple[float, float]
    times: Any  # TravelTimeTable or _HomogeneousTimes
    table_path: Path | None
    surface: tuple[float, float]


def _prepare(
    picks: pd.DataFrame,
    stations: pd.DataFrame,
    config: PyOctoConfig | GammaConfig,
    messages: list[str],
) -> tuple[_Setup | None, list[str]]:
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
    config = measure_vp_vs(config, settings, norm, sites)
    return _build_setup(config, settings, norm, sites), unknown


def _build_setup(
    config: PyOctoConfig | GammaConfig,
    settings: dict[str, Any],
    norm: pd.DataFrame,
    sites: pd.DataFrame,
) -> _Setup:
    """Return the projection, travel times and pick coordinates of a resolved ``config``."""
    sites = sites.copy()
    lat, lon = area_bounds(config.area, sites)
    proj = Projection.centred(lat, lon)
    sites["x"], sites["y"] = proj.to_xy(sites["latitude"].to_numpy(), sites["longitude"].to_numpy())
    sites["z"] = -sites["elevation_m"].to_numpy() / 1000.0
    vel = config.velocity
    times: Any  # a TravelTimeTable or _HomogeneousTimes
    if vel.kind == "1d":
        assert (
            vel.grid_km and vel.max_depth_km and config.area.depth_km
        )  # resolve_config fills them
        (xa, xb), (ya, yb) = proj.bounds(lat, lon)
        s_x, s_y = sites["x"].to_numpy(), sites["y"].to_numpy()
        span = max(xb, s_x.max()) - min(xa, s_x.min())
        span_y = max(yb, s_y.max()) - min(ya, s_y.min())
        xdist = float(np.ceil(np.hypot(span, span_y) / 50.0) * 50.0 + 50.0)
        zdist = max(vel.max_depth_km, config.area.depth_km[1] + 5.0)
        path, times = cached_table(model_points(vel), vel.grid_km, xdist, zdist, vel.table_dir)
    else:
        assert vel.vp and vel.vs  # resolve_config derives them for a 0-D model
        path, times = None, _HomogeneousTimes(vel.vp, vel.vs)
    norm = norm.copy()
    for c in ("x", "y", "z"):
        norm[c] = sites[c].to_numpy()[norm["site"].to_numpy()]
    return _Setup(
        config, settings, norm, sites, proj, lat, lon, times, path, surface_velocities(vel)
    )


def _run(setup: _Setup) -> tuple[pd.DataFrame, pd.DataFrame]:
    if isinstance(setup.config, PyOctoConfig):
        return _run_pyocto(setup, setup.config)
    return _run_gamma(setup, setup.config)


def measure_vp_vs(
    config: PyOctoConfig | GammaConfig,
    settings: dict[str, Any],
    picks: pd.DataFrame,
    sites: pd.DataFrame,
) -> PyOctoConfig | GammaConfig:
    """Return ``config`` with the Vp/Vs ratio of the picks when :func:`resolve_config` asked for it.

    With no regional model the standard model's Vp/Vs (1.73 in ak135) is a guess, and a wrong
    ratio moves every location that uses S picks. The ratio is measured instead: the first
    :data:`VP_VS_PICKS` picks are associated with the resolved settings (by PyOcto, also for
    GaMMA: it is the faster of the two) and the Wadati slope of
    their events (:func:`quakelake.association_auto.wadati_ratio`) becomes ``velocity.vp_vs``;
    when too few events have P and S picks the model keeps its own S velocities. The value and
    the number of events it rests on are recorded in ``settings["derived"]``.

    Args:
        config: a config returned by :func:`resolve_config`.
        settings: the settings returned with it (updated in place).
        picks: normalised picks with ``site`` (row in ``sites``), sorted by time.
        sites: the station table (:func:`station_table`).
    """
    derived = settings.get("derived", {})
    if derived.get("velocity.vp_vs") != VP_VS_FROM_PICKS:
        return config
    first = picks.iloc[:VP_VS_PICKS].reset_index(drop=True)
    probe = config
    if isinstance(config, GammaConfig):  # PyOcto finds the events of the first pass faster
        span = (first["time"].max() - first["time"].min()).total_seconds() / 3600.0
        probe, _ = resolve_config(
            PyOctoConfig(area=config.area, velocity=config.velocity),
            sites,
            first["site"].value_counts(),
            span,
        )
    trial = _build_setup(probe, settings, first, sites)
    raw_events, raw_assign = _run(trial)
    rows = trial.picks.iloc[raw_assign["pick_idx"].astype(int).to_numpy()]
    assigned = pd.DataFrame(
        {
            "event": raw_assign["event_idx"].to_numpy(),
            "site": rows["site"].to_numpy(),
            "phase": rows["phase"].to_numpy(),
            "t": rows["time"].astype("int64").to_numpy() / 1e9,
        }
    )
    ratio, n_events = wadati_ratio(assigned)
    derived["velocity.vp_vs_events"] = n_events
    if ratio is None:
        derived["velocity.vp_vs"] = "model"
        return config
    derived["velocity.vp_vs"] = ratio
    vel_update: dict[str, Any] = {"vp_vs": ratio}
    if "velocity.vs" in derived and config.velocity.vp is not None:
        vel_update["vs"] = derived["velocity.vs"] = round(config.velocity.vp / ratio, 3)
    return config.model_copy(update={"velocity": config.velocity.model_copy(update=vel_update)})


# ----------------------------------------------------------------------------- public API


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
    raw_events, raw_assign = _run(setup)
    events, assignments = _finish(setup, config, raw_events, raw_assign, event_prefix)
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
    res = associate(window, stations, config, event_prefix)
    res.messages = messages + [m for m in res.messages if m not in messages]
    ev = res.events
    keep = (ev["time"] >= start) & (ev["time"] < end)
    res.events = ev[keep].reset_index(drop=True)
    res.assignments = res.assignments[
        res.assignments["event_id"].isin(res.events["event_id"])
    ].reset_index(drop=True)
    return res


# ----------------------------------------------------------------------------- PyOcto


def _run_pyocto(setup: _Setup, config: PyOctoConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    import pyocto

    vel = config.velocity
    cutoff = None
    if vel.kind == "1d":
        model = pyocto.VelocityModel1D(
            str(setup.table_path),
            tolerance=config.tolerance_s,
            surface_p_velocity=setup.surface[0],
            surface_s_velocity=setup.surface[1],
        )
    else:
        model = pyocto.VelocityModel0D(
            vel.vp, vel.vs, tolerance=config.tolerance_s, association_cutoff_distance=cutoff
        )
    xlim, ylim = setup.projection.bounds(setup.lat, setup.lon)
    # PyOcto logs caveats about effective pick counts at construction: they restate our settings.
    logging.getLogger("pyocto").setLevel(logging.ERROR)
    kwargs: dict[str, Any] = dict(
        n_picks=config.n_picks,
        n_p_picks=config.n_p_picks,
        n_s_picks=config.n_s_picks,
        n_p_and_s_picks=config.n_p_and_s_picks,
        min_pick_fraction=config.min_pick_fraction,
        pick_match_tolerance=config.pick_match_tolerance_s,
        min_interevent_time=config.min_interevent_time_s,
        min_node_size=config.min_node_size_km,
        min_node_size_location=config.min_node_size_location_km,
        refinement_iterations=config.refinement_iterations,
        time_slicing=config.time_slicing_s,
        second_pass_overwrites=config.second_pass,
        n_threads=config.n_threads,
    )
    assert config.area.depth_km is not None  # resolve_config fills it
    associator = pyocto.OctoAssociator(
        xlim,
        ylim,
        tuple(config.area.depth_km),
        model,
        config.time_before_s,
        crs=setup.projection.crs,
        **kwargs,
    )
    st = pd.DataFrame(
        {
            "id": np.arange(len(setup.stations)).astype(str),
            "x": setup.stations["x"],
            "y": setup.stations["y"],
            "z": setup.stations["z"],
        }
    )
    p = setup.picks
    pk = pd.DataFrame(
        {
            "station": p["site"].astype(str).to_numpy(),
            "phase": p["phase"].to_numpy(),
            "time": p["time"].astype("int64").to_numpy() / 1e9,
        }
    )
    events, assign = associator.associate(pk, st)
    if len(events) == 0:
        return pd.DataFrame(columns=["idx", "time", "x", "y", "z", "score"]), pd.DataFrame(
            columns=["event_idx", "pick_idx"]
        )
    events = events.rename(columns={"picks": "score"})[["idx", "time", "x", "y", "z", "score"]]
    events["score"] = np.nan
    return events, assign[["event_idx", "pick_idx"]]


# ----------------------------------------------------------------------------- GaMMA


_GAMMA_LOCK = threading.Lock()


@contextlib.contextmanager
def _seeded(seed: int):
    """Seed numpy's and Python's global generators inside the block, restoring their state after."""
    np_state, py_state = np.random.get_state(), random.getstate()
    np.random.seed(seed)
    random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)


def _run_gamma(setup: _Setup, config: GammaConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    from threadpoolctl import threadpool_limits

    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(config.threads))
    os.environ.setdefault("OMP_NUM_THREADS", str(config.threads))
    from gamma.utils import association as gamma_association

    st = setup.stations
    xr, yr = setup.projection.bounds(setup.lat, setup.lon)
    assert config.area.depth_km is not None  # resolve_config fills it
    zmin, zmax = config.area.depth_km
    stations = pd.DataFrame(
        {"id": np.arange(len(st)).astype(str), "x(km)": st["x"], "y(km)": st["y"], "z(km)": st["z"]}
    )
    p = setup.picks
    picks = pd.DataFrame(
        {
            "id": p["site"].astype(str).to_numpy(),
            "timestamp": p["time"].dt.tz_convert(None).to_numpy(),
            "type": p["phase"].str.lower().to_numpy(),
            "prob": p["probability"].to_numpy(),
        }
    )
    gcfg: dict[str, Any] = {
        "dims": ["x(km)", "y(km)", "z(km)"],
        "use_dbscan": config.use_dbscan,
        "use_amplitude": False,
        "vel": {"p": config.velocity.vp, "s": config.velocity.vs},
        "method": config.method,
        "oversample_factor": config.oversample_factor,
        "x(km)": xr,
        "y(km)": yr,
        "z(km)": (zmin, zmax),
        "bfgs_bounds": (
            (xr[0] - 1, xr[1] + 1),
            (yr[0] - 1, yr[1] + 1),
            (zmin, zmax + 1),
            (None, None),
        ),
        "dbscan_eps": config.dbscan_eps,
        "dbscan_min_samples": config.dbscan_min_samples,
        "min_picks_per_eq": config.min_picks_per_eq,
        "min_p_picks_per_eq": config.min_p_picks_per_eq,
        "min_s_picks_per_eq": config.min_s_picks_per_eq,
        "max_sigma11": config.max_sigma11,
        "max_sigma22": 1.0,
        "max_sigma12": 1.0,
        "ncpu": config.ncpu,
    }
    if config.eikonal and config.velocity.kind == "1d":
        # GaMMA solves the eikonal equation of the 1-D model on an (offset, depth) grid at every
        # call (it also makes an unused ./eikonal folder, removed below when it was not there).
        m = model_points(config.velocity)
        assert config.velocity.grid_km is not None  # resolve_config fills it
        gcfg["eikonal"] = {
            "vel": {"z": m["depth"].tolist(), "p": m["vp"].tolist(), "s": m["vs"].tolist()},
            "h": config.velocity.grid_km,
            "xlim": xr,
            "ylim": yr,
            # offsets in depth between sources and stations (stations above sea level: z < 0)
            "zlim": (
                min(0.0, zmin - float(st["z"].max())),
                zmax - float(st["z"].min()) + config.velocity.grid_km,
            ),
        }
    stray = Path("eikonal")
    had_stray = stray.exists()
    # GaMMA draws its initial components from numpy's (and Python's) global generators: seed them
    # for the call and restore them afterwards; the lock keeps concurrent days (thread runner)
    # from drawing from each other's sequence.
    with (
        _GAMMA_LOCK,
        _seeded(config.seed),
        threadpool_limits(limits=config.threads),
        contextlib.redirect_stdout(io.StringIO()),
    ):
        try:
            events, assign = gamma_association(picks, stations, gcfg, method=config.method)
        finally:
            if not had_stray and stray.is_dir() and not any(stray.iterdir()):
                stray.rmdir()
    if not events:
        return pd.DataFrame(columns=["idx", "time", "x", "y", "z", "score"]), pd.DataFrame(
            columns=["event_idx", "pick_idx"]
        )
    ev = pd.DataFrame(events)
    out = pd.DataFrame(
        {
            "idx": ev["event_index"],
            "time": pd.to_datetime(ev["time"], utc=True).astype("int64") / 1e9,
            "x": ev["x(km)"],
            "y": ev["y(km)"],
            "z": ev["z(km)"],
            "score": ev["gamma_score"],
        }
    )
    asg = pd.DataFrame(assign, columns=["pick_idx", "event_idx", "prob"])[["event_idx", "pick_idx"]]
    return out, asg


# ----------------------------------------------------------------------------- relocation


def relocate(
    events: pd.DataFrame,
    picks: pd.DataFrame,
    times: Any,
    surface: tuple[float, float],
    depth_km: tuple[float, float],
    params: RelocationParams,
    move: bool = True,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Return events relocated by robust least squares, and the residual of every pick.

    Args:
        events: ``x, y, z`` (km) and ``time`` (epoch s), one row per event in order 0..n-1.
        picks: ``event`` (row of its event), ``x, y, z`` (station, km, z down), ``phase``,
            ``t`` (epoch s).
        times: travel-time model with ``times(is_s, distance, depth)``.
        surface: surface (vp, vs) for station elevation corrections.
        depth_km: depth bounds of the search.
        params: iterations, Huber threshold, S weight.
        move: when False only residuals are computed (locations kept).

    All events are solved together (padded arrays, batched 4x4 Levenberg-Marquardt steps), so
    a year of events relocates in about a second.

    The returned events also carry 1-sigma uncertainties from the covariance
    ``s^2 (J^T W J)^-1`` at the solution (``s^2`` = weighted residual variance with
    ``4`` degrees of freedom removed, at least ``params.min_sigma_s^2``): ``sigma_x, sigma_y,
    sigma_z`` (km), ``sigma_t`` (s) and ``sigma_h`` (km, semi-major axis of the epicentral
    ellipse). Unconstrained directions (too few picks) give very large values.
    """
    n_ev = len(events)
    ei = picks["event"].to_numpy()
    order = np.argsort(ei, kind="stable")
    ei_sorted = ei[order]
    counts = np.bincount(ei_sorted, minlength=n_ev)
    width = max(int(counts.max()) if len(counts) else 1, 1)
    rank = np.arange(len(ei_sorted)) - np.repeat(np.cumsum(counts) - counts, counts)

    def pad(values: np.ndarray) -> np.ndarray:
        out = np.zeros((n_ev, width))
        out[ei_sorted, rank] = values[order]
        return out

    mask = np.zeros((n_ev, width), bool)
    mask[ei_sorted, rank] = True
    sx, sy, sz = (pad(picks[c].to_numpy(float)) for c in ("x", "y", "z"))
    is_s = pad((picks["phase"].to_numpy() == "S").astype(float)) > 0
    tref = events["time"].to_numpy(float)
    tobs = pad(picks["t"].to_numpy(float) - tref[ei])
    corr = np.where(is_s, -sz / surface[1], -sz / surface[0])  # stations above sea level: later
    weight = np.where(is_s, params.s_weight, 1.0) * mask
    theta = np.stack(
        [
            events["x"].to_numpy(float),
            events["y"].to_numpy(float),
            np.clip(events["z"].to_numpy(float), *depth_km),
            np.zeros(n_ev),
        ],
        axis=1,
    )

    def evaluate(th: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dx = th[:, 0:1] - sx
        dy = th[:, 1:2] - sy
        r = np.hypot(dx, dy) + 1e-6
        z = np.broadcast_to(th[:, 2:3], r.shape)
        tt, dtdr, dtdz = times.times(is_s.ravel(), r.ravel(), z.ravel())
        tt, dtdr, dtdz = (a.reshape(r.shape) for a in (tt, dtdr, dtdz))
        res = (tobs - (th[:, 3:4] + tt + corr)) * mask
        jac = (
            np.stack([dtdr * dx / r, dtdr * dy / r, dtdz, np.ones_like(r)], axis=-1)
            * mask[..., None]
        )
        return res, jac

    def cost(res: np.ndarray) -> np.ndarray:
        a = np.abs(res)
        h = params.huber_s
        return (np.where(a <= h, 0.5 * a**2, h * (a - 0.5 * h)) * weight).sum(axis=1)

    res, jac = evaluate(theta)
    if move and n_ev:
        current = cost(res)
        lam = np.full(n_ev, 1e-2)
        eye = np.eye(4)[None]
        for _ in range(params.iterations):
            a = np.abs(res)
            w = weight * np.where(a <= params.huber_s, 1.0, params.huber_s / np.maximum(a, 1e-9))
            jw = jac * w[..., None]
            normal = np.einsum("emi,emj->eij", jw, jac)
            grad = np.einsum("emi,em->ei", jw, res)
            diag = np.diagonal(normal, axis1=1, axis2=2)[:, :, None] + 1e-6
            step = np.linalg.solve(normal + lam[:, None, None] * eye * diag, grad[..., None])[
                ..., 0
            ]
            trial = theta + step
            trial[:, 2] = np.clip(trial[:, 2], *depth_km)
            res_t, jac_t = evaluate(trial)
            cost_t = cost(res_t)
            better = cost_t < current
            theta[better], res[better], jac[better], current[better] = (
                trial[better],
                res_t[better],
                jac_t[better],
                cost_t[better],
            )
            lam = np.clip(np.where(better, lam / 3.0, lam * 5.0), 1e-6, 1e6)
    out = events.copy()
    out["x"], out["y"], out["z"] = theta[:, 0], theta[:, 1], theta[:, 2]
    out["time"] = tref + theta[:, 3]
    if n_ev:
        a = np.abs(res)
        w = weight * np.where(a <= params.huber_s, 1.0, params.huber_s / np.maximum(a, 1e-9))
        normal = np.einsum("emi,emj->eij", jac * w[..., None], jac)
        dof = np.maximum(w.sum(axis=1) - 4.0, 1.0)
        s2 = np.maximum((w * res**2).sum(axis=1) / dof, params.min_sigma_s**2)
        cov = np.linalg.pinv(normal) * s2[:, None, None]
        var = np.clip(np.diagonal(cov, axis1=1, axis2=2), 0.0, None)
        out["sigma_x"], out["sigma_y"], out["sigma_z"], out["sigma_t"] = (
            np.sqrt(var[:, k]) for k in range(4)
        )
        out["sigma_h"] = np.sqrt(np.clip(np.linalg.eigvalsh(cov[:, :2, :2])[:, -1], 0.0, None))
    else:
        for c in ("sigma_x", "sigma_y", "sigma_z", "sigma_t", "sigma_h"):
            out[c] = np.zeros(0)
    residual = np.empty(len(picks))
    residual[order] = res[ei_sorted, rank]
    return out, residual


# ----------------------------------------------------------------------------- output


def _finish(
    setup: _Setup,
    config: PyOctoConfig | GammaConfig,
    raw_events: pd.DataFrame,
    raw_assign: pd.DataFrame,
    prefix: str,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    if len(raw_events) == 0:
        return _empty_events(), _empty_assignments()
    raw_events = raw_events.reset_index(drop=True)
    row_of = {idx: i for i, idx in enumerate(raw_events["idx"])}
    a = raw_assign[raw_assign["event_idx"].isin(row_of)].copy()
    a["event"] = a["event_idx"].map(row_of).astype(int)
    p = setup.picks.iloc[a["pick_idx"].astype(int).to_numpy()].reset_index(drop=True)
    p["event"] = a["event"].to_numpy()
    p["t"] = p["time"].astype("int64").to_numpy() / 1e9
    ev = raw_events[["x", "y", "z", "time", "score"]].astype(float)
    reloc = config.relocation
    assert config.area.depth_km is not None  # resolve_config fills it
    ev, residual = relocate(
        ev, p, setup.times, setup.surface, config.area.depth_km, reloc, move=bool(reloc.enabled)
    )
    if reloc.enabled:
        tolerance = config.tolerance_s if isinstance(config, PyOctoConfig) else config.max_sigma11
        assert tolerance is not None  # resolve_config fills both
        group = same_earthquake(ev, float(tolerance), setup.surface[0])
        if len(np.unique(group)) < len(ev):
            # Relocation moved two events onto one earthquake: merge their picks (one per
            # station and phase, the best fitting) and locate the merged event again.
            ev, p = _merge_events(ev, p, residual, group)
            ev, residual = relocate(ev, p, setup.times, setup.surface, config.area.depth_km, reloc)
    p["residual_s"] = residual
    if reloc.max_residual_s is not None:
        p = p[np.abs(p["residual_s"]) <= reloc.max_residual_s]
    lat, lon = setup.projection.to_latlon(ev["x"].to_numpy(), ev["y"].to_numpy())
    p["is_p"] = (p["phase"] == "P").astype(int)
    p["is_s"] = (p["phase"] == "S").astype(int)
    p["res2"] = np.square(p["residual_s"].to_numpy())
    grp = p.groupby("event")
    gap, min_dist = _station_geometry(p, ev)
    stats = pd.DataFrame(
        {
            "n_picks": grp.size(),
            "n_p": grp["is_p"].sum(),
            "n_s": grp["is_s"].sum(),
            "n_stations": grp["site"].nunique(),
            "rms_residual_s": np.sqrt(grp["res2"].mean()),
        }
    ).reindex(range(len(ev)))
    times = pd.to_datetime(
        np.round(ev["time"].to_numpy() * 1e6).astype("int64"), unit="us", utc=True
    )
    ids = [f"{prefix}{t.strftime('%Y%m%dT%H%M%S.%f')[:-3]}" for t in times]
    seen: dict[str, int] = {}
    for i, eid in enumerate(ids):
        k = seen.get(eid, 0)
        seen[eid] = k + 1
        if k:
            ids[i] = f"{eid}-{k}"
    events = pd.DataFrame(
        {
            "event_id": ids,
            "time": times,
            "latitude": lat,
            "longitude": lon,
            "depth_km": ev["z"].to_numpy(),
            "n_picks": stats["n_picks"].fillna(0).astype(int).to_numpy(),
            "n_p": stats["n_p"].fillna(0).astype(int).to_numpy(),
            "n_s": stats["n_s"].fillna(0).astype(int).to_numpy(),
            "n_stations": stats["n_stations"].fillna(0).astype(int).to_numpy(),
            "score": ev["score"].to_numpy(),
            "rms_residual_s": stats["rms_residual_s"].to_numpy(),
        }
    )
    events = events.assign(**_quality(ev, gap, min_dist, events["n_stations"].to_numpy()))
    events = events[events["n_picks"] > 0]
    assignments = pd.DataFrame(
        {
            "event_id": np.asarray(ids, dtype=object)[p["event"].to_numpy()],
            "pick_id": p["pick_id"].to_numpy(),
            "station_id": p["station_id"].to_numpy(),
            "phase": p["phase"].to_numpy(),
            "time": p["time"].to_numpy(),
            "residual_s": p["residual_s"].to_numpy(),
        }
    )
    assignments = assignments[assignments["event_id"].isin(events["event_id"])]
    events = events.sort_values("time", kind="stable").reset_index(drop=True)
    return events, assignments.sort_values(["event_id", "time"], kind="stable").reset_index(
        drop=True
    )


def same_earthquake(events: pd.DataFrame, tolerance_s: float, vp: float) -> np.ndarray:
    """Return a group number per event; events of one group are one earthquake found twice.

    Two origins ``dt`` seconds and ``d`` km apart predict arrivals at any station that differ by at
    most ``|dt| + d / vp``; below the pick tolerance no pick can tell them apart, so they are
    merged (transitively, in time order).

    Args:
        events: ``x, y, z`` (km) and ``time`` (epoch s), relocated.
        tolerance_s: the associator's pick tolerance (s).
        vp: the slowest P velocity on the paths (km/s), e.g. the surface P velocity.
    """
    n = len(events)
    group = np.arange(n)
    if n < 2:
        return group
    t = events["time"].to_numpy(float)
    xyz = events[["x", "y", "z"]].to_numpy(float)
    order = np.argsort(t, kind="stable")
    ts = t[order]
    last = np.searchsorted(ts, ts + tolerance_s, side="right")

    def root(i: int) -> int:
        while group[i] != i:
            group[i] = group[group[i]]
            i = group[i]
        return i

    for a in np.flatnonzero(last - np.arange(n) > 1):
        i = order[a]
        for j in order[a + 1 : last[a]]:
            d = float(np.linalg.norm(xyz[i] - xyz[j]))
            if abs(t[j] - t[i]) + d / vp <= tolerance_s:
                group[root(j)] = root(i)
    return np.array([root(i) for i in range(n)])


def _merge_events(
    ev: pd.DataFrame, p: pd.DataFrame, residual: np.ndarray, group: np.ndarray
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return events and picks with each group of ``same_earthquake`` made one event.

    The merged event starts from the location of the member with the most picks; it keeps one
    pick per station and phase (the smallest |residual|) and each pick once.
    """
    counts = np.bincount(p["event"].to_numpy(), minlength=len(ev))
    members = pd.DataFrame({"group": group, "n": counts, "row": np.arange(len(ev))})
    first = members.sort_values(["group", "n"], ascending=[True, False]).drop_duplicates("group")
    new_index = {g: k for k, g in enumerate(first["group"])}
    merged = ev.iloc[first["row"].to_numpy()].reset_index(drop=True)
    merged["score"] = (
        pd.Series(ev["score"].to_numpy()).groupby(group).max().reindex(first["group"]).to_numpy()
    )
    size = np.bincount(group, minlength=len(ev))
    q = p.assign(
        event=[new_index[g] for g in group[p["event"].to_numpy()]],
        _abs=np.abs(residual),
        _merged=size[group[p["event"].to_numpy()]] > 1,
    )
    # only merged events lose picks (GaMMA may keep two picks of one station and phase)
    m = q[q["_merged"]].sort_values("_abs", kind="stable")
    m = m.drop_duplicates(["event", "site", "phase"]).drop_duplicates("pick_id")
    q = pd.concat([q[~q["_merged"]], m]).sort_index().drop(columns=["_abs", "_merged"])
    return merged, q.reset_index(drop=True)


def _station_geometry(p: pd.DataFrame, ev: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Return per event the azimuthal gap (deg) of its stations and the nearest one's distance (km)."""
    gap = np.full(len(ev), 360.0)
    near = np.full(len(ev), np.nan)
    if len(p) == 0:
        return gap, near
    sites = p.drop_duplicates(["event", "site"])
    ei = sites["event"].to_numpy()
    dx = sites["x"].to_numpy(float) - ev["x"].to_numpy(float)[ei]
    dy = sites["y"].to_numpy(float) - ev["y"].to_numpy(float)[ei]
    az = np.degrees(np.arctan2(dx, dy)) % 360.0
    frame = pd.DataFrame({"event": ei, "az": az, "dist": np.hypot(dx, dy)}).sort_values(
        ["event", "az"]
    )
    for e, g in frame.groupby("event", sort=False):
        a = g["az"].to_numpy()
        if len(a) > 1:
            gap[e] = float(np.max(np.diff(np.append(a, a[0] + 360.0))))
        near[e] = float(g["dist"].min())
    return gap, near


def _quality(
    ev: pd.DataFrame, gap: np.ndarray, min_dist: np.ndarray, n_stations: np.ndarray
) -> dict[str, np.ndarray]:
    """Return the location-quality columns (QUALITY_COLUMNS) of relocated events."""
    unconstrained = (gap > UNCONSTRAINED_GAP_DEG) | (n_stations < UNCONSTRAINED_MIN_STATIONS)
    return {
        "time_uncertainty_s": ev["sigma_t"].to_numpy(),
        "latitude_uncertainty_km": ev["sigma_y"].to_numpy(),
        "longitude_uncertainty_km": ev["sigma_x"].to_numpy(),
        "horizontal_uncertainty_km": ev["sigma_h"].to_numpy(),
        "vertical_uncertainty_km": ev["sigma_z"].to_numpy(),
        "azimuthal_gap_deg": gap,
        "min_distance_km": min_dist,
        "location_quality": np.where(unconstrained, "unconstrained", "constrained").astype(object),
    }
