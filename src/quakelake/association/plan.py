"""Which association days a run has to compute: each day's logical file and what the lake holds.

An association day (UTC day x associator settings x pick source) writes one `events` and one
`assignments` logical file, named by the day's key (:func:`unit_key`) and the fingerprint of
what its events are computed from (:func:`day_unit`); its magnitudes are a second file keyed by
the events' file (:func:`magnitude_state`). The associate tasks skip a day whose file is
committed; :func:`nothing_to_do` asks the same question of the whole run before Prefect is even
imported, so that an unchanged rerun of ``quakelake associate`` (or ``quakelake run``) answers in
about a second and writes nothing. A new or late pick, another station table, other settings
give other stems, and the run goes to the flow as usual.

No Prefect here (the command line uses it before deciding whether a flow runs).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from quakelake.archive.stations import read_stations, stations_stem
from quakelake.association.inputs import one_band_per_station, read_pick_table
from quakelake.association.settings import resolve_for_network
from quakelake.association.velocity import model_points
from quakelake.lakehouse import Lake, queries, unit_stem
from quakelake.lakehouse.lineage import fingerprint, frame_digest, stale_runs
from quakelake.lakehouse.writer import safe_name
from quakelake.params import TimeWindow
from quakelake.params import groups as station_groups
from quakelake.params.association import AssociationError, GammaConfig, PyOctoConfig

if TYPE_CHECKING:
    from quakelake.association.magnitudes import MagnitudeParams
    from quakelake.config import RunConfig

ASSOCIATION_CODE_VERSION = "3"  # bump when a change alters the events made from the same inputs
MAGNITUDE_CODE_VERSION = "2"  # bump when a change alters the magnitudes made from the same inputs


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
        df = queries.pick_counts(
            Lake(lake), start.to_pydatetime(), end.to_pydatetime(), source.model, source.weights
        )
    else:
        picks = read_picks(lake, source, start, end)
        df = (
            picks.groupby("station_id")
            .agg(n=("time", "size"), lo=("time", "min"), hi=("time", "max"))
            .reset_index()
        )
    df = _in_group(df, source)  # a group's settings follow from its own stations' picks
    if len(df) == 0:
        return pd.DataFrame(columns=["station_id", "n"]), 0.0
    hours = (pd.Timestamp(df["hi"].max()) - pd.Timestamp(df["lo"].min())).total_seconds() / 3600.0
    return df[["station_id", "n"]], hours


def magnitude_key(events_stem: str) -> str:
    """Return the key of a day's amplitudes/station_magnitudes files: its events' key + ``.ml``.

    Their stem's second part fingerprints the events' inputs and the magnitude settings
    (:func:`magnitude_inputs`), so the files of other settings or older events are superseded.
    """
    return events_stem.rsplit(".", 1)[0] + ".ml"


def magnitude_inputs(events_stem: str, params: MagnitudeParams) -> str:
    """Return the fingerprint of what a day's magnitudes are computed from: its events and settings."""
    return fingerprint(
        events_stem.rsplit(".", 1)[-1], params.model_dump(mode="json"), MAGNITUDE_CODE_VERSION
    )


