"""Ensemble picks: consensus of several model x weights members on one station-day.

Each member annotates the same instrument streams (SeisBench ``annotate``: probability curves per
phase). The curves are put on one time grid and aggregated per phase (mean, median, or a
semblance-weighted mean after ELEP, Yuan et al. 2023); the aggregate is picked with the same
trigger as SeisBench's ``picks_from_annotations`` (on at the threshold, off at half of it, pick at
the peak). Each consensus pick records how many members agree (a member's own pick of the same
phase within ``agreement_s``) and the spread (standard deviation) of those members' pick times.

Plain Python: no Prefect. The pick flow calls :func:`pick_ensemble` once per station-day.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from quakelake import ids
from quakelake.params import PickParams
from quakelake.params.ensemble import EnsembleError, EnsembleParams

ENSEMBLE_MODEL = "ensemble"
PHASES = ("P", "S")
CONSENSUS_COLUMNS = [
    "pick_id",
    "weights",
    "station_id",
    "band",
    "phase",
    "time",
    "n_members",
    "n_agree",
    "spread_s",
    "agreeing",
]


def ensemble_weights(method: str, members: Sequence[str]) -> str:
    """Return the ``weights`` value of ensemble picks: ``method:`` and the sorted member labels.

    Example:
        >>> ensemble_weights("mean", ["PhaseNet/original", "EQTransformer/original"])
        'mean:EQTransformer/original+PhaseNet/original'
    """
    return f"{method}:" + "+".join(sorted(members))


def check_members(members: Sequence[str]) -> None:
    """Raise :class:`EnsembleError` unless there are at least two distinct members."""
    distinct = sorted(set(members))
    if len(distinct) < 2:
        raise EnsembleError(
            f"--ensemble needs at least two model x weights members, got {distinct or 'none'}; "
            "give several models with -M and/or several weights with -W"
        )


@dataclass
class PhaseGrid:
    """Probability curves of every member for one phase on one time grid (NaN where a member has none)."""

    start: float  # POSIX seconds of sample 0
    delta: float  # seconds between samples
    curves: np.ndarray  # shape (members, samples)


def phase_grid(annotations: Sequence, phase: str) -> PhaseGrid | None:
    """Return the curves of ``phase`` of each member (one annotation ``Stream`` each) on one grid.

    The grid has the finest sampling interval among the members and spans all their curves;
    samples outside a member's traces (edges, gaps) are NaN.
    """
    traces = [[tr for tr in ann if tr.stats.channel.endswith(f"_{phase}")] for ann in annotations]
    if not any(traces):
        return None
    every = [tr for member in traces for tr in member]
    delta = min(tr.stats.delta for tr in every)
    start = min(float(tr.stats.starttime.timestamp) for tr in every)
    end = max(float(tr.stats.endtime.timestamp) for tr in every)
    n = int(round((end - start) / delta)) + 1
    grid_t = start + delta * np.arange(n)
    curves = np.full((len(annotations), n), np.nan, dtype=np.float32)  # a day x members stays small
    for i, member in enumerate(traces):
        for tr in member:
            t = float(tr.stats.starttime.timestamp) + tr.times()
            lo = int(np.searchsorted(grid_t, t[0] - 1e-6))
            hi = int(np.searchsorted(grid_t, t[-1] + 1e-6))
            curves[i, lo:hi] = np.interp(grid_t[lo:hi], t, np.asarray(tr.data, dtype=float))
    return PhaseGrid(start, delta, curves)


def aggregate(curves: np.ndarray, method: str, window: int = 50) -> np.ndarray:
    """Return the aggregate curve of member ``curves`` (members x samples, NaN = no data).

    Args:
        curves: one row per member.
        method: ``mean``, ``median`` or ``semblance``.
        window: samples of the semblance window.
    """
    present = np.isfinite(curves)
    n_present = present.sum(axis=0)
    filled = np.where(present, curves, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        if method == "median":
            out = np.nanmedian(np.where(n_present > 0, curves, 0.0), axis=0)
        else:
            out = filled.sum(axis=0) / np.maximum(n_present, 1)
        if method == "semblance":
            # Semblance: energy of the stacked curves over the summed energy of the members in a
            # sliding window; 1 when the members agree in shape and time, 1/N when only one fires.
            kernel = np.ones(max(int(window), 1))
            stack = np.convolve(filled.sum(axis=0) ** 2, kernel, mode="same")
            energy = np.convolve(
                (filled**2).sum(axis=0) * np.maximum(n_present, 1), kernel, mode="same"
            )
            weight = np.where(energy > 0, stack / np.where(energy > 0, energy, 1.0), 0.0)
            out = out * np.clip(weight, 0.0, 1.0)
    return np.where(n_present > 0, out, 0.0)


def _triggers(curve: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    from obspy.signal.trigger import trigger_onset

    if threshold <= 0 or not len(curve):
        return []
    return [(int(a), int(b)) for a, b in trigger_onset(curve, threshold, threshold / 2)]


def _peaks(curve: np.ndarray, threshold: float) -> list[tuple[int, int, int, float]]:
    """Return (on, off, peak sample, peak value) of each trigger, as SeisBench picks them."""
    out = []
    for s0, s1 in _triggers(curve, threshold):
        seg = curve[s0 : s1 + 1]
        k = int(np.argmax(seg))
        out.append((s0, s1, s0 + k, float(seg[k])))
    return out


def _pick_id(weights: str, station_id: str, band: str, phase: str, time: pd.Timestamp) -> str:
    # the instrument as quakelake.picking.models.pick_key hashes it: NET.STA.LOC.BAND
    text = f"{ENSEMBLE_MODEL}|{weights}|{station_id}.{band}|{phase}|{time.value}"
    return hashlib.sha1(text.encode()).hexdigest()[:20]


def consensus(
    grid: PhaseGrid,
    phase: str,
    members: Sequence[str],
    threshold: float,
    member_threshold: float,
    params: EnsembleParams,
    trace_id: str,
    band: str,
    weights: str,
) -> tuple[list[dict], list[dict]]:
    """Return (pick rows, consensus rows) of one phase on one instrument.

    Args:
        grid: the members' curves of ``phase``.
        phase: ``P`` or ``S``.
        members: member labels, in the order of ``grid.curves``.
        threshold: trigger threshold on the aggregate.
        member_threshold: the members' own threshold (their stored picks use the same).
        params: ensemble parameters.
        trace_id: SeisBench trace id ``NET.STA.LOC``.
        band: instrument band code (``HH`` ...).
        weights: the ensemble's ``weights`` label.
    """
    window = int(round(params.semblance_window_s / grid.delta))
    agg = aggregate(grid.curves, params.method, window)
    member_peaks = []
    for row in grid.curves:
        finite = np.where(np.isfinite(row), row, 0.0)
        member_peaks.append(np.array([p[2] for p in _peaks(finite, member_threshold)], dtype=float))
    net, sta, loc = (trace_id.split(".") + ["", "", ""])[:3]
    station_id = ids.station_id(net, sta, loc)
    picks, rows = [], []
    tol = params.agreement_s / grid.delta
    for s0, s1, sp, value in _peaks(agg, threshold):
        offsets, agreeing = [], []
        for label, peaks in zip(members, member_peaks, strict=True):
            if len(peaks):
                nearest = peaks[np.argmin(np.abs(peaks - sp))]
                if abs(nearest - sp) <= tol:
                    offsets.append((nearest - sp) * grid.delta)
                    agreeing.append(label)
        time = pd.Timestamp(grid.start + sp * grid.delta, unit="s", tz="UTC").round("us")
        pick_id = _pick_id(weights, station_id, band, phase, time)
        picks.append(
            {
                "pick_id": pick_id,
                "model": ENSEMBLE_MODEL,
                "weights": weights,
                "network": net,
                "station": sta,
                "location": loc,
                "band": band,
                "station_id": station_id,
                "phase": phase,
                "time": time,
                "start_time": pd.Timestamp(grid.start + s0 * grid.delta, unit="s", tz="UTC").round(
                    "us"
                ),
                "end_time": pd.Timestamp(grid.start + s1 * grid.delta, unit="s", tz="UTC").round(
                    "us"
                ),
                "probability": np.float32(value),
            }
        )
        rows.append(
            {
                "pick_id": pick_id,
                "weights": weights,
                "station_id": station_id,
                "band": band,
                "phase": phase,
                "time": time,
                "n_members": len(members),
                "n_agree": len(agreeing),
                "spread_s": float(np.std(offsets)) if offsets else np.nan,
                "agreeing": "+".join(agreeing),
            }
        )
    return picks, rows


def pick_ensemble(
    models: Sequence[tuple[str, Any]],
    instruments: Sequence,
    pick: PickParams,
    params: EnsembleParams,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return the consensus picks (lake ``picks`` columns) and their agreement rows of one station-day.

    Args:
        models: (member label ``Model/weights``, loaded SeisBench model) for every member.
        instruments: ``quakelake.archive.waveforms.InstrumentStream`` objects of the station-day.
        pick: the members' thresholds and batch size.
        params: aggregation method, agreement tolerance, aggregate thresholds.

    Raises:
        EnsembleError: with fewer than two members.
    """
    from quakelake.picking.models import PICK_COLUMNS

    labels = [label for label, _ in models]
    check_members(labels)
    weights = ensemble_weights(params.method, labels)
    member_thr = {"P": pick.p_threshold, "S": pick.s_threshold}
    thr = {
        "P": params.p_threshold if params.p_threshold is not None else pick.p_threshold,
        "S": params.s_threshold if params.s_threshold is not None else pick.s_threshold,
    }
    picks, rows = [], []
    for inst in instruments:
        if not len(inst.stream):
            continue
        # annotate, not classify: the members' curves are what the consensus needs.
        annotations = [
            model.annotate(inst.stream, batch_size=pick.batch_size) for _, model in models
        ]
        trace_id = ids.station_id(inst.network, inst.station, inst.location)
        for phase in PHASES:
            grid = phase_grid(annotations, phase)
            if grid is None:
                continue
            p, r = consensus(
                grid,
                phase,
                labels,
                thr[phase],
                member_thr[phase],
                params,
                trace_id,
                inst.band,
                weights,
            )
            picks.extend(p)
            rows.extend(r)
    frame = pd.DataFrame(picks, columns=PICK_COLUMNS)
    agree = pd.DataFrame(rows, columns=CONSENSUS_COLUMNS)
    if len(frame):
        order = ["time", "station_id", "band", "phase"]
        frame = frame.sort_values(order, ignore_index=True)
        agree = agree.sort_values(order, ignore_index=True)
    return frame, agree
