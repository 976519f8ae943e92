"""Task of the pick flow's ensemble stage: consensus picks of every member on one station-day."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE

from quakelake.archive import waveforms
from quakelake.lakehouse import Lake, stage_table
from quakelake.lakehouse.lineage import Stopwatch, UnitResult, fingerprint
from quakelake.params import PickParams, StationSelection
from quakelake.picking import ensemble
from quakelake.picking import models as picking

# Bump when a change alters the consensus picks made from the same inputs.
ENSEMBLE_CODE_VERSION = "1"
# Pick parameters that do not shape the picks (the members are named separately).
_SPEED_ONLY = ("models", "weights", "batch_size", "device")


def ensemble_file_name(
    unit: waveforms.StationDay,
    members: list[picking.ModelSpec],
    pick: PickParams,
    params: ensemble.EnsembleParams,
) -> str:
    """Return the stem of a unit's ensemble pick file: method, unit and the fingerprint of all that shapes it."""
    # Every pick parameter that shapes picks (thresholds, denoising ...), not those that only shape speed.
    shaping = {k: v for k, v in pick.model_dump(mode="json").items() if k not in _SPEED_ONLY}
    fp = fingerprint(
        sorted(m.label for m in members),
        shaping,
        params.model_dump(mode="json"),
        ENSEMBLE_CODE_VERSION,
    )
    return f"{ensemble.ENSEMBLE_MODEL}.{params.method}.{unit.network}.{unit.station}.{fp}"


@task(name="ensemble-station-day", retries=2, retry_delay_seconds=[5, 30], cache_policy=NONE)
def ensemble_station_day(
    unit: waveforms.StationDay,
    members: list[picking.ModelSpec],
    pick: PickParams,
    params: ensemble.EnsembleParams,
    selection: StationSelection,
    lake: Path,
    run_id: str,
    force: bool = False,
    committed: frozenset[str] | None = None,
) -> UnitResult:
    """Pick one station-day with the consensus of ``members`` into one `picks` file (model ``ensemble``).

    The `picks` and `ensemble_picks` files are committed together by the flow.
    """
    weights = ensemble.ensemble_weights(params.method, [m.label for m in members])
    key = f"{ensemble.ENSEMBLE_MODEL}/{weights}:{unit.key}"
    partition = {"day": unit.day.isoformat()}
    name = ensemble_file_name(unit, members, pick, params)
    if committed is None:
        committed = frozenset(Lake(lake).stems("picks")["stem"])
    if name in committed and not force:
        return UnitResult("ensemble", key, "skipped", output=name)
    with Stopwatch() as sw:
        instruments, failures = waveforms.read_station_day(unit, selection=selection)
        error = "; ".join(f"skipped {f.path}: {f.reason}" for f in failures)
        if not instruments:
            return UnitResult("ensemble", key, "failed", error=error or "no readable waveforms")
        device = picking.resolve_device(pick.device)
        models = [(m.label, picking.load_model(m.model, m.weights, device)) for m in members]
        picks, agreement = ensemble.pick_ensemble(models, instruments, pick, params)
        picks = picking.within_day(picks, unit.day)
        agreement = agreement[agreement["pick_id"].isin(picks["pick_id"])]
        picks.insert(1, "run_id", run_id)
        changes = [
            stage_table(lake, "ensemble_picks", agreement.assign(run_id=run_id), name, partition),
            stage_table(lake, "picks", picks, name, partition),
        ]
    extra = {"phases": picks["phase"].value_counts().to_dict()} if len(picks) else {"phases": {}}
    return UnitResult(
        "ensemble",
        key,
        "done",
        rows=len(picks),
        error=error,
        seconds=sw.seconds,
        output=name,
        extra=extra,
        changes=changes,
    )
