"""Analysis against the lake: which picks, events and reference to compare, and where; the results back in.

The matching and the metrics are :mod:`quakelake.analysis.evaluation` (DataFrames in, DataFrames out,
no lake); this module reads their inputs from the lake with the typed queries of
:mod:`quakelake.lakehouse.queries` and writes the matches and metrics of a run into it.

Plain Python: no Prefect import here.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from quakelake import ids
from quakelake.analysis.evaluation import Evaluation, merge_intervals
from quakelake.lakehouse import queries, write_table
from quakelake.params.evaluation import RunSelection

__all__ = [
    "COVERAGE_GAP_S",
    "load_coverage",
    "load_events",
    "load_picks",
    "load_reference",
    "write_evaluation",
]


def load_picks(lake: Any, sel: RunSelection) -> pd.DataFrame:
    """Return the lake's picks chosen by ``sel`` (a :class:`quakelake.lakehouse.Lake`)."""
    return queries.picks(
        lake,
        run_ids=sel.run_ids,
        models=sel.models,
        weights=sel.weights,
        start=sel.start,
        end=sel.end,
    )


def load_events(lake: Any, sel: RunSelection) -> pd.DataFrame:
    """Return the lake's reported events chosen by ``sel`` (origins the gate rejected are no events)."""
    from quakelake.association.quality import is_rejected

    events = queries.events(
        lake, run_ids=sel.run_ids, associators=sel.associators, start=sel.start, end=sel.end
    )
    return events[~is_rejected(events)].reset_index(drop=True)


def load_reference(lake: Any, name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return the reference events and picks imported under ``name``.

    Raises:
        ValueError: naming the references in the lake when ``name`` has no rows.
    """
    events = queries.reference_events(lake, name)
    picks = queries.reference_picks(lake, name)
    if len(events) == 0 and len(picks) == 0:
        known = queries.reference_catalogs(lake)
        raise ValueError(
            f"reference catalogue {name!r} is not in lake {lake.root} (known: {known or 'none'}); "
            "import it with `quakelake import-catalog PATH... --name NAME`"
        )
    return events, picks


COVERAGE_GAP_S = 1.0  #: gaps shorter than this do not break a station's coverage


def load_coverage(lake: Any) -> pd.DataFrame:
    """Return where the lake's indexed archives have waveforms: merged intervals per station.

    Columns ``station_id, network, station, location, start, end``; segments closer than :data:`COVERAGE_GAP_S` are
    joined. Empty when the lake has no `waveform_index` (picks imported from elsewhere).
    """
    columns = ["station_id", "network", "station", "location", "start", "end"]
    if not lake.has_files("waveform_index"):
        return pd.DataFrame(columns=columns)
    rows = lake.query(
        "SELECT DISTINCT network, station, coalesce(location, '') AS location, start, \"end\" "
        "FROM waveform_index ORDER BY ALL"
    )
    rows["station_id"] = ids.station_ids(rows)
    return merge_intervals(rows, ["station_id", "network", "station", "location"], COVERAGE_GAP_S)


def write_evaluation(lake_root: Any, run_id: str, reference: str, evaluation: Evaluation) -> list:
    """Write an evaluation's matches and metrics into the lake (one file per table and run).

    Returns:
        The paths written.
    """
    out = []
    part = {"reference": reference}
    for table, df in (
        ("pick_matches", evaluation.pick_matches),
        ("event_matches", evaluation.event_matches),
        ("metrics", evaluation.metrics),
    ):
        if len(df):
            rows = df.drop(columns=[c for c in ("day",) if c in df.columns]).assign(run_id=run_id)
            out.append(write_table(lake_root, table, rows, name=run_id, partition=part))
    return out
