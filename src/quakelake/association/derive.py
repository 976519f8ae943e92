"""Association settings derived from the network: station geometry, pick rates and a 1-D model.

A seismologist pointing QuakeLake at a network without tuning gets settings that follow from
what the network can record, not one set of numbers for every network:

* **who sees an event**: the median number of stations within the *visibility radius* of a
  station (three median station spacings, 30-150 km) sets the minimum picks per event — a
  7-station regional network cannot deliver the 10 picks a dense 60-station array does;
* **how busy the picks are**: when the picks expected on the network within one travel-time
  window exceed 10 (sequences, swarms, ML pickers), at least 6 picks with 3 P, 2 S and 2 stations
  with both are asked for, so chance combinations of other events' picks do not become events;
* **how long an event lasts on the network**: the S travel time across the search area sets
  the overlap of PyOcto's time slices and GaMMA's DBSCAN window;
* **where events can be**: the stations' box plus a margin (15 % of the aperture, 10-100 km) and
  depths down to half the aperture (20-300 km), until a first pass has located the picks' own
  events (:func:`seismic_depth_km`);
* **how accurate travel times are**: the pick tolerance grows with the distances involved; in a
  dense stream a located event claims its picks out to twice that tolerance, so its
  poorly-predicted arrivals do not seed more candidates (the search itself keeps the tolerance);
* **velocity**: the user's regional 1-D model, else ak135 (ObsPy TauP) instead of a 0-D guess,
  with the Vp/Vs ratio of the picks themselves (:func:`wadati_ratio` on a first pass, see
  :func:`quakelake.association.settings.first_pass`): ak135's 1.73 misplaces events where the
  crust's ratio is 1.78.

Everything here is plain arithmetic on DataFrames (no associator imported), so the same numbers
serve GaMMA and PyOcto; :func:`quakelake.association.settings.resolve_config` applies them to every
setting the user left empty and reports each derived value.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from quakelake.association.velocity import effective_velocities

EARTH_RADIUS_KM = 6371.0
KM_PER_DEG = math.pi * EARTH_RADIUS_KM / 180.0
# Picks expected on the network within one slice overlap above which the pick stream is "dense".
DENSE_WINDOW_PICKS = 10.0
# In a dense pick stream, picks are matched to a located event out to this many model tolerances.
PICK_MATCH_FACTOR = 2.0


@dataclass(frozen=True)
class NetworkGeometry:
    """What the derivation knows about a network (stations that have picks, when picks are given).

    Attributes:
        n_stations: stations taken into account.
        aperture_km: largest inter-station distance.
        spacing_km: median distance from a station to its nearest neighbour.
        visibility_km: radius within which a small event is assumed to be picked.
        n_visible: median number of stations (itself included) within ``visibility_km`` of a station.
        pick_rate_per_hour: median picks per station and hour (0 when no picks are given).
        latitude: min, max station latitude.
        longitude: min, max station longitude.
    """

    n_stations: int
    aperture_km: float
    spacing_km: float
    visibility_km: float
    n_visible: int
    pick_rate_per_hour: float
    latitude: tuple[float, float]
    longitude: tuple[float, float]

    def as_dict(self) -> dict:
        """Return the geometry as plain values (for lineage and printing)."""
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def distances_km(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Return the great-circle distance (km) between every pair of points."""
    la, lo = np.radians(np.asarray(lat, float)), np.radians(np.asarray(lon, float))
    a = (
        np.sin((la[:, None] - la[None]) / 2) ** 2
        + np.cos(la[:, None]) * np.cos(la[None]) * np.sin((lo[:, None] - lo[None]) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def network_geometry(
    sites: pd.DataFrame, picks_per_site: pd.Series | None = None, hours: float = 0.0
) -> NetworkGeometry:
    """Return the geometry of ``sites`` (``latitude, longitude``; one row per site).

    Args:
        sites: station coordinates.
        picks_per_site: picks per row of ``sites`` (index = row); sites without picks are left
            out when given.
        hours: time span of the picks (for the pick rate).
    """
    used = sites
    counts = None
    if picks_per_site is not None and len(picks_per_site):
        counts = picks_per_site[picks_per_site > 0]
        used = sites.loc[sites.index.isin(counts.index)]
        if len(used) == 0:
            used = sites
    lat = used["latitude"].to_numpy(float)
    lon = used["longitude"].to_numpy(float)
    n = len(used)
    if n < 2:
        aperture = spacing = 0.0
        n_visible = n
        visibility = 30.0
    else:
        d = distances_km(lat, lon)
        aperture = float(d.max())
        np.fill_diagonal(d, np.inf)
        spacing = float(np.median(d.min(axis=1)))
        np.fill_diagonal(d, 0.0)
        visibility = float(np.clip(3.0 * spacing, 30.0, 150.0))
        n_visible = int(np.median((d <= visibility).sum(axis=1)))
    rate = 0.0
    if counts is not None and hours > 0:
        rate = float(np.median(counts.to_numpy(float))) / hours
    return NetworkGeometry(
        n_stations=n,
        aperture_km=aperture,
        spacing_km=spacing,
        visibility_km=visibility,
        n_visible=n_visible,
        pick_rate_per_hour=rate,
        latitude=(float(lat.min()), float(lat.max())),
        longitude=(float(lon.min()), float(lon.max())),
    )


def _round_to(value: float, step: float) -> float:
    return float(math.ceil(value / step) * step)


def derive_settings(
    geometry: NetworkGeometry, model: pd.DataFrame
) -> dict[str, float | int | tuple]:
    """Return association settings for ``geometry`` in the 1-D ``model``, keyed by setting name.

    Keys: ``latitude``, ``longitude`` (search box), ``depth_km``, ``tolerance_s``,
    ``pick_match_tolerance_s``, ``time_before_s``, ``time_slicing_s``, ``n_picks``, ``n_p_picks``,
    ``n_s_picks``, ``n_p_and_s_picks``, ``min_pick_fraction``, ``min_node_size_km``,
    ``min_node_size_location_km``, ``grid_km``, ``max_depth_km`` (travel-time table),
    ``vp``, ``vs`` (slowness-averaged crust, for 0-D associators), ``dbscan_eps``,
    ``max_sigma11``, ``relocation``.
    """
    g = geometry
    aperture = max(g.aperture_km, 1.0)
    margin_km = float(np.clip(0.15 * aperture, 10.0, 100.0))
    lat0 = 0.5 * (g.latitude[0] + g.latitude[1])
    dlat = margin_km / KM_PER_DEG
    dlon = margin_km / (KM_PER_DEG * max(math.cos(math.radians(lat0)), 0.1))
    latitude = (round(g.latitude[0] - dlat, 3), round(g.latitude[1] + dlat, 3))
    longitude = (round(g.longitude[0] - dlon, 3), round(g.longitude[1] + dlon, 3))
    max_depth = _round_to(float(np.clip(0.5 * aperture, 20.0, 300.0)), 10.0)
    # Travel-time errors grow with distance (1-D model vs real structure): 1 s locally, 2 s at 300+ km.
    tolerance = round(float(np.clip(0.5 + aperture / 300.0, 1.0, 2.0)), 2)
    vp, vs = effective_velocities(model, min(max_depth, 40.0))
    # Slices overlap by the S travel time across the whole search box (plus the tolerance).
    diag_km = math.hypot(aperture + 2 * margin_km, max_depth)
    time_before = _round_to(diag_km / vs + tolerance, 10.0)
    # Minimum picks: half the stations that see a small event, 4 (a locatable event) to 10.
    n_picks = int(np.clip(round(g.n_visible / 2), 4, 10))
    n_p = max(2, math.ceil(n_picks / 3))
    n_s = 0 if n_picks <= 5 else math.ceil(n_picks / 5)
    n_ps = 0 if n_picks <= 5 else max(1, n_picks // 4)
    # A dense pick stream (a sequence, a swarm, an ML picker at low thresholds) puts many picks of
    # other events into every travel-time window: a few picks fit some origin by chance, and the
    # search explodes. Ask for S picks and more stations there.
    window_picks = g.pick_rate_per_hour / 3600.0 * g.n_stations * time_before
    node = round(float(np.clip(aperture / 10.0, 2.0, 10.0)), 1)
    pick_match = tolerance
    if window_picks >= DENSE_WINDOW_PICKS:
        n_picks = max(n_picks, min(6, 2 * g.n_stations))
        n_p, n_s, n_ps = max(n_p, 3), max(n_s, 2), max(n_ps, 2)
        # There, the octree leaves that hold enough picks by chance grow with volume / node^3,
        # and each costs a location: nodes need not be finer than a quarter of the station
        # spacing (sparse regional networks; dense ones keep a tenth of the aperture).
        node = round(max(node, min(g.spacing_km / 4.0, 25.0)), 1)
        # Once an event is located, its picks are matched out to twice the model tolerance (the
        # octree search keeps the model's tolerance): arrivals of the event that the 1-D model
        # misses by 1-2 tolerances (site terms, a mislocated depth) are the event's, and left
        # unmatched in a dense stream they seed chance candidates that the search must locate
        # and reject again (on Central Italy's first 4 h: 2.7x less CPU, same REAL events).
        pick_match = round(PICK_MATCH_FACTOR * tolerance, 2)
    # GaMMA's own rule of thumb for DBSCAN (gamma.utils.estimate_eps): spacing / vp * 1.5, here
    # on the visibility radius, so a cluster spans the stations that see one event.
    eps = round(float(np.clip(g.visibility_km / vp * 1.5, 3.0, 60.0)), 1)
    return {
        "latitude": latitude,
        "longitude": longitude,
        "depth_km": (0.0, max_depth),
        "tolerance_s": tolerance,
        "pick_match_tolerance_s": pick_match,
        "time_before_s": time_before,
        "time_slicing_s": max(1200.0, 4.0 * time_before),
        "n_picks": n_picks,
        "n_p_picks": n_p,
        "n_s_picks": n_s,
        "n_p_and_s_picks": n_ps,
        "min_pick_fraction": 0.0,
        "min_node_size_km": node,
        "min_node_size_location_km": round(min(1.5, node / 4.0), 2),
        "grid_km": 0.5 if aperture < 50.0 else 1.0,
        "max_depth_km": max_depth + 10.0,
        "vp": round(vp, 3),
        "vs": round(vs, 3),
        "dbscan_eps": eps,
        "max_sigma11": tolerance,
        "relocation": True,
    }


# The search depth from a first pass: the 95th percentile of its event depths, times this margin,
# rounded up to 10 km, never under the shallowest box of derive_settings (20 km).
SEISMIC_DEPTH_QUANTILE = 0.95
SEISMIC_DEPTH_MARGIN = 1.5
SEISMIC_DEPTH_MIN_EVENTS = 10


def seismic_depth_km(depths: np.ndarray, box_km: float) -> float | None:
    """Return the search depth the first pass's event ``depths`` (km) call for, or None to keep ``box_km``.

    Most networks record crustal seismicity far shallower than the geometric box (half the
    aperture, up to 300 km), and every kilometre of box below the seismicity is searched for
    nothing: on Central Italy's day, 0-20 km instead of 0-50 km takes 30 % less CPU for the same
    REAL events. The depth is ``SEISMIC_DEPTH_MARGIN`` x the 95th percentile of the depths, rounded
    up to 10 km and at least 20 km, so a subduction slab (Chile: events to 150 km) keeps its
    depth. None when fewer than ``SEISMIC_DEPTH_MIN_EVENTS`` events were located (too few to
    say) or when the rule would not make the box shallower.

    >>> seismic_depth_km(np.array([2.0, 5.0, 6.0, 8.0, 9.0, 9.5, 10.0, 4.0, 3.0, 7.0]), 50.0)
    20.0
    >>> seismic_depth_km(np.linspace(60.0, 150.0, 20), 300.0)
    220.0
    """
    depths = np.asarray(depths, float)
    depths = depths[np.isfinite(depths)]
    if len(depths) < SEISMIC_DEPTH_MIN_EVENTS:
        return None
    q = float(np.quantile(depths, SEISMIC_DEPTH_QUANTILE))
    depth = max(_round_to(SEISMIC_DEPTH_MARGIN * q, 10.0), 20.0)
    return depth if depth < box_km else None


# Vp/Vs from the picks: at least this many events with P and S on 3+ stations, else the model's.
WADATI_MIN_EVENTS = 10
WADATI_RANGE = (1.5, 2.2)


def wadati_ratio(picks: pd.DataFrame) -> tuple[float | None, int]:
    """Return the Vp/Vs ratio of associated picks (station-differenced Wadati) and the events used.

    For one event and two stations, ``tS_i - tS_j = (vp/vs) (tP_i - tP_j)`` whatever the origin
    time and the velocity model, so the ratio is the slope of S times against P times, each
    taken relative to its event's mean, pooled over events (robust: residuals beyond 0.3 s are
    down-weighted). ``None`` when fewer than :data:`WADATI_MIN_EVENTS` events have P and S on
    three stations or more, or when the slope leaves :data:`WADATI_RANGE` (picks too sparse or
    too noisy to say).

    Args:
        picks: ``event``, ``site`` (station), ``phase`` (P/S) and ``t`` (epoch s), one row per
            assigned pick.
    """
    first = picks.sort_values("t").drop_duplicates(["event", "site", "phase"])
    both = first.pivot_table(index=["event", "site"], columns="phase", values="t", aggfunc="first")
    if "P" not in both.columns or "S" not in both.columns:
        return None, 0
    both = both.dropna(subset=["P", "S"]).reset_index()
    both = both[both.groupby("event")["site"].transform("size") >= 3]
    n_events = int(both["event"].nunique())
    if n_events < WADATI_MIN_EVENTS:
        return None, n_events
    grp = both.groupby("event")
    dp = (both["P"] - grp["P"].transform("mean")).to_numpy(float)
    ds = (both["S"] - grp["S"].transform("mean")).to_numpy(float)
    w = np.ones_like(dp)
    ratio = float("nan")
    for _ in range(10):
        ratio = float((w * dp * ds).sum() / max((w * dp * dp).sum(), 1e-12))
        w = 1.0 / np.maximum(np.abs(ds - ratio * dp), 0.3)
    if not WADATI_RANGE[0] <= ratio <= WADATI_RANGE[1]:
        return None, n_events
    return round(ratio, 3), n_events
