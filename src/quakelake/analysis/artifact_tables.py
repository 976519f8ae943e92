"""Readable markdown for the Prefect UI's artifacts: tables, never Python reprs.

Plain Python (no Prefect): the flows pass what these return to ``create_markdown_artifact``.

>>> print(counts_table({"P": 90, "S": 85}, "phase", "picks"))
| phase | picks |
|---|---:|
| P | 90 |
| S | 85 |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import pandas as pd

#: where ``quakelake serve`` answers (the catalogue artifact links to its page)
SERVE_URL_ENV = "QUAKELAKE_SERVE_URL"
DEFAULT_SERVE_URL = "http://127.0.0.1:8080/"
MAX_EVENT_ROWS = 200


def _cell(value: Any) -> str:
    if value is None or (not isinstance(value, str | list | tuple | dict) and pd.isna(value)):
        return ""
    if isinstance(value, float):
        return (
            f"{value:.3g}"
            if abs(value) < 1e-3 and value
            else f"{value:,.2f}".rstrip("0").rstrip(".")
        )
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(frame: pd.DataFrame, numeric: set[str] | None = None) -> str:
    """Return ``frame`` as a GitHub markdown table (numbers right-aligned)."""
    if numeric is None:
        numeric = {c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])}
    head = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---:" if c in numeric else "---" for c in frame.columns) + "|"
    rows = [
        "| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)
    ]
    return "\n".join([head, rule, *rows])


def counts_table(counts: Mapping[str, Any], key: str, value: str) -> str:
    """Return a two-column markdown table of ``counts`` (``{'P': 90, 'S': 85}``)."""
    frame = pd.DataFrame({key: list(counts), value: list(counts.values())})
    return markdown_table(frame, numeric={value})


def magnitudes_markdown(magnitudes: Mapping[str, Any] | None) -> str:
    """Return the magnitude stage's summary as a table (or why it did not run)."""
    if not magnitudes:
        return "Magnitudes: not computed."
    order = ("done", "skipped", "no_data", "failed", "events_with_ml", "law")
    labels = {
        "done": "days computed",
        "skipped": "days already done",
        "no_data": "days without data",
        "failed": "days failed",
        "events_with_ml": "events with ML",
        "law": "attenuation law",
    }
    frame = pd.DataFrame(
        {
            "magnitudes": [labels[k] for k in order if k in magnitudes],
            "value": [str(magnitudes[k]) for k in order if k in magnitudes],
        }
    )
    text = markdown_table(frame, numeric={"value"})
    why = [w for w in magnitudes.get("why_none", []) if w]
    if why:
        text += "\n\nWhy some days have none: " + "; ".join(why)
    return text


def serve_url() -> str:
    """Return the URL of the ``quakelake serve`` page ($QUAKELAKE_SERVE_URL, default localhost:8080)."""
    url = os.environ.get(SERVE_URL_ENV) or DEFAULT_SERVE_URL
    return url if url.endswith("/") else url + "/"


def catalogue_markdown(events: pd.DataFrame, run_id: str, label: str) -> str:
    """Return the catalogue of one association: one row per event (time, place, depth, ML,
    stations, location quality) with a link to the event on the ``quakelake serve`` page."""
    url = serve_url()
    lines = [
        f"# Catalogue of association run `{run_id}`",
        "",
        f"{label}: {len(events)} events, {int(events['magnitude'].notna().sum()) if len(events) else 0} "
        f"with ML. Browse it on the map: [{url}]({url}) (`quakelake serve --lake LAKE`).",
        "",
    ]
    if not len(events):
        return "\n".join(lines)
    ev = events.sort_values("time")
    shown = ev.tail(MAX_EVENT_ROWS)
    if len(ev) > len(shown):
        lines += [f"The latest {len(shown)} of {len(ev)} events:", ""]

    def number(col: str, digits: int) -> pd.Series:
        values = (
            pd.to_numeric(shown[col], errors="coerce")
            if col in shown
            else pd.Series(index=shown.index, dtype=float)
        )
        return values.map(lambda x: "" if pd.isna(x) else f"{x:.{digits}f}")

    ml = number("magnitude", 2)
    spread = number("magnitude_uncertainty", 2)
    table = pd.DataFrame(
        {
            "time (UTC)": pd.to_datetime(shown["time"], utc=True)
            .dt.strftime("%Y-%m-%d %H:%M:%S.%f")
            .str[:-4],
            "latitude": number("latitude", 4),
            "longitude": number("longitude", 4),
            "depth km": number("depth_km", 1),
            "ML": [f"{m} ± {s}" if m and s else m for m, s in zip(ml, spread, strict=True)],
            "stations": shown.get("n_stations", pd.Series(index=shown.index, dtype=object)),
            "picks": shown.get("n_picks", pd.Series(index=shown.index, dtype=object)),
            "status": shown.get(
                "location_quality", pd.Series(index=shown.index, dtype=object)
            ).fillna(""),
            "event": [f"[{e}]({url}#event={quote(str(e))})" for e in shown["event_id"]],
        }
    )
    lines.append(
        markdown_table(
            table, numeric={"latitude", "longitude", "depth km", "ML", "stations", "picks"}
        )
    )
    return "\n".join(lines)
