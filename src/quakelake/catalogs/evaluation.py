"""QuakeML's evaluation vocabulary of an origin, as the lake's `events` rows carry it.

The origin quality gate (:mod:`quakelake.association.quality`) fills these columns; exports,
scoring and summaries read them through :func:`is_rejected` and :data:`REPORTED_SQL`.
"""

from __future__ import annotations

import pandas as pd

from quakelake.lakehouse.queries import REPORTED_SQL  # noqa: F401 (the gate's vocabulary)

GATE_COLUMNS = ["evaluation_mode", "evaluation_status", "evaluation_reason"]
AUTOMATIC = "automatic"
PRELIMINARY = "preliminary"
REJECTED = "rejected"


def is_rejected(events: pd.DataFrame) -> pd.Series:
    """Return, per event, whether the gate rejected it (no status: reported)."""
    if "evaluation_status" not in events:
        return pd.Series(False, index=events.index)
    return events["evaluation_status"].fillna("").astype(str).eq(REJECTED)
