"""Tasks of the associate flow: read one day of picks (+- margin), associate, write events."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from prefect import task
from prefect.cache_policies import NONE

from quakelake import association, magnitudes
from quakelake.lakehouse import Lake, file_path, write_table
from quakelake.lakehouse.writer import safe_name
from quakelake.lineage import Stopwatch, UnitResult, fingerprint
from quakelake.stations import read_stations

ASSOCIATION_CODE_VERSION = "1"  # bump when a change alters the events made from the same inputs
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
    """

    picks_file: Path | None = None
    model: str | None = None
    weights: str | None = None
    station_file: Path | None = None

    @property
    def label(self) -> str:
        """Short name of the source, used in file names and event ids."""
        if self.picks_file is not None:
            return "file-" + fingerprint(str(Path(self.picks_file).resolve()), length=8)
        return f"lake-{self.model or 'all'}-{self.weights or 'all'}"


def config_fingerprint(config: association.PyOctoConfig | association.GammaConfig) -> str:
    """Return the fingerprint of everything in ``config`` that shapes the events (model values too)."""
    velocity = config.velocity
    points = velocity.model().to_numpy().round(6).tolist() if velocity.kind == "1d" else None
    return fingerprint(config.model_dump(mode="json"), points, ASSOCIATION_CODE_VERSION)


def unit_file_name(config: association.PyOctoConfig | association.GammaConfig, source: PickSource) -> str:
    """Return the stem of a day's events/assignments files: associator, config fingerprint, source."""
    return f"{config.associator}.{config_fingerprint(config)}.{safe_name(source.label)}"


