"""The pipeline flow: [download ->] pick -> [associate ->] [analyze] for a date range."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from prefect import flow, get_run_logger

from quakelake.blocks import load_compute, load_lake
from quakelake.config import RunConfig
from quakelake.evaluation import RunSelection
from quakelake.flows.analyze import analyze_run
from quakelake.flows.associate import associate_events
from quakelake.flows.download import download_waveforms
from quakelake.flows.pick import pick_phases
from quakelake.flows.runners import stage_place, stage_runner
from quakelake.lakehouse import Lake
from quakelake.params import TimeWindow


def previous_utc_day(today: dt.date | None = None) -> TimeWindow:
    """Return the window of the UTC day before ``today`` (near-real-time monitoring)."""
    today = today or dt.datetime.now(dt.UTC).date()
    day = today - dt.timedelta(days=1)
    return TimeWindow(start=day, end=day)


def associate_picks(config: RunConfig) -> list[dict]:
    """Associate the picks of every model x weights of the run; one associate run each.

    Skipped with a warning when no station coordinates are known (no -F file, nothing downloaded).
    """
    logger = get_run_logger()
    if config.station_file is None and not Lake(config.lake).has_files("stations"):
        logger.warning("association skipped: no station coordinates; pass -F/--file stations.xml|csv")
        return []
    runs: list[dict] = []
    if not Lake(config.lake).has_files("picks"):
        return runs
    for model in config.pick.models:
        for weights in config.pick.weights:
            if not Lake(config.lake).query("SELECT count(*) AS n FROM picks WHERE model = ? AND weights = ?",
                                           [model, weights])["n"][0]:
                continue  # weights this model lacks were skipped by the pick stage
            flow_fn = associate_events.with_options(task_runner=stage_runner("associate", config.execution))
            runs.append(flow_fn(
                config.lake, config.window, config.associate, station_file=config.station_file,
                model=model, weights=weights, force=config.force,
            ))
    return runs


def run_selection(config: RunConfig) -> RunSelection:
    """Return the lake rows a pipeline run is judged on: its models x weights over its days.

    Not its run id: units skipped because an earlier run made them still belong to this range.
    """
    w = config.window
    start = dt.datetime.combine(w.start, dt.time(), dt.UTC) if w.start else None
    end = dt.datetime.combine(w.end + dt.timedelta(days=1), dt.time(), dt.UTC) if w.end else None
    return RunSelection(models=config.pick.models, weights=config.pick.weights, start=start, end=end)


@flow(name="quakelake-pipeline", log_prints=True)
def run_pipeline(
    config: RunConfig = RunConfig(),
    previous_day: bool = False,
    lake_block: str | None = None,
    compute_block: str | None = None,
    fdsn_block: str | None = None,
) -> dict:
    """Run every configured stage for a date range into the lake.

    Args:
        config: the whole run configuration (archive, days, channels, download, picking,
            association, analysis, task runner).
        previous_day: process the UTC day before today instead of ``config.window`` (the daily
            scheduled deployment).
        lake_block: name of a QuakeLake Lake block whose folder replaces ``config.lake``.
        compute_block: name of a Compute Cluster block whose settings replace ``config.execution``.
        fdsn_block: name of an FDSN Access block (clients, EIDA token) used by the download.
    """
    logger = get_run_logger()
    if previous_day:
        config = config.model_copy(update={"window": previous_utc_day()})
    if lake_block:
        config = config.model_copy(update={"lake": load_lake(lake_block)})
    if compute_block:
        config = config.model_copy(update={"execution": load_compute(compute_block)})
    if config.directory is None:
        raise ValueError("config.directory: give the waveform archive (the download target with --download)")
    places = {stage: stage_place(stage, config.execution) for stage in ("download", "pick", "associate", "analyze")}
    logger.info("stages run on: %s (runner %s)", places, config.execution.runner)
    out: dict = {"window": config.window.model_dump(mode="json"), "stage_places": places}
    if config.download is not None:
        # Always threads in this process: compute nodes have no internet.
        out["download"] = download_waveforms.with_options(task_runner=stage_runner("download", config.execution))(
            Path(config.directory), config.lake, config.window, config.selection, config.download, config.force,
            access_block=fdsn_block,
        )
    out["pick"] = pick_phases.with_options(task_runner=stage_runner("pick", config.execution))(
        Path(config.directory), config.lake, config.window, config.selection, config.pick, config.force,
        progress=config.verbosity > 0,
    )
    if config.associate is not None:
        out["associate"] = associate_picks(config)
    if config.analyze.reference:
        out["analyze"] = analyze_run.with_options(task_runner=stage_runner("analyze", config.execution))(
            config.lake, config.analyze.reference, run_selection(config), config.analyze.match,
            reference_paths=config.analyze.reference_paths or None, report_dir=config.analyze.report_dir,
        )
    logger.info("pipeline done: %s", {k: v.get("run_id") for k, v in out.items() if isinstance(v, dict)})
    return out
