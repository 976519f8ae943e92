"""Which pick units a run has to compute: each unit's logical files and what the lake holds.

A pick unit (station-day x model/weights) writes one logical file per instrument, named by
its key and the fingerprint of everything its picks are computed from (:func:`pick_files`).
The pick flow skips a unit whose files are all committed; :func:`nothing_to_do` asks the same
question of the whole run before Prefect is even imported, so that an unchanged rerun of
``quakelake pick`` answers in about a second and writes nothing. A changed, added or removed
waveform file gives other inputs, hence other stems, and the run goes to the flow as usual.

No Prefect here (the command line uses it before deciding whether a flow runs).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quakelake import ids
from quakelake.lakehouse import Lake, unit_stem
from quakelake.lakehouse.lineage import fingerprint, stale_runs

if TYPE_CHECKING:
    import pandas as pd

    from quakelake.archive.waveforms import StationDay
    from quakelake.config import RunConfig
    from quakelake.params import PickParams, StationSelection, TimeWindow
    from quakelake.picking.models import ModelSpec

PICK_CODE_VERSION = "2"  # bump when a change alters the picks made from the same inputs


def pick_settings(spec: ModelSpec, params: PickParams) -> list:
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


def instrument_key(unit: StationDay, spec: ModelSpec, location: str, band: str) -> str:
    """Return the key of one instrument's picks: model, weights, station and instrument."""
    weights = spec.member_weights.replace(":", "-")  # a denoised member is its own key
    return f"{spec.model}.{weights}.{unit.network}.{unit.station}.{location or '--'}.{band}"


def pick_files(
    unit: StationDay, spec: ModelSpec, params: PickParams
) -> dict[tuple[str, str], tuple[str, str]]:
    """Return, per instrument ``(location, band)`` of ``unit``, its pick key and logical file.

    A logical file (its stem) holds the instrument's key and the fingerprint of everything its
    picks are computed from: the settings (:func:`pick_settings`) and the instrument's indexed
    segments (path, channel, span, samples, file size and modification time). Late data, a
    replaced file or another channel selection of the instrument give another stem; other
    instruments of the station (``-C 'EH?'`` after ``-C 'HH?'``) are other keys, left alone.
    """
    settings = pick_settings(spec, params)
    out = {}
    for (location, band), segments in unit.instrument_segments().items():
        key = instrument_key(unit, spec, location, band)
        inputs = fingerprint(settings, [dataclasses.astuple(seg) for seg in segments])
        out[(location, band)] = (key, unit_stem(key, inputs))
    return out


def committed_stems(lake: Path, table: str = "picks") -> dict[str, frozenset[str]]:
    """Return the committed stems of ``table`` by station prefix (``MODEL.WEIGHTS.NET.STA``)."""
    out: dict[str, set[str]] = {}
    for stem in Lake(lake).stems(table)["stem"]:
        out.setdefault(".".join(stem.split(".")[:4]), set()).add(stem)
    return {k: frozenset(v) for k, v in out.items()}


def station_prefix(unit: StationDay, spec: ModelSpec) -> str:
    """Return the prefix of the stems of ``unit``'s picks by ``spec`` (see :func:`committed_stems`)."""
    return ".".join(unit_stem(instrument_key(unit, spec, "", ""), "x").split(".")[:4])


def index_stem(index: pd.DataFrame, key: str) -> str:
    """Return the logical file of an archive's `waveform_index` rows (``key``: its archive key).

    It changes with the archive's contents (a file added, replaced or removed), not with the
    order the files were met in.
    """
    content = index[["path", "file_size", "file_mtime"]].drop_duplicates()
    return unit_stem(f"index.{key}", fingerprint(content.to_csv(index=False)))


def run_pick_answer(config: RunConfig, downloaded: bool = False) -> dict[str, Any] | None:
    """Return the pick stage's summary of a ``quakelake run`` when every pick unit is committed.

    :func:`nothing_to_do` for the run's archive, settings and station groups: no pick run is
    recorded, as none would be by an unchanged ``quakelake pick``. None (the pick flow decides
    and records) with ``--force``, an ensemble, no archive, and with a download that has not
    happened yet (``downloaded``: it has, the archive is as it will be picked).
    """
    from quakelake.params import groups as station_groups

    if (
        config.force
        or config.ensemble is not None
        or config.directory is None
        or (config.download is not None and not downloaded)
    ):
        return None
    groups = station_groups.resolve(config.groups, config.groups_file, config.use_groups)
    return nothing_to_do(
        Path(config.directory),
        config.lake,
        config.window,
        config.selection,
        config.pick,
        groups or None,
    )


