"""Tasks of the pick flow: index the archive, pick one station-day with one model x weights."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NONE

from quakelake.archive import waveforms
from quakelake.errors import is_transient, short_error
from quakelake.lakehouse import Lake, stage_table, write_table
from quakelake.lakehouse.lineage import Stopwatch, UnitResult, fingerprint, where_label
from quakelake.params import PickParams, StationSelection, TimeWindow
from quakelake.picking import denoise, engine
from quakelake.picking import models as picking
from quakelake.picking.plan import committed_stems, index_stem, pick_files, station_prefix
from quakelake.tasks.retry import transient_only


@task(
    name="index-archive",
    retry_condition_fn=transient_only,
    retries=2,
    retry_delay_seconds=[5, 30],
    cache_policy=NONE,
)
def index_archive(
    directory: Path,
    lake: Path,
    window: TimeWindow,
    selection: StationSelection,
    progress: bool = False,
) -> tuple[list[waveforms.StationDay], list[UnitResult]]:
    """Scan ``directory`` into the `waveform_index` table; return its station-days and unreadable files."""
    with Stopwatch() as sw:
        scan = waveforms.scan_archive(Path(directory), selection=selection, progress=progress)
    key = waveforms.archive_key(Path(directory))
    if len(scan.index):
        name = index_stem(scan.index, key)
        if name not in set(Lake(lake).stems("waveform_index")["stem"]):
            # the archive's index of other contents (files added, replaced) is replaced
            write_table(lake, "waveform_index", scan.index, name, {"archive": key}, f"index.{key}")
    # a file with a cut record is indexed up to and after it: partial, not failed
    indexed = set(scan.index["path"])
    failures = [
        UnitResult(
            "scan",
            f.path,
            "partial" if f.path in indexed else "failed",
            error=f.reason,
            seconds=sw.seconds,
        )
        for f in scan.failures
    ]
    return waveforms.station_days(scan.index, window, selection), failures


# A unit's attempts inside a batch (as Prefect task retries would be): delays before the second
# and the third attempt of a transient failure (BadInput is never retried).
UNIT_RETRY_DELAYS_S = (5.0, 30.0)


@task(
    name="pick-station-days",
    task_run_name="pick {label} {spec.model}/{spec.weights}",
    cache_policy=NONE,
)
def pick_station_days(
    units: list[waveforms.StationDay],
    spec: picking.ModelSpec,
    params: PickParams,
    selection: StationSelection,
    lake: Path,
    run_id: str,
    force: bool = False,
    committed: dict[str, frozenset[str]] | None = None,
    label: str = "",
) -> list[UnitResult]:
    """Pick several station-days with one model x weights, one :class:`UnitResult` each.

    One Prefect task for a few short units: submitting a task costs the flow ~0.3 s (Prefect
    serialises its context and the call for every submission), more than picking a 180 s
    station-day. Each unit is retried as a task would be: a transient failure is tried again
    after :data:`UNIT_RETRY_DELAYS_S`, a bad input fails that unit alone, and every other unit
    of the batch goes on; a lost worker fails the batch (the flow marks its units).

    Args:
        units: the station-days of this task.
        committed: the lake's stems per station prefix (:func:`station_prefix`); None: asked
            of the lake.
        label: the units in the task run's name (stations and day).
    """
    logger = get_run_logger()
    results = []
    for unit in units:
        mine = None if committed is None else committed.get(station_prefix(unit, spec), frozenset())
        results.append(
            _with_retries(logger, unit, spec, params, selection, lake, run_id, force, mine)
        )
    return results


def _with_retries(
    logger, unit, spec, params, selection, lake, run_id, force, committed
) -> UnitResult:
    key = f"{spec.label}:{unit.key}"
    attempt = 0
    while True:
        try:
            return pick_one(unit, spec, params, selection, lake, run_id, force, committed)
        except Exception as exc:
            if attempt == len(UNIT_RETRY_DELAYS_S) or not is_transient(exc):
                logger.warning("%s failed (attempt %d): %s", key, attempt + 1, short_error(exc))
                return UnitResult.failed("pick", key, exc)
            delay = UNIT_RETRY_DELAYS_S[attempt]
            logger.warning("%s: %s; trying again in %.0f s", key, short_error(exc), delay)
            time.sleep(delay)
            attempt += 1


def done_before(
    unit: waveforms.StationDay,
    spec: picking.ModelSpec,
    params: PickParams,
    committed: frozenset[str],
) -> UnitResult | None:
    """Return the ``skipped`` row of a unit whose every instrument's picks are committed, else None.

    The decision :func:`pick_one` makes first (without ``--force``), made by the flow itself for
    the units it finds done, so that a rerun sends Prefect tasks only for units with work.
    """
    return _skipped_if_done(f"{spec.label}:{unit.key}", pick_files(unit, spec, params), committed)


def _skipped_if_done(
    key: str, files: dict[tuple[str, str], tuple[str, str]], committed: frozenset[str]
) -> UnitResult | None:
    """Return the unit's ``skipped`` row when every file of ``files`` is committed, else None."""
    if not files or any(stem not in committed for _, stem in files.values()):
        return None
    stems = [stem for _, stem in files.values()]
    return UnitResult(
        "pick",
        key,
        "skipped",
        output=";".join(stems),
        inputs=fingerprint(sorted(stems)),
        extra={"where": where_label()},
    )


