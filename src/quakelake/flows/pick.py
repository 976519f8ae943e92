"""The pick flow: waveform archive -> picks of every model x weights -> lake."""

from __future__ import annotations

import logging
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from tqdm import tqdm

from quakelake import picking
from quakelake import weights as weight_cache
from quakelake.flows.common import (
    account_lost_pick_units,
    collect,
    current_flow_run_id,
    raise_if_workers_lost,
    recover_crashed_runs,
)
from quakelake.lineage import Stopwatch, new_run_id, record_run, record_units, utcnow, where_counts
from quakelake.params import PickParams, StationSelection, TimeWindow
from quakelake.tasks.pick import index_archive, phase_counts, pick_station_day, summary_table


class NoWaveforms(RuntimeError):
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
    """
    logger = get_run_logger()
    lake = Path(lake)
    run_id = run_id or new_run_id()
    started = utcnow()
    config = {"directory": str(directory), "window": window.model_dump(mode="json"),
              "selection": selection.model_dump(), "pick": pick.model_dump(), "force": force}
    recover_crashed_runs(lake)
    record_run(lake, run_id, "pick", config, "running", started, flow_run_id=current_flow_run_id())
    timings: dict[str, float] = {}
    status = "failed"
    try:
        with Stopwatch() as sw:
            units, failures = index_archive(Path(directory), lake, window, selection, progress)
        timings["scan"] = sw.seconds
        for f in failures:
            logger.warning("unreadable file skipped: %s (%s)", f.unit, f.error)
        if not units:
            raise NoWaveforms(
                f"no waveforms in {directory} for days {window.start or 'any'}..{window.end or 'any'} "
                f"and channels {selection.networks}.{selection.stations}.{selection.locations}."
                f"{selection.channels}; check -d, -D/-J and -N/-S/-C"
            )
        device = picking.resolve_device(pick.device)
        with Stopwatch() as sw:
            specs, warnings = cached_specs(pick)
        timings["check weights"] = sw.seconds
        for w in warnings:
            logger.warning("%s", w)
        logger.info("picking %d station-days x %d model/weights on %s", len(units), len(specs), device)
        with Stopwatch() as sw:
            submitted = [
                (f"{spec.label}:{unit.key}",
                 pick_station_day.submit(unit, spec, pick, selection, lake, run_id, force))
                for spec in specs
                for unit in units
            ]
            results = [collect(key, fut, "pick") for key, fut in
                       tqdm(submitted, desc="station-days", unit="unit", disable=not progress)]
        timings["pick"] = sw.seconds
        results = account_lost_pick_units(results, lake, run_id)
        record_units(lake, run_id, "pick", failures + results)
        raise_if_workers_lost(results, "station-days")
        summary = _summary(run_id, results, failures, timings, specs, warnings)
        _publish(summary, results + failures)
        status = "completed" if not any(r.status == "failed" for r in results) else "completed_with_failures"
        return summary
    finally:
        weights = {s.label: picking.weights_checksum(s.model, s.weights) for s in locals().get("specs", [])}
        record_run(lake, run_id, "pick", config, status, started, utcnow(), current_flow_run_id(), weights)


def cached_specs(pick: PickParams) -> tuple[list[picking.ModelSpec], list[str]]:
    """Return the model x weights combinations whose weights are cached, and a warning per other.

    The flow process only lists the SeisBench cache (it may live on a login node): the workers
    load the models. An unknown model class is an error, not a skip.

    Raises:
        picking.ModelUnavailable: an unknown model, or no combination cached at all.
    """
    for name in pick.models:
        if not weight_cache.cached_weights(name):
            picking.model_class(name)  # nothing cached: tell an unknown model from missing weights
    try:
        pairs, warnings = weight_cache.cached_combinations(pick.models, pick.weights)
    except FileNotFoundError as exc:
        raise picking.ModelUnavailable(str(exc)) from None
    return [picking.ModelSpec(m, w) for m, w in pairs], warnings


def _summary(run_id, results, failures, timings, specs, warnings) -> dict:
    counts = {s: sum(1 for r in results if r.status == s) for s in ("done", "skipped", "failed")}
    return {
        "run_id": run_id,
        "units": len(results),
        **counts,
        "unreadable_files": len(failures),
        "picks_per_phase": phase_counts(results),
        "models": [s.label for s in specs],
        "skipped_weights": warnings,
        "ran_on": where_counts(results),
        "seconds": timings,
    }


def _publish(summary: dict, results) -> None:
    try:
        table = summary_table(results)
        create_table_artifact(table=table.to_dict(orient="records"), key="pick-summary",
                              description=f"pick run {summary['run_id']}")
        lines = [f"# Pick run `{summary['run_id']}`", "",
                 f"- units: {summary['units']} (done {summary['done']}, skipped {summary['skipped']}, "
                 f"failed {summary['failed']})",
                 f"- unreadable files: {summary['unreadable_files']}",
                 f"- picks per phase: {summary['picks_per_phase']}",
                 f"- models: {', '.join(summary['models'])}",
                 "- seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in summary["seconds"].items())]
        create_markdown_artifact(markdown="\n".join(lines), key="pick-report")
    except Exception as exc:  # artifacts are a courtesy: never fail a finished run over them
        logging.getLogger(__name__).warning("could not publish artifacts: %s", exc)
