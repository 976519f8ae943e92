"""Tasks of the associate flow: read one day of picks (+- margin), associate, write events."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from prefect import task
from prefect.cache_policies import NONE

from quakelake import association, magnitudes
from quakelake import groups as station_groups
from quakelake.association_input import one_band_per_station, read_pick_table
from quakelake.association_settings import resolve_for_network
from quakelake.lakehouse import TABLES, Lake, queries, stage_table, unit_stem
from quakelake.lakehouse.catalog import ALIAS
from quakelake.lakehouse.writer import safe_name
from quakelake.lineage import Stopwatch, UnitResult, fingerprint, frame_digest
from quakelake.params.association import AssociationError, GammaConfig, PyOctoConfig
from quakelake.stations import read_stations
from quakelake.tasks.retry import transient_only
from quakelake.velocity import model_points

ASSOCIATION_CODE_VERSION = "2"  # bump when a change alters the events made from the same inputs
MAGNITUDE_CODE_VERSION = "1"  # bump when a change alters the magnitudes made from the same inputs


@dataclass(frozen=True)
class PickSource:
    """Where the picks come from: the lake's `picks` table (optionally one model x weights) or a file.

    Attributes:
        picks_file: external pick table (CSV/Parquet: station id, phase, time, optional probability);
            None reads the lake's `picks` table.
        model: only picks of this model (lake source).
        weights: only picks of these weights (lake source).
        station_file: station metadata (StationXML/CSV); None reads the lake's `stations` table.
        group: name of the station group whose picks only are associated (None: every station).
        group_stations: the group's NET.STA patterns.
    """

    picks_file: Path | None = None
    model: str | None = None
    weights: str | None = None
    station_file: Path | None = None
    group: str | None = None
    group_stations: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """Short name of the source, used in file names and event ids (``...@GROUP`` for a group)."""
        if self.picks_file is not None:
            base = "file-" + fingerprint(str(Path(self.picks_file).resolve()), length=8)
        else:
            base = f"lake-{self.model or 'all'}-{self.weights or 'all'}"
        if self.group:
            base += f"{station_groups.GROUP_SEPARATOR}{self.group}-{fingerprint(list(self.group_stations), length=6)}"
        return base


def config_fingerprint(config: PyOctoConfig | GammaConfig) -> str:
    """Return the fingerprint of everything in ``config`` that shapes the events (model values too)."""
    return fingerprint(
        config.model_dump(mode="json"), _velocity_points(config), ASSOCIATION_CODE_VERSION
    )


def _velocity_points(config: PyOctoConfig | GammaConfig) -> list | None:
    velocity = config.velocity
    return model_points(velocity).to_numpy().round(6).tolist() if velocity.kind == "1d" else None


def unit_key(config: PyOctoConfig | GammaConfig, source: PickSource) -> str:
    """Return the key of a day's events/assignments files: associator, its settings, pick source.

    The settings are the configuration as given (a velocity model *file* by its name); what the
    day is computed from (picks, stations, the velocity file's content) is in
    :func:`unit_inputs`, so new picks or an edited file replace the day's events.
    """
    settings = fingerprint(config.model_dump(mode="json"), ASSOCIATION_CODE_VERSION)
    return f"{config.associator}.{settings}.{safe_name(source.label)}"


def unit_file_name(config: PyOctoConfig | GammaConfig, source: PickSource) -> str:
    """Return the key of a day's events/assignments files (see :func:`unit_key`)."""
    return unit_key(config, source)


def unit_inputs(
    picks: pd.DataFrame,
    stations: pd.DataFrame,
    config: PyOctoConfig | GammaConfig,
    margin_s: float,
) -> str:
    """Return the fingerprint of what a day's events are computed from.

    The picks read for the day and its margins (ids, stations, phases, times, probabilities:
    a late station, a recomputed pick unit, a wider margin all change it), the station table's
    content and the velocity model's content.
    """
    return fingerprint(
        frame_digest(picks, ["pick_id", "station_id", "phase", "time", "probability"]),
        frame_digest(
            stations,
            [
                "network",
                "station",
                "location",
                "channel",
                "latitude",
                "longitude",
                "elevation_m",
                "start",
                "end",
            ],
        ),
        _velocity_points(config),
        margin_s,
    )


def read_picks(
    lake: Path, source: PickSource, start: pd.Timestamp, end: pd.Timestamp
) -> pd.DataFrame:
    """Return the picks of ``source`` with ``start <= time < end`` (bound query parameters only)."""
    if source.picks_file is not None:
        return _in_group(_read_pick_file(Path(source.picks_file), start, end), source)
    lake_ = Lake(lake)
    if not lake_.has_files("picks"):
        return pd.DataFrame(columns=["pick_id", "station_id", "phase", "time", "probability"])
    df = queries.picks(
        lake_,
        start=start,
        before=end,
        models=[source.model] if source.model else None,
        weights=[source.weights] if source.weights else None,
    ).sort_values(["time", "pick_id"], ignore_index=True)
    df["time"] = pd.to_datetime(df["time"], utc=True)
    # the associators see one instrument per station (NET.STA.LOC): a second band's picks go
    df, _ = one_band_per_station(df)
    return _in_group(df[["pick_id", "station_id", "phase", "time", "probability"]], source)


def _in_group(picks: pd.DataFrame, source: PickSource) -> pd.DataFrame:
    """Return the picks on the stations of ``source``'s group (all picks without a group)."""
    if not source.group or not len(picks):
        return picks
    parts = picks["station_id"].astype(str).str.split(".")
    keep = [
        station_groups.in_group(p[0], p[1] if len(p) > 1 else "", source.group_stations)
        for p in parts
    ]
    return picks[pd.Series(keep, index=picks.index, dtype=bool)]


def _read_pick_file(path: Path, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    picks = read_pick_table(path)
    return picks[(picks["time"] >= start) & (picks["time"] < end)]


def read_station_source(lake: Path, source: PickSource) -> pd.DataFrame:
    """Return the stations of ``source``: its station file, or the lake's `stations` table."""
    if source.station_file is not None:
        return read_stations(source.station_file)
    stations = queries.stations(Lake(lake))
    if len(stations) == 0:
        raise AssociationError(
            f"lake {lake} has no stations; import a station file or pass -F/--file STATIONS"
        )
    return stations


def pick_counts(
    lake: Path, source: PickSource, start: pd.Timestamp, end: pd.Timestamp
) -> tuple[pd.DataFrame, float]:
    """Return picks per station id (``station_id, n``) of ``source`` in ``[start, end)`` and their span (h)."""
    if source.picks_file is None and Lake(lake).has_files("picks"):
        df = Lake(lake).query(
            f"SELECT {queries.PICK_STATION_ID} "
            "AS station_id, count(*) AS n, min(time) AS lo, max(time) AS hi FROM picks "
            "WHERE time >= ? AND time < ?"
            + (" AND model = ?" if source.model else "")
            + (" AND weights = ?" if source.weights else "")
            + " GROUP BY 1",
            [start.to_pydatetime(), end.to_pydatetime()]
            + [v for v in (source.model, source.weights) if v],
        )
    else:
        picks = read_picks(lake, source, start, end)
        df = (
            picks.groupby("station_id")
            .agg(n=("time", "size"), lo=("time", "min"), hi=("time", "max"))
            .reset_index()
        )
    if len(df) == 0:
        return pd.DataFrame(columns=["station_id", "n"]), 0.0
    hours = (pd.Timestamp(df["hi"].max()) - pd.Timestamp(df["lo"].min())).total_seconds() / 3600.0
    return df[["station_id", "n"]], hours


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
    counts, hours = pick_counts(lake, source, start, end)
    first_day = read_picks(lake, source, start, min(end, start + pd.Timedelta(days=1)))
    return resolve_for_network(
        config, read_station_source(lake, source), counts, hours, picks=first_day
    )


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
        start = pd.Timestamp(day, tz="UTC")
        margin = pd.Timedelta(seconds=margin_s)
        picks = read_picks(lake, source, start - margin, start + pd.Timedelta(days=1) + margin)
        if len(picks) == 0:
            return UnitResult("associate", key, "no_data", error="no picks in the day (+- margin)")
        stations = read_station_source(lake, source)
        # the key is the configuration as given; settings derived from the data are inputs
        inputs = fingerprint(
            unit_inputs(picks, stations, config, margin_s), config.model_dump(mode="json")
        )
        ukey = unit_key(key_config or config, source)
        name = unit_stem(ukey, inputs)
        if name in set(Lake(lake).stems("events")["stem"]) and not force:
            return UnitResult("associate", key, "skipped", output=name, inputs=inputs)
        fp = config_fingerprint(config)
        prefix = f"{config.associator}-{fingerprint(fp, source.label, length=8)}-"
        result = association.associate_day(picks, stations, day, config, margin_s, prefix)
        common = {"run_id": run_id, "associator": config.associator, "config_fingerprint": fp}
        assignments = result.assignments.assign(**common)
        events = result.events.assign(**common, pick_source=source.label)
        # one commit: the day's events and assignments, replacing those of older inputs
        Lake(lake).commit(
            [
                stage_table(lake, "assignments", assignments, name, partition, ukey),
                stage_table(lake, "events", events, name, partition, ukey),
            ],
            run_id=run_id,
            message=f"associate {key}",
        )
    return UnitResult(
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
        },
        inputs=inputs,
    )


def magnitude_key(events_stem: str) -> str:
    """Return the key of a day's amplitudes/station_magnitudes files: its events' key + ``.ml``.

    Their stem's second part fingerprints the events' inputs and the magnitude settings
    (:func:`magnitude_inputs`), so the files of other settings or older events are superseded.
    """
    return events_stem.rsplit(".", 1)[0] + ".ml"


def magnitude_inputs(events_stem: str, params: magnitudes.MagnitudeParams) -> str:
    """Return the fingerprint of what a day's magnitudes are computed from: its events and settings."""
    return fingerprint(
        events_stem.rsplit(".", 1)[-1], params.model_dump(mode="json"), MAGNITUDE_CODE_VERSION
    )


def _read_stem(lake: Path, table: str, stem: str) -> pd.DataFrame:
    """Return the rows of one committed logical file (without partition columns)."""
    spec = TABLES[table]
    cols = ", ".join(f'"{c}"' for c in spec.schema.names)
    return Lake(lake).query(f'SELECT {cols} FROM {ALIAS}."{table}" WHERE unit_file = ?', [stem])


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
    force: bool = False,
) -> UnitResult:
    """Measure amplitudes and local magnitudes of one day's events; fill the day's `events` file.

    Commits, in one transaction, `amplitudes`, the day's `events` with the magnitude columns
    (replacing the logical file ``events_stem``, the associate task's output) and
    `station_magnitudes`. Skipped when that commit is newer than the events' own, unless
    ``force``; the magnitude files carry the events' inputs fingerprint and replace those of
    older inputs.
    """
    key = day.isoformat()
    partition = {"day": key}
    name = events_stem
    mkey = magnitude_key(name)
    target = unit_stem(mkey, magnitude_inputs(name, params))
    stems = Lake(lake).stems()
    when = dict(zip(stems["table_name"] + "/" + stems["stem"], stems["committed"], strict=True))
    if f"events/{name}" not in when:
        return UnitResult("magnitude", key, "no_data", error="no events file for the day")
    done = when.get(f"station_magnitudes/{target}")
    if done is not None and not force and done >= when[f"events/{name}"]:
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
        index = lake_.query(
            'SELECT * FROM waveform_index WHERE "end" >= ? AND start <= ?',
            [start.to_pydatetime(), (start + pd.Timedelta(hours=26)).to_pydatetime()],
        )
        stations = read_station_source(lake, source)
        inventory = magnitudes.read_inventory(response_files)
        result = magnitudes.day_magnitudes(events, assignments, stations, inventory, index, params)
        common = {
            c: events[c].iloc[0] if len(events) else None
            for c in ("run_id", "associator", "config_fingerprint")
        }
        Lake(lake).commit(
            [
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
            ],
            run_id=str(common.get("run_id") or ""),
            message=f"magnitudes {key}",
        )
    with_ml = int(result.events["magnitude"].notna().sum()) if len(result.events) else 0
    return UnitResult(
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
        },
    )
