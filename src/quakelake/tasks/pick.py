"""Tasks of the pick flow: index the archive, pick one station-day with one model x weights."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pandas as pd
from prefect import task
from prefect.cache_policies import NONE

from quakelake import denoise, engine, picking, waveforms
from quakelake.lakehouse import (
    file_path,
    remove_superseded,
    safe_name,
    unit_stem,
    write_atomic,
    write_table,
)
from quakelake.lakehouse.writer import to_arrow
from quakelake.lineage import Stopwatch, UnitResult, fingerprint, where_label
from quakelake.params import PickParams, StationSelection, TimeWindow
from quakelake.tasks.retry import transient_only

PICK_CODE_VERSION = "2"  # bump when a change alters the picks made from the same inputs


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
        content = scan.index[["path", "file_size", "file_mtime"]].drop_duplicates()
        name = "index." + fingerprint(content.to_csv(index=False))
        target = file_path(lake, "waveform_index", {"archive": key}, name)
        if not target.exists():
            write_atomic(target, to_arrow("waveform_index", scan.index))
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


def pick_settings(spec: picking.ModelSpec, params: PickParams) -> list:
    """Return what shapes the picks of any unit besides its waveforms (model, weights, thresholds...)."""
    # a non-default engine or precision may change picks slightly: its picks are other files
    engine_choice = (
        []
        if params.engine == "auto" and params.precision == "fp32"
        else [params.engine, params.precision]
    )
    return [
        spec.model,
        spec.weights,
        params.p_threshold,
        params.s_threshold,
        spec.denoiser or False,
        PICK_CODE_VERSION,
        *engine_choice,
    ]


def instrument_key(
    unit: waveforms.StationDay, spec: picking.ModelSpec, location: str, band: str
) -> str:
    """Return the key of one instrument's picks: model, weights, station and instrument."""
    weights = spec.member_weights.replace(":", "-")  # a denoised member is its own key
    return f"{spec.model}.{weights}.{unit.network}.{unit.station}.{location or '--'}.{band}"


def pick_files(
    unit: waveforms.StationDay, spec: picking.ModelSpec, params: PickParams, lake: Path
) -> dict[tuple[str, str], tuple[str, Path]]:
    """Return, per instrument ``(location, band)`` of ``unit``, its pick key and its file.

    A file's name holds the instrument's key and the fingerprint of everything its picks are
    computed from: the settings (:func:`pick_settings`) and the instrument's indexed segments
    (path, channel, span, samples, file size and modification time). Late data, a replaced
    file or another channel selection of the instrument give another file; other instruments
    of the station (``-C 'EH?'`` after ``-C 'HH?'``) are other keys and are left alone.
    """
    settings = pick_settings(spec, params)
    partition = {"day": unit.day.isoformat()}
    out = {}
    for (location, band), segments in unit.instrument_segments().items():
        key = instrument_key(unit, spec, location, band)
        inputs = fingerprint(settings, [dataclasses.astuple(seg) for seg in segments])
        out[(location, band)] = (key, file_path(lake, "picks", partition, unit_stem(key, inputs)))
    return out


def _legacy_test(unit: waveforms.StationDay, spec: picking.ModelSpec):
    # Files of the first naming scheme held a whole station-day: model.weights.NET.STA.<fp>.
    pattern = re.compile(
        re.escape(safe_name(f"{spec.model}.{spec.weights}.{unit.network}.{unit.station}"))
        + r"\.[0-9a-f]{12}"
    )
    return lambda stem: pattern.fullmatch(stem) is not None


@task(
    name="pick-station-day",
    task_run_name="pick {unit.network}.{unit.station} {unit.day} {spec.model}/{spec.weights}",
    retry_condition_fn=transient_only,
    retries=2,
    retry_delay_seconds=[5, 30],
    cache_policy=NONE,
)
def pick_station_day(
    unit: waveforms.StationDay,
    spec: picking.ModelSpec,
    params: PickParams,
    selection: StationSelection,
    lake: Path,
    run_id: str,
    force: bool = False,
) -> UnitResult:
    """Pick one station-day with one model x weights: one immutable `picks` file per instrument.

    Instruments whose file for the current inputs exists are skipped (unless ``force``); the
    others are picked, and each new file replaces (removes, once committed) the instrument's
    file computed from older inputs.
    """
    key = f"{spec.label}:{unit.key}"
    lake = Path(lake)
    files = pick_files(unit, spec, params, lake)
    inputs = fingerprint(sorted(str(path.name) for _, path in files.values()))
    outputs = ";".join(str(path) for _, path in files.values())
    legacy = _legacy_test(unit, spec)
    todo = {inst for inst, (_, path) in files.items() if force or not path.exists()}
    if files and not todo:
        for inst_key, path in files.values():
            remove_superseded(
                path, inst_key, legacy
            )  # left by a run killed between commit and removal
        return UnitResult(
            "pick", key, "skipped", output=outputs, inputs=inputs, extra={"where": where_label()}
        )
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
        for inst in wanted:
            inst_key, path = files[(inst.location, inst.band)]
            mine = picks[(picks["location"] == inst.location) & (picks["band"] == inst.band)]
            write_table(lake, "picks", mine, path.stem, partition)
            remove_superseded(path, inst_key, legacy)
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
    )


def phase_counts(results: list[UnitResult]) -> dict[str, int]:
    """Return picks per phase made by ``results`` (skipped units contribute nothing)."""
    total: dict[str, int] = {}
    for r in results:
        for phase, n in r.extra.get("phases", {}).items():
            total[phase] = total.get(phase, 0) + int(n)
    return total


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
