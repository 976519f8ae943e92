"""Origin quality gate: each origin's QuakeML evaluation mode and status, from configured rules.

Automatic systems do not publish every origin their associator finds: SeisComP, for example,
reports an automatic origin only when its location is constrained (TexNet's set-up: latitude,
longitude and depth uncertainty <= 20 km, azimuthal gap <= 270 deg). :func:`evaluate` applies
the rules of :class:`quakelake.params.association.OriginGateParams` (the same rules, limits
widened after ``benchmarks/origin_gate.py``) to the lake's `events` rows and fills three columns:

* ``evaluation_mode``: ``automatic`` (QuakeML ``EvaluationMode``: nobody reviewed them);
* ``evaluation_status``: ``preliminary`` when every rule holds, ``rejected`` otherwise
  (QuakeML ``EvaluationStatus``);
* ``evaluation_reason``: the broken rules, ``"; "``-joined (``gap 332 > 320 deg``), empty for
  a preliminary origin.

Rejected origins stay in the lake for audit; event counts, magnitudes and exports leave them
out (:data:`REPORTED_SQL` is the filter the queries use).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from quakelake.catalogs.evaluation import (
    AUTOMATIC,
    GATE_COLUMNS,
    PRELIMINARY,
    REJECTED,
    REPORTED_SQL,
    is_rejected,
)
from quakelake.params.association import OriginGateParams

__all__ = [
    "AUTOMATIC",
    "GATE_COLUMNS",
    "PRELIMINARY",
    "REJECTED",
    "REPORTED_SQL",
    "describe",
    "evaluate",
    "is_rejected",
    "rejection_counts",
    "rule_name",
]


def _column(events: pd.DataFrame, name: str) -> np.ndarray:
    if name not in events:
        return np.full(len(events), np.nan)
    return pd.to_numeric(events[name], errors="coerce").to_numpy(dtype=float)


def evaluate(events: pd.DataFrame, params: OriginGateParams | None = None) -> pd.DataFrame:
    """Return ``events`` with :data:`GATE_COLUMNS` set by the rules of ``params``.

    A rule whose measure is unknown (no uncertainty: the location could not be resolved)
    rejects the origin too, naming the measure as unknown.
    """
    params = params or OriginGateParams()
    out = events.copy()
    n = len(out)
    reasons: list[list[str]] = [[] for _ in range(n)]

    def rule(values: np.ndarray, limit: float | None, label: str, unit: str, low: bool) -> None:
        if limit is None:
            return
        for i, v in enumerate(values):
            if not np.isfinite(v):
                reasons[i].append(f"{label} unknown")
            elif low and v < limit:
                reasons[i].append(f"{label} {v:g} < {limit:g}{unit}")
            elif not low and v > limit:
                reasons[i].append(f"{label} {v:.3g} > {limit:g}{unit}")

    if params.enabled and n:
        rule(_column(out, "n_stations"), params.min_stations, "stations", "", True)
        rule(_column(out, "n_picks"), params.min_phases, "phases", "", True)
        rule(_column(out, "azimuthal_gap_deg"), params.max_gap_deg, "gap", " deg", False)
        horizontal = np.fmax(
            _column(out, "latitude_uncertainty_km"), _column(out, "longitude_uncertainty_km")
        )
        rule(
            horizontal,
            params.max_horizontal_uncertainty_km,
            "horizontal uncertainty",
            " km",
            False,
        )
        rule(
            _column(out, "vertical_uncertainty_km"),
            params.max_depth_uncertainty_km,
            "depth uncertainty",
            " km",
            False,
        )
        rule(_column(out, "rms_residual_s"), params.max_rms_s, "rms", " s", False)
    out["evaluation_mode"] = pd.Series([AUTOMATIC] * n, index=out.index, dtype=object)
    out["evaluation_status"] = pd.Series(
        [REJECTED if r else PRELIMINARY for r in reasons], index=out.index, dtype=object
    )
    out["evaluation_reason"] = pd.Series(
        ["; ".join(r) for r in reasons], index=out.index, dtype=object
    )
    return out


def rule_name(reason: str) -> str:
    """Return the rule a reason names, its measured value left out (``gap 332 > 320 deg`` -> ``gap > 320 deg``)."""
    words = reason.split()
    for i, w in enumerate(words):
        if w in ("<", ">") and i >= 1:
            return " ".join(words[: i - 1] + words[i:])
    return reason


def rejection_counts(events: pd.DataFrame) -> dict[str, int]:
    """Return how many rejected origins broke each rule (an origin may break several)."""
    counts: Counter[str] = Counter()
    rejected = events[is_rejected(events)]
    for text in rejected.get("evaluation_reason", pd.Series(dtype=object)).fillna(""):
        for reason in filter(None, str(text).split("; ")):
            counts[rule_name(reason)] += 1
    return dict(counts.most_common())


def describe(origins: int, rejected: int, reasons: dict[str, int]) -> str:
    """Return ``9 origins: 7 reported, 2 rejected: gap > 320 deg (2)`` (the summary's words)."""
    text = f"{origins} origins: {origins - rejected} reported, {rejected} rejected"
    if rejected and reasons:
        text += ": " + ", ".join(f"{rule} ({count})" for rule, count in reasons.items())
    return text
