"""Tasks of the analyze flow: compare a selection of the lake with a reference, draw, report."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import task
from prefect.cache_policies import NONE

from quakelake.analysis import compare as analysis
from quakelake.analysis import evaluation, plotting, report
from quakelake.analysis.groups import group_metrics
from quakelake.catalogs import import_catalog
from quakelake.lakehouse import Lake, queries
from quakelake.lakehouse.lineage import Stopwatch, UnitResult, fingerprint, frame_digest
from quakelake.params import groups as station_groups
from quakelake.params.evaluation import RunSelection
from quakelake.tasks.retry import transient_only


@task(
    name="import-reference",
    task_run_name="import reference {name}",
    retry_condition_fn=transient_only,
    retries=1,
    retry_delay_seconds=[5],
    cache_policy=NONE,
)
def import_reference(lake: Path, paths: list[Path], name: str) -> dict:
    """Import reference catalogue files into the lake under ``name`` (idempotent)."""
    return import_catalog(lake, paths, name)


@task(
    name="compare-with-reference",
    task_run_name="compare with {reference}",
    retry_condition_fn=transient_only,
    retries=1,
    retry_delay_seconds=[5],
    cache_policy=NONE,
)
def compare_with_reference(
    lake: Path,
    reference: str,
    selection: RunSelection,
    params: evaluation.MatchParams,
    run_id: str,
    groups: dict[str, list[str]] | None = None,
) -> UnitResult:
    """Match the selected picks and events with ``reference``; write matches and metrics (per group too)."""
    with Stopwatch() as sw:
        db = Lake(lake)
        picks = analysis.load_picks(db, selection)
        events = analysis.load_events(db, selection)
        ref_events, ref_picks = analysis.load_reference(db, reference)
        # where the archive has waveforms: the same span whoever asks (analyze, the pipeline)
        coverage = analysis.load_coverage(db)
        if groups and len(coverage):  # -G: the run covers the groups' stations only
            keep = [
                station_groups.in_any(str(n), str(s), groups)
                for n, s in zip(coverage["network"], coverage["station"], strict=True)
            ]
            coverage = coverage[keep]
        # with -G, a group's catalogues are scored in its own area (group_metrics), not on the whole
        pooled = events
        if groups and len(events):
            pooled = events[events["group"] == ""]
        result = evaluation.evaluate(
            picks, pooled, ref_events, ref_picks, params, selection.start, selection.end, coverage
        )
        if groups:
            in_span = ref_events
            if len(ref_events) and result.start is not None:
                t = pd.to_datetime(ref_events["time"], utc=True)
                in_span = ref_events[(t >= result.start) & (t <= result.end)]
            per_group = group_metrics(
                result.pick_matches,
                groups,
                events,
                in_span,
                ref_picks,
                params.event_max_dt_s,
                params.event_max_km,
                stations=queries.stations(db) if db.has_files("stations") else None,
            )
            result.metrics = pd.concat([result.metrics, per_group], ignore_index=True)
        paths = analysis.write_evaluation(lake, run_id, reference, result)
    inputs = fingerprint(
        frame_digest(picks, ["pick_id", "time", "probability"]),
        frame_digest(events, ["event_id", "time", "latitude", "longitude"]),
        frame_digest(ref_picks, ["pick_id", "time"]),
        frame_digest(ref_events, ["event_id", "time"]),
        frame_digest(coverage, ["network", "station", "start", "end"]),
        params.model_dump(),
    )
    pm, em = result.pick_matches, result.event_matches
    span = f"{result.start} .. {result.end}"
    warnings = []
    if len(ref_events) and result.reference_events == 0:
        warnings.append(
            f"reference {reference!r} has no event in the evaluated span {span} "
            f"({len(ref_events)} events elsewhere): event metrics are empty; check --reference "
            "and the days processed"
        )
    if len(ref_picks) and result.reference_picks == 0:
        warnings.append(
            f"reference {reference!r} has no pick where waveforms were processed ({span}, "
            f"{len(ref_picks)} picks elsewhere): pick metrics are empty; check --reference "
            "and the stations and days processed"
        )
    return UnitResult(
        "analyze",
        f"compare:{reference}",
        "done" if len(pm) or len(em) else "no_data",
        rows=len(pm) + len(em),
        seconds=sw.seconds,
        output=";".join(str(p) for p in paths),
        inputs=inputs,
        extra={
            "picks": len(picks),
            "events": len(events),
            # one count per catalogue: never one pooled number for several catalogues
            "catalogues": {
                str(k): int(v) for k, v in events["catalogue"].value_counts().sort_index().items()
            }
            if len(events)
            else {},
            "reference_picks": result.reference_picks,
            "reference_events": result.reference_events,
            "span": span,
            "coverage": "waveform_index" if len(coverage) else "pick span (no waveform_index)",
            "warnings": warnings,
        },
    )


def read_run_outputs(lake: Path, run_id: str, reference: str) -> dict[str, pd.DataFrame]:
    """Return the matches and metrics an analysis run wrote (bound parameters)."""
    return queries.analysis_outputs(Lake(lake), run_id, reference)


@task(
    name="draw-and-report",
    task_run_name="report {reference}",
    retry_condition_fn=transient_only,
    retries=1,
    retry_delay_seconds=[5],
    cache_policy=NONE,
)
def draw_and_report(
    lake: Path,
    run_id: str,
    reference: str,
    selection: RunSelection,
    folder: Path,
    notes: dict,
) -> UnitResult:
    """Draw the analysis figures (PNG) and write report.md / report.html into ``folder``."""
    with Stopwatch() as sw:
        out = read_run_outputs(lake, run_id, reference)
        db = Lake(lake)
        events = analysis.load_events(db, selection)
        ref_events, _ = analysis.load_reference(db, reference)
        used = (
            set(out["event_matches"]["reference_event_id"].dropna())
            if len(out["event_matches"])
            else set()
        )
        ref_events = ref_events[ref_events["event_id"].isin(used)]
        stations = queries.stations(db) if db.has_files("stations") else None
        figures = plotting.analysis_figures(
            out["pick_matches"], out["event_matches"], out["metrics"], events, ref_events, stations
        )
        paths = plotting.save_figures(figures, folder)
        written = report.write_report(folder, run_id, reference, out["metrics"], paths, notes)
    return UnitResult(
        "analyze",
        f"report:{reference}",
        "done",
        rows=len(paths),
        seconds=sw.seconds,
        output=str(written["markdown"]),
        extra={
            "figures": {k: str(v) for k, v in paths.items()},
            "markdown": written["markdown"].read_text(encoding="utf-8"),
        },
    )
