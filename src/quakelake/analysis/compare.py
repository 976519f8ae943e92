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
from quakelake.catalogs import catalogues
from quakelake.lakehouse import queries, write_table
from quakelake.params.evaluation import RunSelection

__all__ = [
    "COVERAGE_GAP_S",
    "check_selection",
    "known_names",
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
    """Return the lake's reported events chosen by ``sel``, keyed by catalogue
    (:mod:`quakelake.catalogs.catalogues`); origins the quality gate rejected are no events.

    ``-M``/``-W`` choose the catalogues associated from those models' and weights' picks.
    """
    from quakelake.catalogs.evaluation import is_rejected

    events = queries.events(
        lake, run_ids=sel.run_ids, associators=sel.associators, start=sel.start, end=sel.end
    )
    events = events[~is_rejected(events)].reset_index(drop=True)
    return catalogues.filter_events(events, sel.models, sel.weights)


def known_names(lake: Any) -> dict[str, list[str]]:
    """Return the models, weights and associators the lake's picks and events name."""
    models: set[str] = set()
    weights: set[str] = set()
    associators: set[str] = set()
    if lake.has_files("picks"):
        sets = lake.query("SELECT DISTINCT model, weights FROM picks")
        models.update(sets["model"].dropna().astype(str))
        weights.update(sets["weights"].dropna().astype(str))
    if lake.has_files("events"):
        ev = catalogues.with_catalogue(
            lake.query("SELECT DISTINCT associator, config_fingerprint, pick_source FROM events")
        )
        models.update(m for m in ev["model"] if m)
        weights.update(w for w in ev["weights"] if w)
        associators.update(a for a in ev["associator"] if a)
    return {
        "models": sorted(models),
        "weights": sorted(weights),
        "associators": sorted(associators),
    }


def check_selection(lake: Any, sel: RunSelection) -> None:
    """Raise :class:`quakelake.catalogs.catalogues.CatalogueError` for a model, weights or associator not in the lake."""
    known = known_names(lake)
    catalogues.check_names("-M/--models", sel.models, known["models"], f"in lake {lake.root}")
    catalogues.check_names("-W/--weights", sel.weights, known["weights"], f"in lake {lake.root}")
    catalogues.check_names(
        "--associator", sel.associators, known["associators"], f"in lake {lake.root}'s events"
    )


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
