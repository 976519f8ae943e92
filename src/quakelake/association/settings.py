"""Association settings: the configuration with every empty setting derived from the network.

:func:`resolve_config` fills what the user left empty from the station geometry and pick rates
(:mod:`quakelake.association.derive`); :func:`resolve_for_network` does it for a station table and
pick counts (the associate flow resolves once per run); :func:`first_pass` measures the Vp/Vs
ratio and the seismicity's depth on the picks' first events; :func:`format_settings` prints what was
derived; :func:`ogs_default` is the documented configuration of the OGS network.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel

from quakelake.association import engines
from quakelake.association.derive import (
    WADATI_MIN_EVENTS,
    WADATI_RANGE,
    derive_settings,
    network_geometry,
    seismic_depth_km,
    wadati_ratio,
)
from quakelake.association.inputs import normalise_picks, resolve_stations, station_table
from quakelake.association.velocity import layered_model, model_points, standard_model
from quakelake.lakehouse import cache
from quakelake.params.association import (
    AreaParams,
    GammaConfig,
    PyOctoConfig,
    RelocationParams,
    VelocityParams,
)

# With the standard model, the Vp/Vs ratio is measured on the first picks (see first_pass).
VP_VS_FROM_PICKS = "from the picks"
# Picks of the first pass (Vp/Vs ratio and search depth of the picks' own events).
FIRST_PASS_PICKS = 2000


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
    :func:`quakelake.association.derive.derive_settings` on the geometry of the stations that have
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
        picks: some of the run's picks (e.g. its first day), for the first pass that measures
            the Vp/Vs ratio and the seismicity's depth (:func:`first_pass`); without them the
            standard model keeps its own ratio and the box its geometric depth.
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
        resolved = first_pass(resolved, settings, norm.reset_index(drop=True), sites)
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


def first_pass(
    config: PyOctoConfig | GammaConfig,
    settings: dict[str, Any],
    picks: pd.DataFrame,
    sites: pd.DataFrame,
) -> PyOctoConfig | GammaConfig:
    """Return ``config`` with the Vp/Vs ratio and search depth of the picks' own first events.

    Two derived settings are guesses until events are located: with no regional model the
    standard model's Vp/Vs (1.73 in ak135), which moves every location that uses S picks where
    the crust's ratio is 1.78; and the depth of the search box (half the aperture), which for a
    crustal network is searched far below its seismicity (OGS: 0-250 km). So when either was
    derived, the first :data:`FIRST_PASS_PICKS` picks are associated with the resolved settings
    (by PyOcto, also for GaMMA: it is the faster of the two); the Wadati slope of their events
    (:func:`quakelake.association.derive.wadati_ratio`) becomes ``velocity.vp_vs``, and their depths
    set the box's depth (:func:`quakelake.association.derive.seismic_depth_km`). Too few events
    keep the model's S velocities and the geometric depth. The values and the number of events
    they rest on are recorded in ``settings["derived"]``.

    Args:
        config: a config returned by :func:`resolve_config`.
        settings: the settings returned with it (updated in place).
        picks: normalised picks with ``site`` (row in ``sites``), sorted by time.
        sites: the station table (:func:`station_table`).
    """
    derived = settings.get("derived", {})
    want_ratio = derived.get("velocity.vp_vs") == VP_VS_FROM_PICKS
    want_depth = "area.depth_km" in derived
    if not (want_ratio or want_depth):
        return config
    first = picks.iloc[:FIRST_PASS_PICKS].reset_index(drop=True)
    probe = config
    if isinstance(config, GammaConfig):  # PyOcto finds the events of the first pass faster
        span = (first["time"].max() - first["time"].min()).total_seconds() / 3600.0
        probe, _ = resolve_config(
            PyOctoConfig(area=config.area, velocity=config.velocity),
            sites,
            first["site"].value_counts(),
            span,
        )
    found = _first_events(probe, settings, first, sites)
    update: dict[str, Any] = {}
    if want_depth:
        assert config.area.depth_km is not None  # derived above
        top, box = config.area.depth_km
        depth = seismic_depth_km(np.asarray(found["depths"], float), box)
        derived["area.depth_events"] = len(found["depths"])
        if depth is not None:
            derived["area.depth_km"] = (top, depth)
            update["area"] = config.area.model_copy(update={"depth_km": (top, depth)})
    if want_ratio:
        update.update(_vp_vs_update(config, derived, found["vp_vs"], found["vp_vs_events"]))
    return config.model_copy(update=update) if update else config


# Bump when the first pass or what it returns changes (cached entries are then recomputed).
FIRST_PASS_VERSION = "2"


def first_pass_problem(value: Any) -> str | None:
    """Return what is wrong with ``value`` as a cached first pass, or None when it is sound.

    A first pass is ``{"depths": [km, ...], "vp_vs": ratio or None, "vp_vs_events": n}``: depths
    finite and between -10 and 1000 km, a ratio only inside WADATI_RANGE and from at least
    WADATI_MIN_EVENTS events (what :func:`wadati_ratio` itself returns).
    """
    if not isinstance(value, dict) or set(value) != {"depths", "vp_vs", "vp_vs_events"}:
        return "not a first pass (depths, vp_vs, vp_vs_events)"
    depths, ratio, n = value["depths"], value["vp_vs"], value["vp_vs_events"]
    if not isinstance(depths, list) or not all(
        isinstance(z, int | float) and not isinstance(z, bool) and -10.0 <= z <= 1000.0
        for z in depths
    ):
        return "depths are not a list of depths in km"
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        return f"vp_vs_events {n!r} is not a count"
    if ratio is not None:
        if not isinstance(ratio, int | float) or isinstance(ratio, bool):
            return f"vp_vs {ratio!r} is not a number"
        if not WADATI_RANGE[0] <= ratio <= WADATI_RANGE[1]:
            return f"vp_vs {ratio} is outside {WADATI_RANGE[0]}-{WADATI_RANGE[1]}"
        if n < WADATI_MIN_EVENTS:
            return f"vp_vs from {n} events (the ratio needs {WADATI_MIN_EVENTS})"
    return None


def _first_events(
    probe: PyOctoConfig | GammaConfig,
    settings: dict[str, Any],
    first: pd.DataFrame,
    sites: pd.DataFrame,
) -> dict[str, Any]:
    """Return the first pass's event depths and Wadati ratio, once per content of its inputs.

    The pass is a pure function of the probe's settings (with its velocity model's points),
    the picks and the stations, so its outcome is cached per user (:mod:`quakelake.lakehouse.cache`): an
    unchanged rerun (the no-op check, then the flow) does not associate the first picks again.
    """
    vel = probe.velocity
    points = model_points(vel).to_numpy(float).tobytes() if vel.kind == "1d" else b""
    key = cache.content_key(
        "first_pass",
        FIRST_PASS_VERSION,
        probe.model_dump_json(),
        points,
        first["site"].to_numpy("int64").tobytes(),
        "".join(first["phase"].astype(str)),
        first["time"].astype("int64").to_numpy().tobytes(),
        sites[["latitude", "longitude", "elevation_m"]].to_numpy(float).tobytes(),
    )
    hit = cache.read_json("first_pass", key, first_pass_problem)
    if hit is not None:
        return hit
    trial = engines.build_setup(probe, settings, first, sites)
    raw_events, raw_assign = engines.run(trial, trial.config)
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
    found = {
        "depths": [float(z) for z in raw_events["z"].to_numpy(float)],
        "vp_vs": ratio,
        "vp_vs_events": n_events,
    }
    cache.write_json("first_pass", key, found)
    return found


def _vp_vs_update(
    config: PyOctoConfig | GammaConfig,
    derived: dict[str, Any],
    ratio: float | None,
    n_events: int,
) -> dict[str, Any]:
    """Return the velocity update of the first pass's Wadati ratio (recorded in ``derived``)."""
    derived["velocity.vp_vs_events"] = n_events
    if ratio is None:
        derived["velocity.vp_vs"] = "model"
        return {}
    derived["velocity.vp_vs"] = ratio
    vel_update: dict[str, Any] = {"vp_vs": ratio}
    if "velocity.vs" in derived and config.velocity.vp is not None:
        vel_update["vs"] = derived["velocity.vs"] = round(config.velocity.vp / ratio, 3)
    return {"velocity": config.velocity.model_copy(update=vel_update)}