def read_picks(lake: Path, source: PickSource, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Return the picks of ``source`` with ``start <= time < end`` (bound query parameters only)."""
    if source.picks_file is not None:
        return _read_pick_file(Path(source.picks_file), start, end)
    lake_ = Lake(lake)
    if not lake_.has_files("picks"):
        return pd.DataFrame(columns=["pick_id", "station_id", "phase", "time", "probability"])
    sql = ("SELECT pick_id, station_id, network, station, location, phase, time, probability "
           "FROM picks WHERE time >= ? AND time < ?")
    params: list = [start.to_pydatetime(), end.to_pydatetime()]
    if source.model:
        sql += " AND model = ?"
        params.append(source.model)
    if source.weights:
        sql += " AND weights = ?"
        params.append(source.weights)
    df = lake_.query(sql + " ORDER BY time", params)
    built = (df["network"].fillna("") + "." + df["station"].fillna("") + "." + df["location"].fillna(""))
    df["station_id"] = df["station_id"].where(df["station_id"].notna() & (df["station_id"] != ""), built)
    df["time"] = pd.to_datetime(df["time"], utc=True)
    return df[["pick_id", "station_id", "phase", "time", "probability"]]


def _read_pick_file(path: Path, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    picks = association.read_pick_table(path)
    return picks[(picks["time"] >= start) & (picks["time"] < end)]


def read_station_source(lake: Path, source: PickSource) -> pd.DataFrame:
    """Return the stations of ``source``: its station file, or the lake's `stations` table."""
    if source.station_file is not None:
        return read_stations(source.station_file)
    stations = Lake(lake).read("stations")
    if len(stations) == 0:
        raise association.AssociationError(
            f"lake {lake} has no stations; import a station file or pass -F/--file STATIONS")
    return stations


@task(name="associate-day", retries=2, retry_delay_seconds=[5, 30], cache_policy=NONE)
def associate_day_task(
    day: dt.date,
    lake: Path,
    config: association.PyOctoConfig | association.GammaConfig,
    source: PickSource,
    run_id: str,
    margin_s: float = 120.0,
    force: bool = False,
) -> UnitResult:
    """Associate the events of one UTC day into one `events` and one `assignments` file.

    Picks are read from ``day - margin`` to ``day + 1 + margin``; only events with origin in
    ``day`` are kept. A day whose events file exists is skipped unless ``force``.
    """
    key = day.isoformat()
    name = unit_file_name(config, source)
    partition = {"day": key}
    target = file_path(lake, "events", partition, name)
    if target.exists() and not force:
        return UnitResult("associate", key, "skipped", output=str(target))
    with Stopwatch() as sw:
        start = pd.Timestamp(day, tz="UTC")
        margin = pd.Timedelta(seconds=margin_s)
        picks = read_picks(lake, source, start - margin, start + pd.Timedelta(days=1) + margin)
        if len(picks) == 0:
            return UnitResult("associate", key, "no_data", error="no picks in the day (+- margin)")
        stations = read_station_source(lake, source)
        fp = config_fingerprint(config)
        prefix = f"{config.associator}-{fingerprint(fp, source.label, length=8)}-"
        result = association.associate_day(picks, stations, day, config, margin_s, prefix)
        common = {"run_id": run_id, "associator": config.associator, "config_fingerprint": fp}
        assignments = result.assignments.assign(**common)
        events = result.events.assign(**common, pick_source=source.label)
        # assignments first: the events file marks the unit done
        write_table(lake, "assignments", assignments, name, partition)
        write_table(lake, "events", events, name, partition)
    return UnitResult(
        "associate", key, "done", rows=len(events), seconds=sw.seconds, output=str(target),
        error="; ".join(result.messages)[:2000],
        extra={"picks": len(picks), "assigned": len(assignments), "unknown_stations": result.unknown_stations},
    )


def magnitude_file_name(config: association.PyOctoConfig | association.GammaConfig, source: PickSource,
                        params: magnitudes.MagnitudeParams) -> str:
    """Return the stem of a day's amplitudes/station_magnitudes files: the events' stem + magnitude settings."""
    return (unit_file_name(config, source) + "."
            + fingerprint(params.model_dump(mode="json"), MAGNITUDE_CODE_VERSION, length=8))


def _drop_other_magnitude_files(lake: Path, partition: dict, events_stem: str, keep: str) -> None:
    """Remove the day's amplitudes/station magnitudes of these events made with other magnitude settings.

    The events file holds the latest settings' ML: older station magnitudes would contradict it.
    The new files are complete before the old ones go, so readers always see one consistent set.
    """
    for table in ("station_magnitudes", "amplitudes"):
        folder = file_path(lake, table, partition, keep).parent
        for old in folder.glob(f"{events_stem}.*.parquet"):
            if old.stem != keep and old.stem.count(".") == keep.count("."):
                old.unlink(missing_ok=True)


def _read_file(path: Path) -> pd.DataFrame:
    return pq.ParquetFile(path).read().to_pandas()  # one file: no partition columns from its folder


@task(name="magnitudes-day", retries=2, retry_delay_seconds=[5, 30], cache_policy=NONE)
def magnitudes_day_task(
    day: dt.date,
    lake: Path,
    config: association.PyOctoConfig | association.GammaConfig,
    source: PickSource,
    params: magnitudes.MagnitudeParams,
    response_files: list[Path],
    force: bool = False,
) -> UnitResult:
    """Measure amplitudes and local magnitudes of one day's events; fill the day's `events` file.

    Writes `amplitudes`, rewrites the day's `events` file (atomically) with the magnitude
    columns, then `station_magnitudes` (which marks the unit done). Skipped when that file is
    newer than the events file, unless ``force``.
    """
    key = day.isoformat()
    partition = {"day": key}
    name = unit_file_name(config, source)
    events_path = file_path(lake, "events", partition, name)
    target = file_path(lake, "station_magnitudes", partition, magnitude_file_name(config, source, params))
    if not events_path.exists():
        return UnitResult("magnitude", key, "no_data", error="no events file for the day")
    if target.exists() and not force and target.stat().st_mtime >= events_path.stat().st_mtime:
        return UnitResult("magnitude", key, "skipped", output=str(target))
    if not response_files:
        return UnitResult("magnitude", key, "no_data",
                          error="no StationXML with responses; pass -F/--file stations.xml")
    with Stopwatch() as sw:
        events = _read_file(events_path)
        assignments = _read_file(file_path(lake, "assignments", partition, name))
        lake_ = Lake(lake)
        if not lake_.has_files("waveform_index"):
            return UnitResult("magnitude", key, "no_data", error="no waveform_index in the lake; pick from an archive")
        start = pd.Timestamp(day, tz="UTC") - pd.Timedelta(hours=1)
        index = lake_.query('SELECT * FROM waveform_index WHERE "end" >= ? AND start <= ?',
                            [start.to_pydatetime(), (start + pd.Timedelta(hours=26)).to_pydatetime()])
        stations = read_station_source(lake, source)
        inventory = magnitudes.read_inventory(response_files)
        result = magnitudes.day_magnitudes(events, assignments, stations, inventory, index, params)
        common = {c: events[c].iloc[0] if len(events) else None for c in ("run_id", "associator", "config_fingerprint")}
        write_table(lake, "amplitudes", result.amplitudes.assign(**common), target.stem, partition)
        write_table(lake, "events", result.events, name, partition)
        write_table(lake, "station_magnitudes", result.station_magnitudes.assign(**common), target.stem, partition)
        _drop_other_magnitude_files(lake, partition, name, target.stem)
    with_ml = int(result.events["magnitude"].notna().sum()) if len(result.events) else 0
    return UnitResult(
        "magnitude", key, "done", rows=len(result.station_magnitudes), seconds=sw.seconds, output=str(target),
        error="; ".join(result.messages)[:2000],
        extra={"events": len(events), "events_with_ml": with_ml, "amplitudes": len(result.amplitudes)},
    )
