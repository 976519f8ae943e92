"""One-to-one matching of picks and events against a reference, and the metrics of a match.

Matching is an optimal bipartite assignment (``scipy.optimize.linear_sum_assignment``) inside
each connected group of candidate pairs: a pair is a candidate only when it lies within the
tolerances, so the work grows with the number of close pairs, never with N x M. Every pick or
event appears in exactly one output row: ``TP`` (matched to one reference row), ``FP`` (no
reference partner) or ``FN`` (a reference row nobody matched).

DataFrames in, DataFrames out: no lake here (reading the inputs from the lake and writing the
results back is :mod:`quakelake.analysis.compare`). Plain Python: no Prefect import here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pyproj import Geod
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from quakelake.catalogs.catalogues import with_catalogue
from quakelake.params.evaluation import MatchParams

_GEOD = Geod(ellps="WGS84")

EVENT_MATCH_COLUMNS = [
    "event_id",
    "reference_event_id",
    "time",
    "reference_time",
    "dt_s",
    "distance_km",
    "outcome",
]
PICK_MATCH_COLUMNS = [
    "model",
    "weights",
    "station_id",
    "phase",
    "pick_id",
    "reference_pick_id",
    "time",
    "reference_time",
    "residual_s",
    "tolerance_s",
    "outcome",
]
# An event catalogue: one associator on one pick set (quakelake.catalogs.catalogues); its label in `catalogue`.
CATALOGUE_COLUMNS = ["catalogue", "associator", "model", "weights"]
METRIC_KEY_COLUMNS = [
    "level",
    "group_by",
    "group_value",
    "model",
    "weights",
    "associator",
    "phase",
    "catalogue",
]
METRIC_COLUMNS = [
    "tp",
    "fp",
    "fn",
    "precision",
    "recall",
    "f1",
    "residual_mean",
    "residual_median",
    "residual_std",
    "residual_mae",
]


def keep_event_types(
    reference_events: pd.DataFrame, reference_picks: pd.DataFrame, types: Sequence[str] | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return the reference events of ``types`` (untyped ones kept) and the picks of the events kept."""
    if not types or "event_type" not in reference_events.columns or not len(reference_events):
        return reference_events, reference_picks
    kind = reference_events["event_type"]
    dropped = reference_events.loc[kind.notna() & ~kind.isin(list(types)), "event_id"]
    events = reference_events[~reference_events["event_id"].isin(dropped)]
    picks = reference_picks
    if len(picks) and "event_id" in picks.columns:
        picks = picks[~picks["event_id"].isin(dropped)]
    return events, picks


def magnitude_residuals(
    event_matches: pd.DataFrame, events: pd.DataFrame, reference_events: pd.DataFrame
) -> pd.DataFrame:
    """Return ``event_matches`` with ``magnitude``, ``reference_magnitude`` and their difference.

    ``magnitude_residual`` is ours minus the reference's, on matched (TP) pairs where both have
    a magnitude (magnitude units; the reference's type may differ: see ``magnitude_type``).
    """
    out = event_matches.copy()
    ours = dict(
        zip(
            events["event_id"].astype(str),
            events.get("magnitude", pd.Series(dtype=float)),
            strict=False,
        )
    )
    ref_mag = reference_events.get("magnitude", pd.Series(np.nan, index=reference_events.index))
    theirs = dict(zip(reference_events["event_id"].astype(str), ref_mag, strict=False))
    out["magnitude"] = pd.to_numeric(out["event_id"].astype(str).map(ours), errors="coerce").astype(
        float
    )
    out["reference_magnitude"] = pd.to_numeric(
        out["reference_event_id"].astype(str).map(theirs), errors="coerce"
    ).astype(float)
    out["magnitude_residual"] = (out["magnitude"] - out["reference_magnitude"]).where(
        out["outcome"] == "TP"
    )
    return out


def magnitude_metrics(event_matches: pd.DataFrame) -> pd.DataFrame:
    """Return one ``metrics`` row per associator of level ``magnitude``: ML minus reference statistics.

    ``tp`` counts the matched pairs that both carry a magnitude; precision/recall do not apply.
    """
    cols = METRIC_KEY_COLUMNS
    pairs = (
        event_matches.dropna(subset=["magnitude_residual"])
        if "magnitude_residual" in event_matches
        else None
    )
    if pairs is None or not len(pairs):
        return pd.DataFrame(columns=cols + METRIC_COLUMNS)
    keys = [c for c in CATALOGUE_COLUMNS if c in pairs.columns]
    pairs = pairs.assign(**{c: pairs[c].fillna("") for c in keys})
    m = _metrics(pairs, "magnitude_residual", keys)
    m[["precision", "recall", "f1"]] = np.nan
    for col in CATALOGUE_COLUMNS:
        if col not in m.columns:
            m[col] = None
    m = m.assign(level="magnitude", group_by="associator", group_value="", phase=None)
    return m[cols + METRIC_COLUMNS]


