"""Relocation and location quality: the associators' events made the lake's `events` table.

PyOcto's octree locations are preliminary (node-size precision): :func:`relocate` fits every
event to all its picks by robust least squares in the same velocity model, which brings the
epicentres within the few km that catalogue matching needs. :func:`finish` relocates the raw
events of an engine (:mod:`quakelake.association.engines`), merges two events that relocation
put on one earthquake (:func:`same_earthquake`), and returns the events (:data:`EVENT_COLUMNS`,
with the location quality of :data:`QUALITY_COLUMNS`) and assignments
(:data:`ASSIGNMENT_COLUMNS`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from quakelake.association.engines import Setup
from quakelake.params.association import GammaConfig, PyOctoConfig, RelocationParams

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
    # the origin quality gate's QuakeML evaluation (quakelake.association.quality)
    "evaluation_mode",
    "evaluation_status",
    "evaluation_reason",
]
# An event is "unconstrained" when its stations leave a gap above this or are fewer than 3.
UNCONSTRAINED_GAP_DEG = 300.0
UNCONSTRAINED_MIN_STATIONS = 3
ASSIGNMENT_COLUMNS = ["event_id", "pick_id", "station_id", "phase", "time", "residual_s"]


def empty_events() -> pd.DataFrame:
    df = pd.DataFrame({c: pd.Series(dtype=float) for c in EVENT_COLUMNS})
    df["event_id"] = df["event_id"].astype(object)
    for col in ("location_quality", "evaluation_mode", "evaluation_status", "evaluation_reason"):
        df[col] = df[col].astype(object)
    df["time"] = pd.to_datetime(df["time"], utc=True)
    return df


def empty_assignments() -> pd.DataFrame:
    df = pd.DataFrame({c: pd.Series(dtype=object) for c in ASSIGNMENT_COLUMNS})
    df["time"] = pd.to_datetime(df["time"], utc=True)
    df["residual_s"] = df["residual_s"].astype(float)
    return df


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


def finish(
    setup: Setup,
    config: PyOctoConfig | GammaConfig,
    raw_events: pd.DataFrame,
    raw_assign: pd.DataFrame,
    prefix: str,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return the events and assignments of an engine's raw events, relocated when enabled.

    Args:
        setup: the picks, sites, travel times and projection the engine ran on.
        config: the resolved configuration (relocation, depth range, tolerance).
        raw_events: ``idx, time, x, y, z, score`` (:func:`quakelake.association.engines.run`).
        raw_assign: ``event_idx, pick_idx``.
        prefix: prefix of the event ids (the origin time follows it).
    """
    if len(raw_events) == 0:
        return empty_events(), empty_assignments()
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
