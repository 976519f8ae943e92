"""Lake pick rows built from a real reference pick CSV (shared by the lake-facing tests)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd


def reference_pick_rows(
    csv: Path, ids: Sequence[str], weights: str | Sequence[str] = "original"
) -> pd.DataFrame:
    """Return the picks of ``csv`` (``station_id`` NET.STA.LOC.BAND, phase, time, prob) as lake rows.

    ``ids`` names each row's ``pick_id``; ``weights`` is one name or one per row.
    """
    ref = pd.read_csv(csv)
    parts = ref["station_id"].str.split(".", expand=True)
    return pd.DataFrame(
        {
            "pick_id": list(ids),
            "run_id": "r1",
            "model": "PhaseNet",
            "weights": weights if isinstance(weights, str) else list(weights),
            "network": parts[0],
            "station": parts[1],
            "location": parts[2],
            "band": parts[3],
            "station_id": parts[0] + "." + parts[1] + "." + parts[2],
            "phase": ref["phase"],
            "time": pd.to_datetime(ref["time"], utc=True, format="ISO8601"),
            "probability": ref["prob"],
            "denoiser": "",
        }
    )


def chile_picks(folder: Path) -> pd.DataFrame:
    """Return PyOcto's Chile test picks (``folder``/picks.parquet) with ids and their true event."""
    raw = pd.read_parquet(Path(folder) / "picks.parquet")
    return pd.DataFrame(
        {
            "pick_id": [f"p{i}" for i in range(len(raw))],
            "station_id": raw["station"],
            "phase": raw["phase"],
            "time": pd.to_datetime(raw["time"]).dt.tz_localize("UTC"),
            "event": raw["event"],
        }
    )