def _require(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(
            f"{what} lacks the columns {missing} (has {list(df.columns)}); "
            "rename or add them before matching"
        )


def _utc(values: pd.Series) -> pd.Series:
    # Parquet and DuckDB hand back µs-resolution columns: convert so int64 views are ns.
    return pd.to_datetime(values, utc=True).dt.as_unit("ns")


def _seconds(times: pd.Series) -> np.ndarray:
    """Return UTC times as float seconds since the epoch (µs precision kept)."""
    return _utc(times).astype("int64").to_numpy() / 1e9 if len(times) else np.zeros(0)


def _diff_s(a: pd.Series, ia: np.ndarray, b: pd.Series, jb: np.ndarray) -> np.ndarray:
    """Return ``a[ia] - b[jb]`` in seconds, exact to the nanosecond (no float epoch offsets)."""
    if len(ia) == 0:
        return np.zeros(0)
    na = _utc(a).astype("int64").to_numpy()[ia]
    nb = _utc(b).astype("int64").to_numpy()[jb]
    return (na - nb) / 1e9


def _window_pairs(a: np.ndarray, b: np.ndarray, max_dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Return index pairs (i, j) with |a[i] - b[j]| <= max_dt (b need not be sorted)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    order = np.argsort(b, kind="stable")
    bs = b[order]
    lo = np.searchsorted(bs, a - max_dt, side="left")
    hi = np.searchsorted(bs, a + max_dt, side="right")
    counts = hi - lo
    ia = np.repeat(np.arange(len(a)), counts)
    # position of each candidate inside its [lo, hi) window
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    jb = order[np.repeat(lo, counts) + offsets]
    keep = np.abs(a[ia] - b[jb]) <= max_dt
    return ia[keep], jb[keep]


def assign_pairs(
    n_a: int, n_b: int, ia: np.ndarray, jb: np.ndarray, cost: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Return the optimal one-to-one subset of candidate pairs.

    Among all one-to-one matchings that use only candidate pairs, the one with the most pairs
    is chosen, and among those the one with the smallest total cost.

    Args:
        n_a: number of left items.
        n_b: number of right items.
        ia: left index of each candidate pair.
        jb: right index of each candidate pair.
        cost: cost of each candidate pair, in [0, 1] (smaller is better).

    Returns:
        The left and right indices of the matched pairs.
    """
    if len(ia) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    graph = coo_matrix((np.ones(len(ia)), (ia, n_a + jb)), shape=(n_a + n_b, n_a + n_b))
    _, labels = connected_components(graph, directed=False)
    comp = labels[ia]
    sizes = np.bincount(comp)
    single = sizes[comp] == 1
    out_a = [ia[single]]
    out_b = [jb[single]]
    multi = np.flatnonzero(~single)
    if len(multi):
        order = multi[np.argsort(comp[multi], kind="stable")]
        bounds = np.flatnonzero(np.diff(comp[order])) + 1
        for edges in np.split(order, bounds):
            rows, r_inv = np.unique(ia[edges], return_inverse=True)
            cols, c_inv = np.unique(jb[edges], return_inverse=True)
            # A forbidden pair costs more than any matching of allowed pairs, so the solver
            # first maximises the number of allowed pairs, then minimises their cost.
            forbidden = 2.0 * (min(len(rows), len(cols)) + 1)
            matrix = np.full((len(rows), len(cols)), forbidden)
            matrix[r_inv, c_inv] = np.clip(cost[edges], 0.0, 1.0)
            r, c = linear_sum_assignment(matrix)
            ok = matrix[r, c] < forbidden
            out_a.append(rows[r[ok]])
            out_b.append(cols[c[ok]])
    return np.concatenate(out_a), np.concatenate(out_b)


def epicentral_km(
    lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray
) -> np.ndarray:
    """Return the WGS84 geodesic distances (km) between coordinate arrays."""
    if len(lat1) == 0:
        return np.zeros(0)
    _, _, metres = _GEOD.inv(
        np.asarray(lon1, float),
        np.asarray(lat1, float),
        np.asarray(lon2, float),
        np.asarray(lat2, float),
    )
    return np.asarray(metres) / 1000.0


def match_events(
    events: pd.DataFrame,
    reference: pd.DataFrame,
    max_dt_s: float = 2.0,
    max_km: float = 8.0,
) -> pd.DataFrame:
    """Match events one-to-one to reference events by origin time and epicentre.

    Args:
        events: columns ``event_id``, ``time`` (UTC), ``latitude``, ``longitude``.
        reference: the same columns for the reference catalogue.
        max_dt_s: largest |origin time difference| of a matched pair (s).
        max_km: largest epicentral distance of a matched pair (km).

    Returns:
        One row per event and per unmatched reference event with the columns
        ``event_id, reference_event_id, time, reference_time, dt_s, distance_km, outcome``;
        ``dt_s`` is event minus reference time, ``outcome`` is TP, FP or FN.

    Example:
        >>> ev = pd.DataFrame({"event_id": ["a"], "time": [pd.Timestamp("2024-01-01", tz="UTC")],
        ...                    "latitude": [46.0], "longitude": [13.0]})
        >>> match_events(ev, ev.assign(event_id="r"))["outcome"].tolist()
        ['TP']
    """
    cols = ["event_id", "time", "latitude", "longitude"]
    _require(events, cols, "events")
    _require(reference, cols, "reference events")
    ev = events[cols].reset_index(drop=True)
    ref = reference[cols].reset_index(drop=True)
    t_ev, t_ref = _seconds(ev["time"]), _seconds(ref["time"])
    ia, jb = _window_pairs(t_ev, t_ref, max_dt_s)
    dist = epicentral_km(
        ev["latitude"].to_numpy()[ia],
        ev["longitude"].to_numpy()[ia],
        ref["latitude"].to_numpy()[jb],
        ref["longitude"].to_numpy()[jb],
    )
    keep = np.isfinite(dist) & (dist <= max_km)
    ia, jb, dist = ia[keep], jb[keep], dist[keep]
    cost = 0.5 * (np.abs(t_ev[ia] - t_ref[jb]) / max_dt_s + dist / max_km)
    ma, mb = assign_pairs(len(ev), len(ref), ia, jb, cost)
    pair_dist = dict(zip(zip(ia.tolist(), jb.tolist(), strict=True), dist.tolist(), strict=True))

    tp = pd.DataFrame(
        {
            "event_id": ev["event_id"].to_numpy()[ma],
            "reference_event_id": ref["event_id"].to_numpy()[mb],
            "time": _utc(ev["time"]).to_numpy()[ma],
            "reference_time": _utc(ref["time"]).to_numpy()[mb],
            "dt_s": _diff_s(ev["time"], ma, ref["time"], mb),
            "distance_km": [
                pair_dist[(a, b)] for a, b in zip(ma.tolist(), mb.tolist(), strict=True)
            ],
            "outcome": "TP",
        }
    )
    fp_idx = np.setdiff1d(np.arange(len(ev)), ma)
    fn_idx = np.setdiff1d(np.arange(len(ref)), mb)
    fp = pd.DataFrame(
        {
            "event_id": ev["event_id"].to_numpy()[fp_idx],
            "time": _utc(ev["time"]).to_numpy()[fp_idx],
            "outcome": "FP",
        }
    )
    fn = pd.DataFrame(
        {
            "reference_event_id": ref["event_id"].to_numpy()[fn_idx],
            "reference_time": _utc(ref["time"]).to_numpy()[fn_idx],
            "outcome": "FN",
        }
    )
    frames = [f for f in (tp, fp, fn) if len(f)]
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=tp.columns)
    return _finish(out, EVENT_MATCH_COLUMNS)


def _finish(out: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    for col in columns:
        if col not in out.columns:
            out[col] = None
    for col in ("time", "reference_time"):
        out[col] = pd.to_datetime(out[col], utc=True)
    for col in ("dt_s", "distance_km", "residual_s", "tolerance_s"):
        if col in out.columns:
            out[col] = pd.to_numeric(out[col], errors="coerce").astype(float)
    sort_time = out["time"].fillna(out["reference_time"])
    out = out.assign(_t=sort_time).sort_values("_t", kind="stable").drop(columns="_t")
    return out[columns].reset_index(drop=True)


def normalise_phase(phase: pd.Series) -> pd.Series:
    """Return phase names reduced to their wave type: ``Pg``/``Pn``/``p`` -> ``P``, ``Sg`` -> ``S``."""
    return phase.astype(str).str.strip().str[:1].str.upper()


def match_picks(
    picks: pd.DataFrame,
    reference: pd.DataFrame,
    tolerance_s: float = 0.5,
    station_key: str = "station_id",
) -> pd.DataFrame:
    """Match picks one-to-one to reference picks on the same station and phase.

    Picks of several models or weights are matched separately per (model, weights) when those
    columns are present, so every model is compared with the whole reference.

    Args:
        picks: columns ``pick_id``, ``time`` (UTC), ``phase`` and ``station_key``; optional
            ``model`` and ``weights``.
        reference: columns ``pick_id``, ``time``, ``phase`` and ``station_key``.
        tolerance_s: largest |pick - reference| time of a matched pair (s).
        station_key: the column naming the station (``station_id`` or ``station``).

    Returns:
        One row per pick and per unmatched reference pick (per model x weights) with the columns
        ``model, weights, station_id, phase, pick_id, reference_pick_id, time, reference_time,
        residual_s, tolerance_s, outcome``; ``residual_s`` is pick minus reference time and
        ``station_id`` holds the values of ``station_key``. Phases are compared by wave type
        (first letter: P or S).
    """
    cols = ["pick_id", "time", "phase", station_key]
    _require(picks, cols, "picks")
    _require(reference, cols, "reference picks")
    picks = picks.copy()
    for col in ("model", "weights"):
        if col not in picks.columns:
            picks[col] = ""
    picks[["model", "weights"]] = picks[["model", "weights"]].fillna("")
    groups = list(picks.groupby(["model", "weights"], sort=True, dropna=False))
    if not groups:
        groups = [(("", ""), picks)]
    parts = [
        _match_picks_one(group, reference, tolerance_s, station_key).assign(
            model=model, weights=weights
        )
        for (model, weights), group in groups
    ]
    return _finish(pd.concat(parts, ignore_index=True), PICK_MATCH_COLUMNS)


def _match_picks_one(
    picks: pd.DataFrame, reference: pd.DataFrame, tolerance_s: float, station_key: str
) -> pd.DataFrame:
    pk = picks[["pick_id", "time", "phase", station_key]].reset_index(drop=True)
    ref = reference[["pick_id", "time", "phase", station_key]].reset_index(drop=True)
    pk_phase, ref_phase = normalise_phase(pk["phase"]), normalise_phase(ref["phase"])
    pk_key = pk[station_key].astype(str) + "|" + pk_phase
    ref_key = ref[station_key].astype(str) + "|" + ref_phase
    t_pk, t_ref = _seconds(pk["time"]), _seconds(ref["time"])
    # Offsetting each (station, phase) group by a large multiple of its code keeps the window
    # search vectorised while never pairing two different groups.
    codes, uniques = pd.factorize(pd.concat([pk_key, ref_key], ignore_index=True))
    span = 4.0 * (
        max(np.ptp(np.concatenate([t_pk, t_ref])) if len(t_pk) + len(t_ref) else 0.0, 1.0)
        + tolerance_s
    )
    base = min(t_pk.min() if len(t_pk) else np.inf, t_ref.min() if len(t_ref) else np.inf)
    base = 0.0 if not np.isfinite(base) else base
    shifted_pk = (t_pk - base) + codes[: len(pk)] * span
    shifted_ref = (t_ref - base) + codes[len(pk) :] * span
    # a small margin absorbs float rounding of the shifted times; the exact test follows
    ia, jb = _window_pairs(shifted_pk, shifted_ref, tolerance_s + 1e-3)
    same = codes[: len(pk)][ia] == codes[len(pk) :][jb]
    ia, jb = ia[same], jb[same]
    dt = t_pk[ia] - t_ref[jb]
    keep = np.abs(dt) <= tolerance_s
    ia, jb, dt = ia[keep], jb[keep], dt[keep]
    ma, mb = assign_pairs(len(pk), len(ref), ia, jb, np.abs(dt) / tolerance_s)

    pk_time, ref_time = _utc(pk["time"]).to_numpy(), _utc(ref["time"]).to_numpy()
    tp = pd.DataFrame(
        {
            "station_id": pk[station_key].astype(str).to_numpy()[ma],
            "phase": pk_phase.to_numpy()[ma],
            "pick_id": pk["pick_id"].to_numpy()[ma],
            "reference_pick_id": ref["pick_id"].to_numpy()[mb],
            "time": pk_time[ma],
            "reference_time": ref_time[mb],
            "residual_s": _diff_s(pk["time"], ma, ref["time"], mb),
            "outcome": "TP",
        }
    )
    fp_idx = np.setdiff1d(np.arange(len(pk)), ma)
    fn_idx = np.setdiff1d(np.arange(len(ref)), mb)
    fp = pd.DataFrame(
        {
            "station_id": pk[station_key].astype(str).to_numpy()[fp_idx],
            "phase": pk_phase.to_numpy()[fp_idx],
            "pick_id": pk["pick_id"].to_numpy()[fp_idx],
            "time": pk_time[fp_idx],
            "outcome": "FP",
        }
    )
    fn = pd.DataFrame(
        {
            "station_id": ref[station_key].astype(str).to_numpy()[fn_idx],
            "phase": ref_phase.to_numpy()[fn_idx],
            "reference_pick_id": ref["pick_id"].to_numpy()[fn_idx],
            "reference_time": ref_time[fn_idx],
            "outcome": "FN",
        }
    )
    frames = [f for f in (tp, fp, fn) if len(f)]
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=tp.columns)
    out["tolerance_s"] = float(tolerance_s)
    return out


def scores(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Return (precision, recall, F1); NaN where a ratio has no denominator."""
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    if tp == 0 and (fp or fn):
        f1 = 0.0
    elif tp:
        f1 = 2 * tp / (2 * tp + fp + fn)
    else:
        f1 = float("nan")
    return precision, recall, f1


def _metrics(matches: pd.DataFrame, residual: str, by: Sequence[str]) -> pd.DataFrame:
    by = list(by)
    _require(matches, ["outcome", residual, *by], "matches")

    def one(group: pd.DataFrame) -> pd.Series:
        outcome = group["outcome"]
        tp, fp, fn = (int((outcome == k).sum()) for k in ("TP", "FP", "FN"))
        res = group.loc[outcome == "TP", residual].astype(float).dropna()
        precision, recall, f1 = scores(tp, fp, fn)
        return pd.Series(
            {
                "tp": tp,
                "fp": fp,
                "fn": fn,
                "precision": precision,
                "recall": recall,
                "f1": f1,
                "residual_mean": res.mean() if len(res) else np.nan,
                "residual_median": res.median() if len(res) else np.nan,
                "residual_std": res.std(ddof=0) if len(res) else np.nan,
                "residual_mae": res.abs().mean() if len(res) else np.nan,
            }
        )

    if not by:
        out = one(matches).to_frame().T
    elif len(matches) == 0:
        out = pd.DataFrame(columns=by + METRIC_COLUMNS)
    else:
        keyed = matches.assign(**{c: matches[c].fillna("") for c in by})
        out = (
            keyed.groupby(by, sort=True, dropna=False)[["outcome", residual]]
            .apply(one)
            .reset_index()
        )
    for col in ("tp", "fp", "fn"):
        out[col] = out[col].astype("int64")
    for col in METRIC_COLUMNS[3:]:
        out[col] = out[col].astype(float)
    return out[by + METRIC_COLUMNS].reset_index(drop=True)


def pick_metrics(matches: pd.DataFrame, by: Sequence[str] = ("model", "weights")) -> pd.DataFrame:
    """Return TP/FP/FN, precision, recall, F1 and residual statistics of pick matches.

    Args:
        matches: output of :func:`match_picks` (optionally with a ``day`` column).
        by: columns to group by, e.g. ``("model", "weights", "phase")``; empty for one row.

    Returns:
        One row per group: the ``by`` columns, ``tp, fp, fn, precision, recall, f1,
        residual_mean, residual_median, residual_std, residual_mae`` (residuals in s, TP only).
    """
    return _metrics(matches, "residual_s", by)


def event_metrics(matches: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
    """Return TP/FP/FN, precision, recall, F1 and origin-time residual statistics of event matches.

    Args:
        matches: output of :func:`match_events` (optionally with ``associator`` or ``day``).
        by: columns to group by; empty for one row.

    Returns:
        One row per group, as :func:`pick_metrics`, residuals being ``dt_s``.
    """
    return _metrics(matches, "dt_s", by)


def with_day(matches: pd.DataFrame) -> pd.DataFrame:
    """Return ``matches`` with a ``day`` column (ISO date of the pick/event or its reference)."""
    t = pd.to_datetime(matches["time"], utc=True).fillna(
        pd.to_datetime(matches["reference_time"], utc=True)
    )
    return matches.assign(day=t.dt.strftime("%Y-%m-%d"))


PICK_GROUPINGS: tuple[tuple[str, ...], ...] = (
    ("model", "weights"),
    ("model", "weights", "phase"),
    ("model", "weights", "station_id"),
    ("model", "weights", "day"),
    ("model", "weights", "phase", "station_id"),
)
EVENT_GROUPINGS: tuple[tuple[str, ...], ...] = (
    ("associator",),
    ("associator", "day"),
)


def metrics_table(
    pick_matches: pd.DataFrame | None = None,
    event_matches: pd.DataFrame | None = None,
    pick_groupings: Sequence[Sequence[str]] = PICK_GROUPINGS,
    event_groupings: Sequence[Sequence[str]] = EVENT_GROUPINGS,
) -> pd.DataFrame:
    """Return metrics rows shaped like the lake's ``metrics`` table (without run/reference).

    ``level`` is ``pick`` or ``event``; ``group_by`` names the grouping columns joined by
    ``,``; ``group_value`` holds the values of the grouping columns other than model, weights,
    associator and phase (which have their own columns), joined by ``,``.

    Args:
        pick_matches: output of :func:`match_picks` (``day`` is derived when absent).
        event_matches: output of :func:`match_events` with an ``associator`` column.
        pick_groupings: groupings of the pick metrics.
        event_groupings: groupings of the event metrics.
    """
    rows = []
    own = {"model", "weights", "associator", "phase", "catalogue"}
    for level, matches, groupings, fn in (
        ("pick", pick_matches, pick_groupings, pick_metrics),
        ("event", event_matches, event_groupings, event_metrics),
    ):
        if matches is None or len(matches) == 0:
            continue
        matches = matches if "day" in matches.columns else with_day(matches)
        if level == "event":
            # every event row is one catalogue's: associator x model x weights (x group)
            matches = matches.assign(
                **{
                    c: matches[c].fillna("") if c in matches.columns else ""
                    for c in CATALOGUE_COLUMNS
                }
            )
        for by in groupings:
            keys = list(by)
            if level == "event":
                keys = CATALOGUE_COLUMNS + [c for c in by if c not in CATALOGUE_COLUMNS]
            m = fn(matches, by=keys)
            other = [c for c in by if c not in own]
            m["group_value"] = m[other].astype(str).agg(",".join, axis=1) if other else ""
            m = m.drop(columns=other)
            m["level"] = level
            m["group_by"] = ",".join(by)
            rows.append(m)
    cols = METRIC_KEY_COLUMNS
    if not rows:
        return pd.DataFrame(columns=cols + METRIC_COLUMNS)
    out = pd.concat(rows, ignore_index=True)
    for col in cols:
        if col not in out.columns:
            out[col] = None
    return out[cols + METRIC_COLUMNS]


def _utc_ts(value: Any) -> pd.Timestamp | None:
    """Return ``value`` as an aware UTC timestamp (naive values are taken as UTC)."""
    if value is None:
        return None
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


STATION_LEVELS = ("station_id", "network", "station")


def station_level(reference_picks: pd.DataFrame) -> str:
    """Return how stations are compared with a reference: by what its picks name.

    ``station_id`` (``NET.STA.LOC``, SeisBench's trace id, as the lake's picks carry it) by
    default. Two kinds of reference name less, and only they are compared on less:

    - ``network`` (``NET.STA``): a reference that names networks but no location code at all
      (HYPO71-style bulletins, CSV pick tables without a location column);
    - ``station`` (``STA``): a reference without network codes (OGS ``.dat``/``.pun`` bulletins).

    >>> ref = pd.DataFrame({"network": ["CI", "CI"], "location": ["", "00"]})
    >>> station_level(ref), station_level(ref.assign(location="")), station_level(ref.assign(network=""))
    ('station_id', 'network', 'station')
    """
    if not len(reference_picks):
        return "station_id"

    def named(column: str) -> bool:
        if column not in reference_picks.columns:
            return False
        return bool(reference_picks[column].fillna("").astype(str).str.len().gt(0).any())

    if not named("network"):
        return "station"
    if not named("location"):
        return "network"
    return "station_id"


def station_key(df: pd.DataFrame, level: str) -> pd.Series:
    """Return the station of each row at ``level`` (:data:`STATION_LEVELS`, see :func:`station_level`).

    ``station_id`` is the row's ``station_id``; the shorter keys take the ``network`` and
    ``station`` columns (the ``NET`` and ``STA`` of ``station_id`` where a frame has no such columns).
    """
    if level not in STATION_LEVELS:
        raise ValueError(f"station level {level!r}; use one of {', '.join(STATION_LEVELS)}")
    if level == "station_id":
        if "station_id" not in df.columns:  # e.g. a coverage table: its code columns
            loc = df["location"].fillna("").astype(str) if "location" in df.columns else ""
            return (
                df["network"].fillna("").astype(str) + "." + df["station"].astype(str) + "." + loc
            )
        return df["station_id"].fillna("").astype(str)
    if "station" in df.columns:
        net = df["network"].fillna("").astype(str) if "network" in df.columns else ""
        sta = df["station"].fillna("").astype(str)
    else:
        parts = df["station_id"].fillna("").astype(str).str.split(".", expand=True)
        parts = parts.reindex(columns=range(2)).fillna("")
        net, sta = parts[0], parts[1]
    return (net + "." + sta) if level == "network" else sta


def merge_intervals(rows: pd.DataFrame, keys: list[str], gap_s: float = 0.0) -> pd.DataFrame:
    """Return the union of the ``[start, end]`` intervals of ``rows`` per ``keys`` group."""
    if len(rows) == 0:
        return pd.DataFrame(columns=[*keys, "start", "end"])
    df = rows.assign(start=_utc(rows["start"]), end=_utc(rows["end"]))
    df = df.sort_values([*keys, "start"], ignore_index=True)
    reach = df.groupby(keys, sort=False)["end"].cummax()
    prev = reach.groupby([df[k] for k in keys], sort=False).shift()
    new = prev.isna() | (df["start"] > prev + pd.Timedelta(seconds=gap_s))
    group = new.cumsum()
    out = df.groupby(group, sort=False).agg(
        **{k: (k, "first") for k in keys}, start=("start", "min"), end=("end", "max")
    )
    return out.reset_index(drop=True)


def _covered(times: pd.Series, keys: pd.Series | None, coverage: pd.DataFrame) -> np.ndarray:
    """Return a mask of the ``times`` that lie inside an interval of ``coverage`` (of their key)."""
    t = _utc(times).astype("int64").to_numpy()
    out = np.zeros(len(t), dtype=bool)
    if len(coverage) == 0 or len(t) == 0:
        return out
    groups = coverage.groupby("_key") if keys is not None else [(None, coverage)]
    key_values = keys.to_numpy() if keys is not None else None
    for key, cov in groups:
        lo = _utc(cov["start"]).astype("int64").to_numpy()
        hi = _utc(cov["end"]).astype("int64").to_numpy()
        order = np.argsort(lo)
        lo, hi = lo[order], hi[order]
        rows = np.flatnonzero(key_values == key) if keys is not None else np.arange(len(t))
        i = np.searchsorted(lo, t[rows], side="right") - 1
        ok = i >= 0
        ok[ok] = t[rows][ok] <= hi[i[ok]]
        out[rows] = ok
    return out


@dataclass
class Evaluation:
    """What an analysis produced: matches, metrics and the compared time span."""

    pick_matches: pd.DataFrame
    event_matches: pd.DataFrame
    metrics: pd.DataFrame
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    reference_picks: int = 0
    reference_events: int = 0


def evaluate(
    picks: pd.DataFrame,
    events: pd.DataFrame,
    reference_events: pd.DataFrame,
    reference_picks: pd.DataFrame,
    params: MatchParams | None = None,
    start: dt.datetime | pd.Timestamp | None = None,
    end: dt.datetime | pd.Timestamp | None = None,
    coverage: pd.DataFrame | None = None,
) -> Evaluation:
    """Compare picks and events with a reference where waveforms were processed.

    With ``coverage`` (the archive's waveforms per station, :func:`quakelake.analysis.compare.load_coverage`) the
    comparison is made where waveforms exist: a pick (reference or not) counts when its
    station has waveforms at its time, an event when any station has waveforms at its origin
    time, both inside ``[start, end]`` when given (the compared span defaults to the
    coverage's) and at least ``params.edge_s`` from the ends of a stretch of waveforms.
    So a day's run and a run limited to the picks' span give the same metrics. Without
    coverage (picks from elsewhere) the reference is cut to ``[start, end]`` (default: the
    first to the last pick or event, widened by the tolerances) and reference picks to the
    stations that have picks. Stations are compared by ``station_id`` (``NET.STA.LOC``), by
    ``NET.STA`` when the reference names no location codes and by the station code when it
    names no networks (:func:`station_level`).

    Args:
        picks: lake ``picks`` rows (several models/weights allowed).
        events: lake ``events`` rows (several associators allowed).
        reference_events: ``reference_events`` rows.
        reference_picks: ``reference_picks`` rows.
        params: tolerances.
        start: first UTC time compared.
        end: last UTC time compared.
        coverage: waveforms per station (``station_id, network, station, location, start, end``),
            or None.
    """
    params = params or MatchParams()
    reference_events, reference_picks = keep_event_types(
        reference_events, reference_picks, params.event_types
    )
    if coverage is not None and len(coverage):
        return _evaluate_covered(
            picks, events, reference_events, reference_picks, params, start, end, coverage
        )
    times = [pd.to_datetime(df["time"], utc=True) for df in (picks, events) if len(df)]
    if start is None and times:
        start = min(t.min() for t in times) - pd.Timedelta(seconds=params.event_max_dt_s)
    if end is None and times:
        end = max(t.max() for t in times) + pd.Timedelta(seconds=params.event_max_dt_s)
    start = _utc_ts(start)
    end = _utc_ts(end)

    def cut(df: pd.DataFrame) -> pd.DataFrame:
        if len(df) == 0 or start is None:
            return df
        t = pd.to_datetime(df["time"], utc=True)
        return df[(t >= start) & (t <= end)]

    ref_picks = cut(reference_picks)
    ref_events = cut(reference_events)
    pick_matches = pd.DataFrame(columns=PICK_MATCH_COLUMNS)
    if len(picks):
        level = station_level(ref_picks)
        pk = picks.assign(_station=station_key(picks, level))
        rp = (
            ref_picks.assign(_station=station_key(ref_picks, level))
            if len(ref_picks)
            else ref_picks.assign(_station=[])
        )
        rp = rp[rp["_station"].isin(set(pk["_station"]))]
        ref_picks = rp
        pick_matches = match_picks(pk, rp, params.pick_tolerance_s, station_key="_station")
    event_matches, metrics = _events_and_metrics(pick_matches, events, ref_events, params)
    return Evaluation(
        pick_matches, event_matches, metrics, start, end, len(ref_picks), len(ref_events)
    )


def _events_and_metrics(
    pick_matches: pd.DataFrame, events: pd.DataFrame, ref_events: pd.DataFrame, params: MatchParams
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return the event matches per associator (with magnitude residuals) and every metric row."""
    event_matches = pd.DataFrame(columns=[*CATALOGUE_COLUMNS, *EVENT_MATCH_COLUMNS])
    if len(events):
        event_matches = match_catalogues(events, ref_events, params)
        event_matches = magnitude_residuals(event_matches, events, ref_events)
    metrics = metrics_table(
        pick_matches if len(pick_matches) else None, event_matches if len(event_matches) else None
    )
    magnitudes = magnitude_metrics(event_matches)
    if len(magnitudes):
        metrics = pd.concat([metrics, magnitudes], ignore_index=True)
    return event_matches, metrics


def match_catalogues(
    events: pd.DataFrame, reference_events: pd.DataFrame, params: MatchParams
) -> pd.DataFrame:
    """Return :func:`match_events` of each catalogue of ``events`` on its own (never pooled).

    A catalogue is one associator x configuration x pick set (:mod:`quakelake.catalogs.catalogues`):
    PhaseNet's and EQTransformer's events of the same earthquakes are two catalogues, each
    matched against the whole reference. Columns: :data:`CATALOGUE_COLUMNS` then
    :data:`EVENT_MATCH_COLUMNS`.
    """
    ev = with_catalogue(events)
    parts = []
    for keys, group in ev.groupby(CATALOGUE_COLUMNS, sort=True):
        m = match_events(group, reference_events, params.event_max_dt_s, params.event_max_km)
        parts.append(m.assign(**dict(zip(CATALOGUE_COLUMNS, keys, strict=True))))
    if not parts:
        return pd.DataFrame(columns=[*CATALOGUE_COLUMNS, *EVENT_MATCH_COLUMNS])
    return pd.concat(parts, ignore_index=True)[[*CATALOGUE_COLUMNS, *EVENT_MATCH_COLUMNS]]


def _evaluate_covered(
    picks: pd.DataFrame,
    events: pd.DataFrame,
    reference_events: pd.DataFrame,
    reference_picks: pd.DataFrame,
    params: MatchParams,
    start: Any,
    end: Any,
    coverage: pd.DataFrame,
) -> Evaluation:
    cov = coverage.copy()
    lo, hi = _utc_ts(start), _utc_ts(end)
    edge = pd.Timedelta(seconds=params.edge_s)
    cov["start"], cov["end"] = _utc(cov["start"]) + edge, _utc(cov["end"]) - edge
    if lo is not None:
        cov["start"] = cov["start"].clip(lower=lo)
    if hi is not None:
        cov["end"] = cov["end"].clip(upper=hi)
    cov = cov[cov["start"] <= cov["end"]]
    span_start = cov["start"].min() if len(cov) else lo
    span_end = cov["end"].max() if len(cov) else hi

    def inside(df: pd.DataFrame) -> pd.DataFrame:
        if len(df) == 0:
            return df
        t = pd.to_datetime(df["time"], utc=True)
        keep = np.ones(len(df), bool)
        if lo is not None:
            keep &= (t >= lo).to_numpy()
        if hi is not None:
            keep &= (t <= hi).to_numpy()
        return df[keep]

    picks, events = inside(picks), inside(events)
    level = station_level(reference_picks)
    cov["_key"] = station_key(cov, level).to_numpy()
    # picks and events are judged where the reference is: the same stretches of waveforms
    if len(picks):
        picks = picks[_covered(picks["time"], station_key(picks, level), cov)]
    if len(events):
        events = events[_covered(events["time"], None, cov)]
    ref_picks = reference_picks
    if len(ref_picks):
        keys = station_key(ref_picks, level)
        ref_picks = ref_picks[_covered(ref_picks["time"], keys, cov)]
    ref_events = reference_events
    if len(ref_events):
        ref_events = ref_events[_covered(ref_events["time"], None, cov)]
    pick_matches = pd.DataFrame(columns=PICK_MATCH_COLUMNS)
    if len(picks):
        pk = picks.assign(_station=station_key(picks, level))
        rp = ref_picks.assign(_station=station_key(ref_picks, level) if len(ref_picks) else [])
        pick_matches = match_picks(pk, rp, params.pick_tolerance_s, station_key="_station")
    event_matches, metrics = _events_and_metrics(pick_matches, events, ref_events, params)
    return Evaluation(
        pick_matches, event_matches, metrics, span_start, span_end, len(ref_picks), len(ref_events)
    )
