"""The pipeline flow: [download ->] pick -> [associate ->] [analyze] for a date range."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from quakelake.association.plan import pick_sets, response_files
from quakelake.config import RunConfig
from quakelake.errors import SAID_AGAIN
from quakelake.flows.associate import associate_events
from quakelake.flows.common import one_try
from quakelake.flows.pick import pick_run
from quakelake.flows.runners import stage_place, stage_runner
from quakelake.flows.settings import resolve_settings
from quakelake.lakehouse import Lake, queries
from quakelake.params import TimeWindow
from quakelake.params.evaluation import RunSelection
from quakelake.params.groups import resolve as resolve_groups
from quakelake.picking.plan import run_pick_answer


def previous_utc_day(today: dt.date | None = None) -> TimeWindow:
    """Return the window of the UTC day before ``today`` (near-real-time monitoring)."""
    today = today or dt.datetime.now(dt.UTC).date()
    day = today - dt.timedelta(days=1)
    return TimeWindow(start=day, end=day)


def associate_picks(config: RunConfig, ensemble_weights: str | None = None) -> list[dict]:
    """Associate the picks of every model x weights (and ensemble) of the run; one associate run each.

    With station groups (``config.use_groups``) one associate run per pick set and group.

    Skipped with a warning when no station coordinates are known (no -F file, nothing downloaded).
    """
    logger = get_run_logger()
    associate = config.associate
    if associate is None:  # the pipeline calls this only when association is configured
        return []
    if config.station_file is None and not Lake(config.lake).has_files("stations"):
        logger.warning(
            "association skipped: no station coordinates; pass -F/--file stations.xml|csv",
            extra=SAID_AGAIN,
        )
        return []
    runs: list[dict] = []
    if not Lake(config.lake).has_files("picks"):
        return runs
    groups = resolve_groups(config.groups, config.groups_file, config.use_groups)
    for model, weights in pick_sets(config, ensemble_weights):
        if not queries.pick_set_count(Lake(config.lake), model, weights):
            continue  # weights this model lacks were skipped by the pick stage
        for group, patterns in groups.items() if groups else [(None, None)]:
            flow_fn = associate_events.with_options(
                task_runner=stage_runner("associate", config.execution)
            )
            runs.append(
                flow_fn(
                    config.lake,
                    config.window,
                    associate,
                    station_file=config.station_file,
                    model=model,
                    weights=weights,
                    force=config.force,
                    group=group,
                    group_stations=patterns,
                    magnitude=config.magnitude,
                    response_files=response_files(config),
                )
            )
    return runs


def run_selection(config: RunConfig, ensemble_weights: str | None = None) -> RunSelection:
    """Return the lake rows a pipeline run is judged on: its models x weights over its days.

    Not its run id: units skipped because an earlier run made them still belong to this range.
    """
    w = config.window
    start = dt.datetime.combine(w.start, dt.time(), dt.UTC) if w.start else None
    end = dt.datetime.combine(w.end + dt.timedelta(days=1), dt.time(), dt.UTC) if w.end else None
    sets = pick_sets(config, ensemble_weights)
    return RunSelection(
        models=sorted({m for m, _ in sets}),
        weights=sorted({w for _, w in sets}),
        start=start,
        end=end,
    )


@flow(name="quakelake-pipeline", log_prints=True)
def run_pipeline(
    config: RunConfig = RunConfig(),
    previous_day: bool = False,
    lake_block: str | None = None,
    compute_block: str | None = None,
    fdsn_block: str | None = None,
    pick_answer: dict | None = None,
) -> dict:
    """Run every configured stage for a date range into the lake.

    Args:
        config: the whole run configuration (archive, days, channels, download, picking,
            association, analysis, task runner).
        previous_day: process the UTC day before today instead of ``config.window`` (the daily
            scheduled deployment).
        lake_block: name of a QuakeLake Lake block whose folder replaces ``config.lake``.
        compute_block: name of a Compute Cluster block whose settings override
            ``config.execution`` (see :func:`quakelake.flows.settings.resolve_settings`).
        fdsn_block: name of an FDSN Access block (clients, EIDA token) used by the download.
        pick_answer: the pick stage's summary when the caller found, just before, every pick
            unit committed (``quakelake run`` asks before Prefect starts:
            :func:`quakelake.picking.plan.run_pick_answer`); None: asked here.
    """
    logger = get_run_logger()
    config = resolve_settings(
        config,
        {"window": previous_utc_day()} if previous_day else None,
        lake_block=lake_block,
        compute_block=compute_block,
    )
    if config.directory is None:
        raise ValueError(
            "config.directory: give the waveform archive (the download target with --download)"
        )
    places = {
        stage: stage_place(stage, config.execution)
        for stage in ("download", "pick", "associate", "analyze")
    }
    logger.info("stages run on: %s (runner %s)", places, config.execution.runner)
    out: dict = {"window": config.window.model_dump(mode="json"), "stage_places": places}
    if config.download is not None:
        from quakelake.flows.download import download_waveforms  # ObsPy's FDSN clients

        # Always threads in this process: compute nodes have no internet.
        out["download"] = download_waveforms.with_options(
            task_runner=stage_runner("download", config.execution)
        )(
            Path(config.directory),
            config.lake,
            config.window,
            config.selection,
            config.download,
            config.force,
            access_block=fdsn_block,
        )
    groups = resolve_groups(config.groups, config.groups_file, config.use_groups)
    # as an unchanged `quakelake pick`: every unit committed records no pick run (before, a
    # pick subflow recorded a run of skipped units: ~1 s of flow run, scan and commits)
    done = pick_answer if pick_answer is not None else run_pick_answer(config, downloaded=True)
    if done is not None:
        logger.info(
            "pick: every station-day x model/weights is in the lake from earlier runs; "
            "no pick run (--force picks again)"
        )
        out["pick"] = done
    else:
        out["pick"] = pick_run(config, stage_runner("pick", config.execution), groups)
    ensemble_weights = out["pick"].get("ensemble")
    if config.associate is not None:
        out["associate"] = associate_picks(config, ensemble_weights)
    if config.analyze.reference:
        # the analysis stack (SciPy's optimisers, matplotlib's figures), imported when used
        from quakelake.flows.analyze import analyze_run

        out["analyze"] = analyze_run.with_options(
            task_runner=stage_runner("analyze", config.execution)
        )(
            config.lake,
            config.analyze.reference,
            run_selection(config, ensemble_weights),
            config.analyze.match,
            reference_paths=config.analyze.reference_paths or None,
            report_dir=config.analyze.report_dir,
            groups=groups or None,
        )
    logger.info(
        "pipeline done: %s",
        ", ".join(
            f"{k} {v['run_id']}" for k, v in out.items() if isinstance(v, dict) and v.get("run_id")
        ),
    )
    with one_try():
        _publish(config, out)
    return out


def pipeline_markdown(config: RunConfig, out: dict) -> str:
    """Return the Markdown summary of a pipeline run: one section per stage that ran."""
    w = config.window
    lines = [
        f"# Pipeline {w.start or 'any'} .. {w.end or 'any'}",
        "",
        f"- archive: `{config.directory}`",
        f"- lake: `{config.lake}`",
        "",
    ]
    if "download" in out:
        d = out["download"]
        lines += [
            "## Download",
            "",
            f"- run `{d['run_id']}`: {d['units']} station-days (ok {d['ok']}, "
            f"skipped {d['skipped']}, no data {d['no_data']}, failed {d['failed']})",
            "",
        ]
    p = out["pick"]
    phases = (
        ", ".join(f"{k} {v}" for k, v in (p.get("picks_per_phase") or {}).items()) or "none new"
    )
    run = f"run `{p['run_id']}`" if p.get("run_id") else "no pick run (every unit in the lake)"
    lines += [
        "## Pick",
        "",
        f"- {run}: {p['units']} units (done {p['done']}, skipped "
        f"{p['skipped']}, failed {p['failed']})",
        f"- models: {', '.join(p.get('models', []))}",
        f"- picks: {phases}",
        "",
    ]
    for a in out.get("associate", []):
        lines += [
            f"## Associate ({a['associator']}, {a['pick_source']})",
            "",
            f"- run `{a['run_id']}`: {a['days']} days (done {a['done']}, skipped {a['skipped']}, "
            f"failed {a['failed']}), {a['events']} events"
            + (f", {a['rejected']} rejected origins" if a.get("rejected") else ""),
            "",
        ]
    if "analyze" in out:
        a = out["analyze"]
        lines += [
            "## Analysis",
            "",
            f"- run `{a['run_id']}` against `{a.get('reference')}`",
            "- events per catalogue (each scored on its own): "
            + (", ".join(f"{k} {v}" for k, v in (a.get("catalogues") or {}).items()) or "none"),
            f"- report: `{a.get('report')}` (the analysis-report artifact shows it with its plots)",
            "",
        ]
    return "\n".join(lines)


def _publish(config: RunConfig, out: dict) -> None:
    """Attach the run's summary to the pipeline flow run itself (the stages' details sit on their subflows)."""
    try:
        create_markdown_artifact(
            markdown=pipeline_markdown(config, out),
            key="pipeline-report",
            description="stages of this pipeline run",
        )
    except Exception as exc:  # artifacts are a courtesy: never fail a finished run over them
        get_run_logger().warning("could not publish the pipeline artifact: %s", exc)
