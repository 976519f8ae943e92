"""Tasks of the associate flow: read one day of picks (+- margin), associate, write events."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
from prefect import task
from prefect.cache_policies import NONE

from quakelake.association import associate as association
from quakelake.association import magnitudes, quality
from quakelake.association.plan import (  # noqa: F401 (the flow's and the tests' names)
    ASSOCIATION_CODE_VERSION,
    MAGNITUDE_CODE_VERSION,
    PickSource,
    committed_times,
    config_fingerprint,
    day_unit,
    derive_settings,
    magnitude_inputs,
    magnitude_key,
    magnitude_state,
    pick_counts,
    read_picks,
    read_station_source,
    unit_file_name,
    unit_inputs,
    unit_key,
)
from quakelake.lakehouse import Lake, queries, stage_table
from quakelake.lakehouse.lineage import Stopwatch, UnitResult, commit_unit, fingerprint
from quakelake.params.association import GammaConfig, PyOctoConfig
from quakelake.tasks.retry import transient_only

# set in a unit's ``extra`` when its ledger row was committed with its files (the flow records
# the rows of the other units: skipped, failed, without data)
LEDGER_COMMITTED = "ledger_committed"


@task(
    name="derive-association-settings",
    retry_condition_fn=transient_only,
    retries=1,
    cache_policy=NONE,
)
def derive_settings_task(
    lake: Path,
    config: PyOctoConfig | GammaConfig,
    source: PickSource,
    start: pd.Timestamp,
    end: pd.Timestamp,
) -> tuple[PyOctoConfig | GammaConfig, dict]:
    """Return ``config`` with its empty settings derived from the stations and picks of the run.

    Derived once per run (not per day), so every day of a run uses the same settings and the
    run's lineage records them.
    """
    return derive_settings(lake, config, source, start, end)


@task(
    name="associate-day",
    task_run_name="associate {day} {source.label}",
    retry_condition_fn=transient_only,
    retries=2,
    retry_delay_seconds=[5, 30],
    cache_policy=NONE,
)
def associate_day_task(
    day: dt.date,
    lake: Path,
    config: PyOctoConfig | GammaConfig,
    source: PickSource,
    run_id: str,
    margin_s: float = 120.0,
    force: bool = False,
    key_config: PyOctoConfig | GammaConfig | None = None,
) -> UnitResult:
    """Associate the events of one UTC day into one `events` and one `assignments` file.

    Picks are read from ``day - margin`` to ``day + 1 + margin``; only events with origin in
    ``day`` are kept. A day whose events file for the same inputs (:func:`unit_inputs`:
    picks, stations, velocity model) exists is skipped unless ``force``; a day computed anew
    replaces (removes, once committed) the files of its older inputs."""
    key = day.isoformat()
    partition = {"day": key}
    with Stopwatch() as sw:
        # the key is the configuration as given; settings derived from the data are inputs
        unit = day_unit(day, lake, config, source, margin_s, key_config)
        if unit is None:
            return UnitResult("associate", key, "no_data", error="no picks in the day (+- margin)")
        picks, stations, inputs, ukey, name = (
            unit.picks,
            unit.stations,
            unit.inputs,
            unit.key,
            unit.name,
        )
        if name in set(Lake(lake).stems("events")["stem"]) and not force:
            return UnitResult("associate", key, "skipped", output=name, inputs=inputs)
        fp = config_fingerprint(config)
        prefix = f"{config.associator}-{fingerprint(fp, source.label, length=8)}-"
        result = association.associate_day(picks, stations, day, config, margin_s, prefix)
        common = {"run_id": run_id, "associator": config.associator, "config_fingerprint": fp}
        assignments = result.assignments.assign(**common)
        events = result.events.assign(**common, pick_source=source.label)
        changes = [
            stage_table(lake, "assignments", assignments, name, partition, ukey),
            stage_table(lake, "events", events, name, partition, ukey),
        ]
    done = UnitResult(
        "associate",
        key,
        "done",
        rows=len(events),
        seconds=sw.seconds,
        output=name,
        error="; ".join(result.messages)[:2000],
        extra={
            "picks": len(picks),
            "assigned": len(assignments),
            "unknown_stations": result.unknown_stations,
            "rejected": int(quality.is_rejected(events).sum()),
            "rejected_reasons": quality.rejection_counts(events),
            LEDGER_COMMITTED: True,
        },
        inputs=inputs,
        changes=changes,
    )
    # one commit: the day's events and assignments, replacing those of older inputs, with the
    # day's ledger row (a kill after it leaves no events without their row)
    return commit_unit(lake, run_id, done, replace=True)


def _read_stem(lake: Path, table: str, stem: str) -> pd.DataFrame:
    """Return the rows of one committed logical file (without partition columns)."""
    return queries.unit_file_rows(Lake(lake), table, stem)


@task(
    name="magnitudes-day",
    task_run_name="magnitudes {day}",
    retry_condition_fn=transient_only,
    retries=2,
    retry_delay_seconds=[5, 30],
    cache_policy=NONE,
)
def magnitudes_day_task(
    day: dt.date,
    lake: Path,
    events_stem: str,
    config: PyOctoConfig | GammaConfig,
    source: PickSource,
    params: magnitudes.MagnitudeParams,
    response_files: list[Path],
    force: bool,
    run_id: str,
) -> UnitResult:
    """Measure amplitudes and local magnitudes of one day's events; fill the day's `events` file.

    Commits, in one transaction, `amplitudes`, the day's `events` with the magnitude columns
    (replacing the logical file ``events_stem``, the associate task's output),
    `station_magnitudes` and the day's ledger row of ``run_id`` (the run measuring). Skipped
    when that commit is newer than the events' own, unless ``force``; the magnitude files carry
    the events' inputs fingerprint and replace those of older inputs.
    """
    key = day.isoformat()
    partition = {"day": key}
    name = events_stem
    mkey = magnitude_key(name)
    target, state = magnitude_state(committed_times(lake), name, params, force)
    if state == "no_data":
        return UnitResult("magnitude", key, "no_data", error="no events file for the day")
    if state == "skipped":
        return UnitResult("magnitude", key, "skipped", output=target)
    if not response_files:
        return UnitResult(
            "magnitude",
            key,
            "no_data",
            error="no StationXML with responses; pass -F/--file stations.xml",
        )
    with Stopwatch() as sw:
        events = _read_stem(lake, "events", name)
        assignments = _read_stem(lake, "assignments", name)
        lake_ = Lake(lake)
        if not lake_.has_files("waveform_index"):
            return UnitResult(
                "magnitude",
                key,
                "no_data",
                error="no waveform_index in the lake; pick from an archive",
            )
        start = pd.Timestamp(day, tz="UTC") - pd.Timedelta(hours=1)
        index = queries.waveform_segments(
            lake_, start.to_pydatetime(), (start + pd.Timedelta(hours=26)).to_pydatetime()
        )
        stations = read_station_source(lake, source)
        inventory = magnitudes.read_inventory(response_files)
        result = magnitudes.day_magnitudes(events, assignments, stations, inventory, index, params)
        common = {
            c: events[c].iloc[0] if len(events) else None
            for c in ("run_id", "associator", "config_fingerprint")
        }
        changes = [
            stage_table(
                lake, "amplitudes", result.amplitudes.assign(**common), target, partition, mkey
            ),
            stage_table(lake, "events", result.events, name, partition, name.rsplit(".", 1)[0]),
            stage_table(
                lake,
                "station_magnitudes",
                result.station_magnitudes.assign(**common),
                target,
                partition,
                mkey,
            ),
        ]
    with_ml = int(result.events["magnitude"].notna().sum()) if len(result.events) else 0
    done = UnitResult(
        "magnitude",
        key,
        "done",
        rows=len(result.station_magnitudes),
        seconds=sw.seconds,
        output=str(target),
        error="; ".join(result.messages)[:2000],
        extra={
            "events": len(events),
            "events_with_ml": with_ml,
            "amplitudes": len(result.amplitudes),
            LEDGER_COMMITTED: True,
        },
        changes=changes,
    )
    return commit_unit(lake, run_id, done, replace=True)  # files and ledger row: one transaction
