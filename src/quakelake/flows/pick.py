"""The pick flow: waveform archive -> picks of every model x weights -> lake."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from tqdm import tqdm

from quakelake.analysis.artifact_tables import counts_table
from quakelake.errors import SAID_AGAIN, FailedWork
from quakelake.flows.common import (
    collect_all,
    current_flow_run_id,
    finished_in_groups,
    one_try,
    raise_if_workers_lost,
    recover_crashed_runs,
    task_slots,
    tasks_run_here,
)
from quakelake.lakehouse import safe_name
from quakelake.lakehouse.lineage import (
    RecordedRun,
    Stopwatch,
    UnitResult,
    commit_units,
    record_units,
    recorded_run,
    where_counts,
)
from quakelake.params import PickParams, StationSelection, TimeWindow
from quakelake.params import groups as station_groups
from quakelake.params.text import days_text, selection_text
from quakelake.picking import denoise
from quakelake.picking import ensemble as ensembles
from quakelake.picking import models as picking
from quakelake.picking.plan import batch_label, unit_batches
from quakelake.tasks.ensemble import ensemble_station_day
from quakelake.tasks.pick import (
    committed_stems,
    done_before,
    index_archive,
    phase_counts,
    pick_station_days,
    station_prefix,
    summary_table,
)

if TYPE_CHECKING:
    from prefect.task_runners import TaskRunner

    from quakelake.config import RunConfig


class NoWaveforms(FailedWork):
    """The archive holds no waveforms for the requested days and channels."""


@flow(name="pick-phases", log_prints=True)
def pick_phases(
    directory: Path,
    lake: Path = Path("lake"),
    window: TimeWindow = TimeWindow(),
    selection: StationSelection = StationSelection(),
    pick: PickParams = PickParams(),
    force: bool = False,
    progress: bool = False,
    run_id: str | None = None,
    ensemble: ensembles.EnsembleParams | None = None,
    groups: dict[str, list[str]] | None = None,
) -> dict:
    """Pick phases on every station-day of a waveform archive with every model x weights combination.

    Args:
        directory: waveform archive (SDS tree or any folder of miniSEED/SAC files).
        lake: lake root folder.
        window: UTC days to process (open ends: every day found).
        selection: networks, stations, locations, channels (FDSN wildcards).
        pick: models, weights, thresholds, batch size, device.
        force: recompute station-days whose picks already exist.
        progress: show a progress bar.
        run_id: lineage id of the run (a new one when empty).
        ensemble: also pick each station-day with the consensus of all loaded members (model
            ``ensemble``); None: members only.
        groups: station groups {name: NET.STA patterns}: pick only their stations (None: all).
    """
    logger = get_run_logger()
    lake = Path(lake)
    config = {
        "directory": str(directory),
        "window": window.model_dump(mode="json"),
        "selection": selection.model_dump(),
        "pick": pick.model_dump(),
        "force": force,
        "ensemble": ensemble.model_dump() if ensemble else None,
        "groups": groups or {},
    }
    recover_crashed_runs(lake)
    timings: dict[str, float] = {}
    specs: list[picking.ModelSpec] = []
    results: list[UnitResult] = []

    def outcome(run: RecordedRun) -> None:
        """Add what the models and the units were to the run's last row (a failed run's too)."""
        run.weights = {s.label: picking.weights_checksum(s.model, s.weights) for s in specs}
        run.config["engines"] = engines_used(results)
        run.config["ran_on"] = where_counts(results)
        if pick.denoiser and "/" in pick.denoiser:
            run.weights[pick.denoiser] = picking.weights_checksum(*pick.denoiser.split("/", 1))

    with recorded_run(
        lake, "pick", config, run_id, current_flow_run_id(), before_finish=outcome
    ) as run:
        run_id = run.run_id
        with Stopwatch() as sw:
            units, failures = index_archive(Path(directory), lake, window, selection, progress)
        timings["scan"] = sw.seconds
        for f in failures:
            what = "file read in part" if f.status == "partial" else "unreadable file skipped"
            logger.warning("%s: %s (%s)", what, f.unit, f.error)
        if groups and units:
            station_groups.check_matches(
                groups, {(u.network, u.station) for u in units}, f"archive {directory}"
            )
            units = [u for u in units if station_groups.in_any(u.network, u.station, groups)]
        if not units:
            bad = "; ".join(f"{Path(f.unit).name}: {f.error}" for f in failures[:3])
            raise NoWaveforms(
                f"no waveforms in {directory} for {days_text(window)} and channels "
                f"{selection_text(selection)}"
                + (f" ({len(failures)} unreadable files, e.g. {bad})" if failures else "")
                + "; check -d, -D/-J and -N/-S/-C"
            )
        device = pick.device  # resolved where the models run: the flow process loads none
        with Stopwatch() as sw:
            specs, warnings = picking.available_specs(pick, device)
            if pick.denoiser:  # an unknown denoiser is an error, not a skip (listed, not loaded)
                denoise.check_available(pick.denoiser)
        timings["check models"] = sw.seconds
        for w in warnings:
            logger.warning("%s", w, extra=SAID_AGAIN)
        if ensemble is not None:
            ensembles.check_members([s.label for s in specs])  # before any unit is picked
        logger.info(
            "picking %d station-days x %d model/weights on %s", len(units), len(specs), device
        )
        with Stopwatch() as sw:
            committed = committed_stems(lake)  # the workers never ask the catalog
            slots = task_slots()
            # With tasks in this process, units whose picks are all committed are recorded
            # skipped here, as their task would (its place too), without one: a task costs the
            # flow ~0.3 s and a rerun over done days sent one per batch. Other runners' tasks
            # record their own place.
            done: list[UnitResult] = []
            todo: dict[str, list] = {}
            here = not force and tasks_run_here()
            for spec in specs:
                for unit in units:
                    mine = committed.get(station_prefix(unit, spec), frozenset())
                    row = done_before(unit, spec, pick, mine) if here else None
                    if row is None:
                        todo.setdefault(spec.label, []).append(unit)
                    else:
                        done.append(row)
            if done:
                results += commit_units(lake, run_id, done)
            submitted: list[tuple[list[str], Any]] = [
                (
                    [f"{spec.label}:{unit.key}" for unit in batch],
                    pick_station_days.submit(
                        batch,
                        spec,
                        pick,
                        selection,
                        lake,
                        run_id,
                        force,
                        {
                            prefix: committed.get(prefix, frozenset())
                            for prefix in {station_prefix(u, spec) for u in batch}
                        },
                        batch_label(batch),
                    ),
                )
                for spec in specs
                for batch in unit_batches(todo.get(spec.label, []), slots=slots)
            ]
            if ensemble is not None:
                label = ensembles.ensemble_weights(ensemble.method, [s.label for s in specs])
                submitted += [
                    (
                        [f"{ensembles.ENSEMBLE_MODEL}/{label}:{unit.key}"],
                        ensemble_station_day.submit(
                            unit,
                            specs,
                            pick,
                            ensemble,
                            selection,
                            lake,
                            run_id,
                            force,
                            committed.get(
                                safe_name(
                                    f"{ensembles.ENSEMBLE_MODEL}.{ensemble.method}."
                                    f"{unit.network}.{unit.station}"
                                ),
                                frozenset(),
                            ),
                        ),
                    )
                    for unit in units
                ]
            # each unit's files and ledger row are committed together as soon as it is back
            # (the units back by then with it, in the same transaction)
            keys = {id(fut): unit_keys for unit_keys, fut in submitted}
            with tqdm(
                total=len(done) + sum(len(k) for k, _ in submitted),
                initial=len(done),
                desc="station-days",
                unit="unit",
                disable=not progress,
            ) as bar:
                for group in finished_in_groups([fut for _, fut in submitted]):
                    back = [
                        r
                        for fut in group
                        for r in collect_all(
                            keys[id(fut)],
                            fut,
                            "ensemble" if keys[id(fut)][0].startswith("ensemble/") else "pick",
                        )
                    ]
                    results += commit_units(lake, run_id, back, replace=force)
                    bar.update(len(back))
        timings["pick"] = sw.seconds
        if pick.denoiser:  # the denoise stage runs inside the pick units; its share of their time
            timings["denoise (in units)"] = sum(
                r.extra.get("denoise_seconds", 0.0) for r in results
            )
        record_units(lake, run_id, "pick", failures)
        raise_if_workers_lost(results, "station-days")
        summary = _summary(run_id, results, failures, timings, specs, warnings)
        if ensemble is not None:
            summary["ensemble"] = ensembles.ensemble_weights(
                ensemble.method, [s.label for s in specs]
            )
        with one_try():
            _publish(summary, results + failures)
        run.status = (
            "completed"
            if not any(r.status == "failed" for r in results)
            else "completed_with_failures"
        )
        return summary


def pick_run(config: RunConfig, task_runner: TaskRunner[Any], groups: dict[str, list[str]]) -> dict:
    """Run :func:`pick_phases` on the archive, days, channels and models of ``config``."""
    if config.directory is None:
        raise ValueError("config.directory: give the waveform archive to pick")
    return pick_phases.with_options(task_runner=task_runner)(
        config.directory,
        config.lake,
        config.window,
        config.selection,
        config.pick,
        config.force,
        progress=config.verbosity > 0,
        ensemble=config.ensemble,
        groups=groups or None,
    )


def engines_used(results) -> dict[str, list[str]]:
    """Return, per model x weights, what picked its units (``engine-onnx``, ``engine-torch``, ``seisbench``)."""
    used: dict[str, set[str]] = {}
    for r in results:
        if "engine" in r.extra:
            used.setdefault(r.unit.split(":")[0], set()).add(r.extra["engine"])
    return {label: sorted(names) for label, names in sorted(used.items())}


def _summary(run_id, results, failures, timings, specs, warnings) -> dict:
    counts = {s: sum(1 for r in results if r.status == s) for s in ("done", "skipped", "failed")}
    return {
        "run_id": run_id,
        "units": len(results),
        **counts,
        "unreadable_files": len(failures),
        "picks_per_phase": phase_counts(results),
        "models": [s.label for s in specs],
        "engines": engines_used(results),
        "skipped_weights": warnings,
        "ran_on": where_counts(results),
        "seconds": timings,
    }


def _publish(summary: dict, results) -> None:
    try:
        table = summary_table(results)
        create_table_artifact(
            table=table.to_dict(orient="records"),
            key="pick-summary",
            description=f"pick run {summary['run_id']}",
        )
        lines = [
            f"# Pick run `{summary['run_id']}`",
            "",
            f"- units: {summary['units']} (done {summary['done']}, skipped {summary['skipped']}, "
            f"failed {summary['failed']})",
            f"- unreadable files: {summary['unreadable_files']}",
            f"- models: {', '.join(summary['models'])}",
            "- seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in summary["seconds"].items()),
            "",
            counts_table(summary["picks_per_phase"] or {"(none new)": 0}, "phase", "new picks"),
        ]
        create_markdown_artifact(markdown="\n".join(lines), key="pick-report")
    except Exception as exc:  # artifacts are a courtesy: never fail a finished run over them
        logging.getLogger(__name__).warning("could not publish artifacts: %s", exc)