def nothing_to_do(
    directory: Path,
    lake: Path,
    window: TimeWindow,
    selection: StationSelection,
    pick: PickParams,
    groups: dict[str, list[str]] | None = None,
) -> dict[str, Any] | None:
    """Return the summary of a pick run that would find every unit done, or None when it has work.

    The same decision as the pick flow's, made before a flow runs: the archive is scanned
    (headers only) and every station-day x model/weights must have each of its instruments'
    logical files committed, and the archive's index must be in the lake. Anything else (new,
    late or replaced files, unreadable files to report, weights to fetch, an empty selection,
    no lake yet, a killed run to mark ``crashed``) returns None and the flow decides, records
    and reports as usual. Nothing is written: an unchanged rerun leaves the lake as it was.

    Args:
        directory: waveform archive.
        lake: lake root folder.
        window: UTC days to process.
        selection: networks, stations, locations, channels.
        pick: models, weights, thresholds (a denoiser makes its own members).
        groups: station groups whose stations alone are picked (None: all).
    """
    if not Lake(lake).exists() or len(stale_runs(lake)):
        return None  # no lake yet, or killed runs the flow marks crashed first
    from quakelake.archive import waveforms
    from quakelake.params import groups as station_groups
    from quakelake.picking import models as picking

    if not all(picking.known_model(m, w) for m in pick.models for w in pick.weights):
        return None  # weights to fetch or to refuse: the flow loads and warns
    scan = waveforms.scan_archive(Path(directory), selection=selection)
    if scan.failures or not len(scan.index):
        return None  # unreadable files are reported (and recorded) by the flow
    held = set(Lake(lake).stems("waveform_index")["stem"])
    if index_stem(scan.index, waveforms.archive_key(Path(directory))) not in held:
        return None
    units = waveforms.station_days(scan.index, window, selection)
    if (
        groups and units
    ):  # a group matching none of the archive's stations is refused, as by the flow
        station_groups.check_matches(
            groups, {(u.network, u.station) for u in units}, f"archive {directory}"
        )
        units = [u for u in units if station_groups.in_any(u.network, u.station, groups)]
    if not units:
        return None
    specs, warnings = picking.available_specs(pick, pick.device)
    committed = committed_stems(lake)
    for spec in specs:
        for unit in units:
            files = pick_files(unit, spec, pick)
            have = committed.get(station_prefix(unit, spec), frozenset())
            if not files or any(s not in have for _, s in files.values()):
                return None
    return {
        "run_id": None,
        "units": len(units) * len(specs),
        "done": 0,
        "skipped": len(units) * len(specs),
        "failed": 0,
        "unreadable_files": 0,
        "picks_per_phase": {},
        "models": [s.label for s in specs],
        "engines": {},
        "skipped_weights": warnings,
        "ran_on": {},
        "seconds": {},
    }


# Station-days per pick task: a task's submission costs the flow ~0.3 s whatever it holds, a
# 180 s station-day is picked in 0.1 s and a whole day in ~10 s. Small runs keep two tasks per
# task slot of the runner (threads, Dask worker threads; 4 tasks when the slots are not known):
# every slot stays busy while the flow commits what came back. Large runs send up to this many
# station-days per task.
MAX_UNITS_PER_TASK = 8
MIN_TASKS = 4


def unit_batches(
    units: list, max_per_task: int = MAX_UNITS_PER_TASK, slots: int | None = None
) -> list[list]:
    """Return ``units`` in consecutive batches, one pick task each (at most ``max_per_task``).

    ``slots``: tasks the runner runs at once (None: not known, :data:`MIN_TASKS` tasks at least).

    >>> [len(b) for b in unit_batches(list(range(16)))]
    [4, 4, 4, 4]
    >>> [len(b) for b in unit_batches(list(range(16)), slots=1)]
    [8, 8]
    >>> [len(b) for b in unit_batches(list(range(16)), slots=8)]
    [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
    >>> [len(b) for b in unit_batches(list(range(3)))]
    [1, 1, 1]
    >>> [len(b) for b in unit_batches(list(range(100)))]
    [8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 4]
    """
    min_tasks = MIN_TASKS if not slots else 2 * slots
    size = max(1, min(max_per_task, len(units) // min_tasks))
    return [units[i : i + size] for i in range(0, len(units), size)]


def batch_label(units: list) -> str:
    """Return the stations and days of a batch of station-days, for its task run's name.

    >>> from types import SimpleNamespace as U
    >>> import datetime as dt
    >>> d = dt.date(2020, 10, 1)
    >>> batch_label([U(network="CI", station="BAK", day=d), U(network="CI", station="WES", day=d)])
    'CI.BAK, CI.WES 2020-10-01'
    """
    stations = list(dict.fromkeys(ids.station_code(u.network, u.station) for u in units))
    days = sorted({u.day.isoformat() for u in units})
    when = days[0] if len(days) == 1 else f"{days[0]}..{days[-1]}"
    return f"{', '.join(stations)} {when}"