def pick_one(
    unit: waveforms.StationDay,
    spec: picking.ModelSpec,
    params: PickParams,
    selection: StationSelection,
    lake: Path,
    run_id: str,
    force: bool = False,
    committed: frozenset[str] | None = None,
) -> UnitResult:
    """Pick one station-day with one model x weights: one immutable `picks` file per instrument.

    Plain Python (what :func:`pick_station_days` runs for each of its units).

    Instruments whose logical file for the current inputs is committed (``committed``: the
    lake's stems for this station, given by the flow; None: asked of the lake) are skipped
    unless ``force``; the others are picked into new data files that the flow commits with
    the unit's ledger row (:func:`quakelake.lakehouse.lineage.commit_unit`), replacing the instrument's
    file of older inputs. The worker never writes to the catalog.
    """
    key = f"{spec.label}:{unit.key}"
    lake = Path(lake)
    files = pick_files(unit, spec, params)
    if committed is None:
        committed = committed_stems(lake).get(station_prefix(unit, spec), frozenset())
    if not force and (done := _skipped_if_done(key, files, committed)) is not None:
        return done
    inputs = fingerprint(sorted(stem for _, stem in files.values()))
    outputs = ";".join(stem for _, stem in files.values())
    todo = {inst for inst, (_, stem) in files.items() if force or stem not in committed}
    with Stopwatch() as sw:
        instruments, failures = waveforms.read_station_day(unit, selection=selection)
        error = "; ".join(f"skipped {f.path}: {f.reason}" for f in failures)
        wanted = [inst for inst in instruments if (inst.location, inst.band) in todo]
        notes = json.dumps(waveforms.quality_notes(instruments), sort_keys=True)
        if not wanted:
            # Nothing readable: leave no file, so a later run retries this unit.
            return UnitResult(
                "pick",
                key,
                "failed",
                error=error or "no readable waveforms",
                inputs=inputs,
                notes=notes,
            )
        device = picking.resolve_device(params.device)
        denoise_seconds = 0.0
        if spec.denoiser:
            with Stopwatch() as dsw:
                wanted = denoise.denoise_instruments(wanted, spec.denoiser, device)
            denoise_seconds = dsw.seconds
        model = picking.load_model(spec.model, spec.weights, device)
        picks, made_by = engine.pick_instruments(model, wanted, spec, params)
        picks = picking.within_day(picks, unit.day)
        picks.insert(1, "run_id", run_id)
        partition = {"day": unit.day.isoformat()}
        changes = []
        for inst in wanted:
            inst_key, stem = files[(inst.location, inst.band)]
            mine = picks[(picks["location"] == inst.location) & (picks["band"] == inst.band)]
            changes.append(stage_table(lake, "picks", mine, stem, partition, inst_key))
    extra = {
        "phases": picks["phase"].value_counts().to_dict() if len(picks) else {},
        "engine": made_by,
        "denoise_seconds": denoise_seconds,
        "where": where_label(),
    }
    return UnitResult(
        "pick",
        key,
        "done",
        rows=len(picks),
        error=error,
        seconds=sw.seconds,
        output=outputs,
        extra=extra,
        inputs=inputs,
        notes=notes,
        changes=changes,
    )


def phase_counts(results: list[UnitResult]) -> dict[str, int]:
    """Return picks per phase made by ``results`` (skipped units contribute nothing)."""
    total: dict[str, int] = {}
    for r in results:
        for phase, n in r.extra.get("phases", {}).items():
            total[phase] = total.get(phase, 0) + int(n)
    return dict(sorted(total.items()))  # P before S, whatever order the units came back in


def summary_table(results: list[UnitResult]) -> pd.DataFrame:
    """Return one row per stage x status: units, rows, seconds."""
    frame = pd.DataFrame(
        [
            {"stage": r.stage, "status": r.status, "rows": r.rows, "seconds": r.seconds}
            for r in results
        ]
    )
    if frame.empty:
        return pd.DataFrame(columns=["stage", "status", "units", "rows", "seconds"])
    return (
        frame.groupby(["stage", "status"])
        .agg(units=("rows", "size"), rows=("rows", "sum"), seconds=("seconds", "sum"))
        .reset_index()
    )