def derive_settings(
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
    stations = read_station_source(lake, source)
    if source.group and len(stations):
        # the group's own geometry: both groups of a network do not share one set of settings
        mine = [
            station_groups.in_group(str(n), str(s), source.group_stations)
            for n, s in zip(stations["network"], stations["station"], strict=True)
        ]
        stations = stations[pd.Series(mine, index=stations.index, dtype=bool)]
    return resolve_for_network(config, stations, counts, hours, picks=first_day)


def settings_span(days: list[dt.date], margin_s: float) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Return the span whose stations and picks the run's settings are derived from (days + margins)."""
    margin = pd.Timedelta(seconds=margin_s)
    first = pd.Timestamp(days[0], tz="UTC") - margin
    return first, pd.Timestamp(days[-1], tz="UTC") + pd.Timedelta(days=1) + margin


def association_days(lake: Path, source: PickSource, window: TimeWindow) -> list[dt.date]:
    """Return the UTC days a run associates: the window's, or those with picks when it is open."""
    if window.start is not None and window.end is not None:
        return window.days()
    lo = pd.Timestamp(window.start or "1900-01-01", tz="UTC")
    hi = pd.Timestamp(window.end or "2200-12-31", tz="UTC") + pd.Timedelta(days=1)
    if source.picks_file is None:
        if not Lake(lake).has_files("picks"):
            return []
        first, last = queries.pick_time_range(Lake(lake), lo.to_pydatetime(), hi.to_pydatetime())
    else:
        picks = read_picks(lake, source, lo, hi)
        first, last = (picks["time"].min(), picks["time"].max()) if len(picks) else (None, None)
    if first is None or pd.isna(first):
        return []
    start = (
        pd.Timestamp(first).tz_convert("UTC").date()
        if pd.Timestamp(first).tzinfo
        else pd.Timestamp(first).date()
    )
    end = (
        pd.Timestamp(last).tz_convert("UTC").date()
        if pd.Timestamp(last).tzinfo
        else pd.Timestamp(last).date()
    )
    return TimeWindow(start=start, end=end).days()


@dataclass(frozen=True)
class DayUnit:
    """One association day: what it is computed from and the logical file of its events.

    Attributes:
        picks: the picks of the day and its margins.
        stations: the station table the day is associated with.
        inputs: fingerprint of picks, stations, velocity model and resolved settings.
        key: the day's unit key (:func:`unit_key` of the configuration as given).
        name: the day's logical file (stem) in `events` and `assignments`.
    """

    picks: pd.DataFrame
    stations: pd.DataFrame
    inputs: str
    key: str
    name: str


def day_unit(
    day: dt.date,
    lake: Path,
    config: PyOctoConfig | GammaConfig,
    source: PickSource,
    margin_s: float = 120.0,
    key_config: PyOctoConfig | GammaConfig | None = None,
) -> DayUnit | None:
    """Return the association unit of ``day`` (None when the day has no picks, margins included).

    ``config`` is the resolved configuration (derived settings filled in), ``key_config`` the
    one given: the key is the configuration as given, settings derived from the data are inputs.
    """
    start = pd.Timestamp(day, tz="UTC")
    margin = pd.Timedelta(seconds=margin_s)
    picks = read_picks(lake, source, start - margin, start + pd.Timedelta(days=1) + margin)
    if len(picks) == 0:
        return None
    stations = read_station_source(lake, source)
    inputs = fingerprint(
        unit_inputs(picks, stations, config, margin_s), config.model_dump(mode="json")
    )
    ukey = unit_key(key_config or config, source)
    return DayUnit(picks, stations, inputs, ukey, unit_stem(ukey, inputs))


def committed_times(lake: Path) -> dict[str, Any]:
    """Return when each committed logical file was committed, by ``TABLE/STEM``."""
    stems = Lake(lake).stems()
    return dict(zip(stems["table_name"] + "/" + stems["stem"], stems["committed"], strict=True))


def magnitude_state(
    committed: dict[str, Any],
    events_stem: str,
    params: MagnitudeParams,
    force: bool = False,
) -> tuple[str, str]:
    """Return the magnitude file of a day's events and whether it is to do.

    The second value: ``no_data`` (no events file ``events_stem``), ``skipped`` (its magnitudes
    for ``params`` were committed after the events, and not ``force``) or ``todo``.

    Args:
        committed: :func:`committed_times` of the lake.
        events_stem: the day's events logical file.
        params: magnitude settings.
        force: recompute magnitudes already made.
    """
    target = unit_stem(magnitude_key(events_stem), magnitude_inputs(events_stem, params))
    if f"events/{events_stem}" not in committed:
        return target, "no_data"
    done = committed.get(f"station_magnitudes/{target}")
    if done is not None and not force and done >= committed[f"events/{events_stem}"]:
        return target, "skipped"
    return target, "todo"


def nothing_to_do(
    lake: Path,
    window: TimeWindow,
    config: PyOctoConfig | GammaConfig,
    source: PickSource,
    margin_s: float = 120.0,
    magnitude: MagnitudeParams | None = None,
    response_files: list[Path] | None = None,
) -> dict[str, Any] | None:
    """Return the summary of an associate run that would find every day done, or None when it has work.

    The same decision as the associate flow's, made before a flow runs: the days, the derived
    settings and each day's events file (:func:`day_unit`) as the flow computes them, every one
    committed; with magnitudes (and responses to measure them), each day's magnitude file
    committed after its events (:func:`magnitude_state`); a station file's table already in the
    lake. Anything else (a new or late pick, other settings or stations, a killed run to
    record, no picks at all) returns None and the flow decides, records and reports as usual.
    Nothing is written.

    Args:
        lake: lake root folder.
        window: UTC days to associate (open ends: the days that have picks).
        config: associator configuration as given.
        source: where the picks (and stations) come from.
        margin_s: seconds of picks read on both sides of each day.
        magnitude: local magnitude settings; None: no magnitudes.
        response_files: StationXML files with the instrument responses (none: no magnitudes).
    """
    lake = Path(lake)
    if not Lake(lake).exists() or len(stale_runs(lake)):
        return None  # no lake yet, or killed runs the flow marks crashed first
    if source.station_file is not None:
        written = stations_stem(read_stations(source.station_file))
        if written not in set(Lake(lake).stems("stations")["stem"]):
            return None  # the flow imports the station file first
    try:
        days = association_days(lake, source, window)
        if not days:
            return None  # the flow says there are no picks
        resolved, settings = derive_settings(lake, config, source, *settings_span(days, margin_s))
        held = set(Lake(lake).stems("events")["stem"])
        outputs = []
        for day in days:
            unit = day_unit(day, lake, resolved, source, margin_s, key_config=config)
            if unit is not None and unit.name not in held:
                return None
            outputs.append(unit.name if unit is not None else None)
    except AssociationError:
        return None  # bad input: the flow reports it
    done = [name for name in outputs if name is not None]
    if not done:
        return None  # no day has picks: the flow says so
    summary: dict[str, Any] = {
        "run_id": None,
        "associator": resolved.associator,
        "config_fingerprint": config_fingerprint(resolved),
        "pick_source": source.label,
        "days": len(days),
        "done": 0,
        "skipped": len(done),
        "failed": 0,
        "no_data": len(days) - len(done),
        "events": 0,
        "unknown_stations": [],
        "seconds": 0.0,
    }
    if magnitude is not None:
        if response_files:
            committed = committed_times(lake)
            if any(magnitude_state(committed, n, magnitude)[1] != "skipped" for n in done):
                return None
        summary["magnitudes"] = {
            "done": 0,
            "skipped": len(done) if response_files else 0,
            "failed": 0,
            "no_data": 0,
            "events_with_ml": 0,  # as the flow counts: those it measured anew
            "law": magnitude.law.name,
            "why_none": []
            if response_files
            else ["no StationXML with responses; pass -F/--file stations.xml"],
        }
    summary["settings"] = settings
    return summary


def given_response_files(
    response_files: list[Path] | None, station_file: Path | None
) -> list[Path]:
    """Return the StationXML files an associate run measures magnitudes with.

    The files given, else the station file when it is StationXML, else none.
    """
    if response_files:
        return [Path(p) for p in response_files]
    if station_file is not None and Path(station_file).suffix.lower() in (".xml", ".stationxml"):
        return [Path(station_file)]
    return []


def pick_sets(config: RunConfig, ensemble_weights: str | None = None) -> list[tuple[str, str]]:
    """Return the (model, weights) pick sets of a run: every member, and the ensemble when made."""
    sets = [(m, w) for m in config.pick.models for w in config.pick.grid_weights()]
    if ensemble_weights:
        sets.append(("ensemble", ensemble_weights))
    return sets


def response_files(config: RunConfig) -> list[Path]:
    """Return the StationXML files with instrument responses: -F when StationXML, else the downloaded ones."""
    if config.station_file is not None and Path(config.station_file).suffix.lower() in (
        ".xml",
        ".stationxml",
    ):
        return [Path(config.station_file)]
    if config.directory is not None:
        return sorted((Path(config.directory) / "stations").glob("*.xml"))
    return []


def pipeline_nothing_to_do(
    config: RunConfig, pick: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """Return the summaries of a pipeline run (``quakelake run``) that finds nothing to do, or None.

    Only a run of the archive's pick and associate stages: a download, an ensemble, ``--force``
    or an analysis (each analysis is a new run of its own, with its report) go to the flow.
    Pick (:func:`quakelake.picking.plan.nothing_to_do`) and every association the pipeline would
    run (each pick set x station group, :func:`nothing_to_do`) must have nothing to do.
    ``pick``: :func:`quakelake.picking.plan.run_pick_answer`'s summary when the caller has it
    (else asked here).
    """
    from quakelake.picking.plan import run_pick_answer

    if config.analyze.reference:
        return None
    pick = pick if pick is not None else run_pick_answer(config)
    if pick is None:
        return None
    groups = station_groups.resolve(config.groups, config.groups_file, config.use_groups)
    out: dict[str, Any] = {"pick": pick}
    if config.associate is None:
        return out
    lake = Lake(config.lake)
    if config.station_file is None and not lake.has_files("stations"):
        return None  # the flow warns that association is skipped
    if not lake.has_files("picks"):
        return None
    held = queries.pick_sets(lake)
    have = set(zip(held["model"], held["weights"], strict=True))
    sources = [
        mw for mw in pick_sets(config) if mw in have
    ]  # others were skipped by the pick stage
    summaries = nothing_to_associate(config, sources, groups, None, response_files(config))
    if summaries is None:
        return None
    out["associate"] = summaries
    return out


def nothing_to_associate(
    config: Any,
    sources: list[tuple[str | None, str | None]],
    groups: dict[str, list[str]] | None,
    picks_file: Path | None,
    responses: Any,
) -> list[dict] | None:
    """Return one :func:`nothing_to_do` summary per pick set x group, None as soon as one has work.

    ``config`` is the run's settings (lake, window, associate, station file, magnitude);
    ``responses`` the response files the magnitudes are measured with.
    """
    summaries = []
    for model, weights in sources:
        for group, patterns in groups.items() if groups else [(None, None)]:
            source = PickSource(
                picks_file=picks_file,
                model=model,
                weights=weights,
                station_file=config.station_file,
                group=group,
                group_stations=tuple(patterns or ()),
            )
            summary = nothing_to_do(
                config.lake,
                config.window,
                config.associate,
                source,
                magnitude=config.magnitude,
                response_files=responses,
            )
            if summary is None:
                return None
            summaries.append(summary)
    return summaries
