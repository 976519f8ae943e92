"""Association engines: PyOcto and GaMMA behind one interface.

:func:`build_setup` turns normalised picks and sites and a resolved configuration into a
:class:`Setup` (local coordinates, travel times); :func:`run` hands it to the associator the
configuration names and returns its raw events and pick assignments::

    setup = build_setup(config, settings, picks, sites)
    raw_events, raw_assignments = run(setup, setup.config)
    # raw_events: idx, time (epoch s), x, y, z (km), score; raw_assignments: event_idx, pick_idx

Each engine is a function ``engine(setup, config) -> (raw_events, raw_assignments)`` listed in
:data:`ENGINES` under the associator's name (``config.associator``).
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from quakelake.association.inputs import Projection, area_bounds
from quakelake.association.velocity import cached_table, model_points, surface_velocities
from quakelake.lakehouse.cache import cache_dir
from quakelake.params.association import AssociationError, GammaConfig, PyOctoConfig


class HomogeneousTimes:
    """Straight-ray travel times in a homogeneous medium (same interface as TravelTimeTable)."""

    def __init__(self, vp: float, vs: float):
        self.vp, self.vs = vp, vs

    def times(self, is_s, distance_km, depth_km):
        v = np.where(np.asarray(is_s, bool), self.vs, self.vp)
        r = np.hypot(distance_km, depth_km) + 1e-9
        return r / v, distance_km / (r * v), depth_km / (r * v)


@dataclass
class Setup:
    """What an engine runs on: resolved settings, picks and sites in local km, travel times."""

    config: PyOctoConfig | GammaConfig  # with every derived setting filled in
    settings: dict[str, Any]  # what was derived (resolve_config)
    picks: pd.DataFrame  # normalised picks with station row, x, y, z (km, z down)
    stations: pd.DataFrame  # sites with x, y, z
    projection: Projection
    lat: tuple[float, float]
    lon: tuple[float, float]
    times: Any  # TravelTimeTable or HomogeneousTimes
    table_path: Path | None
    surface: tuple[float, float]


def build_setup(
    config: PyOctoConfig | GammaConfig,
    settings: dict[str, Any],
    norm: pd.DataFrame,
    sites: pd.DataFrame,
) -> Setup:
    """Return the projection, travel times and pick coordinates of a resolved ``config``."""
    sites = sites.copy()
    lat, lon = area_bounds(config.area, sites)
    proj = Projection.centred(lat, lon)
    sites["x"], sites["y"] = proj.to_xy(sites["latitude"].to_numpy(), sites["longitude"].to_numpy())
    sites["z"] = -sites["elevation_m"].to_numpy() / 1000.0
    vel = config.velocity
    times: Any  # a TravelTimeTable or HomogeneousTimes
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
        path, times = None, HomogeneousTimes(vel.vp, vel.vs)
    norm = norm.copy()
    for c in ("x", "y", "z"):
        norm[c] = sites[c].to_numpy()[norm["site"].to_numpy()]
    return Setup(
        config, settings, norm, sites, proj, lat, lon, times, path, surface_velocities(vel)
    )


class Engine(Protocol):
    """An associator: raw events and pick assignments of a prepared :class:`Setup`."""

    def __call__(self, setup: Setup, config: Any, /) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Return ``idx, time, x, y, z, score`` events and ``event_idx, pick_idx`` assignments."""
        ...


def run(setup: Setup, config: PyOctoConfig | GammaConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return the raw events and pick assignments of the associator ``config`` names.

    Args:
        setup: picks, sites and travel times (:func:`build_setup`).
        config: the resolved configuration (``setup.config``); ``config.associator`` picks the
            engine in :data:`ENGINES`.

    Raises:
        AssociationError: naming the known associators when ``config.associator`` is not one.
    """
    engine = ENGINES.get(config.associator)
    if engine is None:
        raise AssociationError(
            f"unknown associator {config.associator!r}; use one of {', '.join(sorted(ENGINES))}"
        )
    return engine(setup, config)


# ----------------------------------------------------------------------------- PyOcto


def run_pyocto(setup: Setup, config: PyOctoConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return PyOcto's events and assignments (:class:`Engine`): octree search, then location."""
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
def _seeded(seed: int) -> Iterator[None]:
    """Seed numpy's and Python's global generators inside the block, restoring their state after."""
    np_state, py_state = np.random.get_state(), random.getstate()
    np.random.seed(seed)
    random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)


@contextlib.contextmanager
def _no_progress_bars() -> Iterator[None]:
    """Inside the block GaMMA draws no tqdm bar (its clustering step printed one to stderr).

    A day's clustering takes milliseconds: the bar said nothing, even with ``--silent``, and
    cluttered cron mail. Not thread-safe on its own: callers hold :data:`_GAMMA_LOCK`.
    """
    from gamma import utils

    original = utils.tqdm
    utils.tqdm = functools.partial(original, disable=True)
    try:
        yield
    finally:
        utils.tqdm = original


def _cache_gamma_kernels() -> bool:
    """Keep GaMMA's numba kernels (eikonal solver, travel-time interpolation) compiled on disk.

    GaMMA jits them without numba's cache, so every command compiled them again: about 6 CPU-s
    of the 180-s Salton Sea day's `run -F` (benchmarks/README.md, issue 26). They are
    cached per user next to QuakeLake's other derived results (:func:`quakelake.lakehouse.cache.cache_dir`);
    numba recompiles when GaMMA's source changes. An unwritable cache only costs the compile.
    QuakeLake's own kernel of GaMMA's location step (:mod:`quakelake.association.gamma_location`)
    is cached there too. Returns whether the cache is on.
    """
    import numba
    from numba.core.registry import CPUDispatcher

    folder = cache_dir("numba")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    numba.config.CACHE_DIR = str(folder)  # type: ignore[attr-defined]  # read by enable_caching
    from gamma import seismic_ops

    from quakelake.association import gamma_location

    for value in [*vars(seismic_ops).values(), *vars(gamma_location).values()]:
        if isinstance(value, CPUDispatcher):
            value.enable_caching()
    return True


def warm_gamma_kernels() -> None:
    """Load GaMMA's compiled kernels in this process (see :func:`gamma_location.warm_kernels`)."""
    from quakelake.association import gamma_location

    _cache_gamma_kernels()
    gamma_location.warm_kernels()


def run_gamma(setup: Setup, config: GammaConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return GaMMA's events and assignments (:class:`Engine`), seeded by ``config.seed``."""
    from threadpoolctl import threadpool_limits

    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(config.threads))
    os.environ.setdefault("OMP_NUM_THREADS", str(config.threads))
    _cache_gamma_kernels()
    from gamma.utils import association as gamma_association

    from quakelake.association.gamma_location import faster_locations

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
        _no_progress_bars(),
        faster_locations(),
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


ENGINES: dict[str, Engine] = {"pyocto": run_pyocto, "gamma": run_gamma}
