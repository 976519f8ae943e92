"""Tasks of the pick flow: index the archive, pick one station-day with one model x weights."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import task
from prefect.cache_policies import NONE

from quakelake import picking, waveforms
from quakelake.lakehouse import file_path, write_atomic, write_table
from quakelake.lakehouse.writer import to_arrow
from quakelake.lineage import Stopwatch, UnitResult, fingerprint, where_label
from quakelake.params import PickParams, StationSelection, TimeWindow

PICK_CODE_VERSION = "1"  # bump when a change alters the picks made from the same inputs


@task(name="index-archive", retries=2, retry_delay_seconds=[5, 30], cache_policy=NONE)
def index_archive(
    directory: Path, lake: Path, window: TimeWindow, selection: StationSelection, progress: bool = False
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
    failures = [
        UnitResult("scan", f.path, "failed", error=f.reason, seconds=sw.seconds) for f in scan.failures
    ]
    return waveforms.station_days(scan.index, window, selection), failures


def pick_file_name(unit: waveforms.StationDay, spec: picking.ModelSpec, params: PickParams) -> str:
    """Return the stem of a unit's pick file: the unit plus the fingerprint of what shapes its picks."""
    fp = fingerprint(
        spec.model, spec.weights, params.p_threshold, params.s_threshold, params.denoise, PICK_CODE_VERSION
    )
    return f"{spec.model}.{spec.weights}.{unit.network}.{unit.station}.{fp}"


@task(name="pick-station-day", retries=2, retry_delay_seconds=[5, 30], cache_policy=NONE)
def pick_station_day(
    unit: waveforms.StationDay,
    spec: picking.ModelSpec,
    params: PickParams,
    selection: StationSelection,
    lake: Path,
    run_id: str,
    force: bool = False,
) -> UnitResult:
    """Pick one station-day with one model x weights into one immutable `picks` file."""
    key = f"{spec.label}:{unit.key}"
    target = file_path(lake, "picks", {"day": unit.day.isoformat()}, pick_file_name(unit, spec, params))
    if target.exists() and not force:
        return UnitResult("pick", key, "skipped", output=str(target), extra={"where": where_label()})
    with Stopwatch() as sw:
        instruments, failures = waveforms.read_station_day(unit, selection=selection)
        error = "; ".join(f"skipped {f.path}: {f.reason}" for f in failures)
        if not instruments:
            # Nothing readable: leave no file, so a later run retries this unit.
            return UnitResult("pick", key, "failed", error=error or "no readable waveforms")
        model = picking.load_model(spec.model, spec.weights, picking.resolve_device(params.device))
        picks = picking.within_day(picking.pick_streams(model, instruments, spec, params), unit.day)
        picks.insert(1, "run_id", run_id)
        write_table(lake, "picks", picks, target.stem, {"day": unit.day.isoformat()})
    extra = {"phases": picks["phase"].value_counts().to_dict() if len(picks) else {}, "where": where_label()}
    return UnitResult("pick", key, "done", rows=len(picks), error=error, seconds=sw.seconds,
                      output=str(target), extra=extra)


def phase_counts(results: list[UnitResult]) -> dict[str, int]:
    """Return picks per phase made by ``results`` (skipped units contribute nothing)."""
    total: dict[str, int] = {}
    for r in results:
        for phase, n in r.extra.get("phases", {}).items():
            total[phase] = total.get(phase, 0) + int(n)
    return total


def summary_table(results: list[UnitResult]) -> pd.DataFrame:
    """Return one row per stage x status: units, rows, seconds."""
    frame = pd.DataFrame([{"stage": r.stage, "status": r.status, "rows": r.rows, "seconds": r.seconds}
                          for r in results])
    if frame.empty:
        return pd.DataFrame(columns=["stage", "status", "units", "rows", "seconds"])
    return (frame.groupby(["stage", "status"]).agg(units=("rows", "size"), rows=("rows", "sum"),
                                                   seconds=("seconds", "sum")).reset_index())
